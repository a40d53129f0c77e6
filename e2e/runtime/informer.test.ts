// runtime/informer.ts against the real apiserver: ConfigMaps in a throwaway namespace, list +
// watch with bookmarks and server-side timeouts, recovery from a list failure, a cut watch
// connection, a quiet watch (watchdog) and a real 410 Gone.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Informer, type InformerOptions, type WatchTransport } from '../../runtime/informer.ts';
import { createNamespace, deleteNamespace, eventually, useCluster } from '../support.ts';

type Params = Record<string, string | number | boolean | undefined>;

/** The real client-node Watch, recording each request and keeping its controller. */
class RecordingTransport implements WatchTransport {
  readonly inner: k8s.Watch;
  readonly params: Params[] = [];
  readonly controllers: AbortController[] = [];
  constructor(kc: k8s.KubeConfig) {
    this.inner = new k8s.Watch(kc);
  }
  async watch(
    path: string,
    params: Params,
    // biome-ignore lint/suspicious/noExplicitAny: mirrors Watch.watch
    cb: (phase: string, obj: any, raw?: any) => void,
    // biome-ignore lint/suspicious/noExplicitAny: mirrors Watch.watch
    done: (err: any) => void,
  ): Promise<AbortController> {
    this.params.push(params);
    const c = await this.inner.watch(path, params, cb, done);
    this.controllers.push(c);
    return c;
  }
}

interface Recorded {
  inf: Informer<k8s.V1ConfigMap>;
  events: string[];
  logs: Record<string, unknown>[];
  transport: RecordingTransport;
  listCalls: () => number;
}

