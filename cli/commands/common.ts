// Flags and process plumbing shared by `netmesh operator` and `netmesh run`.
import type { Logger } from 'pino';
import type { OperatorOptions } from '../../operator/main.ts';
import { durationFlag, FlagError, type FlagSpec, intFlag } from '../flags.ts';

export const operatorFlags = {
  kubeconfig: {
    type: 'string',
    description: 'kubeconfig to use; in-cluster config when absent',
    env: 'NETMESH_KUBECONFIG',
  },
  namespace: {
    type: 'string',
    description: 'namespace netmesh runs in (leader-election Lease)',
    env: 'POD_NAMESPACE',
    default: 'netmesh-system',
  },
  'health-listen': {
    type: 'string',
    description: 'host:port for /healthz, /readyz and /metrics (plain HTTP)',
    env: 'NETMESH_HEALTH_LISTEN',
    default: '0.0.0.0:8081',
  },
  workers: {
    type: 'string',
    description: 'concurrent reconcile workers',
    env: 'NETMESH_WORKERS',
    default: '2',
  },
  'leader-elect': {
    type: 'string',
    description: 'elect a leader among replicas (true/false)',
    env: 'NETMESH_LEADER_ELECT',
    default: 'true',
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
      'copy this ConfigMap of --namespace (the Envoy bootstrap the sidecar mounts) into every namespace labelled netmesh.io/injection=enabled; empty: off',
    env: 'NETMESH_ENVOY_BOOTSTRAP_CONFIGMAP',
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
} satisfies Record<string, FlagSpec>;

type OperatorFlagValues = { [K in keyof typeof operatorFlags]: string | undefined };

export function operatorOptionsFromFlags(
  v: OperatorFlagValues,
): Omit<OperatorOptions, 'kc' | 'log' | 'registry'> {
  const leaderElect = (v['leader-elect'] ?? 'true').toLowerCase();
  if (!['true', 'false'].includes(leaderElect))
    throw new FlagError(`--leader-elect must be true or false, got "${v['leader-elect']}"`);
  const leaseDurationMs = durationFlag('lease-duration', v['lease-duration'], 15_000);
  const renewDeadlineMs = durationFlag('renew-deadline', v['renew-deadline'], 10_000);
  const retryPeriodMs = durationFlag('retry-period', v['retry-period'], 2_000);
  if (!(leaseDurationMs > renewDeadlineMs && renewDeadlineMs > retryPeriodMs)) {
    throw new FlagError('leader election needs --lease-duration > --renew-deadline > --retry-period');
  }
  return {
    namespace: v.namespace ?? 'netmesh-system',
    ...(v.identity ? { identity: v.identity } : {}),
    workers: Math.max(1, intFlag('workers', v.workers, 2)),
    leaderElect: leaderElect === 'true',
    leaseName: v['lease-name'] ?? 'netmesh-operator',
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs,
    envoyBootstrapConfigMap: v['envoy-bootstrap-configmap'] || undefined,
    multusProbeIntervalMs: durationFlag('multus-probe-interval', v['multus-probe-interval'], 30_000),
    rateLimiter: {
      baseDelayMs: durationFlag('retry-base-delay', v['retry-base-delay'], 5),
      maxDelayMs: durationFlag('retry-max-delay', v['retry-max-delay'], 1_000_000),
      qps: intFlag('retry-qps', v['retry-qps'], 10),
      burst: intFlag('retry-burst', v['retry-burst'], 100),
    },
  };
}

export function parseListen(value: string): { host: string; port: number } {
  const i = value.lastIndexOf(':');
  const host = i > 0 ? value.slice(0, i).replace(/^\[|\]$/g, '') : '0.0.0.0';
  const port = Number(value.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new FlagError(`listen address must be host:port, got "${value}"`);
  return { host, port };
}

/**
 * Waits for SIGTERM/SIGINT, then runs the shutdown within a grace period (Kubernetes sends
 * SIGTERM and waits terminationGracePeriodSeconds, 30 s by default, before SIGKILL).
 */
export async function serveUntilSignal(
  log: Logger,
  shutdown: () => Promise<void>,
  graceMs = 25_000,
): Promise<void> {
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info({ signal }, 'shutting down');
  const timer = setTimeout(() => {
    log.error('shutdown did not finish within the grace period; exiting');
    process.exit(1);
  }, graceMs);
  timer.unref();
  await shutdown();
  clearTimeout(timer);
  log.info('stopped');
}
