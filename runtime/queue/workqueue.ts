import type { Clock, TimerHandle } from './clock.ts';
import { realClock } from './clock.ts';
import type { QueueMetrics, QueueMetricsProvider } from './metrics.ts';
import { newQueueMetrics, noopQueueMetricsProvider } from './metrics.ts';
import type { RateLimiter } from './rate-limiters.ts';
import { defaultControllerRateLimiter } from './rate-limiters.ts';

/** An item handed to a worker, or the signal that the queue is shut down and empty. */
export type GetResult<T> = { item: T; shutdown: false } | { item: undefined; shutdown: true };

export interface QueueOptions {
  /** Label for metrics; unnamed queues report no metrics (as in client-go). */
  name?: string;
  clock?: Clock;
  /** Defaults to the no-op provider. */
  metrics?: QueueMetricsProvider;
}

export interface RateLimitingQueueOptions<T> extends QueueOptions {
  /** Defaults to defaultControllerRateLimiter() on the queue's clock. */
  rateLimiter?: RateLimiter<T>;
}

/** FIFO with O(1) shift; a plain array's shift() is O(n). */
class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head++;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
}

/**
 * client-go's workqueue.Typed: a FIFO of keys where
 * - a key queued several times is processed once (`dirty` dedupes),
 * - a key is never handed to two workers at once (`processing`): adds while it is being
 *   processed collapse into a single re-queue when done() is called.
 */
export class WorkQueue<T extends string = string> {
  readonly name: string;
  protected readonly clock: Clock;
  protected readonly metrics: QueueMetrics<T>;

  readonly #queue = new Fifo<T>();
  /** Keys that need processing: queued, or added again while processing. */
  readonly #dirty = new Set<T>();
  /** Keys handed to a worker and not yet done(). */
  readonly #processing = new Set<T>();
  /** Blocked get() calls, oldest first. Only non-empty while the queue is empty. */
  readonly #getters: ((result: GetResult<T>) => void)[] = [];
  readonly #drainWaiters: (() => void)[] = [];
  #shuttingDown = false;

  constructor(opts: QueueOptions = {}) {
    this.name = opts.name ?? '';
    this.clock = opts.clock ?? realClock;
    this.metrics = newQueueMetrics<T>(opts.metrics ?? noopQueueMetricsProvider, this.name, this.clock);
  }

