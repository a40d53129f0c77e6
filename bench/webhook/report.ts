// The webhook area's figures, from the raw runs to what `npm run bench` prints, checks and
// writes: medians over interleaved rounds, ratios against the baseline round by round, the
// targets of issue #10 and the latency chart. Pure.
import type { FixtureName } from '../fixtures/workloads.ts';
import type { Chart, Target } from '../lib/area.ts';
import { median, medianCurve, pairedRatio } from '../lib/stats.ts';
import { lineChart } from '../lib/svg.ts';
import type { Table } from '../lib/table.ts';
import type { LoadgenResult } from './loadgen.ts';

export const SERVERS = ['netmesh', 'baseline'] as const;
export type Server = (typeof SERVERS)[number];

export const BODY_TITLES: Record<FixtureName, string> = {
  course: "course's Pod",
  typical: 'Deployment Pod',
  large: 'large Pod',
};

/** Offered rate of the latency runs: 300 req/s for the large Pod, which a core cannot do 1,000 of. */
export const FIXED_RATES: Record<FixtureName, number> = { course: 1000, typical: 1000, large: 300 };

export const TARGETS = {
  /** netmesh's max req/s over the baseline's. */
  throughputRatio: { course: 0.7, typical: 0.7, large: 0.6 } as Record<FixtureName, number>,
  /** netmesh's p99 at the fixed rate over the baseline's. */
  p99Ratio: 1.3,
  /** Resident memory of an idle `netmesh webhook`. */
  idleRssMb: 100,
};

export interface ThroughputRun {
  requestsPerSecond: number;
  requests: number;
  /** Server CPU time (user + system) per request, from /proc. */
  cpuMicrosPerRequest: number;
  /** Server CPU seconds per second of the run: near 1 when the server core was the limit. */
  serverUtilization: number;
}

export interface BodyRuns {
  name: FixtureName;
  bodyBytes: number;
  responseBytes: number;
  throughput: Record<Server, ThroughputRun[]>;
  latency: Record<Server, LoadgenResult[]>;
}

export interface MemoryFigures {
  /** RSS after start-up, before any request. */
  idle: number;
  /** Largest RSS sampled while under load. */
  underLoad: number;
}

export interface WebhookRuns {
  rounds: number;
  throughputSeconds: number;
  latencyRounds: number;
  latencySeconds: number;
  latencySliceSeconds: number;
  connections: number;
  pinned: boolean;
  startupSeconds: number;
  bodies: BodyRuns[];
  memory: Record<Server, MemoryFigures>;
  /** Idle RSS of the dependency floor: netmesh's packages loaded, none of its code run. */
  dependencyFloorIdle: number;
}

export interface BodySummary {
  name: FixtureName;
  bodyBytes: number;
  responseBytes: number;
  requestsPerSecond: Record<Server, number>;
  throughputRatio: { perRound: number[]; median: number };
  cpuMicrosPerRequest: Record<Server, number>;
  /** Baseline CPU per request over netmesh's, round by round: the throughput ratio of saturated servers. */
  cpuRatio: { perRound: number[]; median: number };
  rate: number;
  latencyMicros: Record<Server, { p50: number; p99: number; p999: number }>;
  p99Ratio: { perRound: number[]; median: number };
  curves: Record<Server, [number, number][]>;
}

