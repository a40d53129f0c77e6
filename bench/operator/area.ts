// The `operator` area: the Network operator (a real `netmesh operator` process under the chart's
// ServiceAccount) on the real control plane, against the least the apiserver must do, measured
// in the same run with the rounds interleaved (baseline, operator, operator, baseline, ...).
//
//   create N       a client creates N Networks (distinct CIDRs) at concurrency 16; time until one
//                  watch has seen every one Ready. Baseline: the same client doing what the
//                  operator must minimally cause (create the Network, create its CNI ConfigMap,
//                  one status patch) with no operator running, timed by the same watch.
//   writes         API writes per Network on the create path, counted by the apiserver itself
//                  (apiserver_request_total, mutating verbs) on Networks, their status, CNI
//                  objects and Events; not netmesh's own counters.
//   memory         the operator's RSS and heap after a forced GC (V8 inspector), peak RSS (/proc).
//   update storm   10 spec edits per Network, back to back: reconciles per Network (netmesh's
//                  own counter: the queue de-duplicates) and the time to converge.
//   restart        a new operator over N Networks already Ready: time from spawn to caches synced,
//                  to the first reconcile and to every Network reconciled, and the writes it
//                  causes (nothing changed, so none).
import * as https from 'node:https';
import * as k8s from '@kubernetes/client-node';
import { installChart, serviceAccountKubeconfig } from '../../cluster/chart.ts';
import { freePort } from '../../cluster/controlplane.ts';
import { Inspector } from '../../cluster/inspector.ts';
import { type NetmeshProcess, startNetmesh } from '../../cluster/netmesh-process.ts';
import type { TestCluster } from '../../cluster/target.ts';
import { kubectl } from '../../cluster/tools.ts';
import { UserFacingError } from '../../lib/errors.ts';
import type { AreaResult, BenchArea, BenchContext } from '../lib/area.ts';
import { readMemory } from '../lib/procfs.ts';
import {
  apiserverWrites,
  type CreateRun,
  counterDiff,
  netmeshProgress,
  type OperatorRuns,
  operatorChart,
  operatorResults,
  operatorTables,
  operatorTargets,
  operatorWrites,
  sum,
  summarizeCreate,
} from './report.ts';

const GROUP = 'netmesh.io';
const SYSTEM_NS = 'netmesh-bench-operator';
const RELEASE = 'netmesh';
const CONCURRENCY = 16;
// `netmesh operator` runs its default number of reconcile workers (the chart's operator.workers).
const WORKERS = 2;
const EDITS_PER_NETWORK = 10;
const STORM_LABEL = 'bench.netmesh.io/storm';
const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

interface Plan {
  /** N and the number of interleaved rounds (each: one baseline run and one operator run). */
  sizes: { n: number; rounds: number }[];
  /** Networks whose spec the storm edits (of the largest N). */
  stormNetworks: number;
}

const FULL: Plan = {
  sizes: [
    // Two rounds at 1,000 (one of each order); one at 10,000, whose runs and namespace deletions
    // take minutes each on this machine.
    { n: 1000, rounds: 2 },
    { n: 10_000, rounds: 1 },
  ],
  // 10 edits each, at the ~30-50 writes/s this shared machine's apiserver sustains: about a minute.
  stormNetworks: 300,
};
const QUICK: Plan = {
  sizes: [
    { n: 50, rounds: 1 },
    { n: 100, rounds: 1 },
  ],
  stormNetworks: 10,
};

function cidr(i: number): string {
  if (i >= 65_536) throw new Error(`no distinct /24 for Network ${i}`);
  return `10.${i >> 8}.${i & 255}.0/24`;
}

function gatewayFor(i: number, host: number): string {
  return `10.${i >> 8}.${i & 255}.${host}`;
}

