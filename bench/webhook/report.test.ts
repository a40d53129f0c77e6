import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { targetMet } from '../lib/area.ts';
import { renderText } from '../lib/table.ts';
import type { LoadgenResult } from './loadgen.ts';
import {
  type BodyRuns,
  summarizeBody,
  TARGETS,
  type ThroughputRun,
  type WebhookRuns,
  webhookChart,
  webhookResults,
  webhookTables,
  webhookTargets,
} from './report.ts';

const wrk = (rps: number, cpu: number): ThroughputRun => ({
  requestsPerSecond: rps,
  requests: rps * 8,
  cpuMicrosPerRequest: cpu,
  serverUtilization: (rps * cpu) / 1e6,
});

const fixed = (p50: number, p99: number): LoadgenResult => ({
  rate: 1000,
  sent: 15000,
  ok: 15000,
  errors: 0,
  errorSample: [],
  seconds: 15,
  quantiles: [
    [0.5, p50],
    [0.9, p50 * 1.5],
    [0.99, p99],
    [0.999, p99 * 2],
  ],
  percentilesMicros: { p50, p90: p50 * 1.5, p99, p999: p99 * 2 },
  maxMicros: p99 * 5,
  meanMicros: p50 * 1.1,
  sendLatenessMicros: { p50: 20, p99: 60 },
  responseBytes: 1418,
});

const course: BodyRuns = {
  name: 'course',
  bodyBytes: 2697,
  responseBytes: 1418,
  throughput: {
    // Round 2 was disturbed for both servers: the paired ratio still reads about 0.8.
    netmesh: [wrk(8000, 110), wrk(4000, 120), wrk(8200, 108)],
    baseline: [wrk(10000, 80), wrk(5000, 85), wrk(10100, 79)],
  },
  latency: {
    netmesh: [fixed(300, 900), fixed(310, 1000), fixed(290, 950)],
    baseline: [fixed(250, 800), fixed(240, 700), fixed(260, 760)],
  },
};

describe('webhook report', () => {
  const summary = summarizeBody(course);

  it('medians per server and paired ratios per round', () => {
    assert.equal(summary.requestsPerSecond.netmesh, 8000);
    assert.equal(summary.requestsPerSecond.baseline, 10000);
    assert.deepEqual(summary.throughputRatio.perRound, [0.8, 0.8, 8200 / 10100]);
    assert.equal(summary.throughputRatio.median, 0.8);
    assert.equal(summary.cpuMicrosPerRequest.netmesh, 110);
    assert.equal(summary.cpuRatio.median, 80 / 110);
    assert.equal(summary.latencyMicros.netmesh.p99, 950);
    assert.equal(summary.p99Ratio.median, 950 / 760);
    assert.deepEqual(summary.curves.baseline[2], [0.99, 760]);
  });

  const runs: WebhookRuns = {
    rounds: 3,
    throughputSeconds: 8,
    latencyRounds: 3,
    latencySeconds: 12,
    latencySliceSeconds: 1,
    connections: 16,
    pinned: true,
    startupSeconds: 1.2,
    bodies: [course],
    memory: {
      netmesh: { idle: 150e6, underLoad: 200e6 },
      baseline: { idle: 58e6, underLoad: 130e6 },
    },
    dependencyFloorIdle: 98e6,
  };

  it('targets: throughput at least, p99 ratio and idle RSS at most', () => {
    const targets = webhookTargets([summary], runs.memory);
    assert.deepEqual(
      targets.map((t) => [t.what, t.kind, t.limit, targetMet(t)]),
      [
        ["throughput, course's Pod: netmesh / baseline", 'min', TARGETS.throughputRatio.course, true],
        ["p99 at 1,000 req/s, course's Pod: netmesh / baseline", 'max', TARGETS.p99Ratio, true],
        ['idle RSS of netmesh webhook', 'max', TARGETS.idleRssMb, false],
      ],
    );
  });

  it('one table per aspect, a row per body, and the chart and results from the same figures', () => {
    const tables = webhookTables(runs, [summary]);
    assert.deepEqual(
      tables.map((t) => t.rows.length),
      [1, 1, 3],
    );
    for (const t of tables) renderText(t); // throws when a row does not fit its columns
    assert.equal(tables[0]!.rows[0]![4], '0.80');
    assert.equal(tables[0]!.rows[0]![8], (80 / 110).toFixed(2), 'CPU ratio');
    assert.equal(tables[1]!.rows[0]![3], '0.95', 'p99 in milliseconds');
    assert.match(tables[2]!.rows[0]![1]!, /^150 MB$/);
    assert.match(tables[2]!.rows[2]![0]!, /^dependency floor/);
    assert.equal(tables[2]!.rows[2]![1], '98 MB');
    const chart = webhookChart([summary], 'subtitle');
    assert.equal(chart.file, 'webhook-latency.svg');
    assert.ok(chart.svg.startsWith('<svg') && chart.svg.includes('p99.9'));
    const results = webhookResults(runs, [summary]) as {
      bodies: Record<string, { throughputRatio: unknown }>;
    };
    assert.deepEqual(results.bodies['course']!.throughputRatio, summary.throughputRatio);
  });
});
