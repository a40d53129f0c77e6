import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lineChart, niceTicks } from './svg.ts';

describe('niceTicks', () => {
  it('steps of 1, 2 or 5 times a power of ten, covering the maximum', () => {
    assert.deepEqual(niceTicks(4.2), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(niceTicks(0.37), [0, 0.1, 0.2, 0.3, 0.4]);
    assert.deepEqual(niceTicks(980), [0, 200, 400, 600, 800, 1000]);
    assert.deepEqual(niceTicks(0), [0, 1]);
  });
});

describe('lineChart', () => {
  const percentile = (q: number) => -Math.log10(1 - q);
  const svg = lineChart({
    title: 'latency <at> 1,000 req/s',
    subtitle: 'medians & more',
    x: {
      label: 'percentile',
      transform: percentile,
      ticks: [
        { value: 0.5, label: 'p50' },
        { value: 0.99, label: 'p99' },
      ],
    },
    y: { label: 'ms' },
    panels: [
      {
        title: 'course',
        series: [
          {
            name: 'netmesh',
            color: '#1f77b4',
            points: [
              [0.5, 0.3],
              [0.99, 1.2],
            ],
          },
          {
            name: 'baseline',
            color: '#777',
            dashed: true,
            points: [
              [0.5, 0.2],
              [0.99, 0.9],
            ],
          },
        ],
      },
      { title: 'large', series: [{ name: 'netmesh', color: '#1f77b4', points: [[0.5, 2]] }] },
    ],
  });

  it('is one well-formed SVG document sized for its panels', () => {
    assert.match(
      svg,
      /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="600" height="284" viewBox="0 0 600 284" role="img"/,
    );
    assert.ok(svg.trimEnd().endsWith('</svg>'));
    assert.equal(svg.match(/<svg/g)?.length, 1);
  });
  it('has a title (accessibility; the linter requires it)', () => {
    assert.match(svg, /<title>latency &lt;at&gt; 1,000 req\/s: medians &amp; more<\/title>/);
  });
  it('escapes text', () => {
    assert.ok(svg.includes('latency &lt;at&gt; 1,000 req/s'));
    assert.ok(svg.includes('medians &amp; more'));
  });
  it('draws one path per series with points, a legend entry per name, and the tick labels', () => {
    assert.equal(svg.match(/<path /g)?.length, 3);
    assert.equal(svg.match(/<circle /g)?.length, 5);
    assert.equal(svg.match(/stroke-dasharray/g)?.length, 2, 'the dashed series and its legend entry');
    assert.ok(svg.includes('>p50</text>') && svg.includes('>p99</text>'));
    assert.equal(svg.match(/>netmesh<\/text>/g)?.length, 1);
  });
  it('places larger values higher and further right', () => {
    const path = /<path d="M([\d.]+),([\d.]+) L([\d.]+),([\d.]+)"/.exec(svg)!;
    const [x1, y1, x2, y2] = path.slice(1).map(Number) as [number, number, number, number];
    assert.ok(x2 > x1, 'p99 right of p50');
    assert.ok(y2 < y1, 'a slower percentile is drawn higher (SVG y grows downwards)');
  });
});
