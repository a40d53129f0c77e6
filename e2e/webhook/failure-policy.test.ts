// What the apiserver does when the webhook is down: failurePolicy Ignore admits Pods without
// the sidecar, Fail rejects them with the apiserver's message, and in both cases namespaces the
// configuration excludes (the webhook's own) are never blocked.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AdmissionregistrationV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { deleteWebhookConfiguration } from '../../webhook/registration.ts';
import { deleteNamespace, eventually, useCluster } from '../support.ts';
import {
  ENABLED,
  isInjected,
  probePod,
  type ScopedWebhook,
  startScopedWebhook,
  waitUntilInjecting,
} from './helpers.ts';

describe('failure policy with the webhook stopped', () => {
  const h = useCluster();
  let w: ScopedWebhook;
  let enabledNs: string;
  let admission: AdmissionregistrationV1Api;

  before(async () => {
    admission = h.kc.makeApiClient(AdmissionregistrationV1Api);
    w = await startScopedWebhook(h, { failurePolicy: 'Ignore', unregisterOnStop: false });
    enabledNs = await w.namespace('wh-fp', ENABLED);
    await waitUntilInjecting(h, enabledNs);
    // Label the webhook's own namespace too: it must stay excluded regardless.
    await h.core.patchNamespace(
      { name: w.systemNamespace, body: { metadata: { labels: ENABLED } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await w.webhook.stop();
  });

  after(async () => {
    await w?.webhook.stop();
    if (w) await deleteWebhookConfiguration(admission, w.configName, undefined);
    for (const ns of [enabledNs, w?.systemNamespace]) if (ns) await deleteNamespace(h, ns);
  });

  test('the configuration outlives the process when asked to', async () => {
    const config = await admission.readMutatingWebhookConfiguration({ name: w.configName });
    assert.ok(config.webhooks?.every((x) => x.failurePolicy === 'Ignore'));
  });

  test('Ignore: Pods are admitted without the sidecar', async () => {
    const pod = await h.core.createNamespacedPod({ namespace: enabledNs, body: probePod() });
    assert.equal(isInjected(pod), false);
    assert.equal(pod.spec?.containers.length, 1);
  });

  test("Fail: Pods are rejected with the apiserver's message; the webhook's own namespace is not blocked", async () => {
    const config = await admission.readMutatingWebhookConfiguration({ name: w.configName });
    await admission.patchMutatingWebhookConfiguration(
      {
        name: w.configName,
        body: (config.webhooks ?? []).map((_, i) => ({
          op: 'replace',
          path: `/webhooks/${i}/failurePolicy`,
          value: 'Fail',
        })),
      },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );
    const err = await eventually(
      'the apiserver to reject Pods under failurePolicy Fail',
      async () => {
        try {
          await h.core.createNamespacedPod({ namespace: enabledNs, body: probePod(), dryRun: 'All' });
          return undefined;
        } catch (e) {
          return e as { code?: number; body?: unknown };
        }
      },
      { timeoutMs: 15_000 },
    );
    assert.equal(err.code, 500);
    const body = typeof err.body === 'string' ? err.body : JSON.stringify(err.body);
    const message = JSON.parse(body).message as string;
    assert.match(message, /failed calling webhook "namespace\.netmesh\.io"/);
    assert.match(message, new RegExp(`127\\.0\\.0\\.1:${w.port}/mutate`));
    assert.match(message, /connection refused/);

    // Excluded by the namespaceSelector, so never sent to the (dead) webhook.
    const own = await h.core.createNamespacedPod({ namespace: w.systemNamespace, body: probePod() });
    assert.equal(isInjected(own), false);
  });
});
