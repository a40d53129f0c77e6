// The admission area's figures: Pod creations per second through the apiserver with netmesh's
// webhook registered, with a bare webhook making the same mutation, and with none, from the same
// client. Pure (report.test.ts).
import type { Target } from '../lib/area.ts';
import { median, pairedRatio } from '../lib/stats.ts';
import type { Table } from '../lib/table.ts';

/** netmesh's webhook, the bare webhook answering with netmesh's patch, or no webhook. */
export type Registration = 'webhook' | 'bare' | 'none';

export const REGISTRATION_NAMES: Record<Registration, string> = {
  webhook: "netmesh's webhook",
  bare: 'the bare webhook',
  none: 'no webhook',
};

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
  barePerSecond: number;
  nonePerSecond: number;
  /** Median of the per-round ratios webhook / none. */
  ratio: number;
  /** 1 - ratio: the share of the apiserver's Pod-create throughput the webhook costs. */
  cost: number;
  /** The same for the bare webhook: what any webhook making this mutation costs. */
  bareCost: number;
  /** Median of the per-round ratios webhook / bare: netmesh against the bare webhook. */
  webhookOverBare: number;
  webhookP50Ms: number;
  bareP50Ms: number;
  noneP50Ms: number;
  /** Median CPU µs per create by process, for each registration. */
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
  const rates = (r: Registration): number[] => b.runs[r].map((run) => run.perSecond);
  const p50 = (r: Registration): number => median(b.runs[r].map((run) => run.p50Ms));
  const ratio = pairedRatio(rates('webhook'), rates('none')).median;
  return {
    name: b.name,
    webhookPerSecond: median(rates('webhook')),
    barePerSecond: median(rates('bare')),
    nonePerSecond: median(rates('none')),
    ratio,
    cost: 1 - ratio,
    bareCost: 1 - pairedRatio(rates('bare'), rates('none')).median,
    webhookOverBare: pairedRatio(rates('webhook'), rates('bare')).median,
    webhookP50Ms: p50('webhook'),
    bareP50Ms: p50('bare'),
    noneP50Ms: p50('none'),
    cpu: { webhook: medianCpu(b.runs.webhook), bare: medianCpu(b.runs.bare), none: medianCpu(b.runs.none) },
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
  const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;
  const cpu = (s: AdmissionSummary, k: string, regs: Registration[]): string =>
    s.cpu.webhook[k] === undefined ? 'n/a' : regs.map((r) => (s.cpu[r][k] ?? 0).toFixed(0)).join(' / ');
  return [
    {
      title: `admission: Pod creates/s through the apiserver (stored, never scheduled), concurrency ${runs.concurrency}: netmesh's webhook, a bare webhook making the same mutation, no webhook`,
      columns: [
        'Pod',
        'netmesh',
        'bare webhook',
        'no webhook',
        'netmesh cost',
        'bare webhook cost',
        'netmesh / bare',
        'p50 netmesh / bare / none',
        'target',
      ],
      rows: summaries.map((s) => [
        s.name,
        s.webhookPerSecond.toFixed(0),
        s.barePerSecond.toFixed(0),
        s.nonePerSecond.toFixed(0),
        pct(s.cost),
        pct(s.bareCost),
        s.webhookOverBare.toFixed(2),
        `${[s.webhookP50Ms, s.bareP50Ms, s.noneP50Ms].map((x) => x.toFixed(1)).join(' / ')} ms`,
        '< 20%',
      ]),
      notes: [
        `medians of ${runs.rounds} interleaved rounds of ${runs.seconds} s (netmesh, bare, none, then none, bare, netmesh, ...); cost: 1 - median per-round ratio to no webhook`,
        "the same keep-alive HTTPS client (16 connections); netmesh webhook on this host, registered by the chart (webhook.localRunURL, failurePolicy Fail); the bare webhook: the same configuration pointing at a bare Node https server that parses the review and answers with netmesh's patch for that Pod, so the apiserver stores the same Pod; every create answered 201 and admitted the wanted way, as checked",
      ],
    },
    {
      title: 'admission: CPU time per Pod create (µs, medians), netmesh / bare webhook / no webhook',
      columns: ['Pod', 'apiserver', 'webhook process (netmesh / bare)', 'client'],
      rows: summaries.map((s) => [
        s.name,
        cpu(s, 'apiserver', ['webhook', 'bare', 'none']),
        `${(s.cpu.webhook['netmesh'] ?? 0).toFixed(0)} / ${(s.cpu.bare['bare'] ?? 0).toFixed(0)}`,
        cpu(s, 'client', ['webhook', 'bare', 'none']),
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
