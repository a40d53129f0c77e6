// `npm run image`: builds the netmesh image as an OCI archive on a machine with no container
// engine and no registry. It stages the root filesystems with rootfs.ts (as the Dockerfile's
// build stage does) and takes everything else from the Dockerfile's final stage: which staged
// folder becomes which layer (COPY --from=build), ENV, WORKDIR, USER, EXPOSE, ENTRYPOINT, CMD.
// So deploy/Dockerfile stays the one definition of the image.
//
//   npm run image [-- --tag localhost/netmesh:dev] [--out dir]
// prints the archive's path and how to load it (ctr, kind, docker, skopeo).
import { createHash } from 'node:crypto';
import { existsSync, globSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type BuiltImage, type ImageRuntimeConfig, readLayout, writeImageLayout, writeLayoutArchive } from './oci.ts';
import { APP_DIRS, APP_FILES, pinnedNodeBinary, REPO_ROOT, stageRootfs } from './rootfs.ts';

export const DOCKERFILE = join(REPO_ROOT, 'deploy', 'Dockerfile');

export interface FinalStage {
  /** Staged folder (relative to the build stage's /rootfs) per layer, in order. */
  layers: string[];
  config: ImageRuntimeConfig;
}

/** The instructions of the Dockerfile's last stage that define the image, in Docker's semantics. */
export function parseFinalStage(text: string): FinalStage {
  // Join continuation lines, drop comments and blanks.
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const lastFrom = lines.findLastIndex((l) => /^FROM\s/i.test(l));
  if (lastFrom < 0) throw new Error('the Dockerfile has no FROM');
  if (!/^FROM\s+scratch\s*$/i.test(lines[lastFrom]!))
    throw new Error(`the final stage must start FROM scratch to be built without Docker (found "${lines[lastFrom]}")`);
  const stage: FinalStage = { layers: [], config: {} };
  const env: string[] = [];
  for (const line of lines.slice(lastFrom + 1)) {
    const [, instr = '', rest = ''] = /^(\S+)\s+(.*)$/.exec(line) ?? [];
    const json = (): string[] => JSON.parse(rest) as string[];
    switch (instr.toUpperCase()) {
      case 'COPY': {
        const m = /^--from=build\s+\/rootfs\/([\w-]+)\/?\s+\/$/.exec(rest);
        if (!m) throw new Error(`unsupported COPY in the final stage: ${line}`);
        stage.layers.push(m[1]!);
        break;
      }
      case 'ENV':
        for (const m of rest.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env.push(`${m[1]}=${m[2]!.replace(/^"|"$/g, '')}`);
        break;
      case 'WORKDIR':
        stage.config.WorkingDir = rest;
        break;
      case 'USER':
        stage.config.User = rest;
        break;
      case 'EXPOSE':
        stage.config.ExposedPorts = Object.fromEntries(
          rest.split(/\s+/).map((p) => [p.includes('/') ? p : `${p}/tcp`, {}]),
        );
        break;
      case 'ENTRYPOINT':
        stage.config.Entrypoint = json();
        break;
      case 'CMD':
        stage.config.Cmd = json();
        break;
      default:
        throw new Error(`unsupported instruction in the final stage: ${line}`);
    }
  }
  if (env.length) stage.config.Env = env;
  if (!stage.layers.length) throw new Error('the final stage copies nothing from /rootfs');
  return stage;
}

/**
 * The Node options between the node binary and bin/netmesh.js in the final stage's ENTRYPOINT,
 * so that whatever runs netmesh outside the image (the benchmarks) runs it as the image does.
 */
export function entrypointNodeArgs(stage: FinalStage): string[] {
  const entrypoint = stage.config.Entrypoint ?? [];
  if (entrypoint.length < 2 || !entrypoint[0]!.endsWith('/node') || entrypoint.at(-1) !== '/app/bin/netmesh.js')
    throw new Error(`the ENTRYPOINT must be [node, <options>..., /app/bin/netmesh.js], got ${JSON.stringify(entrypoint)}`);
  return entrypoint.slice(1, -1);
}

export function defaultReference(): string {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  return `localhost/netmesh:${pkg.version}`;
}

/** Everything the image is made of: the same inputs give the same image, so it is reused. */
function inputHash(reference: string): string {
  const h = createHash('sha256').update(reference);
  const files = [
    'deploy/Dockerfile',
    'deploy/image/rootfs.ts',
    'deploy/image/bundle.ts',
    'deploy/image/oci.ts',
    'package-lock.json',
    ...APP_FILES,
    ...globSync(`{${APP_DIRS.join(',')}}/**/*`, { cwd: REPO_ROOT }).filter((f) => !f.endsWith('.test.ts')),
  ].sort();
  for (const f of files) {
    const p = join(REPO_ROOT, f);
    if (statSync(p).isFile()) h.update(f).update('\0').update(readFileSync(p));
  }
  const node = statSync(pinnedNodeBinary());
  return h.update(`node:${node.size}:${node.mtimeMs}`).digest('hex').slice(0, 16);
}

export interface ProductImage extends BuiltImage {
  archive: string;
  /** False when an identical earlier build was reused. */
  built: boolean;
}

/** Builds (or reuses) the product image as an OCI layout and archive under `outDir`. */
export async function buildProductImage(
  opts: { reference?: string; outDir?: string; log?: (s: string) => void } = {},
): Promise<ProductImage> {
  const reference = opts.reference ?? defaultReference();
  const outDir = opts.outDir ?? join(REPO_ROOT, '.netmesh', 'image');
  const safe = reference.replace(/[^\w.-]+/g, '_');
  const layoutDir = join(outDir, `${safe}.layout`);
  const archive = join(outDir, `${safe}.oci.tar`);
  const stamp = join(outDir, `${safe}.inputs`);
  const hash = inputHash(reference);
  if (existsSync(archive) && existsSync(stamp) && readFileSync(stamp, 'utf8') === hash) {
    return { ...readLayout(layoutDir), archive, built: false };
  }
  const started = Date.now();
  mkdirSync(outDir, { recursive: true });
  const stage = parseFinalStage(readFileSync(DOCKERFILE, 'utf8'));
  const staging = join(outDir, `${safe}.rootfs`);
  const dirs = (await stageRootfs(staging)) as Record<string, string>;
  try {
    const image = await writeImageLayout(
      {
        reference,
        layers: stage.layers.map((l) => {
          const dir = dirs[l];
          if (!dir) throw new Error(`the Dockerfile copies /rootfs/${l}, which rootfs.ts does not stage`);
          return { dir, comment: `COPY --from=build /rootfs/${l}/ /` };
        }),
        config: stage.config,
      },
      layoutDir,
    );
    await writeLayoutArchive(layoutDir, archive);
    writeFileSync(stamp, hash);
    opts.log?.(`image ${reference} built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return { ...image, archive, built: true };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { tag: { type: 'string', short: 't' }, out: { type: 'string' } },
  });
  const image = await buildProductImage({
    ...(values.tag ? { reference: values.tag } : {}),
    ...(values.out ? { outDir: resolve(values.out) } : {}),
    log: (s) => console.error(s),
  });
  const mb = (statSync(image.archive).size / 1e6).toFixed(0);
  console.log(`${image.reference}  ${image.manifest.digest}  ${image.built ? 'built' : 'unchanged'}`);
  console.log(`archive: ${image.archive} (${mb} MB, OCI image layout)`);
  console.log('load it where your cluster runs, for example:');
  console.log(`  kind load image-archive ${image.archive}`);
  console.log(`  ctr -n k8s.io images import ${image.archive}`);
  console.log(`  docker load -i ${image.archive}`);
  console.log(`  skopeo copy oci-archive:${image.archive} docker://<your-registry>/netmesh:<tag>`);
}
