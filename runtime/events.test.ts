import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CoreV1Api } from '@kubernetes/client-node';
import { pino } from 'pino';
import { COMBINED_PREFIX, EventCorrelator, EventRecorder, type EventTarget } from './events.ts';

const pod = (name: string): EventTarget => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'ns', uid: `uid-${name}` },
});
const at = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms);

describe('EventCorrelator (client-go semantics)', () => {
  it('an identical event updates the first one: count and lastTimestamp, firstTimestamp kept', () => {
    const c = new EventCorrelator();
    const first = c.correlate(pod('a'), { type: 'Normal', reason: 'Injected', message: 'm' }, at(0));
    assert.equal(first.action, 'create');
    if (first.action !== 'create') return;
    c.written(first.key, 'a.1');
    const second = c.correlate(pod('a'), { type: 'Normal', reason: 'Injected', message: 'm' }, at(1000));
    assert.equal(second.action, 'update');
    if (second.action !== 'update') return;
    assert.equal(second.name, 'a.1');
    assert.equal(second.count, 2);
    assert.deepEqual(second.event.firstTimestamp, at(0));
    assert.deepEqual(second.event.lastTimestamp, at(1000));
  });

  it('another object, type, reason or message is another Event', () => {
    const c = new EventCorrelator();
    const base = { type: 'Normal' as const, reason: 'Injected', message: 'm' };
    const d0 = c.correlate(pod('a'), base, at(0));
    if (d0.action === 'create') c.written(d0.key, 'x');
    for (const [t, e] of [
      [pod('b'), base],
      [pod('a'), { ...base, type: 'Warning' as const }],
      [pod('a'), { ...base, reason: 'InjectionSkipped' }],
      [pod('a'), { ...base, message: 'other' }],
    ] as const) {
      assert.equal(c.correlate(t, e, at(1)).action, 'create');
    }
  });

  it('from the 10th distinct message within 10 minutes, similar events collapse into one', () => {
    const c = new EventCorrelator();
    const decisions = Array.from({ length: 14 }, (_, i) => {
      const d = c.correlate(pod('a'), { type: 'Normal', reason: 'Flap', message: `m${i}` }, at(i * 1000));
      if (d.action === 'create') c.written(d.key, `ev-${i}`);
      return d;
    });
    assert.deepEqual(
      decisions.slice(0, 9).map((d) => d.action),
      Array(9).fill('create'),
    );
    const combined = decisions[9]!;
    assert.equal(combined.action, 'create');
    if (combined.action === 'create') assert.equal(combined.event.message, `${COMBINED_PREFIX}m9`);
    for (const d of decisions.slice(10)) {
      assert.equal(d.action, 'update', 'later similar events update the combined Event');
      if (d.action === 'update') assert.equal(d.name, 'ev-9');
    }
  });

  it('aggregation restarts after the window', () => {
    const c = new EventCorrelator({ aggregateMaxEvents: 3, aggregateWindowMs: 60_000 });
    for (let i = 0; i < 3; i++)
      c.correlate(pod('a'), { type: 'Normal', reason: 'R', message: `m${i}` }, at(i));
    const later = c.correlate(pod('a'), { type: 'Normal', reason: 'R', message: 'fresh' }, at(120_000));
    assert.equal(later.action, 'create');
    if (later.action === 'create') assert.equal(later.event.message, 'fresh');
  });

  it('spam filter: a burst of 25 per object, then one per 5 minutes', () => {
    const c = new EventCorrelator();
    const actions = Array.from(
      { length: 30 },
      (_, i) => c.correlate(pod('a'), { type: 'Normal', reason: 'R', message: `m${i % 3}` }, at(i)).action,
    );
    assert.equal(actions.filter((a) => a !== 'drop').length, 25);
    assert.equal(
      c.correlate(pod('b'), { type: 'Normal', reason: 'R', message: 'm' }, at(30)).action,
      'create',
    );
    assert.equal(
      c.correlate(pod('a'), { type: 'Normal', reason: 'R', message: 'm' }, at(60_000)).action,
      'drop',
    );
    assert.notEqual(
      c.correlate(pod('a'), { type: 'Normal', reason: 'R', message: 'm' }, at(5 * 60_000 + 30)).action,
      'drop',
    );
  });

  it('spamFiltered says what the spam filter would do, without taking a token', () => {
    const c = new EventCorrelator({ spamBurst: 2, spamRefillMs: 60_000 });
    const input = { type: 'Normal' as const, reason: 'R', message: 'm' };
    for (let i = 0; i < 5; i++) assert.equal(c.spamFiltered(pod('a'), at(0)), false, 'a fresh bucket');
    c.correlate(pod('a'), input, at(0));
    assert.equal(c.spamFiltered(pod('a'), at(1)), false, 'one token left');
    c.correlate(pod('a'), input, at(1));
    assert.equal(c.spamFiltered(pod('a'), at(2)), true);
    assert.equal(c.correlate(pod('a'), input, at(2)).action, 'drop', 'as the filter decides');
    assert.equal(c.spamFiltered(pod('b'), at(2)), false, 'per object');
    assert.equal(c.spamFiltered(pod('a'), at(60_001)), false, 'refilled with time');
    assert.notEqual(c.correlate(pod('a'), input, at(60_001)).action, 'drop');
  });

  it('messages are cut at 1024 characters', () => {
    const d = new EventCorrelator().correlate(
      pod('a'),
      { type: 'Normal', reason: 'R', message: 'x'.repeat(5000) },
      at(0),
    );
    assert.equal(d.action === 'create' && d.event.message.length, 1024);
  });
});

