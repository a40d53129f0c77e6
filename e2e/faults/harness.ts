// The fault suite's shared pieces: a control plane of the scenario's own (so it can kill its
// apiserver or compact its etcd without disturbing other suites), netmesh operator processes
// under the chart's identity, and the invariant every scenario ends with.
//
// The invariant is computed independently of the operator's incremental index: from the
// Networks as they are now, the Ready set must be exactly what a fresh operator would decide
// (valid, and no older overlapping valid Network; ties by namespace/name), each Ready Network
// must have exactly one CNI ConfigMap with the right content, owned by it, and nothing else.
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { installChart, serviceAccountKubeconfig, uninstallChart } from '../../cluster/chart.ts';
import { type NetmeshProcess, startNetmesh } from '../../cluster/netmesh-process.ts';
import { acquireCluster, type TestCluster } from '../../cluster/target.ts';
import { kubectl } from '../../cluster/tools.ts';
import {
  CONFLIST_KEY,
  configMapName,
  desiredMaterialization,
  FIELD_MANAGER,
  MANAGED_BY_LABEL,
  NETWORK_LABEL,
  type Network,
} from '../../operator/model.ts';
import { overlaps, validateNetworkSpec } from '../../operator/network/cidr.ts';
import { eventually } from '../support.ts';

export const GROUP = 'netmesh.io';
export const SYSTEM_NS = 'netmesh-system';

export interface FaultCluster {
  cluster: TestCluster;
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  custom: k8s.CustomObjectsApi;
  /** A kubeconfig with the chart's ServiceAccount token (the operator's identity). */
  identity: string;
  stop(): Promise<void>;
}

/** A control plane of this scenario's own, with the CRD and the chart (operator only) installed. */
export async function ownControlPlane(opts: { release?: string } = {}): Promise<FaultCluster> {
  const cluster = await acquireCluster({ forceOwn: true, node: false, log: () => {} });
  if (!cluster.local) throw new Error('the fault suite needs a local control plane it owns');
  const kc = cluster.kc;
  kubectl(cluster.kubeconfigPath, ['apply', '--server-side', '-f', 'crds/']);
  kubectl(cluster.kubeconfigPath, [
    'wait',
    '--for=condition=Established',
    'crd/networks.netmesh.io',
    '--timeout=30s',
  ]);
  const release = opts.release ?? 'netmesh';
  installChart(cluster.kubeconfigPath, release, SYSTEM_NS, { 'webhook.enabled': false, replicaCount: 1 });
  const sa = await serviceAccountKubeconfig(kc, SYSTEM_NS, 'netmesh');
  return {
    cluster,
    kc,
    core: kc.makeApiClient(k8s.CoreV1Api),
    custom: kc.makeApiClient(k8s.CustomObjectsApi),
    identity: sa.path,
    stop: async () => {
      sa.remove();
      try {
        uninstallChart(cluster.kubeconfigPath, release, SYSTEM_NS);
      } catch {
        // the control plane goes anyway
      }
      await cluster.stop();
    },
  };
}

export function operatorArgs(kubeconfig: string, identity: string, extra: string[] = []): string[] {
  return [
    ...['--kubeconfig', kubeconfig, '--netmesh-namespace', SYSTEM_NS, '--lease-name', 'netmesh-operator'],
    ...[
      '--identity',
      identity,
      '--lease-duration',
      '4s',
      '--renew-deadline',
      '3s',
      '--retry-period',
      '500ms',
    ],
    ...extra,
  ];
}

export async function startOperator(
  f: FaultCluster,
  identity: string,
  opts: { kubeconfig?: string; extra?: string[] } = {},
): Promise<NetmeshProcess> {
  const p = await startNetmesh('operator', operatorArgs(opts.kubeconfig ?? f.identity, identity, opts.extra));
  return p;
}

export function networkBody(name: string, cidr: string, gateway?: string): Network {
  return {
    apiVersion: `${GROUP}/v1`,
    kind: 'Network',
    metadata: { name },
    spec: gateway ? { cidr, gateway } : { cidr },
  };
}

