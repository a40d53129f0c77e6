// The two servers of the webhook benchmark as separate processes pinned to the server core:
// netmesh as users run it (`netmesh webhook` as the image ships it, compiled to JavaScript, with
// the same flags as a local run),
// and the bare baseline (baseline-server.mjs). Both run on the Node that runs the benchmark.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../cluster/controlplane.ts';
import { bundleApp } from '../../deploy/image/bundle.ts';
import { readCpuSeconds, readMemory } from '../lib/procfs.ts';
import type { WebhookEnvironment } from './environment.ts';

export type ServerName = 'netmesh' | 'baseline' | 'dependency floor';

export interface BenchServer {
  name: ServerName;
  pid: number;
  url: string;
  /** Where its stdout and stderr go (netmesh's JSON log lines). */
  logFile: string;
  cpuSeconds(): number;
  memory(): { rss: number; peakRss: number };
  /** Rejects if the process exits before stop() (a crash under load fails the run). */
  failure: Promise<never>;
  stop(): Promise<void>;
}

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * Starts `command` on the server core with stdout and stderr going to `logFile`. With a
 * `collector` (the client core's pinning), the output goes through a pipe to a `cat` there, as
 * a container runtime collects a Pod's logs: the process under test pays for writing into a
 * pipe, not for the file system work of storing its logs.
 */
function spawnPinned(
  command: string[],
  pin: string[],
  logFile: string,
  collector?: string[],
): { child: ChildProcess; collected: Promise<void> } {
  const [bin, ...args] = [...pin, ...command];
  const out = openSync(logFile, 'w');
  try {
    if (!collector) {
      return {
        child: spawn(bin!, args, { cwd: repoRoot, stdio: ['ignore', out, out] }),
        collected: Promise.resolve(),
      };
    }
    const [cbin, ...cargs] = [...collector, 'cat'];
    const cat = spawn(cbin!, cargs, { stdio: ['pipe', out, 'ignore'] });
    const collected = new Promise<void>((resolve) => cat.once('exit', () => resolve()));
    const pipe = cat.stdin!;
    const child = spawn(bin!, args, { cwd: repoRoot, stdio: ['ignore', pipe, pipe] });
    // The child holds its own copy of the pipe; ours must close so `cat` ends with the child.
    pipe.destroy();
    return { child, collected };
  } finally {
    closeSync(out);
  }
}

function wrap(
  name: ServerName,
  { child, collected }: { child: ChildProcess; collected: Promise<void> },
  url: string,
  logFile: string,
): BenchServer {
  let stopping = false;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const failure = exited.then((code) => {
    if (stopping) return new Promise<never>(() => {});
    throw new Error(`${name} exited (code ${code}) during the benchmark:\n${tail(logFile)}`);
  });
  // Nobody may have awaited it yet when the process dies; the run still sees it through race().
  failure.catch(() => {});
  const pid = child.pid!;
  return {
    name,
    pid,
    url,
    logFile,
    cpuSeconds: () => readCpuSeconds(pid),
    memory: () => readMemory(pid),
    failure,
    async stop() {
      stopping = true;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      await collected;
    },
  };
}

async function until(what: string, ok: () => Promise<boolean>, failed: Promise<never>, ms = 60_000) {
  const deadline = Date.now() + ms;
  while (!(await Promise.race([ok().catch(() => false), failed]))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `server` once `ok` holds; stopped again if it dies or never gets there. */
async function readyOrStopped(
  server: BenchServer,
  what: string,
  ok: () => Promise<boolean>,
): Promise<BenchServer> {
  try {
    await until(what, ok, server.failure);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

function httpStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = get(url, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.setTimeout(2000, () => req.destroy(new Error('timeout')));
  });
}

/** `netmesh webhook` against the benchmark's apiserver; resolves once /readyz says ready. */
export async function startNetmesh(opts: {
  env: WebhookEnvironment;
  pin: string[];
  /** Where netmesh's logs are collected (see spawnPinned); undefined: straight into the file. */
  collector?: string[] | undefined;
  dir: string;
  /** Extra Node options, e.g. --cpu-prof to see where the time goes under load. */
  nodeArgs?: string[];
  /** bin/netmesh.js of the product as the image ships it (BenchContext.netmeshBin). */
  netmeshBin: string;
}): Promise<BenchServer> {
  const [port, healthPort] = [await freePort(), await freePort()];
  const logFile = join(opts.dir, 'netmesh.log');
  const child = spawnPinned(
    [
      process.execPath,
      ...(opts.nodeArgs ?? []),
      opts.netmeshBin,
      'webhook',
      `--kubeconfig=${opts.env.kubeconfigPath}`,
      `--netmesh-namespace=${opts.env.systemNamespace}`,
      `--tls-secret=${opts.env.tlsSecret}`,
      `--listen=127.0.0.1:${port}`,
      `--health-listen=127.0.0.1:${healthPort}`,
      // Nothing registers this configuration: the benchmark calls the webhook directly.
      `--webhook-config-name=${opts.env.systemNamespace}`,
      '--shutdown-delay=0s',
      // The default: one line per admission, as in production.
      '--log-level=info',
    ],
    opts.pin,
    logFile,
    opts.collector,
  );
  const server = wrap('netmesh', child, `https://127.0.0.1:${port}/mutate`, logFile);
  return readyOrStopped(
    server,
    'netmesh to be ready',
    async () => (await httpStatus(`http://127.0.0.1:${healthPort}/readyz`)) === 200,
  );
}

/** The bare baseline serving `responses` (by review uid) with netmesh's certificate. */
export async function startBaseline(opts: {
  pin: string[];
  dir: string;
  certPem: string;
  keyPem: string;
  responses: Record<string, string>;
  nodeArgs?: string[];
}): Promise<BenchServer> {
  const port = await freePort();
  const config = join(opts.dir, 'baseline.json');
  writeFileSync(
    config,
    JSON.stringify({
      host: '127.0.0.1',
      port,
      certPem: opts.certPem,
      keyPem: opts.keyPem,
      responses: opts.responses,
    }),
    { mode: 0o600 },
  );
  const logFile = join(opts.dir, 'baseline.log');
  const script = fileURLToPath(new URL('./baseline-server.mjs', import.meta.url));
  const child = spawnPinned([process.execPath, ...(opts.nodeArgs ?? []), script, config], opts.pin, logFile);
  const server = wrap('baseline', child, `https://127.0.0.1:${port}/mutate`, logFile);
  return readyOrStopped(server, 'the baseline to listen', async () => /^listening /m.test(tail(logFile)));
}

/**
 * The dependency floor (dependency-floor.ts): netmesh's packages loaded, none of its code run.
 * Bundled into the app tree beside `netmeshBin`, so it loads client-node the way the image's
 * bundle does and the other packages from the same node_modules, and started on the server core
 * with netmesh's Node options. Resolves once it has loaded everything and printed `ready`.
 */
export async function startDependencyFloor(opts: {
  pin: string[];
  dir: string;
  netmeshBin: string;
  nodeArgs?: string[];
}): Promise<BenchServer> {
  const app = dirname(dirname(opts.netmeshBin));
  const script = fileURLToPath(new URL('./dependency-floor.ts', import.meta.url));
  await bundleApp(repoRoot, app, { 'dependency-floor': relative(repoRoot, script) });
  const logFile = join(opts.dir, 'dependency-floor.log');
  const child = spawnPinned(
    [process.execPath, ...(opts.nodeArgs ?? []), join(app, 'bin', 'dependency-floor.js')],
    opts.pin,
    logFile,
  );
  const server = wrap('dependency floor', child, '', logFile);
  return readyOrStopped(server, 'the dependency floor to load', async () => /^ready /m.test(tail(logFile)));
}
