// The informer shell driven through a fake watch transport and a fake clock: client-node's real
// ListWatch runs in between, so this exercises how the two interact without a cluster.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KubeConfig, type KubernetesListObject, type V1ConfigMap } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import {
  CacheSyncReport,
  Informer,
  type InformerOptions,
  type WatchTransport,
  waitForCacheSync,
} from './informer.ts';
import { FakeClock } from './queue/index.ts';

interface WatchCall {
  path: string;
  params: Record<string, string | number | boolean | undefined>;
  // biome-ignore lint/suspicious/noExplicitAny: mirrors Watch.watch
  emit: (phase: string, obj: any) => void;
  done: (err: unknown) => void;
  controller: AbortController;
}

/** Resolves at once (as if connected); abort ends the watch with an AbortError, like Watch. */
class FakeTransport implements WatchTransport {
  calls: WatchCall[] = [];
  failNext: unknown;
  rejectNext: unknown;

  async watch(
    path: string,
    params: Record<string, string | number | boolean | undefined>,
    // biome-ignore lint/suspicious/noExplicitAny: mirrors Watch.watch
    callback: (phase: string, obj: any, raw?: any) => void,
    // biome-ignore lint/suspicious/noExplicitAny: mirrors Watch.watch
    done: (err: any) => void,
  ): Promise<AbortController> {
    if (this.rejectNext !== undefined) {
      const err = this.rejectNext;
      this.rejectNext = undefined;
      throw err;
    }
    const controller = new AbortController();
    let finished = false;
    const finish = (err: unknown): void => {
      if (finished) return;
      finished = true;
      done(err);
    };
    const call: WatchCall = {
      path,
      params,
      emit: (phase, obj) => {
        if (!finished) callback(phase, obj, { type: phase, object: obj });
      },
      done: finish,
      controller,
    };
    controller.signal.addEventListener('abort', () => finish(new DOMException('aborted', 'AbortError')));
    this.calls.push(call);
    if (this.failNext !== undefined) {
      const err = this.failNext;
      this.failNext = undefined;
      finish(err);
    }
    return controller;
  }

  last(): WatchCall {
    const c = this.calls.at(-1);
    assert.ok(c, 'no watch call');
    return c;
  }
}

function cm(name: string, rv: string, data: Record<string, string> = {}): V1ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: 'ns', resourceVersion: rv },
    data,
  };
}

function listOf(rv: string, ...items: V1ConfigMap[]): KubernetesListObject<V1ConfigMap> {
  return { apiVersion: 'v1', kind: 'ConfigMapList', metadata: { resourceVersion: rv }, items };
}

const settle = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
};

interface Harness {
  inf: Informer<V1ConfigMap>;
  clock: FakeClock;
  transport: FakeTransport;
  events: string[];
  logs: Record<string, unknown>[];
  listCalls: () => number;
}

type ListStep =
  | KubernetesListObject<V1ConfigMap>
  | Error
  | (() => Promise<KubernetesListObject<V1ConfigMap>>);

function harness(lists: ListStep[], extra: Partial<InformerOptions<V1ConfigMap>> = {}): Harness {
  const clock = new FakeClock(1_000_000);
  const transport = new FakeTransport();
  const logs: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => logs.push(JSON.parse(s)) });
  let calls = 0;
  const inf = new Informer<V1ConfigMap>({
    kc: new KubeConfig(),
    path: '/api/v1/namespaces/ns/configmaps',
    list: async () => {
      calls++;
      const step = lists.length > 1 ? lists.shift() : lists[0];
      if (step === undefined) throw new Error('no list step');
      if (step instanceof Error) throw step;
      if (typeof step === 'function') return step();
      return structuredClone(step);
    },
    log,
    name: 'test',
    clock,
    random: () => 0.5,
    watch: transport,
    ...extra,
  });
  const events: string[] = [];
  inf.on('add', (o) => {
    events.push(`add ${o.metadata?.name}@${o.metadata?.resourceVersion}`);
  });
  inf.on('update', (o, old) => {
    events.push(
      `update ${o.metadata?.name}@${old?.metadata?.resourceVersion}->${o.metadata?.resourceVersion}`,
    );
  });
  inf.on('delete', (o) => {
    events.push(`delete ${o.metadata?.name}`);
  });
  return { inf, clock, transport, events, logs, listCalls: () => calls };
}

