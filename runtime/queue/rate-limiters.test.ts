import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from './clock.ts';
import {
  BucketRateLimiter,
  defaultControllerRateLimiter,
  ItemExponentialFailureRateLimiter,
  ItemFastSlowRateLimiter,
  MaxOfRateLimiter,
  WithMaxWaitRateLimiter,
} from './rate-limiters.ts';

describe('ItemExponentialFailureRateLimiter', () => {
  it('doubles from 5 ms and caps at 1000 s by default', () => {
    const limiter = new ItemExponentialFailureRateLimiter();
    const delays = Array.from({ length: 22 }, () => limiter.when('a'));
    assert.deepEqual(delays.slice(0, 6), [5, 10, 20, 40, 80, 160]);
    // 5 * 2^17 = 655_360 ms is the last uncapped step.
    assert.equal(delays[17], 655_360);
    assert.deepEqual(delays.slice(18), [1_000_000, 1_000_000, 1_000_000, 1_000_000]);
    assert.equal(limiter.numRequeues('a'), 22);
  });

  it('tracks items independently, and forget resets one item', () => {
    const limiter = new ItemExponentialFailureRateLimiter(1, 1000);
    assert.equal(limiter.when('a'), 1);
    assert.equal(limiter.when('a'), 2);
    assert.equal(limiter.when('b'), 1);
    assert.equal(limiter.numRequeues('a'), 2);
    assert.equal(limiter.numRequeues('b'), 1);
    assert.equal(limiter.numRequeues('never'), 0);
    limiter.forget('a');
    assert.equal(limiter.numRequeues('a'), 0);
    assert.equal(limiter.when('a'), 1);
    assert.equal(limiter.when('b'), 2);
  });

  it('stays at the cap when 2^failures overflows', () => {
    const limiter = new ItemExponentialFailureRateLimiter(5, 1_000_000);
    let last = 0;
    for (let i = 0; i < 2000; i++) last = limiter.when('a');
    assert.equal(last, 1_000_000);
  });

  it('returns the cap when the base exceeds it, and 0 for a zero base', () => {
    assert.equal(new ItemExponentialFailureRateLimiter(50, 10).when('a'), 10);
    const zero = new ItemExponentialFailureRateLimiter(0, 10);
    for (let i = 0; i < 1100; i++) assert.equal(zero.when('a'), 0);
  });

  it('rejects negative delays', () => {
    assert.throws(() => new ItemExponentialFailureRateLimiter(-1, 10), RangeError);
    assert.throws(() => new ItemExponentialFailureRateLimiter(1, Number.NaN), RangeError);
  });
});

describe('BucketRateLimiter', () => {
  it('allows the burst, then spaces reservations 1/qps apart', () => {
    const clock = new FakeClock();
    const limiter = new BucketRateLimiter(10, 100, clock);
    for (let i = 0; i < 100; i++) assert.equal(limiter.when(`item-${i}`), 0);
    const after = Array.from({ length: 5 }, () => limiter.when('x'));
    assert.deepEqual(after, [100, 200, 300, 400, 500]);
  });

  it('keeps a 100 ms spacing for callers that wait their delay at 10 qps', () => {
    const clock = new FakeClock();
    const limiter = new BucketRateLimiter(10, 100, clock);
    for (let i = 0; i < 100; i++) limiter.when('x');
    for (let i = 0; i < 20; i++) {
      assert.equal(limiter.when('x'), 100);
      clock.step(100);
    }
  });

  it('refills at qps up to the burst', () => {
    const clock = new FakeClock();
    const limiter = new BucketRateLimiter(10, 100, clock);
    for (let i = 0; i < 100; i++) limiter.when('x');
    clock.step(500);
    for (let i = 0; i < 5; i++) assert.equal(limiter.when('x'), 0);
    assert.equal(limiter.when('x'), 100);

    clock.step(3_600_000);
    for (let i = 0; i < 100; i++) assert.equal(limiter.when('x'), 0);
    assert.equal(limiter.when('x'), 100);
  });

  it('pays back reservations made in advance before granting new tokens', () => {
    const clock = new FakeClock();
    const limiter = new BucketRateLimiter(10, 1, clock);
    assert.equal(limiter.when('x'), 0);
    assert.equal(limiter.when('x'), 100);
    assert.equal(limiter.when('x'), 200);
    clock.step(150);
    assert.equal(limiter.when('x'), 150);
  });

  it('is not per item: numRequeues is 0 and forget is a no-op', () => {
    const limiter = new BucketRateLimiter(1, 1, new FakeClock());
    limiter.when('a');
    limiter.forget('a');
    assert.equal(limiter.numRequeues('a'), 0);
    assert.equal(limiter.when('b'), 1000);
  });

  it('never delays at infinite qps', () => {
    const limiter = new BucketRateLimiter(Number.POSITIVE_INFINITY, 1, new FakeClock());
    for (let i = 0; i < 10; i++) assert.equal(limiter.when('a'), 0);
  });

  it('rejects settings that could never grant a token', () => {
    assert.throws(() => new BucketRateLimiter(0, 1), RangeError);
    assert.throws(() => new BucketRateLimiter(10, 0), RangeError);
    assert.throws(() => new BucketRateLimiter(10, 1.5), RangeError);
  });
});

