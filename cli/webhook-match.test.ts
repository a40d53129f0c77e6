import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { buildMutatingWebhookConfiguration } from '../webhook/webhook-config.ts';
import { excludedByName, matchSelector, matchWebhooks } from './webhook-match.ts';

// The configuration the chart and `netmesh webhook --register-url` install.
const config = buildMutatingWebhookConfiguration({
  name: 'netmesh',
  namespace: 'netmesh-system',
  clientConfig: { service: { name: 'netmesh', namespace: 'netmesh-system' } },
  caBundle: 'CA',
  failurePolicy: 'Ignore',
  matchConditionsSupported: true,
});
const pod = (
  labels: Record<string, string> = {},
  annotations: Record<string, string> = {},
  hostNetwork = false,
): V1Pod => ({
  metadata: { name: 'p', labels, annotations },
  spec: { containers: [{ name: 'app', image: 'busybox' }], ...(hostNetwork ? { hostNetwork } : {}) },
});
const called = (p: V1Pod, ns: string, nsLabels: Record<string, string>) =>
  matchWebhooks(config, p, ns, nsLabels)
    .filter((w) => w.called === true)
    .map((w) => w.name);

describe('matchSelector', () => {
  test('matchLabels and every operator', () => {
    const labels = { a: '1', b: '2' };
    assert.equal(matchSelector(undefined, labels).matches, true);
    assert.equal(matchSelector({ matchLabels: { a: '1' } }, labels).matches, true);
    assert.deepEqual(matchSelector({ matchLabels: { a: '2' } }, labels), { matches: false, failed: 'a=2' });
    assert.equal(
      matchSelector({ matchExpressions: [{ key: 'a', operator: 'In', values: ['1', '3'] }] }, labels).matches,
      true,
    );
    assert.equal(
      matchSelector({ matchExpressions: [{ key: 'c', operator: 'NotIn', values: ['1'] }] }, labels).matches,
      true,
    );
    assert.equal(
      matchSelector({ matchExpressions: [{ key: 'a', operator: 'Exists' }] }, labels).matches,
      true,
    );
    assert.deepEqual(matchSelector({ matchExpressions: [{ key: 'a', operator: 'DoesNotExist' }] }, labels), {
      matches: false,
      failed: 'a DoesNotExist',
    });
  });
});

describe('matchWebhooks (the chart configuration)', () => {
  test('a labelled namespace: namespace.netmesh.io only', () => {
    assert.deepEqual(called(pod(), 'shop', { 'netmesh.io/injection': 'enabled' }), ['namespace.netmesh.io']);
  });

  test('opt-in by pod label, by the legacy annotation, and nothing otherwise', () => {
    assert.deepEqual(called(pod({ 'netmesh.io/inject': 'true' }), 'shop', {}), ['object.netmesh.io']);
    assert.deepEqual(called(pod({}, { 'initializer.kubernetes.io/envoy': 'true' }), 'shop', {}), [
      'legacy.netmesh.io',
    ]);
    const none = matchWebhooks(config, pod(), 'shop', {});
    assert.ok(none.every((w) => w.called === false));
    assert.deepEqual(none.find((w) => w.name === 'namespace.netmesh.io')?.reasons, [
      'namespaceSelector requires netmesh.io/injection In [enabled]',
    ]);
    assert.equal(
      none.find((w) => w.name === 'legacy.netmesh.io')?.reasons.at(-1),
      'matchCondition legacy-annotation-opt-in is false',
    );
  });

  test('excluded namespaces and opt-out are never sent; hostNetwork and mirror pods only past the legacy webhook', () => {
    const enabled = { 'netmesh.io/injection': 'enabled' };
    assert.deepEqual(called(pod(), 'kube-system', enabled), []);
    assert.match(
      matchWebhooks(config, pod(), 'netmesh-system', enabled)[0]!.reasons[0]!,
      /kubernetes.io\/metadata.name NotIn \[kube-node-lease, kube-public, kube-system, netmesh-system\]/,
    );
    assert.deepEqual(called(pod({ 'netmesh.io/inject': 'false' }), 'shop', enabled), []);
    // No CEL on the selector-routed webhooks: the handler skips these Pods (core/selection.ts).
    assert.deepEqual(called(pod({}, {}, true), 'shop', enabled), ['namespace.netmesh.io']);
    assert.deepEqual(called(pod({}, { 'kubernetes.io/config.mirror': 'x' }), 'shop', enabled), [
      'namespace.netmesh.io',
    ]);
    const legacy = { 'initializer.kubernetes.io/envoy': 'true' };
    assert.deepEqual(called(pod({}, legacy), 'plain', {}), ['legacy.netmesh.io']);
    assert.deepEqual(called(pod({}, legacy, true), 'plain', {}), []);
    assert.deepEqual(called(pod({}, { ...legacy, 'kubernetes.io/config.mirror': 'x' }), 'plain', {}), []);
    assert.deepEqual(excludedByName(config), [
      'kube-node-lease',
      'kube-public',
      'kube-system',
      'netmesh-system',
    ]);
  });

  test('a CEL expression it does not know is reported, not guessed', () => {
    const custom = structuredClone(config);
    custom.webhooks![0]!.matchConditions = [
      { name: 'team', expression: "object.metadata.labels['team'] == 'a'" },
    ];
    const w = matchWebhooks(custom, pod(), 'shop', { 'netmesh.io/injection': 'enabled' })[0]!;
    assert.equal(w.called, 'unknown');
    assert.match(w.reasons.join(), /matchCondition team not evaluated here/);
  });

  test('rules that do not cover Pod CREATE', () => {
    const other = structuredClone(config);
    other.webhooks![0]!.rules = [
      { operations: ['UPDATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] },
    ];
    assert.deepEqual(matchWebhooks(other, pod(), 'shop', { 'netmesh.io/injection': 'enabled' })[0]!.reasons, [
      'its rules do not cover Pod CREATE',
    ]);
  });
});
