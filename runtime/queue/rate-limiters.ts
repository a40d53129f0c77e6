import type { Clock } from './clock.ts';
import { realClock } from './clock.ts';

/** Mirrors client-go's workqueue.TypedRateLimiter; durations are milliseconds. */
export interface RateLimiter<T = string> {
  /** How long to wait before the item may be processed again; records a failure. */
  when(item: T): number;
  /** Stops tracking the item (it succeeded or was given up on). */
  forget(item: T): void;
  /** How many failures the item has had. */
  numRequeues(item: T): number;
}

function assertDelay(what: string, ms: number): void {
  if (!(ms >= 0)) throw new RangeError(`${what} must be a number >= 0, got ${ms}`);
}

/** Per-item exponential backoff: baseDelayMs * 2^failures, capped at maxDelayMs. */
export class ItemExponentialFailureRateLimiter<T = string> implements RateLimiter<T> {
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly #failures = new Map<T, number>();

  constructor(baseDelayMs = 5, maxDelayMs = 1_000_000) {
    assertDelay('baseDelayMs', baseDelayMs);
    assertDelay('maxDelayMs', maxDelayMs);
    this.baseDelayMs = baseDelayMs;
    this.maxDelayMs = maxDelayMs;
  }

  when(item: T): number {
    const exp = this.#failures.get(item) ?? 0;
    this.#failures.set(item, exp + 1);
    // Avoids 0 * Infinity = NaN once 2^exp overflows.
    if (this.baseDelayMs === 0) return 0;
    // 2 ** exp becomes Infinity rather than wrapping, so the cap also covers overflow.
    const backoff = this.baseDelayMs * 2 ** exp;
    return Math.min(backoff, this.maxDelayMs);
  }

  forget(item: T): void {
    this.#failures.delete(item);
  }

  numRequeues(item: T): number {
    return this.#failures.get(item) ?? 0;
  }
}

/**
 * Overall (not per-item) token bucket: `qps` tokens per second, holding at most `burst`.
 * when() reserves a token and returns the wait until it is available, like
 * golang.org/x/time/rate's Limiter.Reserve().Delay(): reservations may run ahead of the bucket,
 * so consecutive calls past the burst get 1/qps, 2/qps, ... seconds.
 */
export class BucketRateLimiter<T = string> implements RateLimiter<T> {
  readonly qps: number;
  readonly burst: number;
  readonly #clock: Clock;
  #tokens: number;
  #last: number;

  constructor(qps = 10, burst = 100, clock: Clock = realClock) {
    if (!(qps > 0)) throw new RangeError(`qps must be > 0 (or Infinity), got ${qps}`);
    // x/time/rate never grants a reservation larger than the burst, so < 1 would block forever.
    if (!Number.isInteger(burst) || burst < 1)
      throw new RangeError(`burst must be an integer >= 1, got ${burst}`);
    this.qps = qps;
    this.burst = burst;
    this.#clock = clock;
    this.#tokens = burst;
    this.#last = clock.now();
  }