describe('runtime Informer (real apiserver)', () => {
  const h = useCluster();
  let ns = '';
  const informers: Informer<k8s.V1ConfigMap>[] = [];

  before(async () => {
    ns = await createNamespace(h, 'rt-inf');
  });
  after(async () => {
    for (const inf of informers) await inf.stop();
    if (ns) await deleteNamespace(h, ns);
  });

  function informer(
    opts: {
      labelSelector?: string;
      list?: (
        real: () => Promise<k8s.KubernetesListObject<k8s.V1ConfigMap>>,
      ) => Promise<k8s.KubernetesListObject<k8s.V1ConfigMap>>;
    } & Omit<Partial<InformerOptions<k8s.V1ConfigMap>>, 'list'> = {},
  ): Recorded {
    const { list: wrapList, labelSelector, ...rest } = opts;
    const logs: Record<string, unknown>[] = [];
    const log = pino({ level: 'debug' }, { write: (s: string) => logs.push(JSON.parse(s)) });
    const transport = new RecordingTransport(h.kc);
    let calls = 0;
    const real = () =>
      h.core.listNamespacedConfigMap({ namespace: ns, ...(labelSelector ? { labelSelector } : {}) });
    const inf = new Informer<k8s.V1ConfigMap>({
      kc: h.kc,
      path: `/api/v1/namespaces/${ns}/configmaps`,
      list: () => {
        calls++;
        return wrapList ? wrapList(real) : real();
      },
      ...(labelSelector ? { labelSelector } : {}),
      log,
      name: `cm-${informers.length}`,
      watch: transport,
      ...rest,
    });
    informers.push(inf);
    const events: string[] = [];
    inf.on('add', (o) => {
      events.push(`add ${o.metadata?.name}`);
    });
    inf.on('update', (o, old) => {
      events.push(
        `update ${o.metadata?.name} ${JSON.stringify(old?.data ?? {})}->${JSON.stringify(o.data ?? {})}`,
      );
    });
    inf.on('delete', (o) => {
      events.push(`delete ${o.metadata?.name}`);
    });
    return { inf, events, logs, transport, listCalls: () => calls };
  }

  const create = (name: string, data: Record<string, string> = {}, labels: Record<string, string> = {}) =>
    h.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name, labels }, data } });
  const setData = (name: string, data: Record<string, string>) =>
    h.core.patchNamespacedConfigMap(
      { namespace: ns, name, body: { data } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
  const remove = (name: string) => h.core.deleteNamespacedConfigMap({ namespace: ns, name });
  const ours = (inf: Informer<k8s.V1ConfigMap>, prefix: string) =>
    inf
      .list(ns)
      .map((c) => c.metadata?.name ?? '')
      .filter((n) => n.startsWith(prefix))
      .sort();
  const has = (events: string[], e: string) => async () => events.includes(e);

  test('lists existing ConfigMaps, syncs, and sees add/update/delete', async () => {
    await create('basic-a', { v: '1' });
    await create('basic-b', { v: '1' });
    const registry = new Registry();
    const r = informer({ registry });
    assert.equal(r.inf.hasSynced(), false);
    r.inf.start();
    await r.inf.waitForSync(AbortSignal.timeout(20_000));
    assert.equal(r.inf.hasSynced(), true);
    assert.deepEqual(ours(r.inf, 'basic-'), ['basic-a', 'basic-b']);
    assert.ok(r.inf.get('kube-root-ca.crt', ns), 'the namespace root CA ConfigMap is listed too');
    assert.equal(r.inf.get('basic-a', ns)?.data?.['v'], '1');

    await create('basic-c', { v: '1' });
    await eventually('add basic-c', has(r.events, 'add basic-c'));
    await setData('basic-a', { v: '2' });
    await eventually('update basic-a', has(r.events, 'update basic-a {"v":"1"}->{"v":"2"}'));
    assert.equal(r.inf.get('basic-a', ns)?.data?.['v'], '2');
    await remove('basic-b');
    await eventually('delete basic-b', has(r.events, 'delete basic-b'));
    assert.deepEqual(ours(r.inf, 'basic-'), ['basic-a', 'basic-c']);
    assert.equal(r.inf.get('basic-b', ns), undefined);

    // Every watch asked for bookmarks and a jittered server-side timeout, and the apiserver
    // accepted them (events flowed).
    assert.ok(r.transport.params.length >= 1);
    for (const p of r.transport.params) {
      assert.equal(p['allowWatchBookmarks'], true);
      const t = Number(p['timeoutSeconds']);
      assert.ok(t >= 300 && t < 600, `timeoutSeconds ${t}`);
      assert.ok(p['resourceVersion'], 'watches start from the listed resourceVersion');
    }
    assert.ok(r.inf.timeSinceLastEventMs() < 10_000);
    assert.equal(r.inf.restarts, 0);

    const text = await registry.metrics();
    assert.match(text, new RegExp(`netmesh_informer_synced\\{informer="${r.inf.name}"\\} 1`));
    assert.match(text, new RegExp(`netmesh_informer_restarts_total\\{informer="${r.inf.name}"\\} 0`));
    assert.match(
      text,
      new RegExp(`netmesh_informer_last_event_age_seconds\\{informer="${r.inf.name}"\\} \\d`),
    );
    await r.inf.stop();
  });

  test('a label selector limits the cache; an object that stops matching is deleted from it', async () => {
    const r = informer({ labelSelector: 'rt-test=sel' });
    await create('sel-in', {}, { 'rt-test': 'sel' });
    await create('sel-out', {});
    r.inf.start();
    await r.inf.waitForSync(AbortSignal.timeout(20_000));
    assert.deepEqual(ours(r.inf, 'sel-'), ['sel-in']);
    assert.equal(r.inf.get('kube-root-ca.crt', ns), undefined);
    await h.core.patchNamespacedConfigMap(
      { namespace: ns, name: 'sel-in', body: { metadata: { labels: { 'rt-test': null } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await eventually('delete sel-in', has(r.events, 'delete sel-in'));
    await h.core.patchNamespacedConfigMap(
      { namespace: ns, name: 'sel-out', body: { metadata: { labels: { 'rt-test': 'sel' } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await eventually('add sel-out', has(r.events, 'add sel-out'));
    await r.inf.stop();
  });

  test('after stop(), changes, start(): the cache converges, deletes made while stopped included', async () => {
    await create('conv-keep', { v: '1' });
    await create('conv-change', { v: '1' });
    await create('conv-gone', { v: '1' });
    const r = informer();
    r.inf.start();
    await r.inf.waitForSync(AbortSignal.timeout(20_000));
    assert.deepEqual(ours(r.inf, 'conv-'), ['conv-change', 'conv-gone', 'conv-keep']);
    await r.inf.stop();
    const watchesBefore = r.transport.controllers.length;
    assert.ok(
      r.transport.controllers.every((c) => c.signal.aborted),
      'stop() aborted the watch',
    );

    await remove('conv-gone');
    await setData('conv-change', { v: '2' });
    await create('conv-new', { v: '1' });
    await new Promise((res) => setTimeout(res, 300));
    assert.deepEqual(
      ours(r.inf, 'conv-'),
      ['conv-change', 'conv-gone', 'conv-keep'],
      'nothing while stopped',
    );
    r.events.length = 0;

    r.inf.start();
    await eventually('the cache to converge', async () => {
      const names = ours(r.inf, 'conv-');
      return (
        names.join() === 'conv-change,conv-keep,conv-new' && r.inf.get('conv-change', ns)?.data?.['v'] === '2'
      );
    });
    assert.deepEqual(
      r.events.filter((e) => e.includes('conv-')).sort(),
      ['add conv-new', 'delete conv-gone', 'update conv-change {"v":"1"}->{"v":"2"}'],
      'exactly the differences, nothing for the unchanged object',
    );
    assert.ok(r.transport.controllers.length > watchesBefore);
    assert.equal(r.inf.restarts, 0, 'start() is not a restart');
    await r.inf.stop();
  });

  test('recovers from failing lists with backoff, counting restarts', async () => {
    let failures = 2;
    const r = informer({
      list: async (real) => {
        if (failures-- > 0) throw new Error('injected list failure');
        return real();
      },
    });
    const started = Date.now();
    r.inf.start();
    await r.inf.waitForSync(AbortSignal.timeout(20_000));
    const took = Date.now() - started;
    assert.equal(r.inf.restarts, 2);
    assert.equal(r.listCalls(), 3);
    // Backoff 0.8–1 s, then 1.6–2 s.
    assert.ok(took >= 2_400, `synced after ${took} ms`);
    assert.ok(
      r.logs.some((l) => l['msg'] === 'informer list/watch failed; restarting after backoff'),
      'the failure is logged',
    );
    await create('listfail-a');
    await eventually('add listfail-a', has(r.events, 'add listfail-a'));
    await r.inf.stop();
  });

  test('a cut watch connection is restarted and changes made meanwhile are picked up', async () => {
    const r = informer();
    r.inf.start();
    await r.inf.waitForSync(AbortSignal.timeout(20_000));
    await eventually('the watch to connect', async () => r.transport.controllers.length >= 1);
    const lists = r.listCalls();
    // Aborting the connection ends the watch with an AbortError: for ListWatch an error like
    // any other, after which it would stop for good.
    r.transport.controllers.at(-1)?.abort();
    await create('cut-during');
    await eventually('a restart', async () => r.inf.restarts >= 1);
    await eventually('add cut-during', has(r.events, 'add cut-during'));
    assert.ok(r.listCalls() > lists, 'the restart re-listed');
    await create('cut-after');
    await eventually('add cut-after', has(r.events, 'add cut-after'));
    assert.equal(r.inf.restarts, 1);
    await r.inf.stop();
  });

  test('the watchdog restarts a quiet informer', async () => {
    const r = informer({ labelSelector: 'rt-test=quiet', staleAfterMs: 1_500 });
    r.inf.start();
    await r.inf.waitForSync(AbortSignal.timeout(20_000));
    await eventually('a watchdog restart', async () => r.inf.restarts >= 1, { timeoutMs: 10_000 });
    assert.ok(r.logs.some((l) => l['msg'] === 'informer watch is stale; forcing a restart'));
    // The restart counts at once; its new watch is recorded once the apiserver answers it.
    await eventually('a new watch connected', async () => r.transport.controllers.length >= 2);
    assert.ok(r.inf.timeSinceLastEventMs() < 1_500);
    await create('quiet-a', {}, { 'rt-test': 'quiet' });
    await eventually('add quiet-a', has(r.events, 'add quiet-a'));
    await r.inf.stop();
  });

  test('410 Gone from the watch re-lists without a restart', async () => {
    // A watch from resourceVersion 1 is 410 once the apiserver's ConfigMap watch cache has
    // dropped its oldest events, which it does once it is full and they are older than 75 s.
    await create('gone-churn', { i: '0' });
    const probeWatch = new k8s.Watch(h.kc);
    const expired = () =>
      new Promise<boolean>((resolve) => {
        let gone = false;
        void probeWatch.watch(
          `/api/v1/namespaces/${ns}/configmaps`,
          { resourceVersion: '1', timeoutSeconds: 1 },
          (type, obj) => {
            if (type === 'ERROR' && obj?.code === 410) gone = true;
          },
          () => resolve(gone),
        );
      });
    let i = 0;
    await eventually(
      'resourceVersion 1 to fall out of the watch cache',
      async () => {
        if (await expired()) return true;
        for (let k = 0; k < 100; k++) await setData('gone-churn', { i: String(++i) });
        return false;
      },
      { timeoutMs: 180_000, intervalMs: 0 },
    );

    let first = true;
    const r = informer({
      list: async (real) => {
        const list = await real();
        if (!first) return list;
        first = false;
        // As if this list had been served long ago: the watch that follows starts from a
        // resourceVersion the apiserver no longer has.
        return { ...list, metadata: { ...list.metadata, resourceVersion: '1' } };
      },
    });
    r.inf.start();
    await r.inf.waitForSync(AbortSignal.timeout(20_000));
    await eventually('the re-list after 410', async () => r.listCalls() >= 2);
    assert.equal(r.transport.params[0]?.['resourceVersion'], '1');
    await create('gone-after');
    await eventually('add gone-after', has(r.events, 'add gone-after'));
    assert.equal(r.inf.restarts, 0);
    assert.ok(!r.logs.some((l) => Number(l['level']) >= 40), 'a 410 is not a failure');
    assert.equal(
      r.events.filter((e) => e.startsWith('add gone-churn')).length,
      1,
      'the re-list emitted nothing new',
    );
    await r.inf.stop();
  });
});
