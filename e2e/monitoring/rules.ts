// Checking PromQL (the chart's alerting rules, the Grafana dashboard's queries) against what a
// real netmesh exports, the way Prometheus would see it: scrapes become series carrying the
// target labels the chart's ServiceMonitor/PodMonitor add (job, namespace, pod, instance).
// Works on any /metrics text, so the same checks run against a host-run netmesh and, given a
// scrape through the apiserver's Pod proxy, against the in-cluster Deployment.
import { type MetricFamily, type MetricType, parseExposition } from './exposition.ts';
import { type Expr, type Labels, parsePromQL, SeriesStore, selectorUses } from './promql.ts';

export interface Scrape {
  /** Milliseconds since the epoch. */
  t: number;
  /** The /metrics body. */
  text: string;
  /** Labels the scrape config attaches (job, namespace, pod, instance). */
  target: Labels;
}

/** Series as Prometheus stores them: sample labels plus target labels (clashes -> exported_*). */
export function storeFromScrapes(scrapes: Scrape[]): {
  store: SeriesStore;
  families: Map<string, MetricFamily>;
} {
  const store = new SeriesStore();
  let families = new Map<string, MetricFamily>();
  for (const s of [...scrapes].sort((a, b) => a.t - b.t)) {
    families = parseExposition(s.text);
    for (const f of families.values()) {
      for (const sample of f.samples) {
        const labels: Labels = { __name__: sample.name };
        for (const [k, v] of Object.entries(sample.labels)) labels[k in s.target ? `exported_${k}` : k] = v;
        Object.assign(labels, s.target);
        store.add(labels, s.t, sample.value);
      }
    }
  }
  return { store, families };
}

interface Resolved {
  family: MetricFamily;
  /** Which part of a histogram or summary, if any. */
  part: 'bucket' | 'sum' | 'count' | undefined;
}

function resolve(name: string, families: Map<string, MetricFamily>): Resolved | undefined {
  const f = families.get(name);
  if (f) return { family: f, part: undefined };
  for (const part of ['bucket', 'sum', 'count'] as const) {
    const base = families.get(name.slice(0, -(part.length + 1)));
    if (name.endsWith(`_${part}`) && base && (base.type === 'histogram' || base.type === 'summary'))
      return { family: base, part };
  }
  return undefined;
}

const COUNTER_FUNCTIONS = new Set(['rate', 'increase', 'irate', 'resets']);

/**
 * What is wrong with a query given the metrics exported: a metric that does not exist, a label
 * no series of it has (nor the target), a counter read without rate()/increase(), a gauge fed
 * to rate(), histogram_quantile() over something that is not a histogram's buckets. Empty when
 * the query is sound. `targetLabels` are the labels the scrape adds.
 */
export function checkQuery(
  query: string | Expr,
  families: Map<string, MetricFamily>,
  targetLabels: readonly string[],
): string[] {
  const problems: string[] = [];
  const expr = typeof query === 'string' ? parsePromQL(query) : query;
  for (const use of selectorUses(expr)) {
    const name = use.selector.name;
    if (name === undefined) {
      problems.push('a selector without a metric name');
      continue;
    }
    const r = resolve(name, families);
    if (!r) {
      problems.push(`metric ${name} is not exported`);
      continue;
    }
    const type: MetricType = r.family.type;
    const known = new Set<string>(targetLabels);
    for (const s of r.family.samples)
      if (s.name === name) for (const k of Object.keys(s.labels)) known.add(k);
    // A labelled metric has no series until its first observation (prom-client exports only the
    // TYPE and HELP lines, e.g. nodejs_gc_duration_seconds before the first GC): its labels
    // cannot be checked yet, its name and type can.
    const observed = r.family.samples.some((s) => s.name === name);
    for (const m of observed ? use.selector.matchers : [])
      if (!known.has(m.name))
        problems.push(`${name} has no label ${m.name} (it has ${[...known].sort().join(', ')})`);
    for (const l of observed ? use.groupedBy : [])
      if (!known.has(l)) problems.push(`${name} is grouped or matched by ${l}, a label it does not have`);
    const counterLike = type === 'counter' || r.part !== undefined;
    const rated = use.functions.some((f) => COUNTER_FUNCTIONS.has(f));
    if (counterLike && !rated && !use.functions.includes('absent'))
      problems.push(`${name} is a ${type}${r.part ? ` ${r.part}` : ''} read without rate()/increase()`);
    if (!counterLike && rated) problems.push(`${name} is a ${type}: rate()/increase() do not apply`);
    if (use.functions.includes('histogram_quantile') && !(type === 'histogram' && r.part === 'bucket'))
      problems.push(`histogram_quantile() over ${name}, which is not a histogram's _bucket series`);
  }
  return problems;
}

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** The alerting rules of a rendered PrometheusRule object. */
export function alertRules(prometheusRule: unknown): AlertRule[] {
  const spec = (prometheusRule as { spec?: { groups?: { rules?: AlertRule[] }[] } }).spec;
  return (spec?.groups ?? []).flatMap((g) => g.rules ?? []).filter((r) => r.alert);
}

/** Grafana dashboard queries with its template variables replaced by concrete values. */
export function dashboardQueries(
  dashboard: unknown,
  variables: Record<string, string>,
): { panel: string; expr: string }[] {
  const out: { panel: string; expr: string }[] = [];
  const substitute = (expr: string): string =>
    expr.replace(/\$\{?(\w+)\}?/g, (m, v: string) => {
      if (v === '__rate_interval' || v === '__interval') return '1m';
      if (v in variables) return variables[v]!;
      throw new Error(`dashboard query uses an unknown variable ${m}: ${expr}`);
    });
  const walk = (panels: unknown[]): void => {
    for (const p of panels as { title?: string; targets?: { expr?: string }[]; panels?: unknown[] }[]) {
      for (const t of p.targets ?? [])
        if (t.expr) out.push({ panel: p.title ?? '?', expr: substitute(t.expr) });
      if (p.panels) walk(p.panels);
    }
  };
  walk((dashboard as { panels?: unknown[] }).panels ?? []);
  const templating = (dashboard as { templating?: { list?: { query?: unknown }[] } }).templating?.list ?? [];
  for (const v of templating) {
    const q = typeof v.query === 'string' ? v.query : (v.query as { query?: string } | undefined)?.query;
    // label_values(metric{...}, label) is Grafana's, not PromQL: check the metric selector in it.
    const m = q ? /^label_values\((.+),\s*(\w+)\)$/.exec(q) : null;
    if (m) out.push({ panel: `variable ${m[2]}`, expr: `count by (${m[2]}) (${substitute(m[1]!)})` });
  }
  return out;
}