  when(_item: T): number {
    if (this.qps === Number.POSITIVE_INFINITY) return 0;
    const now = this.#clock.now();
    // A clock that went backwards refills nothing rather than draining the bucket.
    const elapsedMs = Math.max(0, now - this.#last);
    const tokens = Math.min(this.burst, this.#tokens + (elapsedMs / 1000) * this.qps) - 1;
    this.#last = now;
    this.#tokens = tokens;
    if (tokens >= 0) return 0;
    // Go truncates to whole nanoseconds; doing the same keeps 1/qps spacings exact
    // (e.g. 300 ms, not 300.00000000000006).
    return Math.trunc(1e9 * (-tokens / this.qps)) / 1e6;
  }

  forget(_item: T): void {}

  numRequeues(_item: T): number {
    return 0;
  }
}

/**
 * Per-item: `fastDelayMs` for the first `maxFastAttempts` failures, `slowDelayMs` afterwards.
 */
export class ItemFastSlowRateLimiter<T = string> implements RateLimiter<T> {
  readonly fastDelayMs: number;
  readonly slowDelayMs: number;
  readonly maxFastAttempts: number;
  readonly #failures = new Map<T, number>();

  constructor(fastDelayMs: number, slowDelayMs: number, maxFastAttempts: number) {
    assertDelay('fastDelayMs', fastDelayMs);
    assertDelay('slowDelayMs', slowDelayMs);
    if (!(maxFastAttempts >= 0)) throw new RangeError(`maxFastAttempts must be >= 0, got ${maxFastAttempts}`);
    this.fastDelayMs = fastDelayMs;
    this.slowDelayMs = slowDelayMs;
    this.maxFastAttempts = maxFastAttempts;
  }

  when(item: T): number {
    const failures = (this.#failures.get(item) ?? 0) + 1;
    this.#failures.set(item, failures);
    return failures <= this.maxFastAttempts ? this.fastDelayMs : this.slowDelayMs;
  }

  forget(item: T): void {
    this.#failures.delete(item);
  }

  numRequeues(item: T): number {
    return this.#failures.get(item) ?? 0;
  }
}

/**
 * Worst case of several limiters. Every limiter's when() is called, so each records the
 * failure (and the bucket reserves its token) even when another limiter dominates.
 */
export class MaxOfRateLimiter<T = string> implements RateLimiter<T> {
  readonly limiters: readonly RateLimiter<T>[];

  constructor(...limiters: RateLimiter<T>[]) {
    this.limiters = limiters;
  }

  when(item: T): number {
    let ret = 0;
    for (const limiter of this.limiters) {
      const curr = limiter.when(item);
      if (curr > ret) ret = curr;
    }
    return ret;
  }

  forget(item: T): void {
    for (const limiter of this.limiters) limiter.forget(item);
  }

  numRequeues(item: T): number {
    let ret = 0;
    for (const limiter of this.limiters) {
      const curr = limiter.numRequeues(item);
      if (curr > ret) ret = curr;
    }
    return ret;
  }
}

/** Caps another limiter's delay at `maxDelayMs`. */
export class WithMaxWaitRateLimiter<T = string> implements RateLimiter<T> {
  readonly limiter: RateLimiter<T>;
  readonly maxDelayMs: number;

  constructor(limiter: RateLimiter<T>, maxDelayMs: number) {
    assertDelay('maxDelayMs', maxDelayMs);
    this.limiter = limiter;
    this.maxDelayMs = maxDelayMs;
  }

  when(item: T): number {
    const delay = this.limiter.when(item);
    return Math.min(delay, this.maxDelayMs);
  }

  forget(item: T): void {
    this.limiter.forget(item);
  }

  numRequeues(item: T): number {
    return this.limiter.numRequeues(item);
  }
}

export interface DefaultControllerRateLimiterOptions {
  /** Per-item backoff start; default 5 ms. */
  baseDelayMs?: number;
  /** Per-item backoff cap; default 1000 s. */
  maxDelayMs?: number;
  /** Overall retry rate; default 10 per second. */
  qps?: number;
  /** Overall retry burst; default 100. */
  burst?: number;
  clock?: Clock;
}

/**
 * client-go's DefaultControllerRateLimiter: per-item exponential backoff combined with an
 * overall token bucket that only bounds the total retry rate.
 */
export function defaultControllerRateLimiter<T = string>(
  opts: DefaultControllerRateLimiterOptions = {},
): MaxOfRateLimiter<T> {
  return new MaxOfRateLimiter<T>(
    new ItemExponentialFailureRateLimiter<T>(opts.baseDelayMs ?? 5, opts.maxDelayMs ?? 1_000_000),
    new BucketRateLimiter<T>(opts.qps ?? 10, opts.burst ?? 100, opts.clock ?? realClock),
  );
}
