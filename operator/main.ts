// Hosting the Network controller in a process: leader election decides which replica works,
// the health server reports it, signals drain it. Used by `netmesh operator` and `netmesh run`.
import { hostname } from 'node:os';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { EventRecorder } from '../runtime/events.ts';
import { LeaderElector } from '../runtime/leader-election.ts';
import { setLeader } from '../runtime/metrics.ts';
import type { DefaultControllerRateLimiterOptions } from '../runtime/queue/index.ts';
import { NetworkController } from './controller.ts';
import { FIELD_MANAGER } from './model.ts';

export interface OperatorOptions {
  kc: KubeConfig;
  log: Logger;
  registry: Registry;
  /** Namespace of the leader-election Lease (the operator's own namespace). */
  namespace: string;
  identity?: string;
  workers?: number;
  leaderElect?: boolean;
  leaseName?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  multusProbeIntervalMs?: number;
  rateLimiter?: DefaultControllerRateLimiterOptions;
  /**
   * How long the leader waits for its caches before it reports why they are not synced
   * (readiness, logs, a Warning Event CacheSyncTimeout on the Lease); it keeps waiting.
   */
  cacheSyncTimeoutMs?: number;
  /**
   * Other work for the leader only, beside the Network controller (the injector's Envoy
   * bootstrap copier, webhook/bootstrap-copier.ts): built once, started and fenced with the
   * controller.
   */
  leaderWork?: readonly ((ctx: LeaderWorkContext) => LeaderWork)[];
  /** Called when leadership is lost: the process should exit so a fresh replica takes over. */
  onLostLeadership?: () => void;
}

/** Work that runs on the leader only, started and stopped with the Network controller. */
export interface LeaderWork {
  /** `signal` is the leadership: it cancels every request of the work when it fires. */
  start(signal: AbortSignal): Promise<void>;
  stop(): Promise<void>;
  /** true once working; else why not. */
  ready(): true | string;
}

export interface LeaderWorkContext {
  identity: string;
  /** Reports caches that did not sync in time (readiness, logs, an Event on the Lease). */
  onCacheSyncTimeout(reason: string): void;
}

export interface RunningOperator {
  controller: NetworkController;
  identity: string;
  isLeader(): boolean;
  /** Ready = this replica is a synced standby, or the leader with workers running. */
  ready(): true | string;
  /** Drain the queue, release the lease, stop informers. */
  stop(): Promise<void>;
}

export function defaultIdentity(): string {
  return process.env['POD_NAME'] ?? `${hostname()}_${process.pid}`;
}

/** How long stop() lets the work wind down before it releases the Lease regardless. */
const STOP_WORK_TIMEOUT_MS = 5_000;

/**
 * Starts leader election (or, without it, the work) and returns at once: nothing here waits
 * for the caches, so the caller can serve health checks (and `netmesh run` its webhook) while
 * the controller syncs, or reports why it cannot.
 */
export async function startOperator(opts: OperatorOptions): Promise<RunningOperator> {
  const identity = opts.identity ?? defaultIdentity();
  const log = opts.log.child({ component: 'operator' });
  const leaseName = opts.leaseName ?? 'netmesh-operator';
  const reportSyncTimeout = syncTimeoutReporter(opts, identity, leaseName, log);
  const controller = new NetworkController({
    kc: opts.kc,
    log,
    registry: opts.registry,
    identity,
    ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
    ...(opts.multusProbeIntervalMs !== undefined
      ? { multusProbeIntervalMs: opts.multusProbeIntervalMs }
      : {}),
    ...(opts.rateLimiter ? { rateLimiter: opts.rateLimiter } : {}),
    ...(opts.cacheSyncTimeoutMs !== undefined ? { cacheSyncTimeoutMs: opts.cacheSyncTimeoutMs } : {}),
    onCacheSyncTimeout: (reason) => reportSyncTimeout(`network controller: ${reason}`),
  });
  const others = (opts.leaderWork ?? []).map((make) =>
    make({ identity, onCacheSyncTimeout: reportSyncTimeout }),
  );
  const work = new Work(controller, others, log, opts.onLostLeadership);
  return opts.leaderElect === false
    ? runUnconditionally(controller, identity, work)
    : runWhenLeading(opts, { controller, identity, leaseName, log, work });
}

/**
 * CacheSyncTimeout as a Warning Event on the Lease, the one object every replica of this
 * operator shares (`kubectl describe lease` / `kubectl get events` in netmesh's namespace).
 */
function syncTimeoutReporter(
  opts: OperatorOptions,
  identity: string,
  leaseName: string,
  log: Logger,
): (reason: string) => void {
  const events = new EventRecorder({
    core: opts.kc.makeApiClient(CoreV1Api),
    component: FIELD_MANAGER,
    instance: identity,
    log,
  });
  return (reason) => {
    void events.record(
      {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: leaseName, namespace: opts.namespace },
      },
      { type: 'Warning', reason: 'CacheSyncTimeout', message: reason },
    );
  };
}

