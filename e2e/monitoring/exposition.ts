// The Prometheus text exposition format (version 0.0.4), parsed strictly: what Prometheus
// would ingest from netmesh's /metrics, with the lint `promtool check metrics` applies to the
// parts netmesh controls (TYPE before samples, histogram series complete, counters named
// *_total). Used by the chart tests to check the PrometheusRule and the Grafana dashboard
// against a real netmesh.

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface ExpositionSample {
  /** Series name as exposed: for histograms foo_bucket, foo_sum, foo_count. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  type: MetricType;
  help: string;
  samples: ExpositionSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function parseValue(text: string, line: number): number {
  if (text === '+Inf' || text === 'Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  if (text === 'NaN') return Number.NaN;
  const v = Number(text);
  if (text === '' || Number.isNaN(v))
    throw new Error(`line ${line}: invalid sample value ${JSON.stringify(text)}`);
  return v;
}

/** Label set `{a="x",b="y\"z"}` starting at text[0] === '{'; returns labels and the rest. */
function parseLabels(text: string, line: number): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1;
  const fail = (why: string): never => {
    throw new Error(`line ${line}: ${why} in ${JSON.stringify(text)}`);
  };
  for (;;) {
    while (text[i] === ' ') i++;
    if (text[i] === '}') return { labels, rest: text.slice(i + 1) };
    const eq = text.indexOf('=', i);
    if (eq < 0) fail('label without value');
    const name = text.slice(i, eq).trim();
    if (!LABEL.test(name)) fail(`invalid label name ${JSON.stringify(name)}`);
    if (name in labels) fail(`duplicate label ${name}`);
    i = eq + 1;
    if (text[i] !== '"') fail('label value not quoted');
    i++;
    let value = '';
    for (;;) {
      const c = text[i];
      if (c === undefined) fail('unterminated label value');
      if (c === '"') break;
      if (c === '\\') {
        const n = text[i + 1];
        if (n === 'n') value += '\n';
        else if (n === '\\' || n === '"') value += n;
        else fail(`invalid escape \\${n}`);
        i += 2;
      } else {
        value += c;
        i++;
      }
    }
    labels[name] = value;
    i++;
    while (text[i] === ' ') i++;
    if (text[i] === ',') i++;
    else if (text[i] !== '}') fail('expected , or }');
  }
}

/** The family a series name belongs to, given the TYPE lines seen. */
function familyOf(series: string, families: Map<string, MetricFamily>): MetricFamily | undefined {
  const direct = families.get(series);
  if (direct) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!series.endsWith(suffix)) continue;
    const f = families.get(series.slice(0, -suffix.length));
    if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f;
  }
  return undefined;
}

/** Parses an exposition, throwing on anything Prometheus would reject or promtool would flag. */
export function parseExposition(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  const seenSeries = new Set<string>();
  const lines = text.split('\n');
  for (const [index, raw] of lines.entries()) {
    const line = index + 1;
    if (raw.trim() === '') continue;
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(raw);
      if (!m) continue; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, 'HELP' | 'TYPE', string, string];
      if (!NAME.test(name)) throw new Error(`line ${line}: invalid metric name ${name}`);
      let f = families.get(name);
      if (!f) {
        f = { name, type: 'untyped', help: '', samples: [] };
        families.set(name, f);
      } else if (f.samples.length > 0) {
        throw new Error(`line ${line}: ${kind} for ${name} after its samples`);
      }
      if (kind === 'HELP') f.help = rest.replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      else {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest))
          throw new Error(`line ${line}: unknown metric type ${rest}`);
        f.type = rest as MetricType;
      }
      continue;
    }
    const nameEnd = raw.search(/[{ ]/);
    if (nameEnd <= 0) throw new Error(`line ${line}: no sample value: ${JSON.stringify(raw)}`);
    const name = raw.slice(0, nameEnd);
    if (!NAME.test(name)) throw new Error(`line ${line}: invalid metric name ${name}`);
    let rest = raw.slice(nameEnd);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, line));
    const fields = rest.trim().split(/\s+/);
    if (fields.length < 1 || fields.length > 2) throw new Error(`line ${line}: malformed sample ${raw}`);
    const value = parseValue(fields[0]!, line);
    const f = familyOf(name, families);
    if (!f) throw new Error(`line ${line}: sample ${name} without a TYPE line`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seenSeries.has(key))
      throw new Error(`line ${line}: duplicate series ${name}${JSON.stringify(labels)}`);
    seenSeries.add(key);
    f.samples.push({ name, labels, value });
  }
  lint(families);
  return families;
}

function lint(families: Map<string, MetricFamily>): void {
  for (const f of families.values()) {
    if (f.type === 'counter' && !f.name.endsWith('_total'))
      throw new Error(`counter ${f.name} should end in _total (promtool check metrics)`);
    if (f.type === 'histogram') {
      // Per label set (without le): buckets ascending and cumulative, +Inf == _count.
      const groups = new Map<string, { buckets: [number, number][]; count?: number; sum?: number }>();
      for (const s of f.samples) {
        const { le, ...rest } = s.labels;
        const key = JSON.stringify(Object.entries(rest).sort());
        const g = groups.get(key) ?? { buckets: [] };
        groups.set(key, g);
        if (s.name === `${f.name}_bucket`) {
          if (le === undefined) throw new Error(`${f.name}_bucket without le`);
          g.buckets.push([parseValue(le, 0), s.value]);
        } else if (s.name === `${f.name}_count`) g.count = s.value;
        else if (s.name === `${f.name}_sum`) g.sum = s.value;
      }
      for (const [key, g] of groups) {
        const inf = g.buckets.find(([le]) => le === Number.POSITIVE_INFINITY);
        if (!inf) throw new Error(`histogram ${f.name}${key} has no +Inf bucket`);
        if (g.count === undefined || g.sum === undefined)
          throw new Error(`histogram ${f.name}${key} lacks _count or _sum`);
        if (inf[1] !== g.count) throw new Error(`histogram ${f.name}${key}: +Inf bucket != _count`);
        const sorted = [...g.buckets].sort((a, b) => a[0] - b[0]);
        for (let i = 1; i < sorted.length; i++)
          if (sorted[i]![1] < sorted[i - 1]![1])
            throw new Error(`histogram ${f.name}${key} is not cumulative`);
      }
    }
  }
}
