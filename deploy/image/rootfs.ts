// What goes into the netmesh image, decided in one place. Both builds run this script:
//   deploy/Dockerfile (the `build` stage)   node deploy/image/rootfs.ts /rootfs
//   npm run image (no container engine)      deploy/image/build.ts calls stageRootfs()
// It stages three root filesystems, one image layer each, so a code change replaces only the
// small last layer:
//   runtime/       the pinned Node binary (the npm `node` package, the same Node the tests run)
//                  and the shared libraries it links, /etc/passwd with the non-root user, /tmp
//   dependencies/  /app/node_modules: production dependencies only (npm ci --omit=dev)
//   app/           /app: package.json, build-info, and bin/: the CLI and the product bundled
//                  to JavaScript with the parts of @kubernetes/client-node it uses (bundle.ts)
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  globSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleApp } from './bundle.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The product's source folders: what the bundle in /app/bin is made of (with its imports). */
export const APP_DIRS = ['bin', 'cli', 'lib', 'runtime', 'operator', 'webhook'] as const;
/** Files next to them that the product reads or npm needs. */
export const APP_FILES = ['package.json'] as const;
/** The non-root user the image runs as (the chart's runAsUser). */
export const IMAGE_UID = 65532;

export const LAYERS = ['runtime', 'dependencies', 'app'] as const;

/** The pinned Node binary: the one the `node` npm package installed for this checkout. */
export function pinnedNodeBinary(repo = REPO_ROOT): string {
  const require = createRequire(join(repo, 'package.json'));
  const bin = join(dirname(require.resolve('node/package.json')), 'bin', 'node');
  if (!existsSync(bin)) throw new Error(`the pinned Node binary is missing (${bin}): run npm ci`);
  return realpathSync(bin);
}

/** Shared libraries (and the ELF interpreter) a dynamically linked binary loads, from ldd. */
export function sharedLibraries(binary: string): string[] {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  if (!libs.some((l) => l.includes('ld-linux'))) throw new Error(`ldd found no ELF interpreter for ${binary}`);
  return libs;
}

/** Copies `src` to `dest` inside a staged root, following symlinks (the image has no /usr merge). */
function place(root: string, imagePath: string, src: string, mode?: number): void {
  const dest = join(root, imagePath);
  mkdirSync(dirname(dest), { recursive: true });
  copyFileSync(realpathSync(src), dest);
  if (mode !== undefined) chmodSync(dest, mode);
}

function commit(repo: string): string {
  if (process.env['NETMESH_COMMIT']) return process.env['NETMESH_COMMIT'];
  try {
    const head = execFileSync('git', ['-C', repo, 'rev-parse', '--short=12', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    const dirty = execFileSync('git', ['-C', repo, 'status', '--porcelain', '--', ...APP_DIRS], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return dirty ? `${head}-dirty` : head;
  } catch {
    return 'unknown';
  }
}

function stageRuntime(root: string, repo: string): void {
  const node = pinnedNodeBinary(repo);
  place(root, '/usr/local/bin/node', node, 0o755);
  for (const lib of sharedLibraries(node)) place(root, lib, lib, 0o755);
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(
    join(root, 'etc', 'passwd'),
    `root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:${IMAGE_UID}:${IMAGE_UID}:nonroot:/home/nonroot:/sbin/nologin\n`,
  );
  writeFileSync(join(root, 'etc', 'group'), `root:x:0:\nnonroot:x:${IMAGE_UID}:\n`);
  mkdirSync(join(root, 'home', 'nonroot'), { recursive: true });
  mkdirSync(join(root, 'tmp'), { recursive: true });
  chmodSync(join(root, 'tmp'), 0o1777);
}

function stageDependencies(root: string, repo: string): void {
  const work = mkdtempSync(join(tmpdir(), 'netmesh-deps-'));
  try {
    for (const f of ['package.json', 'package-lock.json', '.npmrc']) copyFileSync(join(repo, f), join(work, f));
    // --ignore-scripts: no production dependency needs an install script, and none may run one.
    execFileSync(
      'npm',
      ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'],
      { cwd: work, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, npm_config_engine_strict: 'false' } },
    );
    mkdirSync(join(root, 'app'), { recursive: true });
    cpSync(join(work, 'node_modules'), join(root, 'app', 'node_modules'), { recursive: true, verbatimSymlinks: true });
    // npm's bookkeeping differs run to run; it is not part of what the image runs. Type
    // declarations and source maps are never loaded at run time (a third of the size).
    rmSync(join(root, 'app', 'node_modules', '.package-lock.json'), { force: true });
    for (const f of globSync('**/*.{d.ts,d.mts,d.cts,map}', { cwd: join(root, 'app', 'node_modules') }))
      rmSync(join(root, 'app', 'node_modules', f), { force: true });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function stageApp(root: string, repo: string): Promise<void> {
  const app = join(root, 'app');
  mkdirSync(app, { recursive: true });
  // Bundled JavaScript: run-time type stripping and client-node's whole barrel would cost every
  // process about 60 MB more resident memory (bundle.ts).
  await bundleApp(repo, app);
  for (const f of APP_FILES) copyFileSync(join(repo, f), join(app, f));
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };
  writeFileSync(join(app, 'build-info.json'), `${JSON.stringify({ version: pkg.version, commit: commit(repo) })}\n`);
}

/** Stages the image's three root filesystems under `out` (replacing what was there). */
export async function stageRootfs(out: string, repo = REPO_ROOT): Promise<Record<(typeof LAYERS)[number], string>> {
  rmSync(out, { recursive: true, force: true });
  const dirs = { runtime: join(out, 'runtime'), dependencies: join(out, 'dependencies'), app: join(out, 'app') };
  stageRuntime(dirs.runtime, repo);
  stageDependencies(dirs.dependencies, repo);
  await stageApp(dirs.app, repo);
  return dirs;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = process.argv[2];
  if (!out) {
    console.error('usage: node deploy/image/rootfs.ts <output-dir>');
    process.exit(2);
  }
  await stageRootfs(resolve(out));
  console.log(`staged ${LAYERS.map((l) => join(out, l)).join(', ')}`);
}
