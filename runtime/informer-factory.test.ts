// The shared informer factory: one informer (one list, one watch) per resource and selectors,
// however many consumers ask; started once, stopped once. A fake watch transport and list; no
// cluster.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KubeConfig, type KubernetesListObject, type V1Namespace } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { WatchTransport } from './informer.ts';
import { informerKey, SharedInformerFactory } from './informer-factory.ts';
import { FakeClock } from './queue/index.ts';

interface Call {
  path: string;
  params: Record<string, string | number | boolean | undefined>;
  // biome-ignore lint/suspicious/noExplicitAny: mirrors Watch.watch
  emit: (phase: string, obj: any) => void;
}

class FakeTransport implements WatchTransport {
  calls: Call[] = [];
  aborted = 0;
  async watch(
    path: string,
    params: Record<string, string | number | boolean | undefined>,
    // biome-ignore lint/suspicious/noExplicitAny: mirrors Watch.watch
    callback: (phase: string, obj: any, raw?: any) => void,
    // biome-ignore lint/suspicious/noExplicitAny: mirrors Watch.watch
    done: (err: any) => void,
  ): Promise<AbortController> {
    const controller = new AbortController();
    controller.signal.addEventListener('abort', () => {
      this.aborted++;
      done(new DOMException('aborted', 'AbortError'));
    });
    this.calls.push({
      path,
      params,
      emit: (phase, obj) => callback(phase, obj, { type: phase, object: obj }),
    });
    return controller;
  }
}

const ns = (name: string, labels: Record<string, string> = {}, rv = '1'): V1Namespace => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name, labels, resourceVersion: rv },
});

function setup() {
  const transport = new FakeTransport();
  const registry = new Registry();
  const lists: string[] = [];
  const factory = new SharedInformerFactory({
    kc: new KubeConfig(),
    log: pino({ level: 'silent' }),
    registry,
    clock: new FakeClock(1_000_000),
    random: () => 0.5,
    watch: transport,
  });
  const listOf =
    (what: string, ...items: V1Namespace[]) =>
    async (): Promise<KubernetesListObject<V1Namespace>> => {
      lists.push(what);
      return { apiVersion: 'v1', kind: 'NamespaceList', metadata: { resourceVersion: '10' }, items };
    };
  return { factory, transport, registry, lists, listOf };
}

describe('SharedInformerFactory', () => {
  it('hands every consumer of the same resource and selectors the same informer: one list, one watch', async () => {
    const { factory, transport, lists, listOf } = setup();
    const all = listOf('namespaces', ns('a', { 'netmesh.io/injection': 'enabled' }), ns('b'));
    // The webhook's selection and the bootstrap copier both read every namespace.
    const webhook = factory.informerFor({ name: 'namespaces', path: '/api/v1/namespaces', list: all });
    const copier = factory.informerFor({ name: 'copier', path: '/api/v1/namespaces', list: all });
    assert.equal(webhook, copier);
    assert.equal(factory.size, 1);
    const seen: string[] = [];
    webhook.on('add', (o) => seen.push(`webhook ${o.metadata?.name}`));
    copier.on('add', (o) => seen.push(`copier ${o.metadata?.name}`));
    factory.start();
    factory.start(); // idempotent
    await webhook.waitForSync();
    assert.deepEqual(lists, ['namespaces']);
    assert.equal(transport.calls.length, 1);
    assert.equal(transport.calls[0]!.path, '/api/v1/namespaces');
    assert.deepEqual(seen.sort(), ['copier a', 'copier b', 'webhook a', 'webhook b']);
    assert.equal(webhook.name, 'namespaces', 'the first name is kept');
    await factory.stop();
  });

  it('keeps informers with different selectors apart, and starts later ones on the next start()', async () => {
    const { factory, transport, listOf } = setup();
    const a = factory.informerFor({ name: 'all', path: '/api/v1/namespaces', list: listOf('all') });
    factory.start();
    await a.waitForSync();
    const labelled = factory.informerFor({
      name: 'labelled',
      path: '/api/v1/namespaces',
      labelSelector: 'x=y',
      list: listOf('labelled'),
    });
    assert.notEqual(labelled, a);
    assert.equal(factory.size, 2);
    assert.equal(labelled.hasSynced(), false, 'not started until start() is called again');
    assert.equal(transport.calls.length, 1);
    factory.start();
    await labelled.waitForSync();
    assert.equal(transport.calls.length, 2);
    assert.equal(transport.calls[1]!.params['labelSelector'], 'x=y');
    await factory.stop();
  });

  it('reports every cache in one readiness check, and stops every watch once', async () => {
    const { factory, transport, listOf, registry } = setup();
    factory.informerFor({ name: 'namespaces', path: '/api/v1/namespaces', list: listOf('a') });
    factory.informerFor({
      name: 'never',
      path: '/api/v1/configmaps',
      list: () => new Promise<KubernetesListObject<V1Namespace>>(() => {}),
    });
    assert.deepEqual(factory.readiness(), { ok: true, detail: 'namespaces not synced, never not synced' });
    factory.start();
    await factory.informerFor({ name: 'x', path: '/api/v1/namespaces', list: listOf('a') }).waitForSync();
    assert.deepEqual(factory.readiness(), { ok: true, detail: 'namespaces synced, never not synced' });
    assert.match(await registry.metrics(), /netmesh_informer_synced\{informer="namespaces"\} 1/);
    await factory.stop();
    await factory.stop();
    assert.equal(transport.aborted, 1, 'the one connected watch is aborted');
    assert.throws(
      () => factory.informerFor({ name: 'late', path: '/api/v1/pods', list: listOf('p') }),
      /informer factory stopped; cannot watch \/api\/v1\/pods/,
    );
  });

  it('waits for the caches it is given and reports those that do not sync', async () => {
    const { factory, listOf } = setup();
    const ok = factory.informerFor({ name: 'ok', path: '/api/v1/namespaces', list: listOf('a') });
    factory.start();
    await factory.waitForCacheSync(
      { signal: AbortSignal.timeout(5_000), timeoutMs: 1_000, onTimeout: () => assert.fail('synced') },
      [ok],
    );
    await factory.stop();
  });
});

describe('informerKey', () => {
  it('is the path and its selectors', () => {
    assert.equal(informerKey({ path: '/api/v1/namespaces' }), '/api/v1/namespaces');
    assert.equal(
      informerKey({ path: '/api/v1/configmaps', labelSelector: 'a=b', fieldSelector: 'metadata.name=x' }),
      '/api/v1/configmaps?labelSelector=a%3Db&fieldSelector=metadata.name%3Dx',
    );
  });
});
