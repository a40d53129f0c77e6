// Unit tests of the PromQL subset evaluator and the exposition parser (no cluster): the values
// are those Prometheus computes for the same data (worked out from its engine's formulas).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseExposition } from './exposition.ts';
import {
  bucketQuantile,
  Evaluator,
  parseDuration,
  parsePromQL,
  SeriesStore,
  selectorUses,
  type Value,
} from './promql.ts';

const vec = (v: Value) => {
  assert.equal(v.type, 'vector');
  return v.type === 'vector' ? v.samples : [];
};

describe('PromQL parsing', () => {
  it('parses selectors, matchers, ranges and modifiers', () => {
    const e = parsePromQL('sum by (namespace, le) (rate(x_bucket{job="a",b=~"c|d",e!=""}[5m] offset 1m))');
    assert.equal(e.kind, 'aggregate');
    const uses = selectorUses(e);
    assert.equal(uses.length, 1);
    assert.equal(uses[0]!.selector.name, 'x_bucket');
    assert.deepEqual(uses[0]!.selector.matchers, [
      { name: 'job', op: '=', value: 'a' },
      { name: 'b', op: '=~', value: 'c|d' },
      { name: 'e', op: '!=', value: '' },
    ]);
    assert.equal(uses[0]!.selector.offsetMs, 60_000);
    assert.deepEqual(uses[0]!.functions, ['rate']);
    assert.deepEqual(uses[0]!.groupedBy, ['namespace', 'le']);
  });

  it('rejects syntax errors with the position, and what it does not evaluate', () => {
    assert.throws(() => parsePromQL('sum(rate(x[5m])'), /syntax error at/);
    assert.throws(() => parsePromQL('x{job="a"'), /syntax error/);
    assert.throws(() => parsePromQL('1 > 2'), /must use bool/);
    assert.throws(() => parsePromQL('max_over_time(x[10m:1m])'), /unsupported: SubqueryExpr/);
  });

  it('durations', () => {
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('30'), 30_000);
    assert.throws(() => parseDuration('5x'));
  });
});

