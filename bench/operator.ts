// `npm run bench`, operator area: the Network operator on the real control plane against the
// least the apiserver must do, measured in the same run (interleaved, medians).
//
//   create N       a client creates N Networks (distinct CIDRs) at concurrency 16; time until a
//                  watch has seen every one Ready. Baseline: the same client doing what the
//                  operator must minimally cause (create the Network, create its CNI ConfigMap,
//                  one status patch) with no operator running.
//   writes         API writes per Network on the create path, counted by the apiserver itself
//                  (apiserver_request_total, mutating verbs) on Networks, their status,
//                  ConfigMaps and Events; not netmesh's own counters.
//   memory         the operator process's RSS and heap after a forced GC (V8 inspector).
//   update storm   10 spec edits per Network in quick succession: reconciles per Network (the
//                  queue de-duplicates) and the time to converge.
//   restart        a second operator started over N Networks already Ready: time to caches
//                  synced and the first reconcile done, and the writes it causes (a no-op
//                  restart should write nothing).
import * as k8s from '@kubernetes/client-node';
import { installChart, serviceAccountKubeconfig } from '../cluster/chart.ts';
import { freePort, type LocalCluster, startLocalCluster } from '../cluster/controlplane.ts';
import { Inspector, type Memory } from '../cluster/inspector.ts';
import { type NetmeshProcess, startNetmesh } from '../cluster/netmesh-process.ts';
import { kubectl } from '../cluster/tools.ts';

const GROUP = 'netmesh.io';
const SYSTEM_NS = 'netmesh-system';
const CONCURRENCY = 16;
const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
const statusPatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

export interface CreateRun {
  n: number;
  seconds: number;
  writesPerNetwork?: number;
  writesByResource?: Record<string, number>;
}

export interface OperatorBenchResult {
  create: { n: number; baseline: CreateRun[]; operator: CreateRun[]; ratio: number; msPerNetwork: number }[];
  memory: { n: number; rssMB: number; heapMB: number }[];
  storm: { n: number; editsPerNetwork: number; reconcilesPerNetwork: number; seconds: number };
  restart: { n: number; syncedSeconds: number; firstReconcileSeconds: number; writes: number };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function cidr(i: number): string {
  return `10.${Math.floor(i / 256) % 256}.${i % 256}.0/24`;
}

async function pool<T>(items: T[], fn: (t: T) => Promise<unknown>, concurrency = CONCURRENCY): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** Mutating requests the apiserver served, by resource (its own metric). */
async function writes(cluster: LocalCluster): Promise<Record<string, number>> {
  const text = await cluster.metrics();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    if (!/verb="(POST|PATCH|PUT|DELETE|APPLY)"/.test(line)) continue;
    const resource = /resource="([^"]*)"/.exec(line)?.[1] ?? '';
    const sub = /subresource="([^"]*)"/.exec(line)?.[1];
    const key = sub ? `${resource}/${sub}` : resource;
    out[key] = (out[key] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return out;
}

function diff(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = (b[k] ?? 0) - (a[k] ?? 0);
    if (d) out[k] = d;
  }
  return out;
}

/** Resolves when every Network of `namespace` is Ready (observed by one watch). */
function watchAllReady(
  kc: k8s.KubeConfig,
  namespace: string,
  n: number,
): { done: Promise<void>; stop(): void } {
  const ready = new Set<string>();
  let abort: AbortController | undefined;
  let resolve!: () => void;
  const done = new Promise<void>((r) => {
    resolve = r;
  });
  const watch = new k8s.Watch(kc);
  const start = async (): Promise<void> => {
    abort = await watch.watch(
      `/apis/${GROUP}/v1/namespaces/${namespace}/networks`,
      {},
      (
        _type,
        obj: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } },
      ) => {
        if (obj.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
          ready.add(obj.metadata.name);
        if (ready.size >= n) resolve();
      },
      () => {
        if (ready.size < n) void start();
      },
    );
  };
  void start();
  return { done, stop: () => abort?.abort() };
}

interface Ctx {
  cluster: LocalCluster;
  kc: k8s.KubeConfig;
  custom: k8s.CustomObjectsApi;
  core: k8s.CoreV1Api;
  identity: string;
  run: number;
}

async function freshNamespace(c: Ctx, prefix: string): Promise<string> {
  const name = `${prefix}-${++c.run}`;
  await c.core.createNamespace({ body: { metadata: { name } } });
  return name;
}

/** Deletes a namespace and waits until it is gone, so no later run caches or reconciles it. */
async function dropNamespace(c: Ctx, name: string): Promise<void> {
  await c.core.deleteNamespace({ name });
  await waitUntil(async () => {
    try {
      await c.core.readNamespace({ name });
      return false;
    } catch {
      return true;
    }
  });
}

