// A PromQL subset evaluator, for checking netmesh's alerting rules and dashboard queries
// against real /metrics output without a Prometheus server. Parsing is Prometheus' own grammar
// (@prometheus-io/lezer-promql, the parser of the Prometheus UI), so a query that parses here
// parses in Prometheus; evaluation follows Prometheus' engine for what netmesh's rules use:
// instant and range selectors (5 minute lookback, offset), rate/increase/delta with Prometheus'
// extrapolation, irate, *_over_time, histogram_quantile, absent, time, vector, scalar, abs,
// clamp_min/clamp_max, the aggregations sum/min/max/avg/count/group with by/without, and
// binary operators with scalar/vector semantics, bool, on/ignoring and group_left/group_right.
// Anything else throws "unsupported", so a rule can never pass by being skipped.
import { parser } from '@prometheus-io/lezer-promql';

type SyntaxNode = NonNullable<ReturnType<ReturnType<typeof parser.parse>['topNode']['getChild']>>;

export type Labels = Record<string, string>;

export interface Matcher {
  name: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

export type Expr =
  | { kind: 'number'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'vector'; name: string | undefined; matchers: Matcher[]; offsetMs: number }
  | { kind: 'matrix'; selector: Extract<Expr, { kind: 'vector' }>; rangeMs: number }
  | { kind: 'call'; func: string; args: Expr[] }
  | {
      kind: 'aggregate';
      op: string;
      without: boolean;
      grouping: string[];
      param: Expr | undefined;
      expr: Expr;
    }
  | {
      kind: 'binary';
      op: string;
      lhs: Expr;
      rhs: Expr;
      bool: boolean;
      matching:
        | { on: boolean; labels: string[]; group: 'left' | 'right' | undefined; include: string[] }
        | undefined;
    }
  | { kind: 'unary'; op: '-' | '+'; expr: Expr };

export type VectorSelectorExpr = Extract<Expr, { kind: 'vector' }>;

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  y: 31_536_000_000,
};

/** A PromQL duration (5m, 1h30m, 500ms, or plain seconds) in milliseconds. */
export function parseDuration(text: string): number {
  if (/^[0-9]+(\.[0-9]+)?$/.test(text)) return Number(text) * 1000;
  const re = /([0-9]+)(ms|s|m|h|d|w|y)/g;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index !== consumed) break;
    total += Number(m[1]) * UNITS[m[2]!]!;
    consumed = re.lastIndex;
  }
  if (consumed !== text.length || text === '') throw new Error(`invalid duration ${JSON.stringify(text)}`);
  return total;
}

