// Flags and process plumbing shared by `netmesh operator` and `netmesh run`.
import type { KubeConfig } from '@kubernetes/client-node';
import { parseListen as parseListenAddress } from '../../lib/listen.ts';
import { type OperatorOptions, type RunningOperator, startOperator } from '../../operator/main.ts';
import { validateTimings } from '../../runtime/lease-decision.ts';
import type { ProcessContext } from '../../runtime/lifecycle.ts';
import { bootstrapCopierWork, type CopyOwner } from '../../webhook/bootstrap-copier.ts';
import {
  durationFlag,
  FlagError,
  type FlagSpec,
  healthListenFlag,
  intFlag,
  kubeFlags,
  logLevelFlag,
  namespaceFlag,
  netmeshNamespaceFlag,
} from '../flags.ts';

export const operatorFlags = {
  ...kubeFlags,
  ...netmeshNamespaceFlag,
  ...healthListenFlag,
  workers: {
    type: 'string',
    description: 'concurrent reconcile workers',
    env: 'NETMESH_WORKERS',
    default: '2',
  },
  'leader-elect': {
    type: 'boolean',
    description: 'elect a leader among replicas; --leader-elect=false runs the controller unconditionally',
    env: 'NETMESH_LEADER_ELECT',
    default: true,
  },
  'lease-name': {
    type: 'string',
    description: 'name of the leader-election Lease',
    env: 'NETMESH_LEASE_NAME',
    default: 'netmesh-operator',
  },
  'lease-duration': {
    type: 'string',
    description: 'leader lease duration',
    env: 'NETMESH_LEASE_DURATION',
    default: '15s',
  },
  'renew-deadline': {
    type: 'string',
    description: 'leader renew deadline',
    env: 'NETMESH_RENEW_DEADLINE',
    default: '10s',
  },
  'retry-period': {
    type: 'string',
    description: 'leader-election retry period',
    env: 'NETMESH_RETRY_PERIOD',
    default: '2s',
  },
  identity: {
    type: 'string',
    description: 'identity of this replica in the Lease and Events',
    env: 'POD_NAME',
  },
  'multus-probe-interval': {
    type: 'string',
    description: 'how often to re-check whether Multus is installed',
    env: 'NETMESH_MULTUS_PROBE_INTERVAL',
    default: '30s',
  },
  'envoy-bootstrap-configmap': {
    type: 'string',
    description:
      'copy this ConfigMap of --netmesh-namespace (the Envoy bootstrap the sidecar mounts) into every namespace labelled netmesh.io/injection=enabled; empty: off',
    env: 'NETMESH_ENVOY_BOOTSTRAP_CONFIGMAP',
  },
  'cache-sync-timeout': {
    type: 'string',
    description:
      'how long the leader waits for its caches before reporting why they are not synced (readiness, logs, Event); it keeps waiting',
    env: 'NETMESH_CACHE_SYNC_TIMEOUT',
    default: '2m',
  },
  'retry-base-delay': {
    type: 'string',
    description: 'per-item retry backoff start',
    env: 'NETMESH_RETRY_BASE_DELAY',
    default: '5ms',
  },
  'retry-max-delay': {
    type: 'string',
    description: 'per-item retry backoff cap',
    env: 'NETMESH_RETRY_MAX_DELAY',
    default: '1000s',
  },
  'retry-qps': {
    type: 'string',
    description: 'overall retry rate limit per second',
    env: 'NETMESH_RETRY_QPS',
    default: '10',
  },
  'retry-burst': {
    type: 'string',
    description: 'overall retry burst',
    env: 'NETMESH_RETRY_BURST',
    default: '100',
  },
  ...logLevelFlag,
} satisfies Record<string, FlagSpec>;

type OperatorFlagValues = {
  [K in keyof typeof operatorFlags]: (typeof operatorFlags)[K]['type'] extends 'boolean'
    ? boolean
    : string | undefined;
};

const TIMING_FLAGS: Readonly<Record<string, string>> = {
  leaseDurationMs: '--lease-duration',
  renewDeadlineMs: '--renew-deadline',
  retryPeriodMs: '--retry-period',
};

/**
 * The elector's own checks (runtime/lease-decision.ts validateTimings, client-go's), run on the
 * flag values so that what the elector would refuse with a RangeError at start-up is refused
 * here as a usage error naming the flags.
 */
