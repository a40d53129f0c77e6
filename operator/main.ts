// Hosting the Network controller in a process: leader election decides which replica works,
// the health server reports it, signals drain it. Used by `netmesh operator` and `netmesh run`.
import { hostname } from 'node:os';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { LeaderElector } from '../runtime/leader-election.ts';
import { setLeader } from '../runtime/metrics.ts';
import type { DefaultControllerRateLimiterOptions } from '../runtime/queue/index.ts';
import { BootstrapCopier, type CopyOwner } from './bootstrap.ts';
import { NetworkController } from './controller.ts';

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
   * Name of the Envoy bootstrap ConfigMap in `namespace` to copy into every namespace labelled
   * for injection (see bootstrap.ts); empty or undefined: no copies.
   */
  envoyBootstrapConfigMap?: string | undefined;
  /**
   * Cluster-scoped object owning every copy (netmesh run: its MutatingWebhookConfiguration),
   * so that uninstalling netmesh garbage-collects them.
   */
  envoyBootstrapOwner?: CopyOwner | undefined;
  /** Called when leadership is lost: the process should exit so a fresh replica takes over. */
  onLostLeadership?: () => void;
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

export async function startOperator(opts: OperatorOptions): Promise<RunningOperator> {
  const identity = opts.identity ?? defaultIdentity();
  const log = opts.log.child({ component: 'operator' });
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
  });
  const copier = opts.envoyBootstrapConfigMap
    ? new BootstrapCopier({
        kc: opts.kc,
        log,
        registry: opts.registry,
        namespace: opts.namespace,
        name: opts.envoyBootstrapConfigMap,
        owner: opts.envoyBootstrapOwner,
        identity,
      })
    : undefined;
  // `signal` is the leadership: when it fires, every request of the work is cancelled at once
  // (fencing), before stopWork has even begun.
  const startWork = async (signal?: AbortSignal): Promise<void> => {
    await controller.start(signal);
    await copier?.start(signal);
  };
  const stopWork = async (): Promise<void> => {
    await copier?.stop();
    await controller.stop();
  };
  let leading = false;
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;
  // Idempotent: a stopped controller (its queue shut down) is never restarted; a replica that
  // loses the lease exits and comes back as a fresh standby.
  const stopController = (): Promise<void> => {
    stopping ??= (async () => {
      await starting;
      await stopWork();
    })();
    return stopping;
  };

  if (opts.leaderElect === false) {
    leading = true;
    await startWork();
    return {
      controller,
      identity,
      isLeader: () => true,
      ready: () => (controller.ready() ? true : 'controller caches not synced or workers not running'),
      stop: stopWork,
    };
  }

  const elector = new LeaderElector({
    kc: opts.kc,
    namespace: opts.namespace,
    name: opts.leaseName ?? 'netmesh-operator',
    identity,
    leaseDurationMs: opts.leaseDurationMs ?? 15_000,
    renewDeadlineMs: opts.renewDeadlineMs ?? 10_000,
    retryPeriodMs: opts.retryPeriodMs ?? 2_000,
    log,
    onStartedLeading: (signal: AbortSignal) => {
      leading = true;
      setLeader(opts.registry, true);
      log.info({ identity }, 'became leader; starting the controller');
      starting = startWork(signal).catch((err: unknown) => {
        log.error({ err }, 'controller failed to start');
        opts.onLostLeadership?.();
      });
      // Whatever ends the leadership ends the work at once: two replicas must never reconcile together.
      signal.addEventListener('abort', () => void stopController(), { once: true });
    },
    onStoppedLeading: (info) => {
      leading = false;
      setLeader(opts.registry, false);
      if (info.reason !== 'lost') return; // released or stopped on purpose during shutdown
      log.warn({ identity }, 'lost leadership; stopping the controller');
      void stopController().finally(() => opts.onLostLeadership?.());
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
      return controller.ready() ? true : 'leader: controller caches not synced or workers not running';
    },
    stop: async () => {
      // Stop working first (in-flight reconciles finish; the backlog is left to the next
      // leader, whose informers list everything anyway), then hand the lease over at once.
      if (starting) await stopController();
      await elector.release();
    },
  };
}
