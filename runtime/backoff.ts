/**
 * Delay arithmetic shared by the informer and leader election. Pure: randomness is a parameter
 * so tests can pin it.
 */

export interface BackoffOptions {
  /** Delay before the first retry. */
  initialMs?: number;
  /** Cap on the (pre-jitter) delay. */
  maxMs?: number;
  /**
   * Fraction of the delay that is randomised: the delay is scaled by a factor in
   * [1 - jitter, 1]. Scaling down rather than up keeps the cap a real upper bound while still
   * spreading retries that reach the cap (the case that matters after an apiserver outage).
   */
  jitter?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = { initialMs: 1_000, maxMs: 30_000, jitter: 0.2 };

/**
 * Delay before retry number `attempt` (0-based): initialMs doubling per attempt up to maxMs,
 * then jittered. `random` returns a number in [0, 1), like Math.random.
 */
export function backoffDelayMs(
  attempt: number,
  opts: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const { initialMs, maxMs, jitter } = { ...DEFAULT_BACKOFF, ...opts };
  const n = Math.max(0, Math.floor(attempt));
  // 2 ** n overflows to Infinity for large n; min() handles that.
  const base = Math.min(maxMs, initialMs * 2 ** n);
  const j = Math.min(Math.max(jitter, 0), 1);
  return base * (1 - j * clamp01(random()));
}

/** client-go's reflector: server-side watch timeout uniformly in [5, 10) minutes. */
export const MIN_WATCH_TIMEOUT_SECONDS = 300;

/**
 * timeoutSeconds for one watch request. Randomised so that watches opened together (every
 * informer of a replica, every replica after an apiserver restart) do not all expire and
 * reconnect at the same instant.
 */
export function watchTimeoutSeconds(random: () => number = Math.random): number {
  return Math.floor(MIN_WATCH_TIMEOUT_SECONDS * (1 + clamp01(random())));
}

/**
 * client-go's wait.Jitter(retryPeriod, 1.2), used between leader-election acquire attempts:
 * uniformly in [retryPeriod, 2.2 * retryPeriod).
 */
export const LEADER_ELECTION_JITTER = 1.2;

export function acquireRetryDelayMs(retryPeriodMs: number, random: () => number = Math.random): number {
  return retryPeriodMs * (1 + LEADER_ELECTION_JITTER * clamp01(random()));
}

function clamp01(x: number): number {
  if (!(x >= 0)) return 0;
  // Keep the open upper bound of Math.random even when a caller passes 1.
  return x >= 1 ? 1 - Number.EPSILON : x;
}
