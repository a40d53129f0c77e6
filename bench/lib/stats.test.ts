import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { median, medianCurve, pairedRatio } from './stats.ts';

describe('median', () => {
  it('odd and even counts, unsorted input left alone', () => {
    const input = [5, 1, 3];
    assert.equal(median(input), 3);
    assert.deepEqual(input, [5, 1, 3]);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.ok(Number.isNaN(median([])));
  });
});

describe('pairedRatio', () => {
  it('divides round by round and takes the median', () => {
    const r = pairedRatio([10, 20, 30], [20, 20, 20]);
    assert.deepEqual(r.perRound, [0.5, 1, 1.5]);
    assert.equal(r.median, 1);
  });
  it('an outlier round moves the median less than the mean', () => {
    const r = pairedRatio([7, 7, 7, 1, 7], [10, 10, 10, 10, 10]);
    assert.equal(r.median, 0.7);
  });
  it('refuses unpaired samples', () => {
    assert.throws(() => pairedRatio([1], [1, 2]), /different lengths/);
  });
});

describe('medianCurve', () => {
  it('keeps the quantiles every run resolved and takes the median of each', () => {
    const curve = medianCurve([
      [
        [0.5, 100],
        [0.99, 300],
        [0.999, 900],
      ],
      [
        [0.5, 120],
        [0.99, 280],
      ],
      [
        [0.5, 110],
        [0.99, 500],
        [0.999, 700],
      ],
    ]);
    assert.deepEqual(curve, [
      [0.5, 110],
      [0.99, 300],
    ]);
    assert.deepEqual(medianCurve([]), []);
  });
});