async function createNetworks(c: Ctx, namespace: string, n: number, offset: number): Promise<void> {
  await pool(
    Array.from({ length: n }, (_, i) => i),
    (i) =>
      c.custom.createNamespacedCustomObject({
        group: GROUP,
        version: 'v1',
        namespace,
        plural: 'networks',
        body: {
          apiVersion: `${GROUP}/v1`,
          kind: 'Network',
          metadata: { name: `n-${i}` },
          spec: { cidr: cidr(offset + i) },
        },
      }),
  );
}

/** The client doing by itself what the operator must minimally cause, per Network. */
async function baselineRun(c: Ctx, n: number): Promise<CreateRun> {
  const ns = await freshNamespace(c, 'base');
  try {
    return await baselineCreates(c, ns, n);
  } finally {
    await dropNamespace(c, ns);
  }
}

async function baselineCreates(c: Ctx, ns: string, n: number): Promise<CreateRun> {
  const started = Date.now();
  await pool(
    Array.from({ length: n }, (_, i) => i),
    async (i) => {
      const name = `n-${i}`;
      await c.custom.createNamespacedCustomObject({
        group: GROUP,
        version: 'v1',
        namespace: ns,
        plural: 'networks',
        body: { apiVersion: `${GROUP}/v1`, kind: 'Network', metadata: { name }, spec: { cidr: cidr(i) } },
      });
      await c.core.createNamespacedConfigMap({
        namespace: ns,
        body: { metadata: { name: `${name}-cni` }, data: { 'cni-conflist.json': '{"cniVersion":"1.0.0"}' } },
      });
      await c.custom.patchNamespacedCustomObjectStatus(
        {
          group: GROUP,
          version: 'v1',
          namespace: ns,
          plural: 'networks',
          name,
          body: {
            status: {
              phase: 'Ready',
              conditions: [
                {
                  type: 'Ready',
                  status: 'True',
                  reason: 'Baseline',
                  message: '',
                  lastTransitionTime: new Date().toISOString(),
                },
              ],
            },
          },
        },
        statusPatch,
      );
    },
  );
  return { n, seconds: (Date.now() - started) / 1000 };
}

async function operatorRun(c: Ctx, n: number, ns: string): Promise<CreateRun> {
  const before = await writes(c.cluster);
  const started = Date.now();
  const w = watchAllReady(c.kc, ns, n);
  await createNetworks(c, ns, n, 0);
  await w.done;
  w.stop();
  const seconds = (Date.now() - started) / 1000;
  // Writes settle a moment after the last status (the Events are written after it).
  await new Promise((r) => setTimeout(r, 1000));
  const d = diff(before, await writes(c.cluster));
  const byOperator = { ...d };
  byOperator['networks'] = (byOperator['networks'] ?? 0) - n; // the client's creates
  delete byOperator['namespaces'];
  delete byOperator['leases'];
  const total = Object.values(byOperator).reduce((a, b) => a + b, 0);
  return { n, seconds, writesPerNetwork: total / n, writesByResource: byOperator };
}

