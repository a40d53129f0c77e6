// The operator area's figures: parsing the apiserver's and netmesh's Prometheus text, and
// turning the measured runs into tables, targets, results.json figures and the chart. Pure, so
// that what the benchmark claims is unit-tested (report.test.ts).
import type { Chart, Target } from '../lib/area.ts';
import { median, pairedRatio } from '../lib/stats.ts';
import { lineChart } from '../lib/svg.ts';
import type { Table } from '../lib/table.ts';

/** The resources netmesh's operator writes: its Networks (and their status), CNI objects, Events. */
export const OPERATOR_RESOURCES = [
  'networks',
  'networks/status',
  'configmaps',
  'network-attachment-definitions',
  'events',
] as const;

const WRITE_VERBS = new Set(['POST', 'PUT', 'PATCH', 'APPLY', 'DELETE', 'DELETECOLLECTION']);

function labelsOf(line: string): Map<string, string> {
  const open = line.indexOf('{');
  const close = line.lastIndexOf('}');
  const out = new Map<string, string>();
  if (open < 0 || close < open) return out;
  for (const m of line.slice(open + 1, close).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
    out.set(m[1]!, m[2]!);
  return out;
}

function sampleValue(line: string): number {
  const v = Number(line.slice(line.lastIndexOf(' ') + 1));
  if (!Number.isFinite(v)) throw new Error(`not a Prometheus sample: ${line}`);
  return v;
}

/**
 * Mutating requests the apiserver served, by resource[/subresource], from its own
 * apiserver_request_total (every response code: a refused write still cost the apiserver).
 */
export function apiserverWrites(metricsText: string): Record<string, number> {
  const out: Record<string, number> = {};
  let seen = false;
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    seen = true;
    const l = labelsOf(line);
    if (!WRITE_VERBS.has(l.get('verb') ?? '')) continue;
    const sub = l.get('subresource');
    const key = sub ? `${l.get('resource')}/${sub}` : (l.get('resource') ?? '');
    out[key] = (out[key] ?? 0) + sampleValue(line);
  }
  if (!seen) throw new Error('the apiserver metrics have no apiserver_request_total');
  return out;
}