/** Creates Networks with `concurrency` requests in flight; returns how many were created. */
export async function createNetworks(
  f: FaultCluster,
  namespace: string,
  items: { name: string; cidr: string; gateway?: string }[],
  concurrency = 16,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const it = items[next++]!;
      await retry(() =>
        f.custom.createNamespacedCustomObject({
          group: GROUP,
          version: 'v1',
          namespace,
          plural: 'networks',
          body: networkBody(it.name, it.cidr, it.gateway),
        }),
      );
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** Retries a request through an apiserver outage (connection refused, 5xx); 409 AlreadyExists is success. */
export async function retry<T>(fn: () => Promise<T>, timeoutMs = 60_000): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code === 409) return undefined;
      if (Date.now() > deadline || (typeof code === 'number' && code >= 400 && code < 500)) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Distinct IPv4 /24s, none overlapping: 10.<a>.<b>.0/24. */
export function distinctCidrs(n: number, offset = 0): string[] {
  return Array.from({ length: n }, (_, i) => {
    const k = i + offset;
    return `10.${Math.floor(k / 256) % 256}.${k % 256}.0/24`;
  });
}

export interface Verdicts {
  ready: Set<string>;
  notReady: Map<string, string>;
}

/** What a fresh operator would decide for these Networks (independent O(n²) oracle). */
export function expectedVerdicts(nets: Network[]): Verdicts {
  const key = (n: Network) => `${n.metadata?.namespace}/${n.metadata?.name}`;
  const valid = nets
    .filter((n) => !n.metadata?.deletionTimestamp)
    .map((n) => ({
      n,
      v: validateNetworkSpec(n.spec),
      key: key(n),
      t: Date.parse(n.metadata?.creationTimestamp as unknown as string),
    }));
  const older = (a: (typeof valid)[number], b: (typeof valid)[number]) =>
    a.t < b.t || (a.t === b.t && a.key < b.key);
  const ready = new Set<string>();
  const notReady = new Map<string, string>();
  for (const x of valid) {
    if (!x.v.ok) {
      notReady.set(x.key, 'Invalid');
      continue;
    }
    const blocked = valid.some(
      (y) => y !== x && y.v.ok && x.v.ok && older(y, x) && overlaps(y.v.cidr, x.v.cidr),
    );
    if (blocked) notReady.set(x.key, 'Overlap');
    else ready.add(x.key);
  }
  return { ready, notReady };
}

export async function listNetworks(f: FaultCluster, namespace: string): Promise<Network[]> {
  const list = (await f.custom.listNamespacedCustomObject({
    group: GROUP,
    version: 'v1',
    namespace,
    plural: 'networks',
  })) as {
    items: Network[];
  };
  return list.items;
}

function readyStatus(n: Network): string | undefined {
  return n.status?.conditions?.find((c) => c.type === 'Ready')?.status;
}

/**
 * Waits until every Network in `namespace` carries the verdict a fresh operator would reach
 * (status observed at its generation), then checks the CNI ConfigMaps: exactly one per Ready
 * Network, with the right content and owner, none for the others, none stray.
 */