function unquote(text: string): string {
  if (text.startsWith('`')) return text.slice(1, -1);
  const body = text.slice(1, -1);
  return body.replace(/\\(["'\\nrt])/g, (_, c: string) =>
    c === 'n' ? '\n' : c === 'r' ? '\r' : c === 't' ? '\t' : c,
  );
}

const BINARY_OPS: Record<string, string> = {
  Add: '+',
  Sub: '-',
  Mul: '*',
  Div: '/',
  Mod: '%',
  Pow: '^',
  Eql: '==',
  Neq: '!=',
  Gtr: '>',
  Lss: '<',
  Gte: '>=',
  Lte: '<=',
  And: 'and',
  Or: 'or',
  Unless: 'unless',
  Atan2: 'atan2',
};
const COMPARISON = new Set(['==', '!=', '>', '<', '>=', '<=']);
const SET_OPS = new Set(['and', 'or', 'unless']);

/** Parses a PromQL expression; throws with the position of the first syntax error. */
export function parsePromQL(query: string): Expr {
  const tree = parser.parse(query);
  let error: number | undefined;
  tree.iterate({
    enter(n) {
      if (n.type.isError && error === undefined) error = n.from;
    },
  });
  if (error !== undefined)
    throw new Error(`PromQL syntax error at ${error}: ${query.slice(0, error)} ⟨here⟩ ${query.slice(error)}`);
  const text = (n: SyntaxNode): string => query.slice(n.from, n.to);
  const children = (n: SyntaxNode): SyntaxNode[] => {
    const out: SyntaxNode[] = [];
    for (let c = n.firstChild; c; c = c.nextSibling) out.push(c);
    return out;
  };
  const isExpr = (n: SyntaxNode): boolean =>
    [
      'BinaryExpr',
      'ParenExpr',
      'NumberDurationLiteral',
      'StringLiteral',
      'VectorSelector',
      'MatrixSelector',
      'OffsetExpr',
      'FunctionCall',
      'AggregateExpr',
      'UnaryExpr',
      'SubqueryExpr',
      'StepInvariantExpr',
    ].includes(n.name);

  const selector = (n: SyntaxNode): VectorSelectorExpr => {
    let name: string | undefined;
    const matchers: Matcher[] = [];
    for (const c of children(n)) {
      if (c.name === 'Identifier') name = text(c);
      else if (c.name === 'LabelMatchers') {
        for (const m of children(c)) {
          const parts = children(m);
          if (m.name === 'QuotedLabelName') {
            name = unquote(text(parts[0]!));
            continue;
          }
          const labelNode = parts[0]!;
          const label =
            m.name === 'QuotedLabelMatcher' ? unquote(text(children(labelNode)[0]!)) : text(labelNode);
          const op = text(parts[1]!) as Matcher['op'];
          matchers.push({ name: label, op, value: unquote(text(parts[2]!)) });
        }
      }
    }
    const byName = matchers.find((m) => m.name === '__name__' && m.op === '=');
    if (byName) {
      name = byName.value;
      matchers.splice(matchers.indexOf(byName), 1);
    }
    return { kind: 'vector', name, matchers, offsetMs: 0 };
  };

  const convert = (n: SyntaxNode): Expr => {
    switch (n.name) {
      case 'PromQL':
        return convert(children(n).find(isExpr)!);
      case 'ParenExpr':
        return convert(children(n).find(isExpr)!);
      case 'NumberDurationLiteral': {
        const t = text(n).toLowerCase();
        if (/^[+-]?inf$/.test(t)) return { kind: 'number', value: t.startsWith('-') ? -Infinity : Infinity };
        if (t === 'nan') return { kind: 'number', value: Number.NaN };
        if (/^[0-9.]+(e[+-]?[0-9]+)?$|^0x[0-9a-f]+$/.test(t)) return { kind: 'number', value: Number(t) };
        return { kind: 'number', value: parseDuration(t) / 1000 };
      }
      case 'StringLiteral':
        return { kind: 'string', value: unquote(text(n)) };
      case 'VectorSelector':
        return selector(n);
      case 'MatrixSelector': {
        const [v, d] = children(n);
        return { kind: 'matrix', selector: selector(v!), rangeMs: parseDuration(text(d!)) };
      }
      case 'OffsetExpr': {
        const [inner, , d] = children(n);
        const target = convert(inner!);
        const offsetMs = parseDuration(text(d!).replace(/^-/, '')) * (text(d!).startsWith('-') ? -1 : 1);
        if (target.kind === 'vector') return { ...target, offsetMs };
        if (target.kind === 'matrix') return { ...target, selector: { ...target.selector, offsetMs } };
        throw new Error(`unsupported: offset on ${target.kind} (${text(n)})`);
      }
      case 'FunctionCall': {
        const [id, body] = children(n);
        return { kind: 'call', func: text(id!), args: children(body!).filter(isExpr).map(convert) };
      }
      case 'AggregateExpr': {
        const parts = children(n);
        const op = text(parts[0]!);
        const modifier = parts.find((c) => c.name === 'AggregateModifier');
        const args = children(parts.find((c) => c.name === 'FunctionCallBody')!)
          .filter(isExpr)
          .map(convert);
        const grouping = modifier
          ? children(children(modifier).find((c) => c.name === 'GroupingLabels')!).map((l) =>
              l.name === 'QuotedLabelName' ? unquote(text(l)) : text(l),
            )
          : [];
        const without = !!modifier && children(modifier).some((c) => c.name === 'Without');
        const param = args.length === 2 ? args[0] : undefined;
        return { kind: 'aggregate', op, without, grouping, param, expr: args[args.length - 1]! };
      }
      case 'UnaryExpr': {
        const [op, e] = children(n);
        return { kind: 'unary', op: text(op!) as '-' | '+', expr: convert(e!) };
      }
      case 'BinaryExpr': {
        const parts = children(n);
        const lhs = convert(parts[0]!);
        const rhs = convert(parts[parts.length - 1]!);
        let op = '';
        let bool = false;
        let matching: Extract<Expr, { kind: 'binary' }>['matching'];
        for (const c of parts.slice(1, -1)) {
          if (BINARY_OPS[c.name]) op = BINARY_OPS[c.name]!;
          else if (c.name === 'BoolModifier') bool = true;
          else if (c.name === 'MatchingModifierClause') {
            const mc = children(c);
            const lists = mc.filter((x) => x.name === 'GroupingLabels').map((g) => children(g).map(text));
            const group = mc.some((x) => x.name === 'GroupLeft')
              ? 'left'
              : mc.some((x) => x.name === 'GroupRight')
                ? 'right'
                : undefined;
            matching = {
              on: mc.some((x) => x.name === 'On'),
              labels: lists[0] ?? [],
              group,
              include: lists[1] ?? [],
            };
          }
        }
        if (!op) throw new Error(`unsupported binary operator in ${text(n)}`);
        if (COMPARISON.has(op) && !bool && lhs.kind === 'number' && rhs.kind === 'number')
          throw new Error(`comparisons between scalars must use bool: ${text(n)}`);
        return { kind: 'binary', op, lhs, rhs, bool, matching };
      }
      default:
        throw new Error(`unsupported: ${n.name} (${text(n)})`);
    }
  };
  return convert(tree.topNode);
}

/** Every series selector in an expression, with the functions and aggregations around it. */
export interface SelectorUse {
  selector: VectorSelectorExpr;
  /** Function names applied to it, innermost first (rate, histogram_quantile, ...). */
  functions: string[];
  /** Labels it is grouped or matched by (by/without/on/ignoring lists above it). */
  groupedBy: string[];
}

export function selectorUses(expr: Expr): SelectorUse[] {
  const out: SelectorUse[] = [];
  const walk = (e: Expr, functions: string[], groupedBy: string[]): void => {
    switch (e.kind) {
      case 'vector':
        out.push({ selector: e, functions, groupedBy });
        return;
      case 'matrix':
        walk(e.selector, functions, groupedBy);
        return;
      case 'call':
        for (const a of e.args) walk(a, [...functions, e.func], groupedBy);
        return;
      case 'aggregate':
        if (e.param) walk(e.param, functions, groupedBy);
        walk(e.expr, functions, [...groupedBy, ...e.grouping]);
        return;
      case 'binary': {
        const labels = e.matching ? [...e.matching.labels, ...e.matching.include] : [];
        walk(e.lhs, functions, [...groupedBy, ...labels]);
        walk(e.rhs, functions, [...groupedBy, ...labels]);
        return;
      }
      case 'unary':
        walk(e.expr, functions, groupedBy);
        return;
      default:
        return;
    }
  };
  walk(expr, [], []);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Storage and evaluation

export interface Sample {
  /** Milliseconds since the epoch. */
  t: number;
  v: number;
}

export interface StoredSeries {
  labels: Labels; // includes __name__
  samples: Sample[]; // ascending t
}

/** A tiny in-memory TSDB: series keyed by their label set. */
export class SeriesStore {
  readonly #series = new Map<string, StoredSeries>();

  add(labels: Labels, t: number, v: number): void {
    const key = labelKey(labels);
    let s = this.#series.get(key);
    if (!s) {
      s = { labels: { ...labels }, samples: [] };
      this.#series.set(key, s);
    }
    const last = s.samples[s.samples.length - 1];
    if (last && last.t >= t) throw new Error(`out-of-order sample for ${key}`);
    s.samples.push({ t, v });
  }

  series(): StoredSeries[] {
    return [...this.#series.values()];
  }
}

export function labelKey(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export interface VectorSample {
  labels: Labels;
  value: number;
}

export type Value =
  | { type: 'scalar'; value: number }
  | { type: 'string'; value: string }
  | { type: 'vector'; samples: VectorSample[] }
  | { type: 'matrix'; series: { labels: Labels; samples: Sample[] }[] };

const LOOKBACK_MS = 5 * 60_000;

function matches(labels: Labels, sel: VectorSelectorExpr): boolean {
  if (sel.name !== undefined && labels['__name__'] !== sel.name) return false;
  for (const m of sel.matchers) {
    const v = labels[m.name] ?? '';
    const ok =
      m.op === '='
        ? v === m.value
        : m.op === '!='
          ? v !== m.value
          : new RegExp(`^(?:${m.value})$`).test(v) === (m.op === '=~');
    if (!ok) return false;
  }
  return true;
}

function dropName(labels: Labels): Labels {
  const { __name__: _, ...rest } = labels;
  return rest;
}

function signature(labels: Labels, on: boolean, names: string[]): string {
  const picked = Object.entries(labels).filter(([k]) =>
    on ? names.includes(k) : k !== '__name__' && !names.includes(k),
  );
  return labelKey(Object.fromEntries(picked));
}

function arith(op: string, a: number, b: number): number {
  switch (op) {
    case '+':
      return a + b;
    case '-':
      return a - b;
    case '*':
      return a * b;
    case '/':
      return a / b;
    case '%':
      return a % b;
    case '^':
      return a ** b;
    case 'atan2':
      return Math.atan2(a, b);
    case '==':
      return a === b ? 1 : 0;
    case '!=':
      return a !== b ? 1 : 0;
    case '>':
      return a > b ? 1 : 0;
    case '<':
      return a < b ? 1 : 0;
    case '>=':
      return a >= b ? 1 : 0;
    case '<=':
      return a <= b ? 1 : 0;
    default:
      throw new Error(`unsupported operator ${op}`);
  }
}

/** Prometheus' extrapolatedRate (promql/functions.go) for rate, increase and delta. */
function extrapolatedRate(
  samples: Sample[],
  startMs: number,
  endMs: number,
  isCounter: boolean,
  isRate: boolean,
): number | undefined {
  if (samples.length < 2) return undefined;
  const first = samples[0]!;
  const last = samples[samples.length - 1]!;
  let result = last.v - first.v;
  if (isCounter) {
    for (let i = 1; i < samples.length; i++)
      if (samples[i]!.v < samples[i - 1]!.v) result += samples[i - 1]!.v;
  }
  let toStart = (first.t - startMs) / 1000;
  let toEnd = (endMs - last.t) / 1000;
  const sampled = (last.t - first.t) / 1000;
  const average = sampled / (samples.length - 1);
  const threshold = average * 1.1;
  if (toStart >= threshold) toStart = average / 2;
  if (isCounter && result > 0 && first.v >= 0) {
    const toZero = sampled * (first.v / result);
    if (toZero < toStart) toStart = toZero;
  }
  if (toEnd >= threshold) toEnd = average / 2;
  let factor = (sampled + toStart + toEnd) / sampled;
  if (isRate) factor /= (endMs - startMs) / 1000;
  return result * factor;
}

/** Prometheus' bucketQuantile (promql/quantile.go) over classic buckets. */
export function bucketQuantile(q: number, buckets: { le: number; count: number }[]): number {
  if (Number.isNaN(q)) return Number.NaN;
  if (q < 0) return Number.NEGATIVE_INFINITY;
  if (q > 1) return Number.POSITIVE_INFINITY;
  const b = [...buckets].sort((x, y) => x.le - y.le);
  if (b.length < 2 || b[b.length - 1]!.le !== Number.POSITIVE_INFINITY) return Number.NaN;
  // Monotonicity fix: counts computed with rate() over separate series may dip.
  for (let i = 1; i < b.length; i++)
    if (b[i]!.count < b[i - 1]!.count) b[i] = { ...b[i]!, count: b[i - 1]!.count };
  const total = b[b.length - 1]!.count;
  if (total === 0 || Number.isNaN(total)) return Number.NaN;
  const rank = q * total;
  let i = b.findIndex((x) => x.count >= rank);
  if (i < 0) i = b.length - 1;
  if (i === b.length - 1) return b[b.length - 2]!.le;
  if (i === 0 && b[0]!.le <= 0) return b[0]!.le;
  let start = 0;
  const end = b[i]!.le;
  let count = b[i]!.count;
  let r = rank;
  if (i > 0) {
    start = b[i - 1]!.le;
    count -= b[i - 1]!.count;
    r -= b[i - 1]!.count;
  }
  return start + (end - start) * (r / count);
}

export class Evaluator {
  readonly #store: SeriesStore;
  constructor(store: SeriesStore) {
    this.#store = store;
  }

  /** Evaluates `query` at `atMs`, as a rule evaluation or an instant query would. */
  query(query: string | Expr, atMs: number): Value {
    return this.#eval(typeof query === 'string' ? parsePromQL(query) : query, atMs);
  }

  #instant(sel: VectorSelectorExpr, at: number): VectorSample[] {
    const t = at - sel.offsetMs;
    const out: VectorSample[] = [];
    for (const s of this.#store.series()) {
      if (!matches(s.labels, sel)) continue;
      let latest: Sample | undefined;
      for (const p of s.samples) if (p.t <= t && p.t > t - LOOKBACK_MS) latest = p;
      if (latest) out.push({ labels: s.labels, value: latest.v });
    }
    return out;
  }

  #range(sel: VectorSelectorExpr, rangeMs: number, at: number): { labels: Labels; samples: Sample[] }[] {
    const end = at - sel.offsetMs;
    const out: { labels: Labels; samples: Sample[] }[] = [];
    for (const s of this.#store.series()) {
      if (!matches(s.labels, sel)) continue;
      const samples = s.samples.filter((p) => p.t > end - rangeMs && p.t <= end);
      if (samples.length) out.push({ labels: s.labels, samples });
    }
    return out;
  }

  #vector(e: Expr, at: number): VectorSample[] {
    const v = this.#eval(e, at);
    if (v.type !== 'vector') throw new Error(`expected an instant vector, got ${v.type}`);
    return v.samples;
  }

  #scalarArg(e: Expr, at: number): number {
    const v = this.#eval(e, at);
    if (v.type !== 'scalar') throw new Error(`expected a scalar, got ${v.type}`);
    return v.value;
  }

  #eval(e: Expr, at: number): Value {
    switch (e.kind) {
      case 'number':
        return { type: 'scalar', value: e.value };
      case 'string':
        return { type: 'string', value: e.value };
      case 'vector':
        return { type: 'vector', samples: this.#instant(e, at) };
      case 'matrix':
        return { type: 'matrix', series: this.#range(e.selector, e.rangeMs, at) };
      case 'unary': {
        const v = this.#eval(e.expr, at);
        const sign = e.op === '-' ? -1 : 1;
        if (v.type === 'scalar') return { type: 'scalar', value: sign * v.value };
        if (v.type === 'vector')
          return {
            type: 'vector',
            samples: v.samples.map((s) => ({ labels: dropName(s.labels), value: sign * s.value })),
          };
        throw new Error(`unary ${e.op} on ${v.type}`);
      }
      case 'call':
        return this.#call(e, at);
      case 'aggregate':
        return this.#aggregate(e, at);
      case 'binary':
        return this.#binary(e, at);
    }
  }

  #call(e: Extract<Expr, { kind: 'call' }>, at: number): Value {
    const range = (i = 0): { labels: Labels; samples: Sample[] }[] & { rangeMs: number } => {
      const arg = e.args[i];
      if (arg?.kind !== 'matrix') throw new Error(`${e.func}() needs a range vector argument`);
      return Object.assign(this.#range(arg.selector, arg.rangeMs, at), { rangeMs: arg.rangeMs });
    };
    const perSeries = (
      f: (samples: Sample[], startMs: number, endMs: number) => number | undefined,
    ): Value => {
      const r = range();
      const arg = e.args[0] as Extract<Expr, { kind: 'matrix' }>;
      const end = at - arg.selector.offsetMs;
      const samples: VectorSample[] = [];
      for (const s of r) {
        const v = f(s.samples, end - r.rangeMs, end);
        if (v !== undefined) samples.push({ labels: dropName(s.labels), value: v });
      }
      return { type: 'vector', samples };
    };
    const mapVector = (f: (v: number) => number): Value => ({
      type: 'vector',
      samples: this.#vector(e.args[0]!, at).map((s) => ({ labels: dropName(s.labels), value: f(s.value) })),
    });
    switch (e.func) {
      case 'time':
        return { type: 'scalar', value: at / 1000 };
      case 'vector':
        return { type: 'vector', samples: [{ labels: {}, value: this.#scalarArg(e.args[0]!, at) }] };
      case 'scalar': {
        const v = this.#vector(e.args[0]!, at);
        return { type: 'scalar', value: v.length === 1 ? v[0]!.value : Number.NaN };
      }
      case 'rate':
        return perSeries((s, a, b) => extrapolatedRate(s, a, b, true, true));
      case 'increase':
        return perSeries((s, a, b) => extrapolatedRate(s, a, b, true, false));
      case 'delta':
        return perSeries((s, a, b) => extrapolatedRate(s, a, b, false, false));
      case 'irate':
        return perSeries((s) => {
          if (s.length < 2) return undefined;
          const [p, l] = [s[s.length - 2]!, s[s.length - 1]!];
          return ((l.v < p.v ? l.v : l.v - p.v) / (l.t - p.t)) * 1000;
        });
      case 'max_over_time':
        return perSeries((s) => Math.max(...s.map((p) => p.v)));
      case 'min_over_time':
        return perSeries((s) => Math.min(...s.map((p) => p.v)));
      case 'avg_over_time':
        return perSeries((s) => s.reduce((a, p) => a + p.v, 0) / s.length);
      case 'sum_over_time':
        return perSeries((s) => s.reduce((a, p) => a + p.v, 0));
      case 'count_over_time':
        return perSeries((s) => s.length);
      case 'last_over_time':
        return perSeries((s) => s[s.length - 1]!.v);
      case 'changes':
        return perSeries((s) => s.slice(1).filter((p, i) => p.v !== s[i]!.v).length);
      case 'resets':
        return perSeries((s) => s.slice(1).filter((p, i) => p.v < s[i]!.v).length);
      case 'abs':
        return mapVector(Math.abs);
      case 'clamp_min': {
        const min = this.#scalarArg(e.args[1]!, at);
        return mapVector((v) => Math.max(v, min));
      }
      case 'clamp_max': {
        const max = this.#scalarArg(e.args[1]!, at);
        return mapVector((v) => Math.min(v, max));
      }
      case 'absent': {
        const v = this.#vector(e.args[0]!, at);
        if (v.length > 0) return { type: 'vector', samples: [] };
        // Labels of the equality matchers, when the argument is a plain selector (as Prometheus).
        const arg = e.args[0]!;
        const labels: Labels = {};
        if (arg.kind === 'vector') for (const m of arg.matchers) if (m.op === '=') labels[m.name] = m.value;
        return { type: 'vector', samples: [{ labels, value: 1 }] };
      }
      case 'histogram_quantile': {
        const q = this.#scalarArg(e.args[0]!, at);
        const groups = new Map<string, { labels: Labels; buckets: { le: number; count: number }[] }>();
        for (const s of this.#vector(e.args[1]!, at)) {
          const { le, ...rest } = dropName(s.labels);
          if (le === undefined) continue; // Prometheus ignores series without le
          const key = labelKey(rest);
          const g = groups.get(key) ?? { labels: rest, buckets: [] };
          groups.set(key, g);
          g.buckets.push({ le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), count: s.value });
        }
        return {
          type: 'vector',
          samples: [...groups.values()].map((g) => ({
            labels: g.labels,
            value: bucketQuantile(q, g.buckets),
          })),
        };
      }
      default:
        throw new Error(`unsupported function ${e.func}()`);
    }
  }

  #aggregate(e: Extract<Expr, { kind: 'aggregate' }>, at: number): Value {
    const input = this.#vector(e.expr, at);
    const groups = new Map<string, { labels: Labels; values: number[] }>();
    for (const s of input) {
      const labels = e.without
        ? Object.fromEntries(Object.entries(dropName(s.labels)).filter(([k]) => !e.grouping.includes(k)))
        : Object.fromEntries(Object.entries(s.labels).filter(([k]) => e.grouping.includes(k)));
      const key = labelKey(labels);
      const g = groups.get(key) ?? { labels, values: [] };
      groups.set(key, g);
      g.values.push(s.value);
    }
    const reduce = (values: number[]): number => {
      switch (e.op) {
        case 'sum':
          return values.reduce((a, b) => a + b, 0);
        case 'min':
          return values.reduce((a, b) => (Number.isNaN(a) || b < a ? b : a));
        case 'max':
          return values.reduce((a, b) => (Number.isNaN(a) || b > a ? b : a));
        case 'avg':
          return values.reduce((a, b) => a + b, 0) / values.length;
        case 'count':
          return values.length;
        case 'group':
          return 1;
        default:
          throw new Error(`unsupported aggregation ${e.op}`);
      }
    };
    return {
      type: 'vector',
      samples: [...groups.values()].map((g) => ({ labels: g.labels, value: reduce(g.values) })),
    };
  }

  #binary(e: Extract<Expr, { kind: 'binary' }>, at: number): Value {
    const l = this.#eval(e.lhs, at);
    const r = this.#eval(e.rhs, at);
    const comparison = COMPARISON.has(e.op);
    if (l.type === 'scalar' && r.type === 'scalar')
      return { type: 'scalar', value: arith(e.op, l.value, r.value) };
    if (SET_OPS.has(e.op)) {
      if (l.type !== 'vector' || r.type !== 'vector') throw new Error(`${e.op} needs two instant vectors`);
      const on = e.matching?.on ?? false;
      const names = e.matching?.labels ?? [];
      const rightSigs = new Set(r.samples.map((s) => signature(s.labels, on, names)));
      if (e.op === 'and')
        return {
          type: 'vector',
          samples: l.samples.filter((s) => rightSigs.has(signature(s.labels, on, names))),
        };
      if (e.op === 'unless')
        return {
          type: 'vector',
          samples: l.samples.filter((s) => !rightSigs.has(signature(s.labels, on, names))),
        };
      const leftSigs = new Set(l.samples.map((s) => signature(s.labels, on, names)));
      return {
        type: 'vector',
        samples: [...l.samples, ...r.samples.filter((s) => !leftSigs.has(signature(s.labels, on, names)))],
      };
    }
    const keepName = comparison && !e.bool;
    const result = (labels: Labels): Labels => (keepName ? labels : dropName(labels));
    const apply = (a: number, b: number, kept: number): number | undefined => {
      const v = arith(e.op, a, b);
      if (!comparison) return v;
      if (e.bool) return v;
      return v === 1 ? kept : undefined;
    };
    if (l.type === 'vector' && r.type === 'scalar') {
      const samples: VectorSample[] = [];
      for (const s of l.samples) {
        const v = apply(s.value, r.value, s.value);
        if (v !== undefined) samples.push({ labels: result(s.labels), value: v });
      }
      return { type: 'vector', samples };
    }
    if (l.type === 'scalar' && r.type === 'vector') {
      const samples: VectorSample[] = [];
      for (const s of r.samples) {
        const v = apply(l.value, s.value, s.value);
        if (v !== undefined) samples.push({ labels: result(s.labels), value: v });
      }
      return { type: 'vector', samples };
    }
    if (l.type !== 'vector' || r.type !== 'vector')
      throw new Error(`operator ${e.op} between ${l.type} and ${r.type}`);
    // Vector matching (promql/engine.go VectorBinop).
    const on = e.matching?.on ?? false;
    const names = e.matching?.labels ?? [];
    const group = e.matching?.group;
    const [one, many] = group === 'right' ? [l.samples, r.samples] : [r.samples, l.samples];
    const oneBySig = new Map<string, VectorSample>();
    for (const s of one) {
      const sig = signature(s.labels, on, names);
      if (oneBySig.has(sig))
        throw new Error(
          `found duplicate series for the match group ${sig} on the ${group === 'right' ? 'left' : 'right'} hand-side of the operation; many-to-many matching not allowed`,
        );
      oneBySig.set(sig, s);
    }
    const samples: VectorSample[] = [];
    const seen = new Set<string>();
    for (const s of many) {
      const sig = signature(s.labels, on, names);
      const other = oneBySig.get(sig);
      if (!other) continue;
      const [ls, rs] = group === 'right' ? [other, s] : [s, other];
      let labels = result(ls.labels);
      if (!group) {
        if (seen.has(sig))
          throw new Error(
            `multiple matches for labels ${sig}: many-to-one matching must be explicit (group_left/group_right)`,
          );
        seen.add(sig);
        labels = on
          ? Object.fromEntries(Object.entries(labels).filter(([k]) => names.includes(k)))
          : Object.fromEntries(Object.entries(labels).filter(([k]) => !names.includes(k)));
      } else {
        labels = result(s.labels);
        for (const k of e.matching?.include ?? []) {
          const v = other.labels[k];
          if (v !== undefined) labels[k] = v;
          else delete labels[k];
        }
      }
      const v = apply(ls.value, rs.value, ls.value);
      if (v !== undefined) samples.push({ labels, value: v });
    }
    return { type: 'vector', samples };
  }
}
