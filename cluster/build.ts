// Builds every binary of the local cluster from the official Go modules at the versions pinned
// in the go.mod files beside this script, once per version, into a cache outside the
// repository (~/.cache/netmesh/cluster/<key>):
//   control plane  etcd, kube-apiserver, kube-controller-manager, kube-scheduler
//   node           kubelet, kube-proxy, node-cleanup (CRI teardown, see go/kube/cmd/node-cleanup)
//   images         pause (the Pod sandbox) and envoy-standin (the test sidecar), standard library only
// Nothing is downloaded prebuilt: the only network access is the Go module proxy. The Kubernetes
// commands build in one `go build`, so the packages they share compile once.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  globSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserFacingError } from '../lib/errors.ts';
import { isAlive } from './processes.ts';

const here = dirname(fileURLToPath(import.meta.url));
const goRoot = join(here, 'go');
const kubeModule = join(goRoot, 'kube');
const etcdModule = join(goRoot, 'etcd');
const imagesModule = join(goRoot, 'images');

/** The Kubernetes release the cluster is built from; must match go/kube/go.mod. */
export const KUBERNETES_VERSION = 'v1.34.4';
/** The etcd release Kubernetes pins for that release; must match go/etcd/go.mod. */
export const ETCD_VERSION = 'v3.6.4';
const MIN_GO = [1, 24] as const;

const KUBE_COMMANDS = [
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubelet',
  'kube-proxy',
  'node-cleanup',
] as const;
const IMAGE_COMMANDS = ['pause', 'envoy-standin'] as const;

export interface ClusterBinaries {
  dir: string;
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kubelet: string;
  kubeProxy: string;
  nodeCleanup: string;
  pause: string;
  envoyStandin: string;
}

export function cacheRoot(): string {
  return (
    process.env['NETMESH_CACHE_DIR'] ??
    join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'netmesh')
  );
}

/** The cache key changes whenever a pinned version or any Go source beside this script changes. */
function cacheKey(): string {
  const h = createHash('sha256');
  const files = globSync('**/{go.mod,go.sum,*.go}', { cwd: goRoot }).sort();
  for (const f of files)
    h.update(f)
      .update('\0')
      .update(readFileSync(join(goRoot, f)));
  return `${KUBERNETES_VERSION}-etcd${ETCD_VERSION}-${h.digest('hex').slice(0, 12)}`;
}

function binariesIn(dir: string): ClusterBinaries {
  return {
    dir,
    etcd: join(dir, 'etcd'),
    kubeApiserver: join(dir, 'kube-apiserver'),
    kubeControllerManager: join(dir, 'kube-controller-manager'),
    kubeScheduler: join(dir, 'kube-scheduler'),
    kubelet: join(dir, 'kubelet'),
    kubeProxy: join(dir, 'kube-proxy'),
    nodeCleanup: join(dir, 'node-cleanup'),
    pause: join(dir, 'pause'),
    envoyStandin: join(dir, 'envoy-standin'),
  };
}

export function cachedBinaries(): ClusterBinaries | undefined {
  const bins = binariesIn(join(cacheRoot(), 'cluster', cacheKey()));
  const { dir: _dir, ...files } = bins;
  return Object.values(files).every((p) => existsSync(p)) ? bins : undefined;
}

function checkGo(): string {
  const go = process.env['GO'] ?? 'go';
  const res = spawnSync(go, ['env', 'GOVERSION'], { encoding: 'utf8' });
  if (res.error || res.status !== 0) {
    throw new UserFacingError(
      'the local Kubernetes control plane is built from source and needs Go, which was not found',
      'install Go >= 1.24 (https://go.dev/doc/install), or run against an existing cluster with NETMESH_E2E_KUBECONFIG=<path>, or use Docker with NETMESH_E2E_CLUSTER=k3s',
    );
  }
  const version = res.stdout.trim();
  const m = /^go(\d+)\.(\d+)/.exec(version);
  if (!m || Number(m[1]) < MIN_GO[0] || (Number(m[1]) === MIN_GO[0] && Number(m[2]) < MIN_GO[1])) {
    throw new UserFacingError(
      `Go ${version} is too old to build Kubernetes ${KUBERNETES_VERSION}`,
      'install Go >= 1.24, or set NETMESH_E2E_KUBECONFIG to use an existing cluster',
    );
  }
  return go;
}