/** b - a per key, keeping only the keys that changed. */
export function counterDiff(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = (b[k] ?? 0) - (a[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

/** The writes among `d` that are the operator's kind of writes (leases and namespaces are not). */
export function operatorWrites(d: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of OPERATOR_RESOURCES) if (d[k]) out[k] = d[k];
  return out;
}

export function sum(d: Record<string, number>): number {
  return Object.values(d).reduce((a, b) => a + b, 0);
}

/** What netmesh's /metrics says about its start and its work. */
export interface NetmeshProgress {
  /** Every informer reports netmesh_informer_synced 1 (and there is at least one). */
  synced: boolean;
  /** netmesh_reconcile_total over all results. */
  reconciles: number;
  /** netmesh_reconcile_total{result="success"}. */
  successes: number;
  /** netmesh_reconcile_total{result="conflict"}: a write refused for a stale cache (409), requeued. */
  conflicts: number;
  /** workqueue depth of the network queue (0 when absent). */
  queueDepth: number;
}

export function netmeshProgress(metricsText: string): NetmeshProgress {
  let informers = 0;
  let synced = 0;
  let reconciles = 0;
  let successes = 0;
  let conflicts = 0;
  let queueDepth = 0;
  for (const line of metricsText.split('\n')) {
    if (line.startsWith('netmesh_informer_synced{')) {
      informers++;
      if (sampleValue(line) === 1) synced++;
    } else if (line.startsWith('netmesh_reconcile_total{')) {
      const v = sampleValue(line);
      reconciles += v;
      const result = labelsOf(line).get('result');
      if (result === 'success') successes += v;
      else if (result === 'conflict') conflicts += v;
    } else if (/^(netmesh_)?workqueue_depth\{/.test(line) && labelsOf(line).get('name') === 'network') {
      queueDepth += sampleValue(line);
    }
  }
  return { synced: informers > 0 && synced === informers, reconciles, successes, conflicts, queueDepth };
}

export interface CreateRun {
  n: number;
  /** From the first create until a watch saw every Network Ready. */
  seconds: number;
  /** The operator's writes on the create path, per Network (operator runs only). */
  writesPerNetwork?: number;
  writesByResource?: Record<string, number>;
}

export interface OperatorRuns {
  concurrency: number;
  workers: number;
  create: { n: number; baseline: CreateRun[]; operator: CreateRun[] }[];
  memory: { n: number; rssBytes: number; heapUsedBytes: number; peakRssBytes: number }[];
  storm: {
    n: number;
    editsPerNetwork: number;
    reconciles: number;
    /** Of those, reconciles ended by a 409 (stale cache) and requeued with backoff. */
    conflicts: number;
    /** The client's edits alone. */
    editSeconds: number;
    seconds: number;
  };
  restart: {
    n: number;
    syncedSeconds: number;
    firstReconcileSeconds: number;
    allReconciledSeconds: number;
    writes: number;
    writesByResource: Record<string, number>;
  };
}

export interface CreateSummary {
  n: number;
  baselineSeconds: number;
  operatorSeconds: number;
  /** Median of the per-round operator/baseline ratios. */
  ratio: number;
  msPerNetwork: number;
  baselineMsPerNetwork: number;
  writesPerNetwork: number;
  writesByResource: Record<string, number>;
}

export function summarizeCreate(c: OperatorRuns['create'][number]): CreateSummary {
  if (c.operator.length === 0 || c.operator.length !== c.baseline.length)
    throw new Error(
      `N=${c.n}: ${c.operator.length} operator runs against ${c.baseline.length} baseline runs`,
    );
  const operatorSeconds = median(c.operator.map((r) => r.seconds));
  const baselineSeconds = median(c.baseline.map((r) => r.seconds));
  const last = c.operator.at(-1)!;
  return {
    n: c.n,
    baselineSeconds,
    operatorSeconds,
    ratio: pairedRatio(
      c.operator.map((r) => r.seconds),
      c.baseline.map((r) => r.seconds),
    ).median,
    msPerNetwork: (operatorSeconds * 1000) / c.n,
    baselineMsPerNetwork: (baselineSeconds * 1000) / c.n,
    writesPerNetwork: Math.max(...c.operator.map((r) => r.writesPerNetwork ?? Number.NaN)),
    writesByResource: last.writesByResource ?? {},
  };
}

/** Time per Network at the largest N over the smallest: 1 is perfectly flat. */
export function flatness(summaries: CreateSummary[]): number {
  const sorted = [...summaries].sort((a, b) => a.n - b.n);
  return sorted.at(-1)!.msPerNetwork / sorted[0]!.msPerNetwork;
}

const mb = (bytes: number): string => `${(bytes / 1048576).toFixed(0)} MB`;
const n = (x: number): string => x.toLocaleString('en-US');

export function operatorTables(runs: OperatorRuns, summaries: CreateSummary[]): Table[] {
  const create: Table = {
    title: `operator: N Networks created at concurrency ${runs.concurrency} until a watch saw all Ready (medians; ${runs.workers} workers)`,
    columns: [
      'N',
      'operator',
      'baseline',
      'ratio',
      'ms/Network',
      'baseline ms/Network',
      'writes/Network',
      'rounds',
    ],
    rows: summaries.map((s, i) => [
      n(s.n),
      `${s.operatorSeconds.toFixed(1)} s`,
      `${s.baselineSeconds.toFixed(1)} s`,
      s.ratio.toFixed(2),
      s.msPerNetwork.toFixed(2),
      s.baselineMsPerNetwork.toFixed(2),
      s.writesPerNetwork.toFixed(2),
      String(runs.create[i]!.operator.length),
    ]),
    notes: [
      'baseline: the same client creating the Network, its CNI ConfigMap and one status patch, no operator running; rounds interleaved',
      `writes: the apiserver's apiserver_request_total (mutating verbs) on ${OPERATOR_RESOURCES.join(', ')}, minus the client's creates; last run: ${JSON.stringify(summaries.at(-1)?.writesByResource ?? {})}`,
    ],
  };
  const other: Table = {
    title: 'operator: memory, update storm, restart',
    columns: ['measurement', 'value'],
    rows: [
      ...runs.memory.map((m) => [
        `operator RSS / heap after GC at ${n(m.n)} Networks (peak RSS)`,
        `${mb(m.rssBytes)} / ${mb(m.heapUsedBytes)} (${mb(m.peakRssBytes)})`,
      ]),
      [
        `update storm: reconciles per Network for ${runs.storm.editsPerNetwork} spec edits each, ${n(runs.storm.n)} Networks`,
        (runs.storm.reconciles / runs.storm.n).toFixed(2),
      ],
      [
        'update storm: conflicts (409, requeued) per Network',
        (runs.storm.conflicts / runs.storm.n).toFixed(2),
      ],
      [
        'update storm: time to converge (every status at its generation) / of which the edits',
        `${runs.storm.seconds.toFixed(1)} s / ${runs.storm.editSeconds.toFixed(1)} s`,
      ],
      [
        `restart over ${n(runs.restart.n)} Ready Networks: caches synced / first reconcile / all reconciled`,
        `${runs.restart.syncedSeconds.toFixed(1)} s / ${runs.restart.firstReconcileSeconds.toFixed(1)} s / ${runs.restart.allReconciledSeconds.toFixed(1)} s`,
      ],
      ['restart: writes caused (nothing changed)', String(runs.restart.writes)],
    ],
    notes: [
      'memory: process.memoryUsage() through the V8 inspector after a forced GC; peak from /proc VmHWM',
      'restart: from the process spawn; synced and reconciles from netmesh /metrics; writes from the apiserver (leases excluded)',
    ],
  };
  return [create, other];
}

export function operatorTargets(runs: OperatorRuns, summaries: CreateSummary[]): Target[] {
  const area = 'operator';
  const largest = runs.memory.reduce((a, b) => (b.n > a.n ? b : a));
  return [
    ...summaries.map(
      (s): Target => ({
        area,
        what: `all Ready vs baseline, N=${n(s.n)}`,
        measured: s.ratio,
        kind: 'max',
        limit: 1.5,
        unit: 'ratio',
      }),
    ),
    {
      area,
      what: 'API writes per Network on the create path',
      measured: Math.max(...summaries.map((s) => s.writesPerNetwork)),
      kind: 'max',
      limit: 3,
      unit: 'writes',
    },
    {
      area,
      what: 'API writes on a no-op restart',
      measured: runs.restart.writes,
      kind: 'max',
      limit: 0,
      unit: 'writes',
    },
    {
      area,
      what: `operator RSS at ${n(largest.n)} Networks`,
      measured: largest.rssBytes / 1048576,
      kind: 'max',
      limit: 200,
      unit: 'MB',
    },
    {
      area,
      what: 'time per Network, largest N over smallest',
      measured: flatness(summaries),
      kind: 'max',
      limit: 1.3,
      unit: 'ratio',
    },
  ];
}

export function operatorResults(runs: OperatorRuns, summaries: CreateSummary[]): Record<string, unknown> {
  return { ...runs, summaries, flatness: flatness(summaries) };
}

export function operatorChart(summaries: CreateSummary[]): Chart {
  const sorted = [...summaries].sort((a, b) => a.n - b.n);
  return {
    file: 'operator-per-network.svg',
    svg: lineChart({
      title: 'operator: time per Network until all Ready',
      subtitle: 'N Networks created at concurrency 16; medians of interleaved rounds',
      panels: [
        {
          title: 'ms per Network',
          series: [
            { name: 'netmesh', color: '#1f77b4', points: sorted.map((s) => [s.n, s.msPerNetwork]) },
            {
              name: 'baseline',
              color: '#7f7f7f',
              dashed: true,
              points: sorted.map((s) => [s.n, s.baselineMsPerNetwork]),
            },
          ],
        },
      ],
      x: {
        label: 'Networks (N)',
        ticks: sorted.map((s) => ({ value: s.n, label: n(s.n) })),
      },
      y: { label: 'ms per Network' },
    }),
  };
}
