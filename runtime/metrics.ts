/**
 * Metrics every netmesh process exposes, whatever it runs (webhook, operator or both):
 *   - prom-client's default process and Node.js metrics (CPU, memory, heap, event-loop lag, GC,
 *     open file descriptors), so a leaking or stalled replica shows up without custom code;
 *   - netmesh_build_info{version,commit,node} = 1, to tell which build each replica runs during a
 *     rollout and to join with other series (`* on (pod) group_left(version) netmesh_build_info`);
 *   - netmesh_leader, 1 on the replica holding the operator's leader Lease, 0 on a replica that
 *     held it and lost or released it. Set by the operator through setLeader().
 *
 * Metrics live in a caller-owned Registry (tests and `netmesh run` host several components per
 * process), so everything here is idempotent per registry: the shared health server instruments
 * the registry it serves, and calling it again for the same registry is a no-op instead of
 * prom-client's "already registered" error.
 */
import { collectDefaultMetrics, Gauge, type Registry } from 'prom-client';
import { type BuildInfo, buildInfo } from '../lib/build-info.ts';

/**
 * The metric `name` of `registry`, made by `make` the first time and shared after that.
 * prom-client refuses a second metric of the same name, and components share registries (the
 * operator and the webhook in `netmesh run`, every informer and work queue of a process), so
 * every metric of netmesh is registered through here. A metric of that name but of another type
 * is a programming error, and throws.
 */
export function registerOnce<M>(
  registry: Registry,
  name: string,
  kind: abstract new (...args: never[]) => M,
  make: () => M,
): M {
  const existing = registry.getSingleMetric(name);
  if (existing === undefined) return make();
  if (!(existing instanceof kind))
    throw new Error(`metric ${name} is already registered and is not a ${kind.name}`);
  return existing;
}

export const BUILD_INFO_METRIC = 'netmesh_build_info';
export const LEADER_METRIC = 'netmesh_leader';

/** One default-metrics collector per registry, even when instrumentProcess is called twice. */
const instrumented = new WeakSet<Registry>();

/**
 * Registers the default process/Node.js metrics and netmesh_build_info on `registry`, once.
 * A registry that already carries the default metrics (someone called collectDefaultMetrics on
 * it directly) keeps them as they are.
 */
export function instrumentProcess(registry: Registry, info: BuildInfo = buildInfo()): void {
  if (instrumented.has(registry)) return;
  instrumented.add(registry);
  if (!registry.getSingleMetric('process_cpu_user_seconds_total')) {
    collectDefaultMetrics({ register: registry });
  }
  if (!registry.getSingleMetric(BUILD_INFO_METRIC)) {
    const gauge = new Gauge({
      name: BUILD_INFO_METRIC,
      help: 'Always 1; labels name the netmesh version, the commit it was built from and the Node.js version it runs on.',
      labelNames: ['version', 'commit', 'node'],
      registers: [registry],
    });
    gauge.set({ version: info.version, commit: info.commit, node: info.node }, 1);
  }
}

function leaderGauge(registry: Registry): Gauge {
  return registerOnce(
    registry,
    LEADER_METRIC,
    Gauge,
    () =>
      new Gauge({
        name: LEADER_METRIC,
        help: '1 while this replica holds the operator leader Lease and runs the Network controller; 0 after it lost or released it.',
        registers: [registry],
      }),
  );
}

/**
 * Records whether this process leads. Called from the leader-election callbacks; the gauge is
 * created on first use, so processes that never take part in an election (the webhook alone)
 * do not export a misleading 0.
 */
export function setLeader(registry: Registry, leading: boolean): void {
  leaderGauge(registry).set(leading ? 1 : 0);
}