export async function assertConverged(
  f: FaultCluster,
  namespace: string,
  timeoutMs = 120_000,
): Promise<Verdicts> {
  let last = '';
  const verdicts = await eventually(
    `every Network in ${namespace} converged`,
    async () => {
      const nets = await listNetworks(f, namespace);
      const want = expectedVerdicts(nets);
      const wrong = nets.filter((n) => {
        const k = `${n.metadata?.namespace}/${n.metadata?.name}`;
        const expectReady = want.ready.has(k);
        return (
          n.status?.observedGeneration !== n.metadata?.generation ||
          (expectReady ? readyStatus(n) !== 'True' : readyStatus(n) !== 'False') ||
          (!expectReady &&
            n.status?.conditions?.find((c) => c.type === 'Ready')?.reason !== want.notReady.get(k))
        );
      });
      last = `${wrong.length} of ${nets.length} not converged, e.g. ${wrong
        .slice(0, 3)
        .map((n) => `${n.metadata?.name}: ${JSON.stringify(n.status?.conditions?.[0] ?? null)}`)
        .join('; ')}`;
      return wrong.length === 0 ? want : undefined;
    },
    { timeoutMs, intervalMs: 500 },
  ).catch((err: Error) => {
    throw new Error(`${err.message} (${last})`);
  });
  // The ConfigMaps of deleted Networks go through the garbage collector, which may lag: the
  // check is repeated until it holds (or the deadline), and its last failure is reported.
  let lastFailure: unknown;
  const ok = await eventually(
    `the CNI ConfigMaps of ${namespace} match the Networks`,
    async () => {
      try {
        await checkConfigMaps(f, namespace, verdicts);
        return true;
      } catch (err) {
        lastFailure = err;
        return false;
      }
    },
    { timeoutMs: 90_000, intervalMs: 500 },
  ).catch(() => false);
  if (!ok) throw lastFailure;
  return verdicts;
}

/**
 * Write requests the apiserver served for `resource` since it started (apiserver_request_total,
 * the apiserver's own count, not netmesh's).
 */
export async function apiserverWrites(f: FaultCluster, resource: string): Promise<number> {
  const text = f.cluster.local ? await f.cluster.local.metrics() : '';
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{') || !line.includes(`resource="${resource}"`)) continue;
    if (!/verb="(POST|PATCH|PUT|DELETE|APPLY)"/.test(line)) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** etcd's current revision, and a compaction up to it (what the apiserver does every 5 minutes). */
export async function compactEtcd(f: FaultCluster): Promise<number> {
  const url = f.cluster.local!.etcdUrl;
  const range = (await (
    await fetch(`${url}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: 'AA==', limit: 1 }) })
  ).json()) as { header: { revision: string } };
  const revision = Number(range.header.revision);
  const res = await fetch(`${url}/v3/kv/compaction`, {
    method: 'POST',
    body: JSON.stringify({ revision, physical: true }),
  });
  if (!res.ok) throw new Error(`etcd compaction failed: ${res.status} ${await res.text()}`);
  return revision;
}

async function checkConfigMaps(f: FaultCluster, namespace: string, verdicts: Verdicts): Promise<void> {
  const nets = new Map((await listNetworks(f, namespace)).map((n) => [n.metadata!.name!, n]));
  // CNI ConfigMaps carry the Network's name as a label (the Envoy bootstrap copies do not).
  const cms = (
    await f.core.listNamespacedConfigMap({
      namespace,
      labelSelector: `${MANAGED_BY_LABEL}=${FIELD_MANAGER},${NETWORK_LABEL}`,
    })
  ).items;
  const byName = new Map(cms.map((c) => [c.metadata!.name!, c]));
  assert.equal(byName.size, cms.length, 'no duplicate CNI ConfigMaps');
  for (const [name, n] of nets) {
    const key = `${namespace}/${name}`;
    const cm = byName.get(configMapName(name));
    if (!verdicts.ready.has(key)) {
      assert.equal(cm, undefined, `${key} is not Ready and has no CNI ConfigMap`);
      continue;
    }
    assert.ok(cm, `${key} is Ready and has its CNI ConfigMap`);
    const v = validateNetworkSpec(n.spec);
    assert.ok(v.ok);
    const want = desiredMaterialization(n, v, 'ConfigMap').object as k8s.V1ConfigMap;
    assert.deepEqual(
      JSON.parse(cm.data?.[CONFLIST_KEY] ?? '{}'),
      JSON.parse(want.data?.[CONFLIST_KEY] ?? '{}'),
      `${key} conflist`,
    );
    const owner = cm.metadata?.ownerReferences?.find((o) => o.controller);
    assert.equal(owner?.uid, n.metadata?.uid, `${key} owns its ConfigMap`);
    byName.delete(configMapName(name));
  }
  assert.deepEqual([...byName.keys()], [], 'no CNI ConfigMap without its Network');
}