  /** Marks the item as needing processing. Ignored once shutting down. */
  add(item: T): void {
    if (this.#shuttingDown) return;
    if (this.#dirty.has(item)) return;
    this.metrics.add(item);
    this.#dirty.add(item);
    // The worker holding it will see it dirty at done() and re-queue it then.
    if (this.#processing.has(item)) return;
    this.#queue.push(item);
    this.#dispatch();
  }

  /** Number of items waiting to be handed out (not counting items being processed). */
  len(): number {
    return this.#queue.length;
  }

  /**
   * Waits for an item and marks it as being processed; the caller must call done(item).
   * After shutdown, items still queued are handed out first, then `shutdown: true`.
   */
  get(): Promise<GetResult<T>> {
    if (this.#queue.length > 0) return Promise.resolve(this.#take());
    if (this.#shuttingDown) return Promise.resolve({ item: undefined, shutdown: true });
    return new Promise((resolve) => this.#getters.push(resolve));
  }

  /** Ends processing of an item; re-queues it if it was added meanwhile. */
  done(item: T): void {
    // client-go would push a dirty key that is still queued a second time here, breaking the
    // one-worker-per-key guarantee; a done() for a key nobody holds is a caller bug, so ignore it.
    if (!this.#processing.has(item)) return;
    this.metrics.done(item);
    this.#processing.delete(item);
    if (this.#dirty.has(item)) {
      this.#queue.push(item);
      this.#dispatch();
    }
    if (this.#processing.size === 0) {
      this.#releaseDrainWaiters();
      this.#maybeStopMetrics();
    }
  }

  /**
   * Stops accepting adds and wakes blocked get() calls with `shutdown: true`. Items already
   * queued are still handed out; callers of shutDownWithDrain() stop waiting.
   */
  shutDown(): void {
    this.#shuttingDown = true;
    this.#wakeGetters();
    this.#releaseDrainWaiters();
    this.#maybeStopMetrics();
  }

  /**
   * Like shutDown(), but resolves only once every item handed out has been done() (at once if
   * none is being processed). A later shutDown() resolves it early.
   */
  shutDownWithDrain(): Promise<void> {
    this.#shuttingDown = true;
    this.#wakeGetters();
    this.#maybeStopMetrics();
    if (this.#processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  #take(): GetResult<T> {
    const item = this.#queue.shift()!;
    this.metrics.get(item);
    this.#processing.add(item);
    this.#dirty.delete(item);
    return { item, shutdown: false };
  }

  // Hands items to blocked getters synchronously, so an item is in `processing` the moment it
  // leaves the queue and no other get() can observe it in between.
  #dispatch(): void {
    while (this.#getters.length > 0 && this.#queue.length > 0) {
      this.#getters.shift()!(this.#take());
    }
  }

  #wakeGetters(): void {
    // Getters only block while the queue is empty, so there is nothing left to hand them.
    for (const resolve of this.#getters.splice(0)) resolve({ item: undefined, shutdown: true });
  }

  #releaseDrainWaiters(): void {
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
  }

  // The unfinished-work gauges stop being polled once nothing can be in progress any more:
  // shut down (so nothing new arrives), nothing queued (so get() hands out nothing) and
  // nothing processing (so done() re-queues nothing).
  #maybeStopMetrics(): void {
    if (this.#shuttingDown && this.#queue.length === 0 && this.#processing.size === 0) this.metrics.stop();
  }
}

interface WaitEntry<T> {
  readonly item: T;
  readyAt: number;
  /** Insertion order; breaks ties so equal ready times come out FIFO. */
  readonly seq: number;
  index: number;
}

/**
 * client-go's DelayingInterface: addAfter() holds items in a min-heap by ready time and adds
 * them when due, with one timer armed for the earliest entry.
 */
export class DelayingQueue<T extends string = string> extends WorkQueue<T> {
  #heap: WaitEntry<T>[] = [];
  readonly #waiting = new Map<T, WaitEntry<T>>();
  #seq = 0;
  #timer: TimerHandle | undefined;
  #timerAt = Number.NaN;

  /**
   * Adds the item after `delayMs` (at once if <= 0). If it is already waiting, the earlier of
   * the two ready times wins. Ignored once shutting down. Counts as a retry in metrics.
   */
  addAfter(item: T, delayMs: number): void {
    if (this.shuttingDown()) return;
    this.metrics.retry();
    if (!(delayMs > 0)) {
      this.add(item);
      return;
    }
    const readyAt = this.clock.now() + delayMs;
    const existing = this.#waiting.get(item);
    if (existing !== undefined) {
      if (existing.readyAt > readyAt) {
        existing.readyAt = readyAt;
        this.#siftUp(existing.index);
        this.#rearm();
      }
      return;
    }
    const entry: WaitEntry<T> = { item, readyAt, seq: this.#seq++, index: this.#heap.length };
    this.#heap.push(entry);
    this.#waiting.set(item, entry);
    this.#siftUp(entry.index);
    this.#rearm();
  }

  override shutDown(): void {
    this.#stopWaiting();
    super.shutDown();
  }

  override shutDownWithDrain(): Promise<void> {
    this.#stopWaiting();
    return super.shutDownWithDrain();
  }

  #stopWaiting(): void {
    if (this.#timer !== undefined) this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#heap = [];
    this.#waiting.clear();
  }

  #fire(): void {
    this.#timer = undefined;
    const now = this.clock.now();
    for (let top = this.#heap[0]; top !== undefined && top.readyAt <= now; top = this.#heap[0]) {
      this.#pop();
      this.#waiting.delete(top.item);
      this.add(top.item);
    }
    // Real timers may fire a little early; re-arming covers whatever is not yet due.
    this.#rearm();
  }

  #rearm(): void {
    const top = this.#heap[0];
    if (top === undefined) {
      if (this.#timer !== undefined) this.clock.clearTimeout(this.#timer);
      this.#timer = undefined;
      return;
    }
    if (this.#timer !== undefined) {
      if (this.#timerAt === top.readyAt) return;
      this.clock.clearTimeout(this.#timer);
    }
    this.#timerAt = top.readyAt;
    this.#timer = this.clock.setTimeout(() => this.#fire(), Math.max(0, top.readyAt - this.clock.now()));
  }

  #less(a: WaitEntry<T>, b: WaitEntry<T>): boolean {
    return a.readyAt < b.readyAt || (a.readyAt === b.readyAt && a.seq < b.seq);
  }

  #swap(i: number, j: number): void {
    const heap = this.#heap;
    const a = heap[i]!;
    const b = heap[j]!;
    heap[i] = b;
    heap[j] = a;
    b.index = i;
    a.index = j;
  }

  #siftUp(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(this.#heap[i]!, this.#heap[parent]!)) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #siftDown(i: number): void {
    const n = this.#heap.length;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && this.#less(this.#heap[right]!, this.#heap[left]!)) child = right;
      if (!this.#less(this.#heap[child]!, this.#heap[i]!)) break;
      this.#swap(i, child);
      i = child;
    }
  }

  #pop(): WaitEntry<T> | undefined {
    const heap = this.#heap;
    const top = heap[0];
    if (top === undefined) return undefined;
    const last = heap.pop()!;
    if (last !== top) {
      heap[0] = last;
      last.index = 0;
      this.#siftDown(0);
    }
    return top;
  }
}

/** client-go's RateLimitingInterface: a delaying queue that asks a RateLimiter how long to wait. */
export class RateLimitingQueue<T extends string = string> extends DelayingQueue<T> {
  readonly rateLimiter: RateLimiter<T>;

  constructor(opts: RateLimitingQueueOptions<T> = {}) {
    super(opts);
    this.rateLimiter = opts.rateLimiter ?? defaultControllerRateLimiter<T>({ clock: this.clock });
  }

  /** Re-adds the item once the rate limiter allows it; each call counts as a failure. */
  addRateLimited(item: T): void {
    // As in client-go the limiter is consulted even while shutting down.
    this.addAfter(item, this.rateLimiter.when(item));
  }

  /** Clears the item's failure history (call after it was processed successfully). */
  forget(item: T): void {
    this.rateLimiter.forget(item);
  }

  numRequeues(item: T): number {
    return this.rateLimiter.numRequeues(item);
  }
}
