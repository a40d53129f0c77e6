import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  canRenewOptimistically,
  decideLeaseAction,
  formatMicroTime,
  type LeaseRecord,
  leaseDurationSecondsOf,
  observeLease,
  recordFromSpec,
  releasedRecord,
  validateTimings,
} from './lease-decision.ts';

const WALL = Date.UTC(2025, 0, 2, 3, 4, 5, 678);
const WALL_STR = '2025-01-02T03:04:05.678000Z';
const opts = { leaseDurationMs: 15_000, wallNowMs: WALL };

function rec(partial: Partial<LeaseRecord>): LeaseRecord {
  return {
    holderIdentity: 'other',
    leaseDurationSeconds: 15,
    acquireTime: '2025-01-01T00:00:00.000000Z',
    renewTime: '2025-01-01T00:00:10.000000Z',
    leaseTransitions: 3,
    ...partial,
  };
}

describe('decideLeaseAction', () => {
  it('creates an absent lease, holding it from now with no transitions', () => {
    assert.deepEqual(decideLeaseAction(undefined, 0, 'me', opts), {
      action: 'create',
      record: {
        holderIdentity: 'me',
        leaseDurationSeconds: 15,
        acquireTime: WALL_STR,
        renewTime: WALL_STR,
        leaseTransitions: 0,
      },
    });
  });

  it('waits while another holder is within leaseDuration of our observation', () => {
    const observed = { record: rec({}), observedAtMs: 1_000 };
    assert.deepEqual(decideLeaseAction(observed, 1_000, 'me', opts), {
      action: 'wait',
      holder: 'other',
      expiresAtMs: 16_000,
    });
    assert.equal(decideLeaseAction(observed, 15_999, 'me', opts).action, 'wait');
  });

  it('takes over once leaseDuration has passed since the observation, counting a transition', () => {
    const observed = { record: rec({}), observedAtMs: 1_000 };
    assert.deepEqual(decideLeaseAction(observed, 16_000, 'me', opts), {
      action: 'update',
      takeover: true,
      record: {
        holderIdentity: 'me',
        leaseDurationSeconds: 15,
        acquireTime: WALL_STR,
        renewTime: WALL_STR,
        leaseTransitions: 4,
      },
    });
  });

  it("ignores the holder's renewTime: an ancient renewTime first observed now still waits", () => {
    const observed = { record: rec({ renewTime: '2001-01-01T00:00:00.000000Z' }), observedAtMs: 50_000 };
    assert.equal(decideLeaseAction(observed, 50_001, 'me', opts).action, 'wait');
  });

  it("uses the record's leaseDurationSeconds, not ours", () => {
    const observed = { record: rec({ leaseDurationSeconds: 60 }), observedAtMs: 0 };
    assert.equal(decideLeaseAction(observed, 30_000, 'me', opts).action, 'wait');
    assert.equal(decideLeaseAction(observed, 60_000, 'me', opts).action, 'update');
  });

  it('takes a released lease at once', () => {
    const observed = { record: releasedRecord(rec({ leaseTransitions: 7 }), 0), observedAtMs: 1_000 };
    const d = decideLeaseAction(observed, 1_000, 'me', opts);
    assert.equal(d.action, 'update');
    assert.equal(d.action === 'update' && d.takeover, true);
    assert.equal(d.action === 'update' && d.record.leaseTransitions, 8);
  });

  it('renews its own lease keeping acquireTime and transitions', () => {
    const observed = { record: rec({ holderIdentity: 'me' }), observedAtMs: 1_000 };
    assert.deepEqual(decideLeaseAction(observed, 2_000, 'me', opts), {
      action: 'update',
      takeover: false,
      record: {
        holderIdentity: 'me',
        leaseDurationSeconds: 15,
        acquireTime: '2025-01-01T00:00:00.000000Z',
        renewTime: WALL_STR,
        leaseTransitions: 3,
      },
    });
    // Even when the observation is old (e.g. the same identity restarted).
    assert.equal(decideLeaseAction(observed, 1e9, 'me', opts).action, 'update');
  });
});

describe('observeLease', () => {
  it('keeps the observation time while the record is unchanged and restarts it on change', () => {
    const first = observeLease(undefined, rec({}), 100);
    assert.equal(first.observedAtMs, 100);
    assert.equal(observeLease(first, rec({}), 200).observedAtMs, 100);
    assert.equal(
      observeLease(first, rec({ renewTime: '2025-01-01T00:00:12.000000Z' }), 300).observedAtMs,
      300,
    );
    assert.equal(observeLease(first, rec({ holderIdentity: 'x' }), 400).observedAtMs, 400);
  });
});

describe('canRenewOptimistically', () => {
  it('only for our own unexpired observation', () => {
    const mine = { record: rec({ holderIdentity: 'me' }), observedAtMs: 0 };
    assert.equal(canRenewOptimistically(mine, 14_999, 'me'), true);
    assert.equal(canRenewOptimistically(mine, 15_000, 'me'), false);
    assert.equal(canRenewOptimistically(mine, 0, 'you'), false);
    assert.equal(canRenewOptimistically(undefined, 0, 'me'), false);
  });
});

describe('records', () => {
  it('releasedRecord empties the holder and sets a 1 s duration', () => {
    assert.deepEqual(releasedRecord(rec({ holderIdentity: 'me', leaseTransitions: 2 }), WALL), {
      holderIdentity: '',
      leaseDurationSeconds: 1,
      acquireTime: WALL_STR,
      renewTime: WALL_STR,
      leaseTransitions: 2,
    });
  });

  it('formatMicroTime writes six fractional digits', () => {
    assert.equal(formatMicroTime(WALL), WALL_STR);
    assert.match(formatMicroTime(Date.now()), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });

  it('recordFromSpec accepts the strings client-node returns, Dates, and missing fields', () => {
    assert.deepEqual(recordFromSpec(undefined), {
      holderIdentity: '',
      leaseDurationSeconds: 0,
      leaseTransitions: 0,
    });
    assert.deepEqual(
      recordFromSpec({
        holderIdentity: 'a',
        leaseDurationSeconds: 15,
        renewTime: '2025-01-01T00:00:00.123456Z',
        acquireTime: new Date(WALL),
        leaseTransitions: 2,
      }),
      {
        holderIdentity: 'a',
        leaseDurationSeconds: 15,
        renewTime: '2025-01-01T00:00:00.123456Z',
        acquireTime: WALL_STR,
        leaseTransitions: 2,
      },
    );
    assert.equal(recordFromSpec({ holderIdentity: null }).holderIdentity, '');
  });

  it('leaseDurationSecondsOf rounds up to whole seconds, at least 1', () => {
    assert.equal(leaseDurationSecondsOf(15_000), 15);
    assert.equal(leaseDurationSecondsOf(1_500), 2);
    assert.equal(leaseDurationSecondsOf(10), 1);
  });
});

describe('validateTimings', () => {
  it('applies the client-go constraints', () => {
    validateTimings({ leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 });
    assert.throws(
      () => validateTimings({ leaseDurationMs: 10_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }),
      /leaseDurationMs/,
    );
    assert.throws(
      () => validateTimings({ leaseDurationMs: 15_000, renewDeadlineMs: 2_400, retryPeriodMs: 2_000 }),
      /1\.2/,
    );
    assert.throws(
      () => validateTimings({ leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 0 }),
      /retryPeriodMs/,
    );
  });
});
