// The elector's loop, renew deadline and release on a fake clock, against an in-memory Lease
// store with the apiserver's optimistic-concurrency rules (the real apiserver is exercised in
// e2e/runtime/leader-election.test.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { pino } from 'pino';
import {
  LeaderElector,
  type LeaderElectorOptions,
  type LeaseClient,
  type StoppedLeadingInfo,
} from './leader-election.ts';
import { FakeClock } from './queue/index.ts';

class MemoryLeases {
  lease: V1Lease | undefined;
  rv = 0;
  down = false;
  writes = 0;

  client(): LeaseClient {
    const check = () => {
      if (this.down) throw Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
    };
    return {
      read: async () => {
        check();
        return this.lease ? structuredClone(this.lease) : undefined;
      },
      create: async (body) => {
        check();
        if (this.lease) throw Object.assign(new Error('exists'), { code: 409 });
        this.lease = {
          ...structuredClone(body),
          metadata: { ...body.metadata, resourceVersion: String(++this.rv) },
        };
        this.writes++;
        return structuredClone(this.lease);
      },
      replace: async (body) => {
        check();
        if (!this.lease) throw Object.assign(new Error('not found'), { code: 404 });
        if (body.metadata?.resourceVersion !== this.lease.metadata?.resourceVersion) {
          throw Object.assign(new Error('conflict'), { code: 409 });
        }
        this.lease = {
          ...structuredClone(body),
          metadata: { ...body.metadata, resourceVersion: String(++this.rv) },
        };
        this.writes++;
        return structuredClone(this.lease);
      },
    };
  }
}

const settle = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
};

async function advance(clock: FakeClock, ms: number, step = 100): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.step(Math.min(step, ms - t));
    await settle();
  }
}

interface Candidate {
  elector: LeaderElector;
  events: string[];
  signals: AbortSignal[];
}

function candidate(
  identity: string,
  store: MemoryLeases,
  clock: FakeClock,
  extra: Partial<LeaderElectorOptions> = {},
): Candidate {
  const events: string[] = [];
  const signals: AbortSignal[] = [];
  const elector = new LeaderElector({
    kc: new KubeConfig(),
    namespace: 'ns',
    name: 'lock',
    identity,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    onStartedLeading: (signal) => {
      events.push('started');
      signals.push(signal);
    },
    onStoppedLeading: (info: StoppedLeadingInfo) => {
      events.push(`stopped:${info.reason}`);
    },
    onNewLeader: (id) => {
      events.push(`leader:${id}`);
    },
    log: pino({ level: 'silent' }),
    clock,
    random: () => 0.5,
    client: store.client(),
    ...extra,
  });
  return { elector, events, signals };
}