describe('PromQL evaluation', () => {
  const store = new SeriesStore();
  // A counter growing 1/s scraped every 15 s, on two pods; a gauge; a histogram.
  for (let t = 0; t <= 60; t += 15) {
    store.add({ __name__: 'req_total', job: 'j', pod: 'a' }, t * 1000, t);
    store.add({ __name__: 'req_total', job: 'j', pod: 'b' }, t * 1000, 2 * t);
  }
  store.add({ __name__: 'up_gauge', job: 'j', pod: 'a' }, 60_000, 1);
  store.add({ __name__: 'build', job: 'j', pod: 'a', version: '1.0' }, 60_000, 1);
  const ev = new Evaluator(store);

  it('rate and increase extrapolate as Prometheus does', () => {
    const rates = vec(ev.query('rate(req_total[1m])', 60_000));
    assert.deepEqual(
      rates.map((s) => [s.labels['pod'], Number(s.value.toFixed(9))]),
      [
        ['a', 1],
        ['b', 2],
      ],
    );
    assert.equal(rates[0]!.labels['__name__'], undefined, 'functions drop the metric name');
    assert.equal(vec(ev.query('increase(req_total{pod="a"}[1m])', 60_000))[0]!.value, 60);
  });

  it('handles counter resets', () => {
    const s = new SeriesStore();
    for (const [t, v] of [
      [0, 10],
      [10, 20],
      [20, 5],
      [30, 15],
    ] as const)
      s.add({ __name__: 'c_total' }, t * 1000, v);
    // 15 - 10, plus 20 for the reset: 25 over the 30 s sampled, extrapolated by 10 s to the
    // window's start (less than 1.1 sample intervals away) and not to zero (12 s away).
    const v = vec(new Evaluator(s).query('increase(c_total[40s])', 30_000))[0]!.value;
    assert.ok(Math.abs(v - (25 * (30 + 10)) / 30) < 1e-9, String(v));
  });

  it('aggregations with by and without', () => {
    assert.deepEqual(vec(ev.query('sum by (job) (req_total)', 60_000)), [
      { labels: { job: 'j' }, value: 180 },
    ]);
    assert.deepEqual(vec(ev.query('max without (pod) (req_total)', 60_000)), [
      { labels: { job: 'j' }, value: 120 },
    ]);
    assert.deepEqual(vec(ev.query('count(req_total)', 60_000)), [{ labels: {}, value: 2 }]);
  });

  it('comparisons filter, bool returns 0/1, arithmetic drops the name', () => {
    assert.deepEqual(
      vec(ev.query('req_total > 100', 60_000)).map((s) => s.labels),
      [{ __name__: 'req_total', job: 'j', pod: 'b' }],
    );
    assert.deepEqual(
      vec(ev.query('req_total > bool 100', 60_000)).map((s) => s.value),
      [0, 1],
    );
    assert.deepEqual(vec(ev.query('req_total{pod="a"} - 60', 60_000)), [
      { labels: { job: 'j', pod: 'a' }, value: 0 },
    ]);
    assert.equal(ev.query('time()', 60_000).type, 'scalar');
  });

  it('vector matching: one-to-one, group_left, and the many-to-many error', () => {
    assert.deepEqual(vec(ev.query('req_total * on (pod) group_left (version) build', 60_000)), [
      { labels: { job: 'j', pod: 'a', version: '1.0' }, value: 60 },
    ]);
    assert.deepEqual(vec(ev.query('req_total{pod="a"} / on (pod) up_gauge', 60_000)), [
      { labels: { pod: 'a' }, value: 60 },
    ]);
    assert.throws(() => ev.query('up_gauge * on (job) req_total', 60_000), /many-to-many|duplicate series/);
  });

  it('and/or/unless', () => {
    assert.equal(vec(ev.query('req_total and on (pod) up_gauge', 60_000)).length, 1);
    assert.equal(vec(ev.query('req_total unless on (pod) up_gauge', 60_000)).length, 1);
    // or adds the right-hand series whose label set (without the name) the left lacks: pod b.
    assert.deepEqual(
      vec(ev.query('up_gauge or req_total', 60_000)).map((s) => s.labels['pod']),
      ['a', 'b'],
    );
  });

  it('absent keeps the equality matchers as labels', () => {
    assert.deepEqual(vec(ev.query('absent(nope{job="j",pod=~"a"})', 60_000)), [
      { labels: { job: 'j' }, value: 1 },
    ]);
    assert.deepEqual(vec(ev.query('absent(up_gauge == 1)', 60_000)), []);
    assert.deepEqual(vec(ev.query('absent(up_gauge == 2)', 60_000)), [{ labels: {}, value: 1 }]);
  });

  it('selectors look back 5 minutes and no further', () => {
    assert.equal(vec(ev.query('up_gauge', 60_000 + 299_000)).length, 1);
    assert.equal(vec(ev.query('up_gauge', 60_000 + 300_000)).length, 0);
  });

  it('histogram_quantile interpolates within the bucket, NaN without observations', () => {
    assert.ok(
      Math.abs(
        bucketQuantile(0.99, [
          { le: 0.1, count: 10 },
          { le: 0.5, count: 20 },
          { le: Number.POSITIVE_INFINITY, count: 20 },
        ]) - 0.492,
      ) < 1e-12,
    );
    assert.equal(
      bucketQuantile(0.99, [
        { le: 0.1, count: 0 },
        { le: Number.POSITIVE_INFINITY, count: 0 },
      ]),
      Number.NaN,
    );
    // Beyond the last finite bucket: its upper bound.
    assert.equal(
      bucketQuantile(0.99, [
        { le: 0.1, count: 0 },
        { le: Number.POSITIVE_INFINITY, count: 5 },
      ]),
      0.1,
    );
  });

  it('unknown functions are errors, not silently empty', () => {
    assert.throws(() => ev.query('predict_linear(req_total[1m], 60)', 60_000), /unsupported function/);
  });
});

describe('exposition format', () => {
  it('parses families, labels with escapes, special values', () => {
    const f = parseExposition(
      [
        '# HELP a_total Things.',
        '# TYPE a_total counter',
        'a_total{k="v\\"q\\\\",z="x\\ny"} 3',
        '# TYPE g gauge',
        'g NaN',
        'g{x="1"} -Inf 1700000000000',
        '# TYPE h histogram',
        'h_bucket{le="0.5"} 1',
        'h_bucket{le="+Inf"} 2',
        'h_sum 0.7',
        'h_count 2',
        '',
      ].join('\n'),
    );
    assert.deepEqual(f.get('a_total')?.samples[0]?.labels, { k: 'v"q\\', z: 'x\ny' });
    assert.equal(f.get('a_total')?.help, 'Things.');
    assert.ok(Number.isNaN(f.get('g')!.samples[0]!.value));
    assert.equal(f.get('g')!.samples[1]!.value, Number.NEGATIVE_INFINITY);
    assert.equal(f.get('h')?.type, 'histogram');
    assert.equal(f.get('h')?.samples.length, 4);
  });

  it('rejects what Prometheus or promtool would', () => {
    assert.throws(() => parseExposition('x 1\n'), /without a TYPE/);
    assert.throws(() => parseExposition('# TYPE c counter\nc 1\n'), /_total/);
    assert.throws(() => parseExposition('# TYPE g gauge\ng 1\ng 2\n'), /duplicate series/);
    assert.throws(
      () => parseExposition('# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'),
      /\+Inf/,
    );
    assert.throws(
      () =>
        parseExposition(
          '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
        ),
      /cumulative/,
    );
  });
});