describe('EventRecorder', () => {
  /** An in-memory stand-in for the two Event calls, to check what the recorder sends. */
  function fakeCore() {
    const events = new Map<string, Record<string, unknown>>();
    const calls: string[] = [];
    const core = {
      async createNamespacedEvent({ body }: { body: { metadata: { name: string } } }) {
        calls.push('create');
        events.set(body.metadata.name, body as never);
        return body;
      },
      async patchNamespacedEvent({ name, body }: { name: string; body: Record<string, unknown> }) {
        calls.push('patch');
        const e = events.get(name);
        if (!e) throw Object.assign(new Error('not found'), { code: 404 });
        Object.assign(e, body);
        return e;
      },
    };
    return { core: core as unknown as CoreV1Api, events, calls };
  }

  it('a 1,000-replica rollout within a minute writes one Event, its count capped by the spam filter', async () => {
    const f = fakeCore();
    let t = 0;
    const tick = (): Date => {
      t += 50;
      return at(t);
    };
    const r = new EventRecorder({
      core: f.core,
      component: 'netmesh-webhook',
      instance: 'test',
      log: pino({ level: 'silent' }),
      now: tick,
    });
    const deployment: EventTarget = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'ns', uid: 'u' },
    };
    for (let i = 0; i < 1000; i++)
      r.record(deployment, { type: 'Normal', reason: 'Injected', message: 'sidecar injected' });
    await r.flush();
    assert.equal(f.events.size, 1, 'one Event object');
    assert.equal(f.calls.filter((c) => c === 'create').length, 1);
    const e = [...f.events.values()][0]!;
    assert.equal(
      e['count'],
      25,
      'the spam filter let 25 through in the burst, the rest within it were dropped',
    );
  });

  it('an expired Event (404 on update) is created anew', async () => {
    const f = fakeCore();
    const r = new EventRecorder({
      core: f.core,
      component: 'c',
      instance: 'i',
      log: pino({ level: 'silent' }),
    });
    r.record(pod('a'), { type: 'Normal', reason: 'R', message: 'm' });
    await r.flush();
    f.events.clear();
    r.record(pod('a'), { type: 'Normal', reason: 'R', message: 'm' });
    await r.flush();
    assert.deepEqual(f.calls, ['create', 'patch', 'create']);
    assert.equal(f.events.size, 1);
  });

  it('a named Event is per name; one another replica already wrote (409) counts as written', async () => {
    const f = fakeCore();
    const r = new EventRecorder({
      core: f.core,
      component: 'c',
      instance: 'i',
      log: pino({ level: 'silent' }),
    });
    const input = { type: 'Warning', reason: 'InvalidTemplate', message: 'm' } as const;
    r.record(pod('a'), input, { name: 'a.invalid-template.1' });
    r.record(pod('a'), input, { name: 'a.invalid-template.1' });
    r.record(pod('a'), input, { name: 'a.invalid-template.2' });
    await r.flush();
    assert.deepEqual(f.calls, ['create', 'patch', 'create']);
    assert.deepEqual([...f.events.keys()].sort(), ['a.invalid-template.1', 'a.invalid-template.2']);

    const taken = fakeCore();
    const create = taken.core.createNamespacedEvent.bind(taken.core);
    taken.core.createNamespacedEvent = (async () => {
      throw Object.assign(new Error('already exists'), { code: 409 });
    }) as never;
    const other = new EventRecorder({
      core: taken.core,
      component: 'c',
      instance: 'other',
      log: pino({ level: 'silent' }),
    });
    other.record(pod('a'), input, { name: 'a.invalid-template.1' });
    await other.flush();
    taken.core.createNamespacedEvent = create;
    taken.events.set('a.invalid-template.1', { count: 1 });
    other.record(pod('a'), input, { name: 'a.invalid-template.1' });
    await other.flush();
    assert.equal(taken.calls.at(-1), 'patch', 'the existing Event is counted up');
  });

  it('a failing API never throws to the caller', async () => {
    const core = {
      createNamespacedEvent: async () => {
        throw new Error('boom');
      },
    } as unknown as CoreV1Api;
    const r = new EventRecorder({ core, component: 'c', instance: 'i', log: pino({ level: 'silent' }) });
    r.record(pod('a'), { type: 'Warning', reason: 'R', message: 'm' });
    await r.flush();
  });
});