const names = (inf: Informer<V1ConfigMap>): string[] =>
  inf
    .list()
    .map((o) => o.metadata?.name ?? '')
    .sort();

describe('Informer', () => {
  it('lists, syncs, then applies watch events with (obj, oldObj) updates', async () => {
    const h = harness([listOf('10', cm('a', '1'), cm('b', '2'))]);
    assert.equal(h.inf.hasSynced(), false);
    h.inf.start();
    await h.inf.waitForSync();
    assert.equal(h.inf.hasSynced(), true);
    assert.deepEqual(h.events, ['add a@1', 'add b@2']);
    const w = h.transport.last();
    assert.equal(w.path, '/api/v1/namespaces/ns/configmaps');
    assert.equal(w.params['resourceVersion'], '10');
    assert.equal(w.params['allowWatchBookmarks'], true);
    assert.equal(w.params['timeoutSeconds'], 450); // 300 * (1 + 0.5)

    w.emit('MODIFIED', cm('a', '11', { k: 'v' }));
    w.emit('ADDED', cm('c', '12'));
    w.emit('DELETED', cm('b', '13'));
    assert.deepEqual(h.events.slice(2), ['update a@1->11', 'add c@12', 'delete b']);
    assert.deepEqual(names(h.inf), ['a', 'c']);
    assert.deepEqual(h.inf.get('a', 'ns')?.data, { k: 'v' });
    assert.equal(h.inf.get('b', 'ns'), undefined);
    assert.equal(h.inf.list('ns').length, 2);
    assert.equal(h.inf.list('other').length, 0);

    h.clock.step(5_000);
    assert.equal(h.inf.timeSinceLastEventMs(), 5_000);
    w.emit('BOOKMARK', { kind: 'ConfigMap', apiVersion: 'v1', metadata: { resourceVersion: '20' } });
    assert.equal(h.inf.timeSinceLastEventMs(), 0);
    assert.equal(h.events.length, 5, 'a bookmark is not an object event');

    // The next watch resumes from the bookmark's resourceVersion.
    w.done(null);
    await settle();
    assert.equal(h.transport.calls.length, 2);
    assert.equal(h.transport.last().params['resourceVersion'], '20');
    assert.equal(h.inf.restarts, 0);
    await h.inf.stop();
  });

  it('keeps and hands out objects without managedFields, from the list and from the watch', async () => {
    const managed = (o: V1ConfigMap): V1ConfigMap => ({
      ...o,
      metadata: {
        ...o.metadata,
        managedFields: [
          {
            manager: 'kubectl',
            operation: 'Apply',
            apiVersion: 'v1',
            fieldsType: 'FieldsV1',
            fieldsV1: { 'f:data': {} },
          },
        ],
      },
    });
    const h = harness([listOf('10', managed(cm('a', '1', { k: 'v' })))]);
    const seen: (V1ConfigMap | undefined)[] = [];
    h.inf.on('add', (o) => {
      seen.push(o);
    });
    h.inf.on('update', (o, old) => {
      seen.push(o, old);
    });
    h.inf.start();
    await h.inf.waitForSync();
    h.transport.last().emit('MODIFIED', managed(cm('a', '11', { k: 'w' })));
    h.transport.last().emit('ADDED', managed(cm('b', '12')));
    assert.equal(seen.length, 4);
    for (const o of [...seen, ...h.inf.list()]) assert.equal(o?.metadata?.managedFields, undefined);
    // Everything else stays.
    assert.deepEqual(h.inf.get('a', 'ns'), cm('a', '11', { k: 'w' }));
    await h.inf.stop();
  });

  it('re-lists after 410 Gone without counting a restart, emitting only the differences', async () => {
    const h = harness([
      listOf('10', cm('a', '1'), cm('b', '2')),
      listOf('30', cm('a', '1'), cm('b', '25'), cm('d', '26')),
    ]);
    h.inf.start();
    await h.inf.waitForSync();
    h.transport.last().emit('ADDED', cm('c', '12'));
    h.events.length = 0;
    h.transport
      .last()
      .emit('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' });
    h.transport.last().done(null); // the apiserver ends the watch after the ERROR event
    await settle();
    assert.equal(h.listCalls(), 2);
    assert.deepEqual(h.events.sort(), ['add d@26', 'delete c', 'update b@2->25']);
    assert.equal(h.transport.last().params['resourceVersion'], '30');
    assert.equal(h.inf.restarts, 0);
    await h.inf.stop();
  });

  it('restarts after list errors with exponential backoff and jitter, and resets it after a connect', async () => {
    const h = harness([new Error('list down 1'), new Error('list down 2'), listOf('10', cm('a', '1'))]);
    h.inf.start();
    await settle();
    assert.equal(h.inf.hasSynced(), false);
    // 1 s scaled by (1 - 0.2 * 0.5)
    assert.equal(h.clock.nextTimerAt(), 1_000_000 + 900);
    h.clock.step(900);
    await settle();
    assert.equal(h.inf.restarts, 1);
    assert.equal(h.clock.nextTimerAt(), 1_000_900 + 1_800);
    h.clock.step(1_800);
    await settle();
    assert.equal(h.inf.restarts, 2);
    assert.equal(h.inf.hasSynced(), true);
    assert.deepEqual(h.events, ['add a@1']);

    // The watch connected, so the next failure starts over at 1 s.
    h.transport.last().done(Object.assign(new Error('Internal Server Error'), { statusCode: 500 }));
    await settle();
    assert.equal(h.clock.nextTimerAt(), h.clock.now() + 900);
    const warn = h.logs.find((l) => l['msg'] === 'informer list/watch failed; restarting after backoff');
    assert.ok(warn);
    await h.inf.stop();
    assert.equal(h.clock.pendingTimers(), 0);
  });

  it('caps the backoff at 30 s', async () => {
    const h = harness([new Error('down')]);
    h.inf.start();
    await settle();
    for (let i = 0; i < 8; i++) {
      const next = h.clock.nextTimerAt();
      assert.ok(next !== undefined);
      h.clock.step(next - h.clock.now());
      await settle();
    }
    assert.equal(h.clock.nextTimerAt(), h.clock.now() + 27_000);
    await h.inf.stop();
  });

  it('after a watch error, re-lists in a new generation and ignores the old watch', async () => {
    const h = harness([
      listOf('10', cm('a', '1'), cm('b', '2'), cm('c', '3')),
      listOf('40', cm('a', '1'), cm('c', '35')),
    ]);
    h.inf.start();
    await h.inf.waitForSync();
    const first = h.transport.last();
    h.events.length = 0;
    first.done(Object.assign(new Error('Forbidden'), { statusCode: 403 }));
    await settle();
    // The broken watch must not feed the cache any more.
    first.emit('ADDED', cm('zombie', '99'));
    assert.equal(h.inf.get('zombie', 'ns'), undefined);
    h.clock.step(900);
    await settle();
    assert.equal(h.inf.restarts, 1);
    assert.deepEqual(h.events.sort(), ['delete b', 'update c@3->35']);
    assert.deepEqual(names(h.inf), ['a', 'c']);
    assert.equal(h.transport.last().params['resourceVersion'], '40');
    await h.inf.stop();
  });

  it('treats a transport that throws before connecting as a watch error', async () => {
    const h = harness([listOf('10', cm('a', '1'))]);
    h.transport.rejectNext = new Error('exec credential plugin failed');
    h.inf.start();
    await settle();
    assert.equal(h.transport.calls.length, 0);
    h.clock.step(900);
    await settle();
    assert.equal(h.inf.restarts, 1);
    assert.equal(h.transport.calls.length, 1);
    assert.equal(h.inf.hasSynced(), true);
    await h.inf.stop();
  });

  it('the watchdog restarts an informer that saw no activity for staleAfterMs', async () => {
    const h = harness([listOf('10', cm('a', '1'))], { staleAfterMs: 10_000 });
    h.inf.start();
    await h.inf.waitForSync();
    // Bookmarks keep it alive.
    for (let i = 0; i < 4; i++) {
      h.clock.step(6_000);
      h.transport.last().emit('BOOKMARK', { metadata: { resourceVersion: `${11 + i}` } });
    }
    assert.equal(h.inf.restarts, 0);
    h.clock.step(10_000);
    await settle();
    assert.equal(h.inf.restarts, 1);
    assert.equal(h.transport.calls.length, 2);
    assert.equal(h.transport.calls[0]?.controller.signal.aborted, true);
    assert.deepEqual(h.events, ['add a@1'], 'a restart that finds nothing new emits nothing');
    h.clock.step(9_999);
    await settle();
    assert.equal(h.inf.restarts, 1);
    h.clock.step(1);
    await settle();
    assert.equal(h.inf.restarts, 2);
    await h.inf.stop();
  });

  it('isolates throwing and rejecting handlers', async () => {
    const h = harness([listOf('10')]);
    const seen: string[] = [];
    h.inf.on('add', () => {
      throw new Error('handler bug');
    });
    h.inf.on('add', async () => {
      throw new Error('async handler bug');
    });
    h.inf.on('add', (o) => {
      seen.push(o.metadata?.name ?? '');
    });
    h.inf.start();
    await h.inf.waitForSync();
    h.transport.last().emit('ADDED', cm('a', '11'));
    h.transport.last().emit('ADDED', cm('b', '12'));
    await settle();
    assert.deepEqual(seen, ['a', 'b']);
    assert.deepEqual(names(h.inf), ['a', 'b']);
    const failures = h.logs.filter((l) => l['msg'] === 'informer handler failed');
    assert.equal(failures.length, 4);
    // ListWatch still tracked the resourceVersion: the next watch resumes after b.
    h.transport.last().done(null);
    await settle();
    assert.equal(h.transport.last().params['resourceVersion'], '12');
    await h.inf.stop();
  });

  it('unsubscribes handlers', async () => {
    const h = harness([listOf('10', cm('a', '1'))]);
    const seen: string[] = [];
    const off = h.inf.on('add', (o) => {
      seen.push(o.metadata?.name ?? '');
    });
    off();
    h.inf.start();
    await h.inf.waitForSync();
    assert.deepEqual(seen, []);
    await h.inf.stop();
  });

  it('stop() aborts the watch and clears every timer; start() re-lists and observes deletes made meanwhile', async () => {
    const h = harness([listOf('10', cm('a', '1'), cm('b', '2')), listOf('50', cm('b', '2'), cm('e', '45'))]);
    h.inf.start();
    await h.inf.waitForSync();
    const w = h.transport.last();
    await h.inf.stop();
    assert.equal(w.controller.signal.aborted, true);
    assert.equal(h.clock.pendingTimers(), 0);
    w.emit('ADDED', cm('late', '11'));
    assert.equal(h.inf.get('late', 'ns'), undefined);
    assert.deepEqual(names(h.inf), ['a', 'b'], 'the cache keeps its contents while stopped');
    assert.equal(h.inf.timeSinceLastEventMs() >= 0, true);
    const warn = h.logs.find((l) => l['level'] === 40);
    assert.equal(warn, undefined, 'stopping is not an error');

    h.events.length = 0;
    h.inf.start();
    await settle();
    assert.deepEqual(h.events.sort(), ['add e@45', 'delete a']);
    assert.equal(h.inf.restarts, 0);
    await h.inf.stop();
  });

  it('ignores a list that completes after stop()', async () => {
    let release: (l: KubernetesListObject<V1ConfigMap>) => void = () => {};
    const slow = () =>
      new Promise<KubernetesListObject<V1ConfigMap>>((r) => {
        release = r;
      });
    const h = harness([slow, listOf('10', cm('b', '2'))]);
    h.inf.start();
    await settle();
    await h.inf.stop();
    release(listOf('5', cm('a', '1')));
    await settle();
    assert.deepEqual(h.events, []);
    assert.equal(h.transport.calls.length, 0, 'no watch may start for a stopped informer');
    h.inf.start();
    await h.inf.waitForSync();
    assert.deepEqual(names(h.inf), ['b']);
    await h.inf.stop();
  });

  it('waitForSync rejects when its signal aborts', async () => {
    const h = harness([new Error('down')]);
    h.inf.start();
    const ac = new AbortController();
    const p = h.inf.waitForSync(ac.signal);
    ac.abort(new Error('gave up'));
    await assert.rejects(p, /gave up/);
    await assert.rejects(h.inf.waitForSync(AbortSignal.abort(new Error('already'))), /already/);
    await h.inf.stop();
  });

  it('exports its metrics to the given registry', async () => {
    const registry = new Registry();
    const h = harness([new Error('down'), listOf('10', cm('a', '1'))], { registry });
    const other = new Informer<V1ConfigMap>({
      kc: new KubeConfig(),
      path: '/x',
      list: async () => listOf('1'),
      log: pino({ level: 'silent' }),
      name: 'other',
      registry,
      watch: new FakeTransport(),
    });
    h.inf.start();
    await settle();
    h.clock.step(900);
    await h.inf.waitForSync();
    h.clock.step(2_500);
    const text = await registry.metrics();
    assert.match(text, /netmesh_informer_last_event_age_seconds\{informer="test"\} 2\.5/);
    assert.doesNotMatch(text, /netmesh_informer_last_event_age_seconds\{informer="other"\}/, 'not started');
    assert.match(text, /netmesh_informer_restarts_total\{informer="test"\} 1/);
    assert.match(text, /netmesh_informer_restarts_total\{informer="other"\} 0/);
    assert.match(text, /netmesh_informer_synced\{informer="test"\} 1/);
    assert.match(text, /netmesh_informer_synced\{informer="other"\} 0/);
    await h.inf.stop();
    await other.stop();
  });
});