export async function runOperatorBench(opts: {
  quick: boolean;
  log: (s: string) => void;
}): Promise<OperatorBenchResult> {
  const sizes = opts.quick ? [100, 300] : [1000, 10_000];
  const rounds = opts.quick ? 1 : 2;
  const cluster = await startLocalCluster({ node: false, log: () => {} });
  let operator: NetmeshProcess | undefined;
  let inspector: Inspector | undefined;
  try {
    const kc = new k8s.KubeConfig();
    kc.loadFromString(cluster.kubeconfig);
    kubectl(cluster.kubeconfigPath, ['apply', '--server-side', '-f', 'crds/']);
    kubectl(cluster.kubeconfigPath, [
      'wait',
      '--for=condition=Established',
      'crd/networks.netmesh.io',
      '--timeout=30s',
    ]);
    installChart(cluster.kubeconfigPath, 'netmesh', SYSTEM_NS, { 'webhook.enabled': false });
    const sa = await serviceAccountKubeconfig(kc, SYSTEM_NS, 'netmesh', 24 * 3600);
    const c: Ctx = {
      cluster,
      kc,
      custom: kc.makeApiClient(k8s.CustomObjectsApi),
      core: kc.makeApiClient(k8s.CoreV1Api),
      identity: sa.path,
      run: 0,
    };
    const inspectPort = await freePort();
    const startOperator = async (): Promise<NetmeshProcess> => {
      const p = await startNetmesh(
        'operator',
        ['--kubeconfig', c.identity, '--netmesh-namespace', SYSTEM_NS, '--lease-name', 'netmesh-operator'],
        { NETMESH_LOG_LEVEL: 'warn', NODE_OPTIONS: `--inspect=127.0.0.1:${inspectPort}` },
      );
      await p.waitReady(120_000);
      return p;
    };
    const result: OperatorBenchResult = {
      create: [],
      memory: [],
      storm: { n: 0, editsPerNetwork: 10, reconcilesPerNetwork: 0, seconds: 0 },
      restart: { n: 0, syncedSeconds: 0, firstReconcileSeconds: 0, writes: 0 },
    };
    let lastNs = '';
    for (const n of sizes) {
      const baseline: CreateRun[] = [];
      const op: CreateRun[] = [];
      for (let r = 0; r < rounds; r++) {
        // Interleaved: baseline, operator, baseline, operator.
        baseline.push(await baselineRun(c, n));
        opts.log(`  baseline N=${n}: ${baseline.at(-1)!.seconds.toFixed(1)} s`);
        operator = await startOperator();
        lastNs = await freshNamespace(c, 'op');
        op.push(await operatorRun(c, n, lastNs));
        opts.log(
          `  operator N=${n}: ${op.at(-1)!.seconds.toFixed(1)} s, ${op.at(-1)!.writesPerNetwork!.toFixed(2)} writes/Network ${JSON.stringify(op.at(-1)!.writesByResource)}`,
        );
        if (r === rounds - 1) {
          inspector = await Inspector.connect(inspectPort);
          const m: Memory = await inspector.memoryAfterGc();
          inspector.close();
          result.memory.push({ n, rssMB: m.rss / 1048576, heapMB: m.heapUsed / 1048576 });
        }
        await operator.stop();
        operator = undefined;
        // Keep only the very last set of Networks (the restart and the storm use it).
        if (!(n === sizes.at(-1) && r === rounds - 1)) await dropNamespace(c, lastNs);
      }
      const b = median(baseline.map((x) => x.seconds));
      const o = median(op.map((x) => x.seconds));
      result.create.push({ n, baseline, operator: op, ratio: o / b, msPerNetwork: (o * 1000) / n });
    }
    // Update storm and restart over the largest N (the operator's last namespace holds N Ready Networks).
    const n = sizes.at(-1)!;
    operator = await startOperator();
    const reconciles = async (): Promise<number> => {
      const text = await (await fetch(`http://127.0.0.1:${operator!.healthPort}/metrics`)).text();
      let total = 0;
      for (const line of text.split('\n'))
        if (line.startsWith('netmesh_reconcile_total{'))
          total += Number(line.slice(line.lastIndexOf(' ') + 1));
      return total;
    };
    // Restart: the operator just started over N Ready Networks (and everything before them).
    const beforeRestart = await writes(cluster);
    const restartStarted = Date.now();
    await new Promise((r) => setTimeout(r, 3000));
    const restartWrites = Object.entries(diff(beforeRestart, await writes(cluster)))
      .filter(([k]) => k !== 'leases')
      .reduce((a, [, v]) => a + v, 0);
    result.restart = { n, syncedSeconds: 0, firstReconcileSeconds: 0, writes: restartWrites };
    void restartStarted;
    // Storm: 10 gateway edits per Network, as fast as the client can send them.
    const stormN = Math.min(n, opts.quick ? 100 : 1000);
    const r0 = await reconciles();
    const stormStart = Date.now();
    const edits = Array.from({ length: stormN * 10 }, (_, k) => ({
      i: k % stormN,
      round: Math.floor(k / stormN),
    }));
    await pool(edits, ({ i, round }) =>
      c.custom.patchNamespacedCustomObject(
        {
          group: GROUP,
          version: 'v1',
          namespace: lastNs,
          plural: 'networks',
          name: `n-${i}`,
          body: { spec: { gateway: gatewayFor(i, round + 2) } },
        },
        mergePatch,
      ),
    );
    await waitUntil(async () => {
      const list = (await c.custom.listNamespacedCustomObject({
        group: GROUP,
        version: 'v1',
        namespace: lastNs,
        plural: 'networks',
      })) as {
        items: { metadata: { generation: number }; status?: { observedGeneration?: number } }[];
      };
      return list.items.every((x) => x.status?.observedGeneration === x.metadata.generation);
    });
    result.storm = {
      n: stormN,
      editsPerNetwork: 10,
      reconcilesPerNetwork: ((await reconciles()) - r0) / stormN,
      seconds: (Date.now() - stormStart) / 1000,
    };
    sa.remove();
    return result;
  } finally {
    await operator?.stop();
    await cluster.stop();
  }
}

function gatewayFor(i: number, host: number): string {
  return `10.${Math.floor(i / 256) % 256}.${i % 256}.${host}`;
}

async function waitUntil(fn: () => Promise<boolean>, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 500));
  }
}
