import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1LabelSelector, V1MutatingWebhook } from '@kubernetes/client-node';
import {
  buildMutatingWebhookConfiguration,
  LEGACY_WEBHOOK_NAME,
  NAMESPACE_WEBHOOK_NAME,
  OBJECT_WEBHOOK_NAME,
  supportsMatchConditions,
  type WebhookConfigOptions,
} from './webhook-config.ts';

const base: WebhookConfigOptions = {
  name: 'netmesh',
  namespace: 'netmesh-system',
  clientConfig: { url: 'https://127.0.0.1:9443/mutate' },
  caBundle: '-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n',
  failurePolicy: 'Fail',
  timeoutSeconds: 5,
  matchConditionsSupported: true,
};

/** The apiserver's label selector semantics, enough for the operators we use. */
function matches(selector: V1LabelSelector | undefined, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector?.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const r of selector?.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, r.key);
    const value = labels[r.key];
    const values = r.values ?? [];
    const ok =
      r.operator === 'In'
        ? has && values.includes(value!)
        : r.operator === 'NotIn'
          ? !has || !values.includes(value!)
          : r.operator === 'Exists'
            ? has
            : !has;
    if (!ok) return false;
  }
  return true;
}

/** Which webhooks the apiserver would call (selectors only; match conditions aside). */
function called(
  webhooks: V1MutatingWebhook[],
  ns: Record<string, string>,
  pod: Record<string, string>,
): string[] {
  return webhooks
    .filter((w) => matches(w.namespaceSelector, ns) && matches(w.objectSelector, pod))
    .map((w) => w.name);
}

