// The life of every long-running netmesh process (`netmesh run`, `operator`, `webhook`), in one
// place: start, ready, drain, stop. What happens on SIGTERM is read here:
//
//   1. starting: one metrics registry and one health server (/healthz, /readyz, /metrics) come
//      up first, so a slow start is visible; each component starts in turn. If one fails, those
//      already started are stopped, the health port closes, and the error goes to the caller (a
//      half-started process must not linger looking healthy).
//      The components share one SharedInformerFactory (runtime/informer-factory.ts): one watch
//      per resource and selector, whose sync state /readyz shows as the `informers` check.
//      Once all have started, and before /readyz says ready, one last-resort collection gives
//      back what starting left resident (runtime/startup-memory.ts).
//   2. running: /readyz is every component's check (a component may report without gating
//      readiness, as the operator does under `netmesh run`: a standby or a leader still syncing
//      must not take the webhook out of its Service).
//   3. SIGTERM or SIGINT (or a component asking to exit, e.g. on lost leadership): every
//      component stops at once, concurrently. The webhook turns unready and keeps serving
//      through its shutdown delay, so endpoints drop it before it closes; the operator cancels
//      its requests and releases its Lease so the standby takes over at once.
//      Once they have stopped, the process's shared informers stop (the webhook reads its caches
//      until its listener closes).
//   4. A grace period (25 s, inside Kubernetes' default 30 s) bounds it all: past it the process
//      exits 1 without waiting further.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { type HealthServer, startHealthServer } from './health-server.ts';
import { SharedInformerFactory } from './informer-factory.ts';
import { releaseStartupMemory } from './startup-memory.ts';

/** What a component reports for /readyz: true, or why not. */
export type Readiness = true | string | { ok: boolean; detail: string };

export interface Component {
  name: string;
  ready(): Readiness;
  /** Stop taking work, finish or cancel what is in flight, hand over what others wait for. */
  stop(): Promise<void>;
}

export interface ProcessContext {
  log: Logger;
  registry: Registry;
  health: HealthServer;
  /** The process's shared informers; stopped after every component has stopped. */
  informers: SharedInformerFactory;
  /** Ends the process with `code` through the normal shutdown (e.g. the Lease was lost). */
  exit(code: number): void;
}

export interface LifecycleOptions {
  log: Logger;
  /** The cluster the shared informers watch. */
  kc: KubeConfig;
  health: { host: string; port: number };
  /** Logged once everything has started. */
  runningMessage: string;
  graceMs?: number;
}

/** Runs `start`'s components until a signal (or an exit request) and stops them; resolves to the exit code. */
export async function runProcess(
  opts: LifecycleOptions,
  start: (ctx: ProcessContext) => Promise<Component[]>,
): Promise<number> {
  const { log } = opts;
  const registry = new Registry();
  const health = await startHealthServer({ ...opts.health, registry, log });
  const informers = new SharedInformerFactory({ kc: opts.kc, log, registry });
  let started = false;
  health.addReadinessCheck('startup', () => started || 'starting');
  health.addReadinessCheck('informers', () => informers.readiness());
  let exitCode = 0;
  let requestExit: (() => void) | undefined;
  const exitRequested = new Promise<'exit'>((resolve) => {
    requestExit = () => resolve('exit');
  });
  const ctx: ProcessContext = {
    log,
    registry,
    health,
    informers,
    exit: (code) => {
      exitCode = code;
      requestExit?.();
    },
  };
  const components: Component[] = [];
  try {
    components.push(...(await start(ctx)));
  } catch (err) {
    await Promise.all(components.map((c) => c.stop().catch(() => {})));
    await informers.stop();
    await health.close();
    throw err;
  }
  for (const c of components) health.addReadinessCheck(c.name, () => c.ready());
  // Still not ready: the collection's pause delays no request (runtime/startup-memory.ts).
  const released = releaseStartupMemory();
  if (released) {
    log.info(
      {
        ms: Math.round(released.ms),
        rssMB: [released.rssBefore, released.rssAfter].map((b) => Math.round(b / 1e6)),
        heapMB: [released.heapBefore, released.heapAfter].map((b) => Math.round(b / 1e6)),
      },
      "released the start's memory",
    );
  }
  started = true;
  log.info({ health: health.port }, opts.runningMessage);
  const why = await Promise.race([untilSignal(), exitRequested]);
  log.info({ signal: why === 'exit' ? undefined : why, exitCode }, 'shutting down');
  const timer = setTimeout(() => {
    log.error('shutdown did not finish within the grace period; exiting');
    process.exit(1);
  }, opts.graceMs ?? 25_000);
  timer.unref();
  await Promise.all(components.map((c) => c.stop()));
  await informers.stop();
  await health.close();
  clearTimeout(timer);
  log.info('stopped');
  return exitCode;
}

function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}