export function summarizeBody(runs: BodyRuns): BodySummary {
  const rps = (s: Server) => runs.throughput[s].map((r) => r.requestsPerSecond);
  const p = (s: Server, key: 'p50' | 'p99' | 'p999') => runs.latency[s].map((r) => r.percentilesMicros[key]);
  const perServer = <T>(f: (s: Server) => T): Record<Server, T> => ({
    netmesh: f('netmesh'),
    baseline: f('baseline'),
  });
  return {
    name: runs.name,
    bodyBytes: runs.bodyBytes,
    responseBytes: runs.responseBytes,
    requestsPerSecond: perServer((s) => median(rps(s))),
    throughputRatio: pairedRatio(rps('netmesh'), rps('baseline')),
    cpuMicrosPerRequest: perServer((s) => median(runs.throughput[s].map((r) => r.cpuMicrosPerRequest))),
    cpuRatio: pairedRatio(
      runs.throughput.baseline.map((r) => r.cpuMicrosPerRequest),
      runs.throughput.netmesh.map((r) => r.cpuMicrosPerRequest),
    ),
    rate: runs.latency.netmesh[0]?.rate ?? FIXED_RATES[runs.name],
    latencyMicros: perServer((s) => ({
      p50: median(p(s, 'p50')),
      p99: median(p(s, 'p99')),
      p999: median(p(s, 'p999')),
    })),
    p99Ratio: pairedRatio(p('netmesh', 'p99'), p('baseline', 'p99')),
    curves: perServer((s) => medianCurve(runs.latency[s].map((r) => r.quantiles))),
  };
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;
const ms = (micros: number) => (micros / 1000).toFixed(2);
const int = (n: number) => Math.round(n).toLocaleString('en-US');

export function webhookTargets(bodies: BodySummary[], memory: Record<Server, MemoryFigures>): Target[] {
  return [
    ...bodies.map(
      (b): Target => ({
        area: 'webhook',
        what: `throughput, ${BODY_TITLES[b.name]}: netmesh / baseline`,
        measured: b.throughputRatio.median,
        kind: 'min',
        limit: TARGETS.throughputRatio[b.name],
        unit: 'ratio',
      }),
    ),
    ...bodies.map(
      (b): Target => ({
        area: 'webhook',
        what: `p99 at ${int(b.rate)} req/s, ${BODY_TITLES[b.name]}: netmesh / baseline`,
        measured: b.p99Ratio.median,
        kind: 'max',
        limit: TARGETS.p99Ratio,
        unit: 'ratio',
      }),
    ),
    {
      area: 'webhook',
      what: 'idle RSS of netmesh webhook',
      measured: memory.netmesh.idle / 1e6,
      kind: 'max',
      limit: TARGETS.idleRssMb,
      unit: 'MB',
    },
  ];
}

export function webhookTables(runs: WebhookRuns, bodies: BodySummary[]): Table[] {
  const where = runs.pinned
    ? 'servers on CPU 0, load generators on CPU 1'
    : 'not pinned (fewer than 2 CPUs or no taskset)';
  const how = `medians of ${runs.rounds} interleaved rounds (netmesh, baseline, baseline, netmesh, ...); ${where}`;
  return [
    {
      title: `webhook: maximum throughput (wrk, ${runs.connections} keep-alive TLS connections, ${runs.throughputSeconds} s runs)`,
      columns: [
        'body',
        'size',
        'netmesh req/s',
        'baseline req/s',
        'ratio',
        'target',
        'CPU µs/req netmesh',
        'baseline',
        'CPU ratio',
      ],
      rows: bodies.map((b) => [
        BODY_TITLES[b.name],
        kb(b.bodyBytes),
        int(b.requestsPerSecond.netmesh),
        int(b.requestsPerSecond.baseline),
        b.throughputRatio.median.toFixed(2),
        `>= ${TARGETS.throughputRatio[b.name]}`,
        int(b.cpuMicrosPerRequest.netmesh),
        int(b.cpuMicrosPerRequest.baseline),
        b.cpuRatio.median.toFixed(2),
      ]),
      notes: [
        how,
        'ratio: median of the per-round req/s ratios; CPU: server user + system time per request (/proc);',
        "CPU ratio: baseline CPU per request over netmesh's, what the req/s ratio is when both servers have their core to themselves",
      ],
    },
    {
      title: `webhook: latency at a fixed offered rate (open loop, latency from the intended send time)`,
      columns: [
        'body',
        'req/s',
        'netmesh p50',
        'p99',
        'p99.9',
        'baseline p50',
        'p99',
        'p99.9',
        'p99 ratio',
        'target',
      ],
      rows: bodies.map((b) => [
        BODY_TITLES[b.name],
        int(b.rate),
        ms(b.latencyMicros.netmesh.p50),
        ms(b.latencyMicros.netmesh.p99),
        ms(b.latencyMicros.netmesh.p999),
        ms(b.latencyMicros.baseline.p50),
        ms(b.latencyMicros.baseline.p99),
        ms(b.latencyMicros.baseline.p999),
        b.p99Ratio.median.toFixed(2),
        `<= ${TARGETS.p99Ratio}`,
      ]),
      notes: [
        `milliseconds; ${runs.latencySeconds} s per server in alternating ${runs.latencySliceSeconds} s turns (each server's samples pooled), median of ${runs.latencyRounds} such runs; ${where}`,
      ],
    },
    {
      title: 'webhook: resident memory (RSS)',
      columns: ['process', 'idle', 'under load (max)', 'target (idle)'],
      rows: [
        [
          'netmesh webhook (bin/netmesh.js)',
          mb(runs.memory.netmesh.idle),
          mb(runs.memory.netmesh.underLoad),
          `<= ${TARGETS.idleRssMb} MB`,
        ],
        ['bare Node https baseline', mb(runs.memory.baseline.idle), mb(runs.memory.baseline.underLoad), ''],
        ['dependency floor (packages loaded, nothing served)', mb(runs.dependencyFloorIdle), '', ''],
      ],
      notes: [
        `netmesh ready ${runs.startupSeconds.toFixed(1)} s after start (certificate, template and namespace caches)`,
        'dependency floor: what netmesh webhook loads from its packages, as the image bundles them, with none of its own code run (bench/webhook/dependency-floor.ts)',
      ],
    },
  ];
}

const PERCENTILE_TICKS = [
  { value: 0.5, label: 'p50' },
  { value: 0.9, label: 'p90' },
  { value: 0.99, label: 'p99' },
  { value: 0.999, label: 'p99.9' },
  { value: 0.9999, label: 'p99.99' },
];

export function latencyChart(bodies: BodySummary[], subtitle: string): string {
  const maxQ = Math.max(0.99, ...bodies.flatMap((b) => SERVERS.flatMap((s) => b.curves[s].map(([q]) => q))));
  return lineChart({
    title: 'netmesh webhook latency at a fixed offered rate, against a bare Node https server',
    subtitle,
    x: {
      label: 'percentile',
      transform: (q) => -Math.log10(1 - q),
      ticks: PERCENTILE_TICKS.filter((t) => t.value <= maxQ + 1e-12),
    },
    y: { label: 'latency (ms)' },
    panels: bodies.map((b) => ({
      title: `${BODY_TITLES[b.name]}, ${kb(b.bodyBytes)}, ${int(b.rate)} req/s`,
      series: [
        {
          name: 'netmesh webhook',
          color: '#1f6fb4',
          points: b.curves.netmesh.map(([q, us]) => [q, us / 1000] as [number, number]),
        },
        {
          name: 'bare Node baseline',
          color: '#888888',
          dashed: true,
          points: b.curves.baseline.map(([q, us]) => [q, us / 1000] as [number, number]),
        },
      ],
    })),
  });
}

export function webhookResults(runs: WebhookRuns, bodies: BodySummary[]): Record<string, unknown> {
  return {
    settings: {
      rounds: runs.rounds,
      throughputSeconds: runs.throughputSeconds,
      latencyRounds: runs.latencyRounds,
      latencySeconds: runs.latencySeconds,
      latencySliceSeconds: runs.latencySliceSeconds,
      connections: runs.connections,
      pinned: runs.pinned,
      fixedRates: FIXED_RATES,
    },
    startupSeconds: runs.startupSeconds,
    bodies: Object.fromEntries(
      bodies.map((b) => [
        b.name,
        {
          bodyBytes: b.bodyBytes,
          responseBytes: b.responseBytes,
          requestsPerSecond: b.requestsPerSecond,
          throughputRatio: b.throughputRatio,
          cpuMicrosPerRequest: b.cpuMicrosPerRequest,
          cpuRatio: b.cpuRatio,
          fixedRate: b.rate,
          latencyMicros: b.latencyMicros,
          p99Ratio: b.p99Ratio,
          latencyCurvesMicros: b.curves,
        },
      ]),
    ),
    memoryBytes: runs.memory,
    dependencyFloorIdleBytes: runs.dependencyFloorIdle,
    raw: runs.bodies,
  };
}

export function webhookChart(bodies: BodySummary[], subtitle: string): Chart {
  return { file: 'webhook-latency.svg', svg: latencyChart(bodies, subtitle) };
}
