// runtime/leader-election.ts against the real apiserver: real Leases, real optimistic
// concurrency (409 on create races and concurrent takeovers), real MicroTime parsing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { pino } from 'pino';
import {
  coordinationLeaseClient,
  isConflict,
  LeaderElector,
  type StoppedLeadingInfo,
} from '../../runtime/leader-election.ts';
import { createNamespace, deleteNamespace, eventually, useCluster } from '../support.ts';

// Short timings so that takeovers happen in seconds; leaseDurationSeconds = 4.
const TIMINGS = { leaseDurationMs: 4_000, renewDeadlineMs: 3_000, retryPeriodMs: 500 };
const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

interface Candidate {
  id: string;
  elector: LeaderElector;
  events: string[];
  signals: AbortSignal[];
}

describe('runtime LeaderElector (real apiserver)', () => {
  const h = useCluster();
  let ns = '';
  let coord: k8s.CoordinationV1Api;
  const all: Candidate[] = [];

  before(async () => {
    ns = await createNamespace(h, 'rt-le');
    coord = h.kc.makeApiClient(k8s.CoordinationV1Api);
  });
  after(async () => {
    for (const c of all) await c.elector.stop();
    if (ns) await deleteNamespace(h, ns);
  });

  function candidates(lease: string, ...ids: string[]): Candidate[] {
    return ids.map((id) => {
      const events: string[] = [];
      const signals: AbortSignal[] = [];
      const c: Candidate = {
        id,
        events,
        signals,
        elector: new LeaderElector({
          kc: h.kc,
          namespace: ns,
          name: lease,
          identity: id,
          ...TIMINGS,
          onStartedLeading: (signal) => {
            events.push('started');
            signals.push(signal);
          },
          onStoppedLeading: (info: StoppedLeadingInfo) => {
            events.push(`stopped:${info.reason}`);
          },
          onNewLeader: (leader) => {
            events.push(`leader:${leader}`);
          },
          log: pino({ level: process.env['NETMESH_LOG_LEVEL'] ?? 'silent' }),
        }),
      };
      all.push(c);
      return c;
    });
  }

  /** Samples every 10 ms; stop() fails the test if two candidates ever led at once. */
  function watchForSplitBrain(cs: Candidate[]): { stop(): void } {
    let violation: string | undefined;
    const timer = setInterval(() => {
      const leaders = cs.filter((c) => c.elector.isLeader()).map((c) => c.id);
      if (leaders.length > 1) violation ??= `two leaders at once: ${leaders.join(', ')}`;
    }, 10);
    return {
      stop: () => {
        clearInterval(timer);
        assert.equal(violation, undefined);
      },
    };
  }

  const leaderOf = async (cs: Candidate[]): Promise<Candidate> =>
    eventually(
      'a leader',
      async () => {
        const leaders = cs.filter((c) => c.elector.isLeader());
        assert.ok(leaders.length <= 1, 'at most one leader');
        return leaders[0];
      },
      { intervalMs: 20 },
    );

  const readLease = (name: string) => coord.readNamespacedLease({ namespace: ns, name });

  test('the lease client: 404 reads as absent, create races and stale replaces get 409, requests can be aborted', async () => {
    const client = coordinationLeaseClient(h.kc, ns, 'client');
    const signal = () => AbortSignal.timeout(10_000);
    assert.equal(await client.read(signal()), undefined);
    const now = `${new Date().toISOString().slice(0, -1)}000Z` as unknown as k8s.V1MicroTime;
    const body: k8s.V1Lease = {
      metadata: { name: 'client', namespace: ns },
      spec: {
        holderIdentity: 'x',
        leaseDurationSeconds: 4,
        renewTime: now,
        acquireTime: now,
        leaseTransitions: 0,
      },
    };
    const created = await client.create(body, signal());
    await assert.rejects(client.create(body, signal()), (err) => isConflict(err));
    // Two takeovers from the same observed resourceVersion: the first wins, the second conflicts.
    const seen = await client.read(signal());
    assert.ok(seen);
    assert.equal(seen.metadata?.resourceVersion, created.metadata?.resourceVersion);
    const take = (id: string): k8s.V1Lease => ({
      ...seen,
      spec: { ...seen.spec, holderIdentity: id, leaseTransitions: 1 },
    });
    await client.replace(take('first'), signal());
    await assert.rejects(client.replace(take('second'), signal()), (err) => isConflict(err));
    assert.equal((await client.read(signal()))?.spec?.holderIdentity, 'first');
    // A plain Date (three fractional digits) is what the apiserver refuses for MicroTime.
    const dated = {
      ...body,
      metadata: { name: 'client-date', namespace: ns },
      spec: { ...body.spec, renewTime: new Date() },
    };
    await assert.rejects(client.create(dated, signal()), (err) => (err as { code?: number }).code === 400);
    await assert.rejects(client.read(AbortSignal.abort(new Error('cancelled'))), /cancelled/);
  });

  test('exactly one of two candidates leads; the Lease records it with MicroTime timestamps', async () => {
    const cs = candidates('one-of-two', 'alpha', 'beta');
    const guard = watchForSplitBrain(cs);
    // Both start at once on an absent Lease: one create wins, the other gets 409.
    for (const c of cs) c.elector.start();
    const leader = await leaderOf(cs);
    const standby = cs.find((c) => c !== leader)!;

    const lease = await readLease('one-of-two');
    assert.equal(lease.spec?.holderIdentity, leader.id);
    assert.equal(lease.spec?.leaseTransitions, 0);
    assert.equal(lease.spec?.leaseDurationSeconds, 4);
    // client-node returns MicroTime fields as the strings the apiserver sent.
    assert.match(String(lease.spec?.renewTime), MICRO_TIME);
    assert.match(String(lease.spec?.acquireTime), MICRO_TIME);

    // It keeps renewing, leadership stays put for longer than a lease duration.
    await new Promise((r) => setTimeout(r, 5_000));
    assert.equal(leader.elector.isLeader(), true);
    assert.equal(standby.elector.isLeader(), false);
    const later = await readLease('one-of-two');
    assert.equal(later.spec?.holderIdentity, leader.id);
    assert.equal(later.spec?.leaseTransitions, 0);
    assert.equal(
      String(later.spec?.acquireTime),
      String(lease.spec?.acquireTime),
      'renewals keep acquireTime',
    );
    assert.ok(
      // Renewals every retry period: 5 s later it has moved on by well over half of that, even
      // with a renewal or two delayed on a loaded machine.
      Date.parse(String(later.spec?.renewTime)) - Date.parse(String(lease.spec?.renewTime)) >= 3_000,
      'renewTime advances',
    );
    assert.equal(standby.elector.leader(), leader.id);
    assert.deepEqual(standby.events, [`leader:${leader.id}`]);
    assert.deepEqual(leader.events, [`leader:${leader.id}`, 'started']);
    guard.stop();
    for (const c of cs) await c.elector.release();
  });

  test('release() hands over within a retry period; of two racing standbys exactly one takes over', async () => {
    const cs = candidates('release', 'r1', 'r2', 'r3');
    const guard = watchForSplitBrain(cs);
    for (const c of cs) c.elector.start();
    const leader = await leaderOf(cs);
    await new Promise((r) => setTimeout(r, 1_000));
    const t0 = Date.now();
    await leader.elector.release();
    assert.deepEqual(leader.events.slice(-1), ['stopped:released']);
    assert.equal(leader.signals[0]?.aborted, true);
    const next = await leaderOf(cs.filter((c) => c !== leader));
    const took = Date.now() - t0;
    // Next attempt at most 2.2 retry periods away (1.1 s), plus round trips on a loaded machine:
    // below the 4 s lease duration, which is what a takeover without release() would wait.
    assert.ok(took < 3_000, `takeover took ${took} ms`);
    const lease = await readLease('release');
    assert.equal(lease.spec?.holderIdentity, next.id);
    assert.equal(lease.spec?.leaseTransitions, 1, 'both standbys raced; exactly one takeover went through');
    assert.equal(lease.spec?.leaseDurationSeconds, 4);
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(cs.filter((c) => c.elector.isLeader()).length, 1);
    // The losing standby learns the new holder at its next poll (up to 1.1 s after its last).
    await eventually(
      'every running candidate sees the new leader',
      async () => cs.every((c) => c === leader || c.elector.leader() === next.id),
      { timeoutMs: 3_000, intervalMs: 50 },
    );
    guard.stop();
    for (const c of cs) await c.elector.release();
  });

  test('a leader that stops without releasing is replaced about one lease duration later', async () => {
    const cs = candidates('crash', 'c1', 'c2');
    const guard = watchForSplitBrain(cs);
    for (const c of cs) c.elector.start();
    const leader = await leaderOf(cs);
    const standby = cs.find((c) => c !== leader)!;
    await new Promise((r) => setTimeout(r, 1_500));
    const t0 = Date.now();
    await leader.elector.stop();
    assert.deepEqual(leader.events.slice(-1), ['stopped:stopped']);
    assert.equal(
      (await readLease('crash')).spec?.holderIdentity,
      leader.id,
      'stop() leaves the Lease as it was',
    );
    await eventually('the standby to take over', async () => standby.elector.isLeader(), {
      timeoutMs: 15_000,
      intervalMs: 20,
    });
    const took = Date.now() - t0;
    // The standby saw the final renewal at most a retry period before the stop (or its own
    // jittered poll after it), and notices the expiry at its first poll after 4 s; the upper
    // bound leaves 3 s for round trips and late timers on a loaded machine.
    assert.ok(took >= 3_000, `takeover after ${took} ms: before the lease expired`);
    assert.ok(took <= 4_000 + 2 * 1_100 + 3_000, `takeover after ${took} ms`);
    const lease = await readLease('crash');
    assert.equal(lease.spec?.holderIdentity, standby.id);
    assert.equal(lease.spec?.leaseTransitions, 1);
    guard.stop();
    await standby.elector.release();
  });

  test('a leader that finds the lease taken by someone else stops leading at its next renewal, not at its renew deadline', async () => {
    const [c] = candidates('intruder', 'victim');
    assert.ok(c);
    c.elector.start();
    await eventually('victim leads', async () => c.elector.isLeader());
    // Another party rewrites the Lease behind the leader's back. A renewal landing between the
    // read and the replace is a 409: read again and retry, as any writer would.
    await eventually(
      'the Lease rewritten by an intruder',
      async () => {
        const lease = await readLease('intruder');
        const now = `${new Date().toISOString().slice(0, -1)}000Z`;
        lease.spec = {
          ...lease.spec,
          holderIdentity: 'intruder',
          renewTime: now as unknown as k8s.V1MicroTime,
        };
        return coord.replaceNamespacedLease({ namespace: ns, name: 'intruder', body: lease });
      },
      { intervalMs: 20 },
    );
    const t0 = Date.now();
    await eventually('victim to stop leading', async () => !c.elector.isLeader(), {
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    const took = Date.now() - t0;
    // Fencing: once the leader has read another holder it knows it lost; waiting for the renew
    // deadline would let it write for up to 3 s more while someone else leads.
    // The bound: one retry period plus round trips, still well inside the 3 s renew deadline.
    assert.ok(took <= TIMINGS.retryPeriodMs + 1_500, `stepped down after ${took} ms`);
    assert.deepEqual(c.events.slice(-2), ['leader:intruder', 'stopped:lost']);
    assert.equal(c.signals[0]?.aborted, true);
    assert.equal(c.elector.leader(), 'intruder');
    // The intruder never renews: once its lease expires the victim, still campaigning, takes it back.
    await eventually('victim to lead again', async () => c.elector.isLeader(), { timeoutMs: 15_000 });
    const back = await readLease('intruder');
    assert.equal(back.spec?.holderIdentity, 'victim');
    assert.equal(back.spec?.leaseTransitions, 1);
    await c.elector.release();
    const released = await readLease('intruder');
    assert.equal(released.spec?.holderIdentity ?? '', '');
    assert.equal(released.spec?.leaseDurationSeconds, 1);
  });
});