describe('waitForCacheSync', () => {
  const notFound = () =>
    Object.assign(new Error('HTTP-Code: 404'), {
      code: 404,
      body: JSON.stringify({
        kind: 'Status',
        reason: 'NotFound',
        message: 'the server could not find the requested resource',
      }),
    });

  it('reports, once, why the caches are not synced at the deadline, keeps waiting, and resolves once they sync', async () => {
    // The list fails (a missing CRD) until the third attempt.
    const h = harness([notFound(), notFound(), listOf('5', cm('a', '1'))]);
    const reasons: string[] = [];
    h.inf.start();
    let synced = false;
    const waiting = waitForCacheSync([h.inf], {
      signal: new AbortController().signal,
      timeoutMs: 1_500,
      onTimeout: (r) => reasons.push(r),
      clock: h.clock,
    }).then(() => {
      synced = true;
    });
    await settle();
    h.clock.step(1_600);
    await settle();
    assert.equal(reasons.length, 1);
    assert.match(
      reasons[0]!,
      /^cache sync timed out after 1\.5 s: informer test: 404 the server could not find/,
    );
    assert.equal(synced, false, 'still waiting after the report');
    for (let i = 0; i < 40 && !synced; i++) {
      h.clock.step(1_000);
      await settle();
    }
    await waiting;
    assert.equal(h.inf.hasSynced(), true);
    assert.equal(h.inf.lastError(), undefined, 'cleared once the watch connects');
    assert.equal(reasons.length, 1, 'reported once');
    await h.inf.stop();
  });

  it('rejects when the signal aborts (stop, leadership lost), without reporting', async () => {
    const h = harness([notFound()]);
    h.inf.start();
    const stop = new AbortController();
    const reasons: string[] = [];
    const waiting = waitForCacheSync([h.inf], {
      signal: stop.signal,
      timeoutMs: 60_000,
      onTimeout: (r) => reasons.push(r),
      clock: h.clock,
    });
    stop.abort(new Error('leadership lost'));
    await assert.rejects(waiting, /leadership lost/);
    h.clock.step(61_000);
    await settle();
    assert.deepEqual(reasons, []);
    assert.equal(h.clock.pendingTimers() > 0, true, 'the informer itself keeps retrying until stopped');
    await h.inf.stop();
  });
});

describe('CacheSyncReport', () => {
  it('reports a late sync once, keeps the reason for readiness, and clears it with one line when synced', () => {
    const lines: { level: number; msg: string; reason?: string }[] = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const hooked: string[] = [];
    const report = new CacheSyncReport(log, 'network controller', (reason) => hooked.push(reason));
    assert.equal(report.problem, undefined);
    report.synced();
    assert.equal(lines.length, 0, 'an on-time sync says nothing');

    report.timedOut('cache sync timed out after 2s: informer networks: 403 forbidden');
    assert.equal(report.problem, 'cache sync timed out after 2s: informer networks: 403 forbidden');
    assert.deepEqual(hooked, ['cache sync timed out after 2s: informer networks: 403 forbidden']);
    assert.equal(lines[0]?.msg, 'network controller cache sync timed out; still waiting');
    assert.equal(lines[0]?.level, 50);
    assert.equal(lines[0]?.reason, 'cache sync timed out after 2s: informer networks: 403 forbidden');

    report.synced();
    assert.equal(report.problem, undefined);
    assert.equal(lines[1]?.msg, 'network controller caches synced after all');
    assert.equal(lines.length, 2);
  });
});