export function checkLeaderElectionTimings(t: {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}): void {
  try {
    validateTimings(t);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    const message = err.message.replace(
      /\b(leaseDurationMs|renewDeadlineMs|retryPeriodMs)\b/g,
      (m) => TIMING_FLAGS[m]!,
    );
    throw new FlagError(
      `leader election: ${message} (got --lease-duration ${formatMs(t.leaseDurationMs)}, --renew-deadline ${formatMs(t.renewDeadlineMs)}, --retry-period ${formatMs(t.retryPeriodMs)})`,
    );
  }
}

function formatMs(ms: number): string {
  return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** The operator's options from its flags, and the Envoy bootstrap ConfigMap to copy (if any). */
export type OperatorFlagOptions = Omit<OperatorOptions, 'kc' | 'log' | 'registry'> & {
  /**
   * Name of the Envoy bootstrap ConfigMap in `namespace` to copy into every namespace labelled
   * for injection (webhook/bootstrap-copier.ts); undefined: no copies.
   */
  envoyBootstrapConfigMap?: string | undefined;
};

export function operatorOptionsFromFlags(v: OperatorFlagValues): OperatorFlagOptions {
  const leaseDurationMs = durationFlag('lease-duration', v['lease-duration'], 15_000);
  const renewDeadlineMs = durationFlag('renew-deadline', v['renew-deadline'], 10_000);
  const retryPeriodMs = durationFlag('retry-period', v['retry-period'], 2_000);
  const leaderElect = v['leader-elect'] !== false;
  if (leaderElect) checkLeaderElectionTimings({ leaseDurationMs, renewDeadlineMs, retryPeriodMs });
  return {
    namespace: namespaceFlag('netmesh-namespace', v['netmesh-namespace']),
    ...(v.identity ? { identity: v.identity } : {}),
    workers: Math.max(1, intFlag('workers', v.workers, 2)),
    leaderElect,
    leaseName: v['lease-name'] ?? 'netmesh-operator',
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs,
    envoyBootstrapConfigMap: v['envoy-bootstrap-configmap'] || undefined,
    multusProbeIntervalMs: durationFlag('multus-probe-interval', v['multus-probe-interval'], 30_000),
    cacheSyncTimeoutMs: durationFlag('cache-sync-timeout', v['cache-sync-timeout'], 120_000),
    rateLimiter: {
      baseDelayMs: durationFlag('retry-base-delay', v['retry-base-delay'], 5),
      maxDelayMs: durationFlag('retry-max-delay', v['retry-max-delay'], 1_000_000),
      qps: intFlag('retry-qps', v['retry-qps'], 10),
      burst: intFlag('retry-burst', v['retry-burst'], 100),
    },
  };
}

/**
 * The operator as `netmesh operator` and `netmesh run` host it: the Network controller, and
 * the injector's Envoy bootstrap copier as leader work on the process's shared informers. A
 * lost Lease ends the process (a fresh replica comes back as a standby).
 */
export function startProcessOperator(
  ctx: ProcessContext,
  kc: KubeConfig,
  options: OperatorFlagOptions,
  /** Owner of the bootstrap copies (netmesh run: its MutatingWebhookConfiguration). */
  copyOwner?: CopyOwner,
): Promise<RunningOperator> {
  const { envoyBootstrapConfigMap, ...operator } = options;
  const { log, registry } = ctx;
  return startOperator({
    ...operator,
    kc,
    log,
    registry,
    leaderWork: envoyBootstrapConfigMap
      ? [
          bootstrapCopierWork({
            kc,
            log,
            registry,
            informers: ctx.informers,
            namespace: operator.namespace,
            name: envoyBootstrapConfigMap,
            owner: copyOwner,
            ...(operator.cacheSyncTimeoutMs !== undefined
              ? { cacheSyncTimeoutMs: operator.cacheSyncTimeoutMs }
              : {}),
          }),
        ]
      : [],
    onLostLeadership: () => ctx.exit(1),
  });
}

/** A listen flag (lib/listen.ts rules), as a usage error naming the flag. */
export function parseListen(value: string, flag = 'health-listen'): { host: string; port: number } {
  try {
    return parseListenAddress(value, flag);
  } catch (err) {
    throw new FlagError((err as Error).message);
  }
}