/**
 * The leader's work: the controller and the other leader work, started together, stopped
 * once. `signal` is the leadership: when it fires, every request of the work is cancelled at
 * once (fencing), before stop() has even begun. The parts start independently: the copier
 * does not wait for the Network caches (a missing CRD must not stop the sidecars' bootstrap).
 */
class Work {
  readonly #controller: NetworkController;
  readonly #others: readonly LeaderWork[];
  readonly #log: Logger;
  readonly #onFailure: (() => void) | undefined;
  #stopRequested = false;
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;

  constructor(
    controller: NetworkController,
    others: readonly LeaderWork[],
    log: Logger,
    onFailure?: () => void,
  ) {
    this.#controller = controller;
    this.#others = others;
    this.#log = log;
    this.#onFailure = onFailure;
  }

  get started(): boolean {
    return this.#starting !== undefined;
  }

  begin(signal: AbortSignal): void {
    this.#starting = Promise.all([
      this.#controller.start(signal),
      ...this.#others.map((w) => w.start(signal)),
    ]).then(
      () => {},
      (err: unknown) => {
        // A start cut short by stop or by the end of the leadership is not a failure.
        if (signal.aborted || this.#stopRequested) return;
        this.#log.error({ err }, 'controller failed to start');
        this.#onFailure?.();
      },
    );
  }

  ready(): true | string {
    for (const r of [this.#controller.ready(), ...this.#others.map((w) => w.ready())])
      if (r !== true) return r;
    return true;
  }

  /**
   * Idempotent: a stopped controller (its queue shut down) is never restarted; a replica that
   * loses the lease exits and comes back as a fresh standby. Every stop cancels its requests
   * and its cache waits at once, so this is quick even while a start still waits for caches.
   */
  stop(): Promise<void> {
    this.#stopRequested = true;
    this.#stopping ??= (async () => {
      await Promise.all([...this.#others.map((w) => w.stop()), this.#controller.stop()]);
      await this.#starting;
    })();
    return this.#stopping;
  }

  /** Bounded: the Lease must be released within the grace period whatever the work does. */
  async stopWithin(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      this.stop().then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), ms);
      }),
    ]);
    clearTimeout(timer);
    if (late) this.#log.warn({ ms }, 'the controller did not stop in time; going on with the shutdown');
  }
}

/** --leader-elect=false: the work runs at once, on this replica alone. */
function runUnconditionally(controller: NetworkController, identity: string, work: Work): RunningOperator {
  const context = new AbortController();
  work.begin(context.signal);
  return {
    controller,
    identity,
    isLeader: () => true,
    ready: () => work.ready(),
    stop: async () => {
      context.abort(new Error('stopping'));
      await work.stopWithin(STOP_WORK_TIMEOUT_MS);
    },
  };
}

/** The work runs while this replica holds the Lease; losing it ends the work and the process. */
function runWhenLeading(
  opts: OperatorOptions,
  p: { controller: NetworkController; identity: string; leaseName: string; log: Logger; work: Work },
): RunningOperator {
  const { controller, identity, log, work } = p;
  let leading = false;
  const elector = new LeaderElector({
    kc: opts.kc,
    namespace: opts.namespace,
    name: p.leaseName,
    identity,
    leaseDurationMs: opts.leaseDurationMs ?? 15_000,
    renewDeadlineMs: opts.renewDeadlineMs ?? 10_000,
    retryPeriodMs: opts.retryPeriodMs ?? 2_000,
    log,
    onStartedLeading: (signal: AbortSignal) => {
      leading = true;
      setLeader(opts.registry, true);
      log.info({ identity }, 'became leader; starting the controller');
      work.begin(signal);
      // Whatever ends the leadership ends the work at once: two replicas must never reconcile together.
      signal.addEventListener('abort', () => void work.stop(), { once: true });
    },
    onStoppedLeading: (info) => {
      leading = false;
      setLeader(opts.registry, false);
      if (info.reason !== 'lost') return; // released or stopped on purpose during shutdown
      log.warn({ identity }, 'lost leadership; stopping the controller');
      void work.stop().finally(() => opts.onLostLeadership?.());
    },
    onNewLeader: (leader: string) => {
      if (leader !== identity) log.info({ leader }, 'another replica leads; standing by');
    },
  });
  void elector.run();
  return {
    controller,
    identity,
    isLeader: () => leading,
    ready: () => {
      if (!leading) return true;
      const r = work.ready();
      return r === true ? true : `leader: ${r}`;
    },
    stop: async () => {
      // Stop working first (requests in flight are cancelled; the backlog is left to the next
      // leader, whose informers list everything anyway), then hand the lease over at once.
      if (work.started) await work.stopWithin(STOP_WORK_TIMEOUT_MS);
      await elector.release();
    },
  };
}
