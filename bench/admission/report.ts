// The admission area's figures: Pod creations per second through the apiserver with netmesh's
// webhook registered against the same client with it not registered. Pure (report.test.ts).
import type { Target } from '../lib/area.ts';
import { median, pairedRatio } from '../lib/stats.ts';
import type { Table } from '../lib/table.ts';

export type Registration = 'webhook' | 'none';

export interface AdmissionRun {
  /** Pod creations the apiserver answered 201 per second. */
  perSecond: number;
  creates: number;
  /** Median latency of one create, ms. */
  p50Ms: number;
  p99Ms: number;
}

export interface AdmissionBody {
  name: string;
  runs: Record<Registration, AdmissionRun[]>;
}

export interface AdmissionRuns {
  concurrency: number;
  seconds: number;
  rounds: number;
  bodies: AdmissionBody[];
}

export interface AdmissionSummary {
  name: string;
  webhookPerSecond: number;
  nonePerSecond: number;
  /** Median of the per-round ratios webhook / none. */
  ratio: number;
  /** 1 - ratio: the share of the apiserver's Pod-create throughput the webhook costs. */
  cost: number;
  webhookP50Ms: number;
  noneP50Ms: number;
}

/** Latency percentile (nearest rank) of unsorted samples. */
export function percentile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export function summarizeAdmission(b: AdmissionBody): AdmissionSummary {
  const ratio = pairedRatio(
    b.runs.webhook.map((r) => r.perSecond),
    b.runs.none.map((r) => r.perSecond),
  ).median;
  return {
    name: b.name,
    webhookPerSecond: median(b.runs.webhook.map((r) => r.perSecond)),
    nonePerSecond: median(b.runs.none.map((r) => r.perSecond)),
    ratio,
    cost: 1 - ratio,
    webhookP50Ms: median(b.runs.webhook.map((r) => r.p50Ms)),
    noneP50Ms: median(b.runs.none.map((r) => r.p50Ms)),
  };
}

export function admissionTables(runs: AdmissionRuns, summaries: AdmissionSummary[]): Table[] {
  return [
    {
      title: `admission: Pod creates/s through the apiserver (dryRun=All), concurrency ${runs.concurrency}, webhook registered vs not`,
      columns: [
        'Pod',
        'with webhook',
        'without',
        'ratio',
        'webhook cost',
        'p50 with',
        'p50 without',
        'target',
      ],
      rows: summaries.map((s) => [
        s.name,
        s.webhookPerSecond.toFixed(0),
        s.nonePerSecond.toFixed(0),
        s.ratio.toFixed(2),
        `${(s.cost * 100).toFixed(0)}%`,
        `${s.webhookP50Ms.toFixed(1)} ms`,
        `${s.noneP50Ms.toFixed(1)} ms`,
        '< 20%',
      ]),
      notes: [
        `medians of ${runs.rounds} interleaved rounds of ${runs.seconds} s (with, without, without, with, ...); webhook cost: 1 - median per-round ratio`,
        'the same keep-alive HTTPS client (16 connections); netmesh webhook on this host, registered by the chart (webhook.localRunURL, failurePolicy Fail); every create answered 201 and injected (or not) as checked',
      ],
    },
  ];
}

export function admissionTargets(summaries: AdmissionSummary[]): Target[] {
  return summaries.map((s) => ({
    area: 'admission',
    what: `webhook cost on the apiserver's Pod-create path, ${s.name}`,
    measured: s.cost * 100,
    kind: 'max',
    limit: 20,
    unit: '%',
  }));
}
