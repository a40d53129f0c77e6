/**
 * The decision half of leader election (client-go tools/leaderelection semantics), with no
 * I/O: what to do with the Lease we just read, given the local clock.
 *
 * Expiry is judged the way client-go does: not from the holder's renewTime (another machine's
 * clock) but from when *we* observed the record last change, plus the record's
 * leaseDurationSeconds. A holder that keeps renewing keeps changing renewTime, which keeps
 * pushing the observation time forward; one that stops is taken over leaseDuration after we
 * first saw its final record. Clock skew between machines therefore does not matter, only
 * the rate of the local clock.
 */

/** The Lease spec fields that make up the election record, times as MicroTime strings. */
export interface LeaseRecord {
  /** '' when nobody holds the lease (never held, or released). */
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions: number;
}

export interface ObservedLease {
  record: LeaseRecord;
  /** Local clock reading (ms) when this exact record was first observed. */
  observedAtMs: number;
}

export type LeaseDecision =
  | { action: 'create'; record: LeaseRecord }
  | { action: 'update'; record: LeaseRecord; takeover: boolean }
  | { action: 'wait'; holder: string; expiresAtMs: number };

export interface LeaseDecisionOptions {
  leaseDurationMs: number;
  /** Wall-clock time (ms since the epoch) to write into acquireTime/renewTime. */
  wallNowMs: number;
}

/**
 * `observed` is the lease as just read (undefined: it does not exist), `nowMs` the local clock.
 * create: the lease is absent; update: renew our own lease, or take over a released or expired
 * one (takeover, which counts a transition); wait: somebody else holds a lease that has not
 * expired by our observation.
 */
export function decideLeaseAction(
  observed: ObservedLease | undefined,
  nowMs: number,
  identity: string,
  opts: LeaseDecisionOptions,
): LeaseDecision {
  const now = formatMicroTime(opts.wallNowMs);
  const leaseDurationSeconds = leaseDurationSecondsOf(opts.leaseDurationMs);
  if (!observed) {
    return {
      action: 'create',
      record: {
        holderIdentity: identity,
        leaseDurationSeconds,
        acquireTime: now,
        renewTime: now,
        leaseTransitions: 0,
      },
    };
  }
  const r = observed.record;
  const holder = r.holderIdentity;
  if (holder !== '' && holder !== identity) {
    const expiresAtMs = leaseExpiresAtMs(observed);
    if (expiresAtMs > nowMs) return { action: 'wait', holder, expiresAtMs };
  }
  const renewing = holder === identity;
  return {
    action: 'update',
    takeover: !renewing,
    record: {
      holderIdentity: identity,
      leaseDurationSeconds,
      acquireTime: renewing ? (r.acquireTime ?? now) : now,
      renewTime: now,
      leaseTransitions: renewing ? r.leaseTransitions : r.leaseTransitions + 1,
    },
  };
}

/** Local-clock time after which the observed holder counts as gone. */
export function leaseExpiresAtMs(observed: ObservedLease): number {
  return observed.observedAtMs + observed.record.leaseDurationSeconds * 1000;
}

/** The renew fast path applies while our own observed lease has not expired. */
export function canRenewOptimistically(
  observed: ObservedLease | undefined,
  nowMs: number,
  identity: string,
): boolean {
  return (
    observed !== undefined &&
    observed.record.holderIdentity === identity &&
    leaseExpiresAtMs(observed) > nowMs
  );
}

/** Keeps the observation time when the record is unchanged; restarts it when it changed. */
export function observeLease(
  prev: ObservedLease | undefined,
  record: LeaseRecord,
  nowMs: number,
): ObservedLease {
  if (prev && sameRecord(prev.record, record)) return prev;
  return { record, observedAtMs: nowMs };
}

export function sameRecord(a: LeaseRecord, b: LeaseRecord): boolean {
  return (
    a.holderIdentity === b.holderIdentity &&
    a.leaseDurationSeconds === b.leaseDurationSeconds &&
    a.acquireTime === b.acquireTime &&
    a.renewTime === b.renewTime &&
    a.leaseTransitions === b.leaseTransitions
  );
}

/**
 * What release() writes (as client-go): no holder and a 1-second duration, so candidates take
 * over at their next attempt instead of waiting out the lease.
 */
export function releasedRecord(current: LeaseRecord, wallNowMs: number): LeaseRecord {
  const now = formatMicroTime(wallNowMs);
  return {
    holderIdentity: '',
    leaseDurationSeconds: 1,
    acquireTime: now,
    renewTime: now,
    leaseTransitions: current.leaseTransitions,
  };
}

/** Lease spec as it comes from client-node (times may be strings or Dates) -> record. */
export function recordFromSpec(
  spec:
    | {
        holderIdentity?: string | null;
        leaseDurationSeconds?: number | null;
        acquireTime?: unknown;
        renewTime?: unknown;
        leaseTransitions?: number | null;
      }
    | undefined,
): LeaseRecord {
  const record: LeaseRecord = {
    holderIdentity: spec?.holderIdentity ?? '',
    leaseDurationSeconds: spec?.leaseDurationSeconds ?? 0,
    leaseTransitions: spec?.leaseTransitions ?? 0,
  };
  const acquireTime = microTimeString(spec?.acquireTime);
  const renewTime = microTimeString(spec?.renewTime);
  if (acquireTime !== undefined) record.acquireTime = acquireTime;
  if (renewTime !== undefined) record.renewTime = renewTime;
  return record;
}

/**
 * metav1.MicroTime wire format. The apiserver parses it with exactly six fractional digits
 * ("2006-01-02T15:04:05.000000Z07:00") and rejects a plain Date's toISOString() (three digits)
 * with 400 BadRequest.
 */
export function formatMicroTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, -1)}000Z`;
}

function microTimeString(v: unknown): string | undefined {
  // client-node 2.0.1 hands MicroTime fields back as the raw string (V1MicroTime is not in its
  // serializer's type map) although the typings say V1MicroTime; accept either.
  if (typeof v === 'string') return v;
  if (v instanceof Date && !Number.isNaN(v.getTime())) return formatMicroTime(v.getTime());
  return undefined;
}

export function leaseDurationSecondsOf(leaseDurationMs: number): number {
  // Round up: others must never wait less than we assume.
  return Math.max(1, Math.ceil(leaseDurationMs / 1000));
}

export interface LeaderElectionTimings {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

/** client-go's NewLeaderElector checks. Throws on invalid timings. */
export function validateTimings(t: LeaderElectionTimings): void {
  if (!(t.retryPeriodMs > 0)) throw new RangeError('retryPeriodMs must be greater than zero');
  if (!(t.leaseDurationMs > t.renewDeadlineMs)) {
    throw new RangeError('leaseDurationMs must be greater than renewDeadlineMs');
  }
  if (!(t.renewDeadlineMs > 1.2 * t.retryPeriodMs)) {
    throw new RangeError('renewDeadlineMs must be greater than 1.2 * retryPeriodMs');
  }
}
