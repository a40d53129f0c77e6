// `npm run cluster:up|down|status|build`: the local cluster (control plane and node) by hand.
// `up` starts a detached supervisor (this file's `serve` mode) that owns the processes and
// writes .netmesh/state.json; `down` signals it and waits until the machine is as it was.
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildProductImage } from '../deploy/image/build.ts';
import { UserFacingError } from '../lib/errors.ts';
import { ensureClusterBinaries } from './build.ts';
import { startLocalCluster } from './controlplane.ts';
import { nodeUnsupportedReason } from './host.ts';
import { ensureNodeImages } from './images.ts';
import { isAlive as alive } from './processes.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const stateDir = join(root, '.netmesh');
const stateFile = join(stateDir, 'state.json');
const kubeconfigOut = join(stateDir, 'kubeconfig');
const logFile = join(stateDir, 'cluster.log');

interface State {
  pid: number;
  server?: string;
  kubeconfig?: string;
  ready: boolean;
  error?: string;
}

function readState(): State | undefined {
  try {
    return JSON.parse(readFileSync(stateFile, 'utf8')) as State;
  } catch {
    return undefined;
  }
}

async function up(): Promise<void> {
  const state = readState();
  if (state && alive(state.pid) && state.ready) {
    console.log(`already running at ${state.server}\nkubeconfig: ${kubeconfigOut}`);
    return;
  }
  mkdirSync(stateDir, { recursive: true });
  rmSync(stateFile, { force: true });
  // Build in the foreground so progress shows on this terminal.
  await ensureClusterBinaries((s) => console.error(s));
  const out = openSync(logFile, 'w');
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'serve'], {
    detached: true,
    stdio: ['ignore', out, out],
  });
  child.unref();
  const deadline = Date.now() + 180_000;
  for (;;) {
    const s = readState();
    if (s?.ready) break;
    if (s?.error) throw new UserFacingError(`the control plane did not start: ${s.error}`);
    if (!alive(child.pid!) || Date.now() > deadline) {
      throw new UserFacingError('the control plane did not start', `see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const s = readState()!;
  console.log(`control plane running at ${s.server}`);
  console.log(`kubeconfig: ${kubeconfigOut}`);
  console.log(`try: kubectl --kubeconfig ${kubeconfigOut} get --raw /version`);
}

async function serve(): Promise<void> {
  const write = (s: State): void => writeFileSync(stateFile, JSON.stringify(s));
  write({ pid: process.pid, ready: false });
  try {
    const noNode = nodeUnsupportedReason();
    if (noNode) console.log(`no node: ${noNode}; the control plane runs alone`);
    const cp = await startLocalCluster({ kubeconfigOut, node: !noNode, log: (s) => console.log(s) });
    write({ pid: process.pid, server: cp.server, kubeconfig: kubeconfigOut, ready: true });
    const shutdown = async (): Promise<void> => {
      await cp.stop();
      rmSync(stateFile, { force: true });
      rmSync(kubeconfigOut, { force: true });
      process.exit(0);
    };
    process.on('SIGTERM', () => void shutdown());
    process.on('SIGINT', () => void shutdown());
    setInterval(() => {}, 1 << 30);
  } catch (err) {
    write({ pid: process.pid, ready: false, error: (err as Error).message });
    process.exit(1);
  }
}

/**
 * Builds the images the in-cluster suites run (the product image, the Envoy stand-in, busybox,
 * pause) and prints one `reference archive` line each, for loading into another cluster
 * (e2e/kind/run.sh: `kind load image-archive`).
 */
async function images(): Promise<void> {
  const bins = await ensureClusterBinaries((s) => console.error(s));
  const list = [...(await ensureNodeImages(bins)), await buildProductImage({ log: (s) => console.error(s) })];
  for (const i of list) console.log(`${i.reference} ${i.archive}`);
}

async function down(): Promise<void> {
  const s = readState();
  if (!s || !alive(s.pid)) {
    rmSync(stateFile, { force: true });
    rmSync(kubeconfigOut, { force: true });
    console.log('no local control plane is running');
    return;
  }
  process.kill(s.pid, 'SIGTERM');
  const deadline = Date.now() + 30_000;
  while (alive(s.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  if (alive(s.pid)) process.kill(s.pid, 'SIGKILL');
  rmSync(stateFile, { force: true });
  rmSync(kubeconfigOut, { force: true });
  console.log('control plane stopped and cleaned up');
}

function status(): void {
  const s = readState();
  if (s && alive(s.pid) && s.ready) {
    console.log(`running at ${s.server} (supervisor pid ${s.pid})\nkubeconfig: ${kubeconfigOut}`);
  } else {
    console.log('not running');
    process.exitCode = 3;
  }
}

const cmd = process.argv[2];
try {
  if (cmd === 'up') await up();
  else if (cmd === 'serve') await serve();
  else if (cmd === 'down') await down();
  else if (cmd === 'status') status();
  else if (cmd === 'build') await ensureClusterBinaries((s) => console.error(s));
  else if (cmd === 'images') await images();
  else {
    console.error('usage: cluster/cli.ts up|down|status|build|images');
    process.exitCode = 2;
  }
} catch (err) {
  console.error(err instanceof UserFacingError ? `error: ${err.oneLine()}` : err);
  process.exitCode = 1;
}
