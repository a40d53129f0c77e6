import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { targetMet } from '../lib/area.ts';
import { renderText } from '../lib/table.ts';
import {
  apiserverWrites,
  counterDiff,
  flatness,
  netmeshProgress,
  type OperatorRuns,
  operatorChart,
  operatorTables,
  operatorTargets,
  operatorWrites,
  sum,
  summarizeCreate,
} from './report.ts';

const APISERVER = `# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="netmesh.io",resource="networks",scope="resource",subresource="",verb="POST",version="v1"} 1000
apiserver_request_total{code="200",component="apiserver",dry_run="",group="netmesh.io",resource="networks",scope="resource",subresource="status",verb="PATCH",version="v1"} 990
apiserver_request_total{code="409",component="apiserver",dry_run="",group="netmesh.io",resource="networks",scope="resource",subresource="status",verb="PATCH",version="v1"} 10
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="POST",version="v1"} 1000
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="GET",version="v1"} 77
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 40
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="events",scope="resource",subresource="",verb="POST",version="v1"} 1000
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="networks",scope="cluster",subresource="",verb="WATCH",version="v1"} 3
`;

describe('apiserver writes', () => {
  it('sums mutating verbs by resource and subresource, every code, and ignores reads', () => {
    assert.deepEqual(apiserverWrites(APISERVER), {
      networks: 1000,
      'networks/status': 1000,
      configmaps: 1000,
      leases: 40,
      events: 1000,
    });
  });

  it('refuses text without the metric (a wrong endpoint must not read as zero writes)', () => {
    assert.throws(() => apiserverWrites('# nothing here\n'), /apiserver_request_total/);
  });

  it('differences keep what changed; the operator view drops leases and namespaces', () => {
    const d = counterDiff(
      { networks: 5, leases: 1, configmaps: 2 },
      { networks: 8, leases: 4, configmaps: 2 },
    );
    assert.deepEqual(d, { networks: 3, leases: 3 });
    assert.deepEqual(operatorWrites({ ...d, namespaces: 2, events: 1 }), { networks: 3, events: 1 });
    assert.equal(sum({ a: 1, b: 2.5 }), 3.5);
  });
});

describe('netmesh progress', () => {
  const text = (
    synced: [number, number],
    depth: number,
  ) => `netmesh_informer_synced{informer="networks"} ${synced[0]}
netmesh_informer_synced{informer="cni-configmaps"} ${synced[1]}
netmesh_reconcile_total{result="success"} 290
netmesh_reconcile_total{result="conflict"} 7
netmesh_reconcile_total{result="error"} 3
workqueue_depth{name="network"} ${depth}
workqueue_depth{name="other"} 9
`;

  it('is synced only when every informer is, and counts reconciles by result', () => {
    assert.deepEqual(netmeshProgress(text([1, 1], 2)), {
      synced: true,
      reconciles: 300,
      successes: 290,
      conflicts: 7,
      queueDepth: 2,
    });
    assert.equal(netmeshProgress(text([1, 0], 0)).synced, false);
    assert.equal(netmeshProgress('').synced, false, 'no informers yet is not synced');
  });
});

const runs = (o1000: number[], b1000: number[], o10k: number[], b10k: number[]): OperatorRuns => ({
  concurrency: 16,
  workers: 2,
  create: [
    {
      n: 1000,
      operator: o1000.map((s) => ({
        n: 1000,
        seconds: s,
        writesPerNetwork: 3,
        writesByResource: { configmaps: 1000, 'networks/status': 1000, events: 1000 },
      })),
      baseline: b1000.map((s) => ({ n: 1000, seconds: s })),
    },
    {
      n: 10_000,
      operator: o10k.map((s) => ({ n: 10_000, seconds: s, writesPerNetwork: 3.2, writesByResource: {} })),
      baseline: b10k.map((s) => ({ n: 10_000, seconds: s })),
    },
  ],
  memory: [
    { n: 1000, rssBytes: 120 * 1048576, heapUsedBytes: 30 * 1048576, peakRssBytes: 150 * 1048576 },
    { n: 10_000, rssBytes: 180 * 1048576, heapUsedBytes: 60 * 1048576, peakRssBytes: 230 * 1048576 },
  ],
  storm: { n: 300, editsPerNetwork: 10, reconciles: 1200, conflicts: 30, editSeconds: 50, seconds: 55 },
  restart: {
    n: 10_000,
    syncedSeconds: 3,
    firstReconcileSeconds: 3.1,
    allReconciledSeconds: 9,
    writes: 0,
    writesByResource: {},
  },
});

describe('operator report', () => {
  const r = runs([12, 14, 13], [10, 10, 10], [140], [100]);
  const s = r.create.map(summarizeCreate);

  it('takes medians and the median of per-round ratios', () => {
    assert.equal(s[0]!.operatorSeconds, 13);
    assert.equal(s[0]!.ratio, 1.3);
    assert.equal(s[0]!.msPerNetwork, 13);
    assert.equal(s[1]!.msPerNetwork, 14);
    assert.equal(s[1]!.writesPerNetwork, 3.2);
    assert.ok(Math.abs(flatness(s) - 14 / 13) < 1e-9);
  });

  it('refuses unpaired rounds', () => {
    assert.throws(() => summarizeCreate({ n: 5, operator: [], baseline: [] }), /0 operator runs/);
  });

  it('checks each target against the issue limits', () => {
    const t = operatorTargets(r, s);
    const byWhat = new Map(t.map((x) => [x.what, x]));
    assert.equal(targetMet(byWhat.get('all Ready vs baseline, N=1,000')!), true);
    assert.equal(targetMet(byWhat.get('all Ready vs baseline, N=10,000')!), true);
    const writes = byWhat.get('API writes per Network on the create path')!;
    assert.equal(writes.measured, 3.2);
    assert.equal(targetMet(writes), false, 'more than 3 writes per Network misses');
    assert.equal(targetMet(byWhat.get('API writes on a no-op restart')!), true);
    const rss = byWhat.get('operator RSS at 10,000 Networks')!;
    assert.equal(rss.measured, 180);
    assert.equal(targetMet(rss), true);
    assert.equal(targetMet(byWhat.get('time per Network, largest N over smallest')!), true);
  });

  it('renders tables with every row and a chart with both series', () => {
    const text = operatorTables(r, s).map(renderText).join('\n');
    assert.match(text, /10,000/);
    assert.match(text, /reconciles per Network/);
    assert.match(text, /4\.00/); // 1200 reconciles over 300 Networks
    const chart = operatorChart(s);
    assert.equal(chart.file, 'operator-per-network.svg');
    assert.match(chart.svg, /^<svg/);
    assert.match(chart.svg, /baseline/);
  });
});