function versionLdflags(): string {
  const [major, minor] = KUBERNETES_VERSION.slice(1).split('.');
  // Without these stamps /version says v0.0.0-master and Helm's kubeVersion checks fail.
  const flags = ['-s', '-w'];
  for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
    flags.push(
      `-X ${pkg}.gitVersion=${KUBERNETES_VERSION}`,
      `-X ${pkg}.gitMajor=${major}`,
      `-X ${pkg}.gitMinor=${minor}`,
      `-X ${pkg}.gitTreeState=clean`,
      `-X ${pkg}.buildDate=1970-01-01T00:00:00Z`,
    );
  }
  return flags.join(' ');
}

/** Runs `go build -v`, turning its per-package lines into a progress line. */
function goBuild(
  go: string,
  cwd: string,
  args: string[],
  label: string,
  log: (s: string) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(go, ['build', '-v', ...args], {
      cwd,
      env: {
        ...process.env,
        GOFLAGS: `${process.env['GOFLAGS'] ?? ''} -mod=readonly`.trim(),
        CGO_ENABLED: '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let packages = 0;
    let tail = '';
    let lastReport = 0;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      tail = (tail + chunk).slice(-8000);
      packages += chunk.split('\n').filter((l) => l && !l.startsWith('#') && !l.includes(' ')).length;
      const now = Date.now();
      if (now - lastReport > 15_000) {
        lastReport = now;
        log(`  ${label}: ${packages} packages compiled so far`);
      }
    });
    child.stdout.resume();
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0) resolve();
      else {
        const lastLines = tail.trim().split('\n').slice(-15).join('\n');
        reject(
          new UserFacingError(
            `building ${label} failed (go build exited ${code})`,
            `last output:\n${lastLines}\nfix the Go toolchain or module proxy access, or set NETMESH_E2E_KUBECONFIG to use an existing cluster`,
          ),
        );
      }
    });
  });
}

/**
 * Returns the cached binaries, building them first when this version was never built here.
 * Concurrent callers (several test files) serialise on a lock directory.
 */
export async function ensureClusterBinaries(
  log: (s: string) => void = (s) => console.error(s),
): Promise<ClusterBinaries> {
  const cached = cachedBinaries();
  if (cached) return cached;
  const go = checkGo();
  const key = cacheKey();
  const finalDir = join(cacheRoot(), 'cluster', key);
  const lock = `${finalDir}.lock`;
  mkdirSync(dirname(finalDir), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch {
      const owner = Number(readFileSafe(join(lock, 'pid')));
      // A lock whose owner died, or one left without a pid (killed between mkdir and write).
      const orphaned = !owner && Date.now() - lockAgeBase(lock) > 60_000;
      if ((owner && !isAlive(owner)) || orphaned) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      log(`waiting for another build of the cluster binaries (pid ${owner || '?'})...`);
      await new Promise((r) => setTimeout(r, 5000));
      const done = cachedBinaries();
      if (done) return done;
    }
  }
  try {
    const again = cachedBinaries();
    if (again) return again;
    const started = Date.now();
    const tmp = `${finalDir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    log(
      `building the local cluster (Kubernetes ${KUBERNETES_VERSION}, etcd ${ETCD_VERSION}) from the official Go modules into ${finalDir}; the first build takes several minutes`,
    );
    await goBuild(
      go,
      etcdModule,
      ['-trimpath', '-ldflags', '-s -w', '-o', join(tmp, 'etcd'), '.'],
      'etcd',
      log,
    );
    log(`  etcd built (${Math.round((Date.now() - started) / 1000)} s)`);
    await goBuild(
      go,
      kubeModule,
      ['-trimpath', '-ldflags', versionLdflags(), '-o', `${tmp}/`, ...KUBE_COMMANDS.map((c) => `./cmd/${c}`)],
      KUBE_COMMANDS.join(', '),
      log,
    );
    log(`  Kubernetes built (${Math.round((Date.now() - started) / 1000)} s)`);
    await goBuild(
      go,
      imagesModule,
      ['-trimpath', '-ldflags', '-s -w', '-o', `${tmp}/`, ...IMAGE_COMMANDS.map((c) => `./${c}`)],
      IMAGE_COMMANDS.join(', '),
      log,
    );
    renameSync(tmp, finalDir);
    log(`cluster binaries built in ${Math.round((Date.now() - started) / 1000)} s (cached for next runs)`);
    return binariesIn(finalDir);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function lockAgeBase(dir: string): number {
  try {
    return statSync(dir).mtimeMs;
  } catch {
    return Date.now();
  }
}

function readFileSafe(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}