describe('ItemFastSlowRateLimiter', () => {
  it('is fast for maxFastAttempts failures, then slow, per item', () => {
    const limiter = new ItemFastSlowRateLimiter(5, 10_000, 3);
    assert.deepEqual(
      Array.from({ length: 5 }, () => limiter.when('a')),
      [5, 5, 5, 10_000, 10_000],
    );
    assert.equal(limiter.when('b'), 5);
    assert.equal(limiter.numRequeues('a'), 5);
    limiter.forget('a');
    assert.equal(limiter.numRequeues('a'), 0);
    assert.equal(limiter.when('a'), 5);
  });
});

describe('MaxOfRateLimiter', () => {
  it('returns the largest delay and numRequeues, and forgets in every limiter', () => {
    const fastSlow = new ItemFastSlowRateLimiter<string>(3, 1000, 2);
    const exponential = new ItemExponentialFailureRateLimiter<string>(100, 1_000_000);
    const limiter = new MaxOfRateLimiter(fastSlow, exponential);
    assert.deepEqual(
      Array.from({ length: 6 }, () => limiter.when('a')),
      [100, 200, 1000, 1000, 1600, 3200],
    );
    assert.equal(limiter.numRequeues('a'), 6);
    limiter.forget('a');
    assert.equal(fastSlow.numRequeues('a'), 0);
    assert.equal(exponential.numRequeues('a'), 0);
    assert.equal(limiter.when('a'), 100);
  });

  it('returns 0 with no limiters', () => {
    const limiter = new MaxOfRateLimiter();
    assert.equal(limiter.when('a'), 0);
    assert.equal(limiter.numRequeues('a'), 0);
  });
});

describe('WithMaxWaitRateLimiter', () => {
  it('caps the wrapped delay', () => {
    const limiter = new WithMaxWaitRateLimiter(new ItemExponentialFailureRateLimiter(100, 1_000_000), 250);
    assert.deepEqual(
      Array.from({ length: 4 }, () => limiter.when('a')),
      [100, 200, 250, 250],
    );
    assert.equal(limiter.numRequeues('a'), 4);
    limiter.forget('a');
    assert.equal(limiter.numRequeues('a'), 0);
  });
});

describe('defaultControllerRateLimiter', () => {
  it('is per-item exponential from 5 ms while the bucket has tokens', () => {
    const limiter = defaultControllerRateLimiter({ clock: new FakeClock() });
    assert.deepEqual(
      Array.from({ length: 4 }, () => limiter.when('a')),
      [5, 10, 20, 40],
    );
    assert.equal(limiter.numRequeues('a'), 4);
    limiter.forget('a');
    assert.equal(limiter.when('a'), 5);
  });

  it('caps per-item backoff at 1000 s', () => {
    // A generous bucket so only the per-item limiter matters.
    const limiter = defaultControllerRateLimiter({ clock: new FakeClock(), burst: 1000 });
    let last = 0;
    for (let i = 0; i < 30; i++) last = limiter.when('a');
    assert.equal(last, 1_000_000);
  });

  it('applies the overall bucket once the burst is spent (10 qps, burst 100)', () => {
    const limiter = defaultControllerRateLimiter({ clock: new FakeClock() });
    for (let i = 0; i < 100; i++) assert.equal(limiter.when(`item-${i}`), 5);
    assert.equal(limiter.when('fresh-1'), 100);
    assert.equal(limiter.when('fresh-2'), 200);
  });

  it('takes all settings as options', () => {
    const limiter = defaultControllerRateLimiter({
      clock: new FakeClock(),
      baseDelayMs: 1,
      maxDelayMs: 3,
      qps: 2,
      burst: 1,
    });
    assert.equal(limiter.when('a'), 1);
    assert.equal(limiter.when('b'), 500);
    assert.equal(limiter.when('a'), 1000);
    const capped = defaultControllerRateLimiter({ clock: new FakeClock(), maxDelayMs: 3, burst: 1000 });
    assert.deepEqual(
      Array.from({ length: 3 }, () => capped.when('a')),
      [3, 3, 3],
    );
  });
});
