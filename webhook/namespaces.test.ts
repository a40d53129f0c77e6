// Namespace labels: cache, GET on a miss, and one fresh GET when stale cached labels would turn
// a Pod away. A fake cache and a fake GET; no cluster.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import { namespaceLabelSource, namespaceLabelsForPod, needsFreshLabels } from './namespaces.ts';

const ENABLED = { 'netmesh.io/injection': 'enabled' };

function fakeSource(
  cached: Record<string, Record<string, string>>,
  live: Record<string, Record<string, string>>,
) {
  const gets: string[] = [];
  const source = namespaceLabelSource({
    cache: {
      get: (name: string): V1Namespace | undefined =>
        cached[name] ? { metadata: { name, labels: cached[name] } } : undefined,
      synced: true,
      waitForSync: async () => {},
      stop: async () => {},
    },
    read: async (name) => {
      gets.push(name);
      if (!live[name]) throw Object.assign(new Error('not found'), { code: 404 });
      return { metadata: { name, labels: live[name] } };
    },
    logger: pino({ level: 'silent' }),
  });
  return { source, gets };
}

const pod = (labels: Record<string, string> = {}, annotations: Record<string, string> = {}): V1Pod => ({
  metadata: { name: 'p', labels, annotations },
  spec: { containers: [{ name: 'app', image: 'busybox' }] },
});

const input = (p: unknown, namespace = 'app') => ({ pod: p, namespace, webhookNamespace: 'netmesh-system' });

describe('namespaceLabelsForPod', () => {
  test('a namespace labelled a moment ago: the stale cache is re-read once, the fresh labels win', async () => {
    const { source, gets } = fakeSource({ app: {} }, { app: ENABLED });
    const got = await namespaceLabelsForPod(source, input(pod()));
    assert.deepEqual(got, { labels: ENABLED, source: 'api' });
    assert.deepEqual(gets, ['app']);
  });

  test('cached labels that enable the namespace need no GET, and are answered without a promise', async () => {
    const { source, gets } = fakeSource({ app: ENABLED }, { app: ENABLED });
    const got = namespaceLabelsForPod(source, input(pod()));
    assert.ok(!(got instanceof Promise));
    assert.deepEqual(got, { labels: ENABLED, source: 'cache' });
    assert.deepEqual(gets, []);
  });

  test('Pods that opt in or out by themselves, or are excluded anyway, need no GET', async () => {
    const { source, gets } = fakeSource({ app: {}, 'kube-system': {} }, { app: ENABLED });
    for (const p of [
      pod({ 'netmesh.io/inject': 'true' }),
      pod({ 'netmesh.io/inject': 'false' }),
      pod({}, { 'initializer.kubernetes.io/envoy': 'true' }),
      pod({}, { 'netmesh.io/status': '{}' }),
      { ...pod(), spec: { hostNetwork: true, containers: [] } },
    ]) {
      assert.equal((await namespaceLabelsForPod(source, input(p))).source, 'cache');
    }
    assert.equal((await namespaceLabelsForPod(source, input(pod(), 'kube-system'))).source, 'cache');
    assert.equal((await namespaceLabelsForPod(source, input('not a pod'))).source, 'cache');
    assert.deepEqual(gets, []);
  });

  test('still not enabled after the GET: the fresh labels are used and the Pod is turned away', async () => {
    const { source, gets } = fakeSource({ app: { team: 'a' } }, { app: { team: 'b' } });
    assert.deepEqual(await namespaceLabelsForPod(source, input(pod())), {
      labels: { team: 'b' },
      source: 'api',
    });
    assert.equal(gets.length, 1);
  });

  test('a failed re-read keeps the cached labels', async () => {
    const { source, gets } = fakeSource({ app: { team: 'a' } }, {});
    assert.deepEqual(await namespaceLabelsForPod(source, input(pod())), {
      labels: { team: 'a' },
      source: 'cache',
    });
    assert.equal(gets.length, 1);
  });

  test('a cache miss is one GET, never two', async () => {
    const { source, gets } = fakeSource({}, { app: {} });
    assert.deepEqual(await namespaceLabelsForPod(source, input(pod())), { labels: {}, source: 'api' });
    assert.deepEqual(gets, ['app']);
    const missing = await namespaceLabelsForPod(source, input(pod(), 'gone'));
    assert.equal(missing.source, 'unavailable');
    assert.equal(missing.error, 'namespace not found');
  });

  test('a GET slower than the deadline counts as unavailable', async () => {
    const source = namespaceLabelSource({
      cache: { get: () => undefined, synced: true, waitForSync: async () => {}, stop: async () => {} },
      read: () => new Promise(() => {}),
      logger: pino({ level: 'silent' }),
      getTimeoutMs: 20,
    });
    const got = await source.labels('slow');
    assert.equal(got.source, 'unavailable');
    assert.match(got.error ?? '', /timed out after 20 ms/);
  });
});

test('needsFreshLabels only for cached labels', () => {
  const p = pod();
  assert.equal(needsFreshLabels({ ...input(p), labels: { labels: {}, source: 'cache' } }), true);
  assert.equal(needsFreshLabels({ ...input(p), labels: { labels: {}, source: 'api' } }), false);
});

test('needsFreshLabels: an enabled namespace never needs a re-read, whatever the Pod says', () => {
  for (const p of [pod(), pod({ 'netmesh.io/inject': 'false' }), pod({ 'netmesh.io/inject': 'maybe' })]) {
    assert.equal(needsFreshLabels({ ...input(p), labels: { labels: ENABLED, source: 'cache' } }), false);
  }
  const disabled = { 'netmesh.io/injection': 'disabled' };
  assert.equal(needsFreshLabels({ ...input(pod()), labels: { labels: disabled, source: 'cache' } }), true);
});
