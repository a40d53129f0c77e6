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
  /** CPU time per create by process (apiserver, netmesh, client), µs. */
  cpuMicrosPerCreate: Record<string, number>;
  /** Admission requests netmesh answered per create, and their mean time inside netmesh (ms). */
  webhookCallsPerCreate: number;
  webhookMeanMs: number;
  /** The same calls as the apiserver timed them (its webhook admission metric), mean ms; NaN if unknown. */
  apiserverWebhookMeanMs: number;
}

/**
 * The apiserver's own timing of its calls to netmesh's webhooks (every webhook whose name ends
 * in netmesh.io): apiserver_admission_webhook_admission_duration_seconds sum and count.
 */
export function apiserverWebhookTiming(metricsText: string): { calls: number; seconds: number } {
  let calls = 0;
  let seconds = 0;
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith('apiserver_admission_webhook_admission_duration_seconds_')) continue;
    if (!/name="[^"]*netmesh\.io"/.test(line)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith('apiserver_admission_webhook_admission_duration_seconds_sum{')) seconds += value;
    else if (line.startsWith('apiserver_admission_webhook_admission_duration_seconds_count{')) calls += value;
  }
  return { calls, seconds };
}

/** netmesh's own count of admission requests and the total seconds it spent answering them. */
export function webhookCounters(metricsText: string): { requests: number; seconds: number } {
  let requests = 0;
  let seconds = 0;
  for (const line of metricsText.split('\n')) {
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith('netmesh_webhook_requests_total{')) requests += value;
    else if (line.startsWith('netmesh_webhook_request_duration_seconds_sum')) seconds += value;
  }
  return { requests, seconds };
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
  /** Median CPU µs per create by process, with and without the webhook. */
  cpu: Record<Registration, Record<string, number>>;
  webhookCallsPerCreate: number;
  webhookMeanMs: number;
  apiserverWebhookMeanMs: number;
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
    cpu: { webhook: medianCpu(b.runs.webhook), none: medianCpu(b.runs.none) },
    webhookCallsPerCreate: median(b.runs.webhook.map((r) => r.webhookCallsPerCreate)),
    webhookMeanMs: median(b.runs.webhook.map((r) => r.webhookMeanMs)),
    apiserverWebhookMeanMs: median(b.runs.webhook.map((r) => r.apiserverWebhookMeanMs)),
  };
}

function medianCpu(runs: AdmissionRun[]): Record<string, number> {
  const names = new Set(runs.flatMap((r) => Object.keys(r.cpuMicrosPerCreate)));
  return Object.fromEntries(
    [...names].map((k) => [k, median(runs.map((r) => r.cpuMicrosPerCreate[k] ?? Number.NaN))]),
  );
}

export function admissionTables(runs: AdmissionRuns, summaries: AdmissionSummary[]): Table[] {
  return [
    {
      title: `admission: Pod creates/s through the apiserver (stored, never scheduled), concurrency ${runs.concurrency}, webhook registered vs not`,
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
    {
      title: 'admission: CPU time per Pod create (µs, medians), with webhook / without',
      columns: ['Pod', 'apiserver', 'netmesh', 'client'],
      rows: summaries.map((s) => [
        s.name,
        ...['apiserver', 'netmesh', 'client'].map((k) =>
          s.cpu.webhook[k] === undefined
            ? 'n/a'
            : `${(s.cpu.webhook[k] ?? 0).toFixed(0)} / ${(s.cpu.none[k] ?? 0).toFixed(0)}`,
        ),
      ]),
      notes: [
        'user + system time from /proc (the apiserver only when this run started it)',
        ...summaries.map(
          (s) =>
            `${s.name}: ${s.webhookCallsPerCreate.toFixed(2)} admission requests per create, ${s.webhookMeanMs.toFixed(2)} ms each inside netmesh (its own metrics), ${Number.isNaN(s.apiserverWebhookMeanMs) ? 'n/a' : s.apiserverWebhookMeanMs.toFixed(2)} ms each as the apiserver timed the call`,
        ),
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
