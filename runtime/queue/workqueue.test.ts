import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from './clock.ts';
import { ItemExponentialFailureRateLimiter } from './rate-limiters.ts';
import type { GetResult } from './workqueue.ts';
import { DelayingQueue, RateLimitingQueue, WorkQueue } from './workqueue.ts';

/** Lets pending promise callbacks run. */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Tracks whether a promise has settled without awaiting it. */
function track<T>(promise: Promise<T>): { settled: boolean; value: T | undefined } {
  const state: { settled: boolean; value: T | undefined } = { settled: false, value: undefined };
  promise.then((value) => {
    state.settled = true;
    state.value = value;
  });
  return state;
}

async function getItem<T extends string>(queue: WorkQueue<T>): Promise<T> {
  const result = await queue.get();
  assert.equal(result.shutdown, false);
  return result.item!;
}

/** Takes everything currently queued, marking each done. */
async function drainNow<T extends string>(queue: WorkQueue<T>): Promise<T[]> {
  const items: T[] = [];
  while (queue.len() > 0) {
    const item = await getItem(queue);
    items.push(item);
    queue.done(item);
  }
  return items;
}

describe('WorkQueue', () => {
  it('hands items out in FIFO order', async () => {
    const queue = new WorkQueue();
    for (const key of ['ns/a', 'ns/b', 'ns/c', 'other/a']) queue.add(key);
    assert.equal(queue.len(), 4);
    assert.deepEqual(await drainNow(queue), ['ns/a', 'ns/b', 'ns/c', 'other/a']);
    assert.equal(queue.len(), 0);
  });

  it('dedupes an item added again while queued, keeping its first position', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    queue.add('b');
    queue.add('a');
    queue.add('a');
    assert.equal(queue.len(), 2);
    assert.deepEqual(await drainNow(queue), ['a', 'b']);
  });

  it('re-queues an item added during processing exactly once, after done', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    assert.equal(await getItem(queue), 'a');
    queue.add('a');
    queue.add('a');
    queue.add('a');
    assert.equal(queue.len(), 0, 'not handed out again while processing');
    queue.done('a');
    assert.equal(queue.len(), 1);
    assert.equal(await getItem(queue), 'a');
    queue.done('a');
    assert.equal(queue.len(), 0);
  });

  it('does not re-queue an item that was not added during processing', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    queue.done(await getItem(queue));
    assert.equal(queue.len(), 0);
  });

  it('never hands one key to two concurrent getters', async () => {
    const queue = new WorkQueue();
    const first = track(queue.get());
    const second = track(queue.get());
    queue.add('a');
    await flush();
    assert.deepEqual(first.value, { item: 'a', shutdown: false });
    assert.equal(second.settled, false);

    queue.add('a');
    await flush();
    assert.equal(second.settled, false, 'a is still being processed by the first worker');

    queue.add('b');
    await flush();
    assert.deepEqual(second.value, { item: 'b', shutdown: false });

    const third = track(queue.get());
    await flush();
    assert.equal(third.settled, false);
    queue.done('a');
    await flush();
    assert.deepEqual(third.value, { item: 'a', shutdown: false });
  });

  it('keeps every key on at most one worker under concurrent load', { timeout: 10_000 }, async () => {
    const queue = new WorkQueue();
    const active = new Set<string>();
    // Recorded rather than thrown so a failure cannot kill the workers and hang the test.
    const violations: string[] = [];
    let processed = 0;
    let seed = 42;
    const random = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    const worker = async (): Promise<void> => {
      for (;;) {
        const { item, shutdown } = await queue.get();
        if (shutdown) return;
        if (active.has(item)) violations.push(`${item} handed to two workers`);
        active.add(item);
        for (let i = random(3); i >= 0; i--) await flush();
        // Adds while processing must collapse into one re-run, not a concurrent one.
        if (random(4) === 0) queue.add(item);
        active.delete(item);
        processed++;
        queue.done(item);
      }
    };
    const workers = Array.from({ length: 4 }, worker);
    for (let i = 0; i < 300; i++) {
      queue.add(`key-${random(8)}`);
      if (random(2) === 0) await flush();
    }
    for (let i = 0; i < 10_000 && queue.len() > 0; i++) await flush();
    await queue.shutDownWithDrain();
    await Promise.all(workers);
    assert.deepEqual(violations, []);
    assert.equal(queue.len(), 0);
    assert.ok(processed > 8);
    assert.equal(active.size, 0);
  });

  it('blocks get until an item is added', async () => {
    const queue = new WorkQueue();
    const pending = track(queue.get());
    await flush();
    assert.equal(pending.settled, false);
    queue.add('a');
    await flush();
    assert.deepEqual(pending.value, { item: 'a', shutdown: false });
    assert.equal(queue.len(), 0);
  });

  it('wakes blocked getters in the order they called get', async () => {
    const queue = new WorkQueue();
    const getters = [track(queue.get()), track(queue.get()), track(queue.get())];
    queue.add('a');
    queue.add('b');
    await flush();
    assert.deepEqual(
      getters.map((g) => g.value?.item),
      ['a', 'b', undefined],
    );
  });

  it('shutDown wakes blocked getters with shutdown and ignores later adds', async () => {
    const queue = new WorkQueue();
    const getters = [queue.get(), queue.get()];
    assert.equal(queue.shuttingDown(), false);
    queue.shutDown();
    assert.equal(queue.shuttingDown(), true);
    const results: GetResult<string>[] = await Promise.all(getters);
    assert.deepEqual(results, [
      { item: undefined, shutdown: true },
      { item: undefined, shutdown: true },
    ]);
    queue.add('a');
    assert.equal(queue.len(), 0);
    assert.deepEqual(await queue.get(), { item: undefined, shutdown: true });
  });

  it('hands out items queued before shutDown, then reports shutdown', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    queue.add('b');
    queue.shutDown();
    assert.deepEqual(await queue.get(), { item: 'a', shutdown: false });
    assert.deepEqual(await queue.get(), { item: 'b', shutdown: false });
    assert.deepEqual(await queue.get(), { item: undefined, shutdown: true });
  });

  it('still re-queues at done an item added during processing before shutdown', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    await getItem(queue);
    queue.add('a');
    queue.shutDown();
    queue.done('a');
    assert.deepEqual(await queue.get(), { item: 'a', shutdown: false });
  });

  it('shutDownWithDrain resolves at once when nothing is processing', async () => {
    const queue = new WorkQueue();
    await queue.shutDownWithDrain();
    assert.equal(queue.shuttingDown(), true);
    assert.deepEqual(await queue.get(), { item: undefined, shutdown: true });
  });

  it('shutDownWithDrain waits until every item in flight is done', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    queue.add('b');
    await getItem(queue);
    await getItem(queue);
    const blocked = track(queue.get());
    const drained = track(queue.shutDownWithDrain());
    await flush();
    assert.deepEqual(blocked.value, { item: undefined, shutdown: true });
    assert.equal(drained.settled, false);

    queue.add('c');
    assert.equal(queue.len(), 0, 'adds are ignored while draining');
    queue.done('a');
    await flush();
    assert.equal(drained.settled, false);
    queue.done('b');
    await flush();
    assert.equal(drained.settled, true);
  });

  it('shutDown releases a pending shutDownWithDrain', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    await getItem(queue);
    const drained = track(queue.shutDownWithDrain());
    await flush();
    assert.equal(drained.settled, false);
    queue.shutDown();
    await flush();
    assert.equal(drained.settled, true);
  });

  it('ignores done for an item that is not being processed', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    queue.done('a');
    queue.done('never-added');
    assert.equal(queue.len(), 1);
    assert.deepEqual(await drainNow(queue), ['a']);
  });
});