describe('LeaderElector (fake clock, in-memory lease)', () => {
  it('creates the lease, leads, and renews every retryPeriod', async () => {
    const clock = new FakeClock(0);
    const store = new MemoryLeases();
    const a = candidate('a', store, clock);
    a.elector.start();
    clock.step(0);
    await settle();
    assert.equal(a.elector.isLeader(), true);
    assert.equal(a.elector.leader(), 'a');
    assert.deepEqual(a.events, ['leader:a', 'started']);
    assert.equal(store.lease?.spec?.holderIdentity, 'a');
    assert.equal(store.lease?.spec?.leaseTransitions, 0);
    assert.equal(store.lease?.spec?.leaseDurationSeconds, 15);
    assert.match(String(store.lease?.spec?.renewTime), /\.\d{6}Z$/);
    const writes = store.writes;
    await advance(clock, 10_000);
    assert.equal(store.writes - writes, 5, 'one renewal per retryPeriod');
    assert.equal(a.elector.isLeader(), true);
    await a.elector.release();
    assert.deepEqual(a.events, ['leader:a', 'started', 'stopped:released']);
    assert.equal(a.signals[0]?.aborted, true);
    assert.equal(store.lease?.spec?.holderIdentity, '');
    assert.equal(store.lease?.spec?.leaseDurationSeconds, 1);
    assert.equal(clock.pendingTimers(), 0);
  });

  it('exactly one of two candidates leads; the standby takes over at once after release()', async () => {
    const clock = new FakeClock(0);
    const store = new MemoryLeases();
    const a = candidate('a', store, clock);
    const b = candidate('b', store, clock);
    a.elector.start();
    b.elector.start();
    for (let i = 0; i < 100; i++) {
      await advance(clock, 100);
      assert.ok(!(a.elector.isLeader() && b.elector.isLeader()), 'two leaders');
    }
    const [leader, standby] = a.elector.isLeader() ? [a, b] : [b, a];
    assert.equal(leader.elector.isLeader(), true);
    assert.equal(standby.elector.leader(), leader.elector.identity);
    assert.deepEqual(standby.events, [`leader:${leader.elector.identity}`]);

    await leader.elector.release();
    const released = clock.now();
    while (!standby.elector.isLeader()) await advance(clock, 100);
    // The standby's next attempt: at most 2.2 retry periods away.
    assert.ok(clock.now() - released <= 4_400, `took ${clock.now() - released} ms`);
    assert.equal(store.lease?.spec?.holderIdentity, standby.elector.identity);
    assert.equal(store.lease?.spec?.leaseTransitions, 1);
    await standby.elector.release();
  });

  it('without release, the standby waits out leaseDuration from its last observation', async () => {
    const clock = new FakeClock(0);
    const store = new MemoryLeases();
    const a = candidate('a', store, clock);
    a.elector.start();
    await advance(clock, 100);
    const b = candidate('b', store, clock);
    b.elector.start();
    await advance(clock, 10_000);
    assert.equal(a.elector.isLeader(), true);
    await a.elector.stop();
    assert.deepEqual(a.events.slice(-1), ['stopped:stopped']);
    assert.equal(store.lease?.spec?.holderIdentity, 'a', 'stop() does not release');
    const stopped = clock.now();
    while (!b.elector.isLeader()) await advance(clock, 100);
    const took = clock.now() - stopped;
    // b saw a's final record between a's last renewal (<= 2 s before the stop) and its own next
    // poll (<= 3.2 s after), and notices the expiry at its first poll after leaseDuration.
    assert.ok(took >= 15_000 - 2_000 && took <= 15_000 + 2 * 3_200, `took ${took} ms`);
    assert.equal(store.lease?.spec?.leaseTransitions, 1);
    await b.elector.release();
  });

  it('stops leading when renewals fail for renewDeadline, then leads again once they work', async () => {
    const clock = new FakeClock(0);
    const store = new MemoryLeases();
    const a = candidate('a', store, clock);
    a.elector.start();
    await advance(clock, 100);
    assert.equal(a.elector.isLeader(), true);
    await advance(clock, 2_000); // a renewal at t=2000
    store.down = true;
    const downAt = clock.now();
    while (a.elector.isLeader()) await advance(clock, 100);
    const lostAfter = clock.now() - downAt;
    // Deadline counted from the start of the last successful attempt (t=2000).
    assert.ok(lostAfter <= 10_000, `lost after ${lostAfter} ms`);
    assert.ok(lostAfter >= 10_000 - 2_100, `lost after ${lostAfter} ms`);
    assert.deepEqual(a.events, ['leader:a', 'started', 'stopped:lost']);
    assert.equal(a.signals[0]?.aborted, true);
    store.down = false;
    while (!a.elector.isLeader()) await advance(clock, 100);
    assert.deepEqual(a.events.slice(-1), ['started']);
    assert.equal(a.signals[1]?.aborted, false);
    assert.equal(store.lease?.spec?.leaseTransitions, 0, 'same holder: no transition');
    await a.elector.release();
  });

  it('a leader that reads another holder in its lease steps down at once, not at its renew deadline', async () => {
    const clock = new FakeClock(0);
    const store = new MemoryLeases();
    const a = candidate('a', store, clock);
    a.elector.start();
    await advance(clock, 100);
    // Somebody overwrites the lease (e.g. an operator with kubectl).
    const lease = store.lease!;
    store.lease = {
      ...lease,
      spec: { ...lease.spec, holderIdentity: 'intruder' },
      metadata: { ...lease.metadata, resourceVersion: String(++store.rv) },
    };
    const t0 = clock.now();
    while (a.elector.isLeader()) await advance(clock, 100);
    // Its next renewal (one retry period later) reads the intruder: from then on it knows it
    // lost, and leading until the renew deadline (10 s) would let it write beside the new
    // leader.
    assert.ok(clock.now() - t0 <= 2_000, `stepped down after ${clock.now() - t0} ms`);
    assert.equal(a.signals[0]?.aborted, true);
    assert.deepEqual(a.events, ['leader:a', 'started', 'leader:intruder', 'stopped:lost']);
    assert.equal(a.elector.leader(), 'intruder');
    await a.elector.stop();
    assert.equal(store.lease?.spec?.holderIdentity, 'intruder');
  });

  it('release() waits for the leading work to wind down before handing over', async () => {
    const clock = new FakeClock(0);
    const store = new MemoryLeases();
    const order: string[] = [];
    const a = candidate('a', store, clock, {
      onStartedLeading: (signal) =>
        new Promise<void>((resolve) => {
          signal.addEventListener('abort', () => {
            setImmediate(() => {
              order.push(`work stopped, holder=${store.lease?.spec?.holderIdentity}`);
              resolve();
            });
          });
        }),
    });
    a.elector.start();
    await advance(clock, 100);
    await a.elector.release();
    order.push(`released, holder=${store.lease?.spec?.holderIdentity}`);
    assert.deepEqual(order, ['work stopped, holder=a', 'released, holder=']);
  });

  it('run() resolves after stop; callbacks that throw do not break the loop', async () => {
    const clock = new FakeClock(0);
    const store = new MemoryLeases();
    const a = candidate('a', store, clock, {
      onStartedLeading: () => {
        throw new Error('bug');
      },
      onNewLeader: () => {
        throw new Error('bug');
      },
    });
    let finished = false;
    const run = a.elector.run().then(() => {
      finished = true;
    });
    await advance(clock, 5_000);
    assert.equal(a.elector.isLeader(), true);
    assert.equal(finished, false);
    await a.elector.stop();
    await run;
    assert.equal(finished, true);
  });

  it('validates its timings and identity', () => {
    const base = {
      kc: new KubeConfig(),
      namespace: 'ns',
      name: 'l',
      identity: 'a',
      onStartedLeading: () => {},
      onStoppedLeading: () => {},
      log: pino({ level: 'silent' }),
      client: new MemoryLeases().client(),
    };
    assert.throws(
      () => new LeaderElector({ ...base, leaseDurationMs: 5_000, renewDeadlineMs: 6_000 }),
      RangeError,
    );
    assert.throws(() => new LeaderElector({ ...base, identity: '' }), /identity/);
  });
});
