import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { acquireRetryDelayMs, backoffDelayMs, DEFAULT_BACKOFF, watchTimeoutSeconds } from './backoff.ts';

describe('backoffDelayMs', () => {
  it('doubles from 1 s and caps at 30 s without jitter', () => {
    const noJitter = { jitter: 0 };
    const delays = [0, 1, 2, 3, 4, 5, 6, 10, 100, 5000].map((n) => backoffDelayMs(n, noJitter));
    assert.deepEqual(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000, 30_000]);
  });

  it('scales the delay down by at most the jitter fraction', () => {
    assert.equal(DEFAULT_BACKOFF.jitter, 0.2);
    assert.equal(
      backoffDelayMs(0, {}, () => 0),
      1_000,
    );
    assert.equal(
      backoffDelayMs(0, {}, () => 0.5),
      900,
    );
    assert.ok(Math.abs(backoffDelayMs(0, {}, () => 0.999999) - 800) < 0.01);
    // At the cap the jitter still spreads retries.
    assert.equal(
      backoffDelayMs(20, {}, () => 0.5),
      27_000,
    );
    for (let i = 0; i < 1000; i++) {
      const d = backoffDelayMs(i % 8);
      const base = Math.min(30_000, 1_000 * 2 ** (i % 8));
      assert.ok(d > 0.8 * base - 1e-9 && d <= base, `${d} outside [${0.8 * base}, ${base}]`);
    }
  });

  it('tolerates odd inputs', () => {
    assert.equal(backoffDelayMs(-3, { jitter: 0 }), 1_000);
    assert.equal(backoffDelayMs(1.7, { jitter: 0 }), 2_000);
    assert.equal(
      backoffDelayMs(0, { jitter: 5 }, () => 0.5),
      500,
      'jitter is clamped to 1',
    );
    assert.equal(
      backoffDelayMs(0, {}, () => Number.NaN),
      1_000,
    );
    assert.equal(backoffDelayMs(3, { initialMs: 100, maxMs: 500, jitter: 0 }), 500);
  });
});

describe('watchTimeoutSeconds', () => {
  it('is in [300, 600) like client-go', () => {
    assert.equal(
      watchTimeoutSeconds(() => 0),
      300,
    );
    assert.equal(
      watchTimeoutSeconds(() => 0.5),
      450,
    );
    assert.equal(
      watchTimeoutSeconds(() => 1),
      599,
    );
    for (let i = 0; i < 1000; i++) {
      const t = watchTimeoutSeconds();
      assert.ok(Number.isInteger(t) && t >= 300 && t < 600);
    }
  });
});

describe('acquireRetryDelayMs', () => {
  it('jitters the retry period by up to 1.2x', () => {
    assert.equal(
      acquireRetryDelayMs(2_000, () => 0),
      2_000,
    );
    assert.equal(
      acquireRetryDelayMs(2_000, () => 0.5),
      3_200,
    );
    assert.ok(acquireRetryDelayMs(2_000, () => 1) < 4_400);
  });
});