describe('DelayingQueue', () => {
  it('adds the item only once its delay has passed', () => {
    const clock = new FakeClock();
    const queue = new DelayingQueue({ clock });
    queue.addAfter('a', 50);
    assert.equal(queue.len(), 0);
    clock.step(49);
    assert.equal(queue.len(), 0);
    clock.step(1);
    assert.equal(queue.len(), 1);
  });

  it('adds at once for zero or negative delays', () => {
    const clock = new FakeClock();
    const queue = new DelayingQueue({ clock });
    queue.addAfter('a', 0);
    queue.addAfter('b', -10);
    assert.equal(queue.len(), 2);
    assert.equal(clock.pendingTimers(), 0);
  });

  it('wakes a blocked getter when a delayed item comes due', async () => {
    const clock = new FakeClock();
    const queue = new DelayingQueue({ clock });
    const pending = track(queue.get());
    queue.addAfter('a', 1000);
    clock.step(999);
    await flush();
    assert.equal(pending.settled, false);
    clock.step(1);
    await flush();
    assert.deepEqual(pending.value, { item: 'a', shutdown: false });
  });

  it('releases many items in ready-time order, equal times in insertion order', async () => {
    const clock = new FakeClock();
    const queue = new DelayingQueue({ clock });
    let seed = 7;
    const delays: [string, number][] = [];
    for (let i = 0; i < 500; i++) {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      // Few distinct values, so many items share a ready time.
      delays.push([`item-${i}`, (seed % 21) * 10]);
    }
    for (const [item, delay] of delays) queue.addAfter(item, delay);
    assert.ok(clock.pendingTimers() <= 1, 'a single timer for the earliest entry');

    const released: string[] = [];
    for (let t = 0; t <= 200; t += 10) {
      released.push(...(await drainNow(queue)));
      const expectedSoFar = delays.filter(([, d]) => d <= t).length;
      assert.equal(released.length, expectedSoFar, `released by t=${t}`);
      clock.step(10);
    }
    const expected = delays
      .map(([item, delay], index) => ({ item, delay, index }))
      .sort((a, b) => a.delay - b.delay || a.index - b.index)
      .map((e) => e.item);
    assert.deepEqual(released, expected);
    assert.equal(clock.pendingTimers(), 0);
  });

  it('keeps the earlier ready time when an item is added again while waiting', async () => {
    const clock = new FakeClock();
    const queue = new DelayingQueue({ clock });
    queue.addAfter('sooner-later', 100);
    queue.addAfter('sooner-later', 50);
    queue.addAfter('later-sooner', 50);
    queue.addAfter('later-sooner', 100);
    clock.step(50);
    assert.deepEqual(await drainNow(queue), ['sooner-later', 'later-sooner']);
    clock.step(100);
    assert.equal(queue.len(), 0, 'the superseded later time does not add it again');
    assert.equal(clock.pendingTimers(), 0);
  });

  it('re-arms for an earlier entry added after a later one', async () => {
    const clock = new FakeClock();
    const queue = new DelayingQueue({ clock });
    queue.addAfter('late', 1000);
    queue.addAfter('early', 10);
    assert.equal(clock.nextTimerAt(), 10);
    clock.step(10);
    assert.deepEqual(await drainNow(queue), ['early']);
    assert.equal(clock.nextTimerAt(), 1000);
    clock.step(990);
    assert.deepEqual(await drainNow(queue), ['late']);
  });

  it('still adds a waiting item when it comes due even if it was added directly meanwhile', async () => {
    const clock = new FakeClock();
    const queue = new DelayingQueue({ clock });
    queue.addAfter('a', 100);
    queue.add('a');
    assert.equal(await getItem(queue), 'a');
    clock.step(100);
    assert.equal(queue.len(), 0, 'a is processing, so it is only marked dirty');
    queue.done('a');
    assert.deepEqual(await drainNow(queue), ['a']);
  });

  it('drops waiting items and their timer on shutdown, and ignores later addAfter', () => {
    const clock = new FakeClock();
    const queue = new DelayingQueue({ clock });
    queue.addAfter('a', 10);
    queue.addAfter('b', 20);
    queue.shutDown();
    assert.equal(clock.pendingTimers(), 0);
    queue.addAfter('c', 0);
    queue.addAfter('d', 5);
    clock.step(100);
    assert.equal(queue.len(), 0);
    assert.equal(clock.pendingTimers(), 0);
  });

  it('drops waiting items on shutDownWithDrain', async () => {
    const clock = new FakeClock();
    const queue = new DelayingQueue({ clock });
    queue.addAfter('a', 10);
    await queue.shutDownWithDrain();
    assert.equal(clock.pendingTimers(), 0);
    clock.step(100);
    assert.equal(queue.len(), 0);
  });
});

