import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock, realClock } from './clock.ts';

describe('FakeClock', () => {
  it('starts at the given time and advances on step', () => {
    const clock = new FakeClock(1000);
    assert.equal(clock.now(), 1000);
    clock.step(250);
    assert.equal(clock.now(), 1250);
  });

  it('fires due timers in due order, ties in creation order, reporting their due time', () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`c@${clock.now()}`), 30);
    clock.setTimeout(() => fired.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => fired.push(`b1@${clock.now()}`), 20);
    clock.setTimeout(() => fired.push(`b2@${clock.now()}`), 20);
    clock.setTimeout(() => fired.push(`late@${clock.now()}`), 31);
    clock.step(30);
    assert.deepEqual(fired, ['a@10', 'b1@20', 'b2@20', 'c@30']);
    assert.equal(clock.pendingTimers(), 1);
    assert.equal(clock.nextTimerAt(), 31);
    clock.step(1);
    assert.deepEqual(fired.at(-1), 'late@31');
  });

  it('fires timers scheduled by callbacks when they fall inside the step', () => {
    const clock = new FakeClock();
    const fired: number[] = [];
    clock.setTimeout(() => {
      fired.push(clock.now());
      clock.setTimeout(() => fired.push(clock.now()), 5);
      clock.setTimeout(() => fired.push(clock.now()), 500);
    }, 10);
    clock.step(100);
    assert.deepEqual(fired, [10, 15]);
    assert.equal(clock.now(), 100);
    assert.equal(clock.pendingTimers(), 1);
  });

  it('fires zero and negative delays on the next step, and not cleared timers', () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('zero'), 0);
    clock.setTimeout(() => fired.push('negative'), -5);
    const handle = clock.setTimeout(() => fired.push('cleared'), 1);
    clock.clearTimeout(handle);
    assert.deepEqual(fired, []);
    clock.step(0);
    assert.deepEqual(fired, ['zero', 'negative']);
    clock.step(10);
    assert.deepEqual(fired, ['zero', 'negative']);
    assert.equal(clock.pendingTimers(), 0);
    assert.equal(clock.nextTimerAt(), undefined);
  });

  it('rejects stepping backwards', () => {
    assert.throws(() => new FakeClock().step(-1), RangeError);
  });
});

describe('realClock', () => {
  it('reads a monotonic, epoch-anchored time', () => {
    const a = realClock.now();
    const b = realClock.now();
    assert.ok(b >= a);
    assert.ok(Math.abs(a - Date.now()) < 60_000);
  });

  it('fires and clears timers', async () => {
    let fired = 0;
    realClock.setTimeout(() => fired++, 1);
    const cleared = realClock.setTimeout(() => fired++, 1);
    realClock.clearTimeout(cleared);
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(fired, 1);
  });

  it('does not fire delays beyond the 32-bit timer limit early', async () => {
    let fired = false;
    const handle = realClock.setTimeout(
      () => {
        fired = true;
      },
      2 ** 31 + 10,
    );
    await new Promise((resolve) => setTimeout(resolve, 5));
    realClock.clearTimeout(handle);
    assert.equal(fired, false);
  });
});