describe('buildMutatingWebhookConfiguration', () => {
  const config = buildMutatingWebhookConfiguration(base);
  const webhooks = config.webhooks!;

  test('identity and the common webhook settings', () => {
    assert.equal(config.apiVersion, 'admissionregistration.k8s.io/v1');
    assert.equal(config.kind, 'MutatingWebhookConfiguration');
    assert.equal(config.metadata?.name, 'netmesh');
    assert.deepEqual(
      webhooks.map((w) => w.name),
      [NAMESPACE_WEBHOOK_NAME, OBJECT_WEBHOOK_NAME, LEGACY_WEBHOOK_NAME],
    );
    for (const w of webhooks) {
      assert.deepEqual(w.rules, [
        {
          apiGroups: [''],
          apiVersions: ['v1'],
          operations: ['CREATE'],
          resources: ['pods'],
          scope: 'Namespaced',
        },
      ]);
      assert.equal(w.sideEffects, 'NoneOnDryRun');
      assert.deepEqual(w.admissionReviewVersions, ['v1']);
      assert.equal(w.reinvocationPolicy, 'Never');
      assert.equal(w.failurePolicy, 'Fail');
      assert.equal(w.timeoutSeconds, 5);
      assert.equal(w.clientConfig.url, 'https://127.0.0.1:9443/mutate');
      assert.equal(Buffer.from(w.clientConfig.caBundle!, 'base64').toString(), base.caBundle);
      if (w.name === LEGACY_WEBHOOK_NAME) {
        const exprs = (w.matchConditions ?? []).map((c) => c.expression).join('\n');
        assert.match(exprs, /object\.spec\.hostNetwork/);
        assert.match(exprs, /kubernetes\.io\/config\.mirror/);
      } else {
        // No CEL on the selector-routed webhooks: the apiserver would convert every Pod for it.
        assert.equal(w.matchConditions, undefined, w.name);
      }
      const excluded = w.namespaceSelector?.matchExpressions?.find(
        (e) => e.key === 'kubernetes.io/metadata.name',
      );
      assert.deepEqual(excluded, {
        key: 'kubernetes.io/metadata.name',
        operator: 'NotIn',
        values: ['kube-node-lease', 'kube-public', 'kube-system', 'netmesh-system'],
      });
    }
  });

  test('selectors: namespace opt-in, pod opt-in and opt-out, system and own namespaces', () => {
    const enabled = { 'netmesh.io/injection': 'enabled', 'kubernetes.io/metadata.name': 'apps' };
    const plain = { 'kubernetes.io/metadata.name': 'plain' };
    const system = { 'netmesh.io/injection': 'enabled', 'kubernetes.io/metadata.name': 'kube-system' };
    const own = { 'netmesh.io/injection': 'enabled', 'kubernetes.io/metadata.name': 'netmesh-system' };
    assert.deepEqual(called(webhooks, enabled, {}), [NAMESPACE_WEBHOOK_NAME]);
    assert.deepEqual(called(webhooks, enabled, { 'netmesh.io/inject': 'true' }), [NAMESPACE_WEBHOOK_NAME]);
    assert.deepEqual(called(webhooks, enabled, { 'netmesh.io/inject': 'false' }), []);
    assert.deepEqual(called(webhooks, plain, { 'netmesh.io/inject': 'true' }), [OBJECT_WEBHOOK_NAME]);
    assert.deepEqual(called(webhooks, plain, { 'netmesh.io/inject': 'false' }), []);
    // Without a label only the legacy webhook matches, and its match condition needs the annotation.
    assert.deepEqual(called(webhooks, plain, {}), [LEGACY_WEBHOOK_NAME]);
    const legacy = webhooks.find((w) => w.name === LEGACY_WEBHOOK_NAME)!;
    assert.match(
      legacy.matchConditions!.at(-1)!.expression,
      /initializer\.kubernetes\.io\/envoy'\] == 'true'/,
    );
    for (const ns of [system, own]) {
      for (const pod of [{}, { 'netmesh.io/inject': 'true' }] as Record<string, string>[])
        assert.deepEqual(called(webhooks, ns, pod), []);
    }
    // Disjoint: no Pod is ever sent to two of our webhooks.
    for (const ns of [enabled, plain, { 'netmesh.io/injection': 'disabled' }]) {
      for (const v of [undefined, 'true', 'false', 'yes']) {
        const pod: Record<string, string> = v === undefined ? {} : { 'netmesh.io/inject': v };
        assert.ok(called(webhooks, ns, pod).length <= 1, JSON.stringify({ ns, pod }));
      }
    }
  });

  test('without match conditions: two webhooks and no CEL', () => {
    const old = buildMutatingWebhookConfiguration({ ...base, matchConditionsSupported: false });
    assert.deepEqual(
      old.webhooks!.map((w) => w.name),
      [NAMESPACE_WEBHOOK_NAME, OBJECT_WEBHOOK_NAME],
    );
    for (const w of old.webhooks!) assert.equal(w.matchConditions, undefined);
  });

  test('service clientConfig for the chart, caBundle left to cert-manager', () => {
    const chart = buildMutatingWebhookConfiguration({
      ...base,
      caBundle: undefined,
      clientConfig: { service: { name: 'netmesh-webhook', namespace: 'netmesh-system' } },
    });
    for (const w of chart.webhooks!) {
      assert.deepEqual(w.clientConfig, {
        service: { name: 'netmesh-webhook', namespace: 'netmesh-system', path: '/mutate', port: 443 },
      });
    }
  });

  test('extra namespace requirements are added to every webhook', () => {
    const scoped = buildMutatingWebhookConfiguration({
      ...base,
      extraNamespaceSelector: [{ key: 'team', operator: 'In', values: ['a'] }],
    });
    for (const w of scoped.webhooks!) {
      assert.ok(w.namespaceSelector!.matchExpressions!.some((e) => e.key === 'team'));
    }
  });

  test('the builder is pure: same input, same output', () => {
    assert.deepEqual(buildMutatingWebhookConfiguration(base), buildMutatingWebhookConfiguration(base));
  });
});

test('supportsMatchConditions', () => {
  assert.equal(supportsMatchConditions({ major: '1', minor: '34' }), true);
  assert.equal(supportsMatchConditions({ major: '1', minor: '28+' }), true);
  assert.equal(supportsMatchConditions({ major: '1', minor: '27' }), false);
  assert.equal(supportsMatchConditions({ major: '', minor: '' }), false);
});