describe('RateLimitingQueue', () => {
  it('addRateLimited waits the limiter delay; forget resets it', async () => {
    const clock = new FakeClock();
    const queue = new RateLimitingQueue({ clock });

    queue.addRateLimited('a');
    assert.equal(queue.numRequeues('a'), 1);
    clock.step(4);
    assert.equal(queue.len(), 0);
    clock.step(1);
    assert.deepEqual(await drainNow(queue), ['a'], 'default limiter: 5 ms first');

    queue.addRateLimited('a');
    assert.equal(queue.numRequeues('a'), 2);
    clock.step(9);
    assert.equal(queue.len(), 0);
    clock.step(1);
    assert.deepEqual(await drainNow(queue), ['a'], 'then 10 ms');

    queue.forget('a');
    assert.equal(queue.numRequeues('a'), 0);
    queue.addRateLimited('a');
    clock.step(5);
    assert.deepEqual(await drainNow(queue), ['a'], 'back to 5 ms after forget');
  });

  it('uses the given rate limiter', async () => {
    const clock = new FakeClock();
    const rateLimiter = new ItemExponentialFailureRateLimiter<string>(1000, 60_000);
    const queue = new RateLimitingQueue({ clock, rateLimiter });
    assert.equal(queue.rateLimiter, rateLimiter);
    queue.addRateLimited('a');
    queue.addRateLimited('b');
    clock.step(999);
    assert.equal(queue.len(), 0);
    clock.step(1);
    assert.deepEqual(await drainNow(queue), ['a', 'b']);
  });

  it('defaults to the bucket on the queue clock (10 qps after a burst of 100)', async () => {
    const clock = new FakeClock();
    const queue = new RateLimitingQueue({ clock });
    for (let i = 0; i < 101; i++) queue.addRateLimited(`item-${i}`);
    clock.step(5);
    assert.equal(queue.len(), 100);
    await drainNow(queue);
    clock.step(94);
    assert.equal(queue.len(), 0);
    clock.step(1);
    assert.deepEqual(await drainNow(queue), ['item-100']);
  });

  it('still consults the limiter while shutting down, but adds nothing', () => {
    const clock = new FakeClock();
    const queue = new RateLimitingQueue({ clock });
    queue.shutDown();
    queue.addRateLimited('a');
    assert.equal(queue.numRequeues('a'), 1);
    clock.step(1000);
    assert.equal(queue.len(), 0);
  });
});