async function pool<T>(items: readonly T[], fn: (t: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

async function waitUntil(
  what: string,
  fn: () => Promise<boolean>,
  timeoutMs: number,
  everyMs = 250,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

interface NetworkLike {
  metadata: { name: string; generation?: number };
  status?: { observedGeneration?: number; conditions?: { type: string; status: string }[] };
}

/** Resolves once one watch (from before the first create) has seen all `n` Networks Ready. */
function watchAllReady(
  kc: k8s.KubeConfig,
  namespace: string,
  n: number,
): { done: Promise<void>; stop(): void } {
  const ready = new Set<string>();
  let abort: AbortController | undefined;
  let stopped = false;
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const watch = new k8s.Watch(kc);
  const start = async (): Promise<void> => {
    try {
      abort = await watch.watch(
        `/apis/${GROUP}/v1/namespaces/${namespace}/networks`,
        {},
        (_type, obj: NetworkLike) => {
          if (obj.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
            ready.add(obj.metadata.name);
          if (ready.size >= n) resolve();
        },
        () => {
          // A watch the apiserver ends is started again; the Set keeps what was seen.
          if (!stopped && ready.size < n) void start();
        },
      );
    } catch (err) {
      reject(err as Error);
    }
  };
  void start();
  return {
    done,
    stop: () => {
      stopped = true;
      abort?.abort();
    },
  };
}

class Bench {
  run = 0;
  readonly custom: k8s.CustomObjectsApi;
  readonly core: k8s.CoreV1Api;
  readonly #metrics: () => Promise<string>;
  readonly cluster: TestCluster;
  readonly identity: string;
  constructor(cluster: TestCluster, identity: string) {
    this.cluster = cluster;
    this.identity = identity;
    this.custom = cluster.kc.makeApiClient(k8s.CustomObjectsApi);
    this.core = cluster.kc.makeApiClient(k8s.CoreV1Api);
    const local = cluster.local;
    this.#metrics = local ? () => local.metrics() : () => metricsThroughKubeconfig(cluster.kc);
  }

  async writes(): Promise<Record<string, number>> {
    return apiserverWrites(await this.#metrics());
  }

  /** The apiserver's write counters once the operator's writes have stopped changing. */
  async settledWrites(timeoutMs = 300_000): Promise<Record<string, number>> {
    const deadline = Date.now() + timeoutMs;
    let last = await this.writes();
    for (;;) {
      await new Promise((r) => setTimeout(r, 1000));
      const now = await this.writes();
      if (sum(operatorWrites(counterDiff(last, now))) === 0) return now;
      if (Date.now() > deadline)
        throw new Error(`the operator still writes ${timeoutMs / 1000} s after all Ready`);
      last = now;
    }
  }

  /** A new namespace, once the controller-manager has written what it writes into every one. */
  async freshNamespace(prefix: string): Promise<string> {
    const name = `${prefix}-${++this.run}`;
    await this.core.createNamespace({ body: { metadata: { name } } });
    await waitUntil(
      `kube-root-ca.crt in ${name}`,
      () =>
        this.core.readNamespacedConfigMap({ name: 'kube-root-ca.crt', namespace: name }).then(
          () => true,
          () => false,
        ),
      60_000,
    );
    return name;
  }

  /** Deletes a namespace and waits until it is gone, so no later run caches or reconciles it. */
  async dropNamespace(name: string): Promise<void> {
    await this.core.deleteNamespace({ name });
    await waitUntil(
      `namespace ${name} to be deleted`,
      () =>
        this.core.readNamespace({ name }).then(
          () => false,
          (err: unknown) => (err as { code?: number }).code === 404,
        ),
      900_000,
      1000,
    );
  }

  /** Networks below `stormNetworks` carry STORM_LABEL, so the storm's convergence check lists only them. */
  stormNetworks = 0;

  createNetwork(namespace: string, i: number): Promise<unknown> {
    return this.custom.createNamespacedCustomObject({
      group: GROUP,
      version: 'v1',
      namespace,
      plural: 'networks',
      body: {
        apiVersion: `${GROUP}/v1`,
        kind: 'Network',
        metadata: {
          name: `n-${i}`,
          ...(i < this.stormNetworks ? { labels: { [STORM_LABEL]: 'true' } } : {}),
        },
        spec: { cidr: cidr(i) },
      },
    });
  }

  /** The client alone doing the minimal writes per Network; timed by the same watch. */
  async baselineRun(n: number): Promise<CreateRun> {
    const ns = await this.freshNamespace('base');
    try {
      const started = performance.now();
      const w = watchAllReady(this.cluster.kc, ns, n);
      await pool(
        Array.from({ length: n }, (_, i) => i),
        async (i) => {
          await this.createNetwork(ns, i);
          await this.core.createNamespacedConfigMap({
            namespace: ns,
            body: {
              metadata: { name: `n-${i}-cni` },
              data: { 'cni-conflist.json': `{"cniVersion":"1.0.0","name":"${ns}-n-${i}"}` },
            },
          });
          await this.custom.patchNamespacedCustomObjectStatus(
            {
              group: GROUP,
              version: 'v1',
              namespace: ns,
              plural: 'networks',
              name: `n-${i}`,
              body: {
                status: {
                  phase: 'Ready',
                  conditions: [
                    {
                      type: 'Ready',
                      status: 'True',
                      reason: 'Baseline',
                      message: 'written by the benchmark client',
                      lastTransitionTime: new Date().toISOString(),
                    },
                  ],
                },
              },
            },
            mergePatch,
          );
        },
      );
      await w.done;
      w.stop();
      return { n, seconds: (performance.now() - started) / 1000 };
    } finally {
      await this.dropNamespace(ns);
    }
  }

  async operatorRun(n: number, ns: string): Promise<CreateRun> {
    const before = await this.writes();
    const started = performance.now();
    const w = watchAllReady(this.cluster.kc, ns, n);
    await pool(
      Array.from({ length: n }, (_, i) => i),
      (i) => this.createNetwork(ns, i),
    );
    await w.done;
    w.stop();
    const seconds = (performance.now() - started) / 1000;
    // The Ready Events are written in the background after the statuses: count once the
    // operator's writes have stopped (unchanged for a second).
    const d = operatorWrites(counterDiff(before, await this.settledWrites()));
    d['networks'] = (d['networks'] ?? 0) - n; // the client's creates
    if (d['networks'] === 0) delete d['networks'];
    return { n, seconds, writesPerNetwork: sum(d) / n, writesByResource: d };
  }
}

/** GET /metrics with the kubeconfig's credentials (a cluster this process did not start). */
async function metricsThroughKubeconfig(kc: k8s.KubeConfig): Promise<string> {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new UserFacingError('the kubeconfig names no cluster', 'check NETMESH_E2E_KUBECONFIG');
  const opts: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  return new Promise((resolve, reject) => {
    const req = https.get(new URL('/metrics', server), { ...opts, timeout: 30_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () =>
        res.statusCode === 200
          ? resolve(body)
          : reject(
              new UserFacingError(
                `GET /metrics answered ${res.statusCode}: the operator benchmark counts writes from the apiserver's metrics`,
                'use a kubeconfig allowed to read /metrics (or the local cluster)',
              ),
            ),
      );
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('GET /metrics timed out')));
  });
}

async function networksConverged(b: Bench, namespace: string): Promise<boolean> {
  const list = (await b.custom.listNamespacedCustomObject({
    group: GROUP,
    version: 'v1',
    namespace,
    plural: 'networks',
    labelSelector: `${STORM_LABEL}=true`,
  })) as { items: NetworkLike[] };
  return list.items.every((x) => x.status?.observedGeneration === x.metadata.generation);
}

async function run(ctx: BenchContext): Promise<AreaResult> {
  const plan = ctx.quick ? QUICK : FULL;
  ctx.progress('operator: preparing the apiserver (cluster/target.ts, no node)');
  const cluster = await ctx.cluster();
  let operator: NetmeshProcess | undefined;
  let removeToken: (() => void) | undefined;
  try {
    kubectl(cluster.kubeconfigPath, ['apply', '--server-side', '-f', 'crds/']);
    kubectl(cluster.kubeconfigPath, [
      'wait',
      '--for=condition=Established',
      'crd/networks.netmesh.io',
      '--timeout=60s',
    ]);
    // The chart's RBAC and ServiceAccount; netmesh itself runs on this host under that identity.
    installChart(cluster.kubeconfigPath, RELEASE, SYSTEM_NS, { 'webhook.enabled': false });
    const sa = await serviceAccountKubeconfig(cluster.kc, SYSTEM_NS, RELEASE, 24 * 3600);
    removeToken = sa.remove;
    const b = new Bench(cluster, sa.path);
    b.stormNetworks = plan.stormNetworks;
    const inspectPort = await freePort();
    const startOperator = async (): Promise<{ process: NetmeshProcess; spawnedAt: number }> => {
      const spawnedAt = performance.now();
      const nodeOptions = [
        `--inspect=127.0.0.1:${inspectPort}`,
        ...(ctx.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${ctx.profileDir}`] : []),
      ];
      operator = await startNetmesh(
        'operator',
        ['--kubeconfig', b.identity, '--netmesh-namespace', SYSTEM_NS, '--lease-name', 'netmesh-operator'],
        { NETMESH_LOG_LEVEL: 'warn', NODE_OPTIONS: nodeOptions.join(' ') },
        ctx.netmeshBin,
        ctx.netmeshNodeArgs,
      );
      return { process: operator, spawnedAt };
    };
    const stopOperator = async (): Promise<void> => {
      const code = await operator?.stop();
      if (code !== 0 && code !== undefined)
        throw new Error(`netmesh operator exited with ${code} (log ${operator?.logFile})`);
      operator = undefined;
    };
    const operatorMetrics = async (p: NetmeshProcess): Promise<string> =>
      (await fetch(`http://127.0.0.1:${p.healthPort}/metrics`)).text();

    const runs: OperatorRuns = {
      concurrency: CONCURRENCY,
      workers: WORKERS,
      create: [],
      memory: [],
      storm: {
        n: 0,
        editsPerNetwork: EDITS_PER_NETWORK,
        reconciles: 0,
        conflicts: 0,
        editSeconds: 0,
        seconds: 0,
      },
      restart: {
        n: 0,
        syncedSeconds: 0,
        firstReconcileSeconds: 0,
        allReconciledSeconds: 0,
        writes: 0,
        writesByResource: {},
      },
    };
    let kept = '';
    for (const [si, { n, rounds }] of plan.sizes.entries()) {
      const baseline: CreateRun[] = [];
      const op: CreateRun[] = [];
      const last = si === plan.sizes.length - 1;
      for (let round = 0; round < rounds; round++) {
        // ABBA: even rounds baseline first, odd rounds operator first.
        const order = round % 2 === 0 ? ['baseline', 'operator'] : ['operator', 'baseline'];
        for (const which of order) {
          if (which === 'baseline') {
            baseline.push(await b.baselineRun(n));
            ctx.progress(`operator: baseline N=${n}: ${baseline.at(-1)!.seconds.toFixed(1)} s`);
            continue;
          }
          const ns = await b.freshNamespace('op');
          const { process } = await startOperator();
          await process.waitReady(120_000);
          op.push(await b.operatorRun(n, ns));
          ctx.progress(
            `operator: netmesh N=${n}: ${op.at(-1)!.seconds.toFixed(1)} s, ${op.at(-1)!.writesPerNetwork!.toFixed(2)} writes/Network ${JSON.stringify(op.at(-1)!.writesByResource)}`,
          );
          if (round === rounds - 1) {
            const inspector = await Inspector.connect(inspectPort);
            try {
              const m = await inspector.memoryAfterGc();
              runs.memory.push({
                n,
                rssBytes: m.rss,
                heapUsedBytes: m.heapUsed,
                peakRssBytes: readMemory(process.child.pid!).peakRss,
              });
            } finally {
              inspector.close();
            }
          }
          await stopOperator();
          // The largest N's last set stays for the restart and the storm; the rest goes.
          if (last && round === rounds - 1) kept = ns;
          else await b.dropNamespace(ns);
        }
      }
      runs.create.push({ n, baseline, operator: op });
    }

    // Restart over the kept N Ready Networks: nothing changed, so nothing should be written.
    const n = plan.sizes.at(-1)!.n;
    const before = await b.writes();
    const { process, spawnedAt } = await startOperator();
    const since = (): number => (performance.now() - spawnedAt) / 1000;
    let syncedSeconds = 0;
    let firstReconcileSeconds = 0;
    await waitUntil(
      'the restarted operator to reconcile every Network',
      async () => {
        if (process.child.exitCode !== null)
          throw new Error(`netmesh operator exited (log ${process.logFile})`);
        const p = await operatorMetrics(process).then(netmeshProgress, () => undefined);
        if (!p) return false;
        if (p.synced && !syncedSeconds) syncedSeconds = since();
        if (p.reconciles > 0 && !firstReconcileSeconds) firstReconcileSeconds = since();
        return p.synced && p.successes >= n && p.queueDepth === 0;
      },
      600_000,
      50,
    );
    const allReconciledSeconds = since();
    const restartWrites = operatorWrites(counterDiff(before, await b.settledWrites()));
    runs.restart = {
      n,
      syncedSeconds,
      firstReconcileSeconds,
      allReconciledSeconds,
      writes: sum(restartWrites),
      writesByResource: restartWrites,
    };
    ctx.progress(
      `operator: restart over ${n}: synced ${syncedSeconds.toFixed(1)} s, first reconcile ${firstReconcileSeconds.toFixed(1)} s, all ${allReconciledSeconds.toFixed(1)} s, writes ${JSON.stringify(restartWrites)}`,
    );

    // Update storm: each Network's 10 edits back to back (one client task per Network).
    const stormN = Math.min(n, plan.stormNetworks);
    const p0 = netmeshProgress(await operatorMetrics(process));
    const stormStart = performance.now();
    await pool(
      Array.from({ length: stormN }, (_, i) => i),
      async (i) => {
        for (let e = 0; e < EDITS_PER_NETWORK; e++) {
          await b.custom.patchNamespacedCustomObject(
            {
              group: GROUP,
              version: 'v1',
              namespace: kept,
              plural: 'networks',
              name: `n-${i}`,
              body: { spec: { gateway: gatewayFor(i, e + 2) } },
            },
            mergePatch,
          );
        }
      },
    );
    const editSeconds = (performance.now() - stormStart) / 1000;
    await waitUntil('the storm to converge', () => networksConverged(b, kept), 600_000, 500);
    const seconds = (performance.now() - stormStart) / 1000;
    const p1 = netmeshProgress(await operatorMetrics(process));
    runs.storm = {
      n: stormN,
      editsPerNetwork: EDITS_PER_NETWORK,
      reconciles: p1.reconciles - p0.reconciles,
      conflicts: p1.conflicts - p0.conflicts,
      editSeconds,
      seconds,
    };
    ctx.progress(
      `operator: storm over ${stormN}: ${(runs.storm.reconciles / stormN).toFixed(2)} reconciles/Network, ${(runs.storm.conflicts / stormN).toFixed(2)} conflicts/Network, ${runs.storm.seconds.toFixed(1)} s (edits ${editSeconds.toFixed(1)} s)`,
    );
    await stopOperator();
    // A cluster started for this area goes as a whole; a shared one gets its namespace back.
    if (!cluster.owned) await b.dropNamespace(kept);

    const summaries = runs.create.map(summarizeCreate);
    return {
      tables: operatorTables(runs, summaries),
      targets: operatorTargets(runs, summaries),
      results: operatorResults(runs, summaries),
      charts: [operatorChart(summaries)],
    };
  } finally {
    await operator?.stop();
    removeToken?.();
  }
}

export const operatorArea: BenchArea = {
  name: 'operator',
  summary: 'a real `netmesh operator` on the control plane against a client doing the minimal writes',
  needsCluster: true,
  run,
};
