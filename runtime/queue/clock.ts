/**
 * Time source for the queue and rate limiters. Injected so the decision logic stays pure and
 * tests can drive time by hand instead of sleeping.
 */
export interface Clock {
  /** Milliseconds. Only differences between readings are meaningful. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** Opaque: only the clock that created a handle knows what is inside. */
export type TimerHandle = object;

// Node fires timers longer than this immediately (TimeoutOverflowWarning), so longer waits
// are chained in chunks.
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

interface RealTimerHandle {
  timer: ReturnType<typeof globalThis.setTimeout> | undefined;
}

export const realClock: Clock = {
  // Monotonic (unaffected by wall-clock steps) yet anchored at the epoch, so values still look
  // like Date.now() in logs.
  now: () => performance.timeOrigin + performance.now(),

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const handle: RealTimerHandle = { timer: undefined };
    // `|| 0` maps NaN to 0 as Node does.
    let remaining = Math.max(ms || 0, 0);
    const arm = (): void => {
      const chunk = Math.min(remaining, MAX_TIMEOUT_MS);
      remaining -= chunk;
      handle.timer = globalThis.setTimeout(remaining > 0 ? arm : fn, chunk);
    };
    arm();
    return handle;
  },

  clearTimeout(handle: TimerHandle): void {
    const { timer } = handle as RealTimerHandle;
    if (timer !== undefined) globalThis.clearTimeout(timer);
  },
};

interface FakeTimer {
  readonly fn: () => void;
  readonly due: number;
  readonly seq: number;
}

/**
 * Manually advanced clock for tests. Timers fire only inside step(), in order of due time
 * (creation order among equal due times), with now() reporting each timer's due time while it
 * runs. Timers scheduled by a callback fire in the same step when they fall inside its window.
 */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Set<FakeTimer>();

  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: FakeTimer = { fn, due: this.#now + Math.max(ms || 0, 0), seq: this.#seq++ };
    this.#timers.add(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as FakeTimer);
  }

  /** Advances time by `ms`, firing every timer that comes due on the way. */
  step(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`FakeClock.step: ms must be >= 0, got ${ms}`);
    const target = this.#now + ms;
    for (;;) {
      const next = this.#earliest();
      if (next === undefined || next.due > target) break;
      this.#timers.delete(next);
      if (next.due > this.#now) this.#now = next.due;
      next.fn();
    }
    this.#now = target;
  }

  /** Number of timers scheduled and not yet fired or cleared. */
  pendingTimers(): number {
    return this.#timers.size;
  }

  /** Due time of the next timer, if any. */
  nextTimerAt(): number | undefined {
    return this.#earliest()?.due;
  }

  #earliest(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.#timers) {
      if (best === undefined || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    }
    return best;
  }
}
