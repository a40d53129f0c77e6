// The webhook's own lifecycle against the real apiserver: a graceful stop (unready first,
// configuration removed, still serving for the shutdown delay, then closed) and registration
// that never takes over a configuration it did not create.
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { AdmissionregistrationV1Api, type V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import { UserFacingError } from '../../lib/errors.ts';
import { REGISTERED_BY_LABEL, REGISTERED_BY_VALUE } from '../../webhook/registration.ts';
import { createNamespace, deleteNamespace, eventually, gone, useCluster } from '../support.ts';
import {
  ENABLED,
  SCOPE_LABEL,
  type ScopedWebhook,
  startScopedWebhook,
  testId,
  waitUntilInjecting,
} from './helpers.ts';

/** POSTs an AdmissionReview for a ConfigMap straight to the listener (no apiserver involved). */
function postReview(port: number, caPem: string): Promise<number> {
  const body = JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: 'u1', kind: { group: '', version: 'v1', kind: 'ConfigMap' }, operation: 'CREATE' },
  });
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/mutate',
        ca: caPem,
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
        agent: false,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function readyz(port: number): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz?verbose`);
  return { status: res.status, text: await res.text() };
}

describe('webhook lifecycle', () => {
  const h = useCluster();
  const namespaces: string[] = [];
  const configs: string[] = [];
  let admission: AdmissionregistrationV1Api;
  let sysNs: string;
  const scope = testId();

  before(async () => {
    admission = h.kc.makeApiClient(AdmissionregistrationV1Api);
    sysNs = await createNamespace(h, 'wh-life-sys', { [SCOPE_LABEL]: scope });
    namespaces.push(sysNs);
  });

  after(async () => {
    for (const name of configs) {
      await admission.deleteMutatingWebhookConfiguration({ name }).catch(() => {});
    }
    for (const ns of namespaces) await deleteNamespace(h, ns);
  });

  test('stop: unready at once, configuration removed, still serving for the delay, then closed', async () => {
    const delayMs = 6000; // long enough for the checks below on a loaded machine
    const w: ScopedWebhook = await startScopedWebhook(h, { shutdownDelayMs: delayMs });
    namespaces.push(w.systemNamespace);
    configs.push(w.configName);
    const appNs = await w.namespace('wh-life', ENABLED);
    namespaces.push(appNs);
    await waitUntilInjecting(h, appNs);
    const ca = w.webhook.caBundle()!;
    const healthPort = w.webhook.healthPort!;
    assert.equal((await readyz(healthPort)).status, 200);

    const started = Date.now();
    const stopped = w.webhook.stop();
    assert.deepEqual(w.webhook.readiness(), { ok: false, message: 'stopping' });
    const ready = await readyz(healthPort);
    assert.equal(ready.status, 503);
    assert.match(ready.text, /\[-\]webhook failed: stopping/);
    await eventually(
      'the registered configuration removed',
      () => gone(() => admission.readMutatingWebhookConfiguration({ name: w.configName })),
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    // Removed, and the listener still answers: the apiserver may still be using the old config.
    assert.equal(await postReview(w.port, ca), 200);
    const during = Date.now() - started;
    assert.ok(during < delayMs, `checked within the delay (${during} ms)`);

    await stopped;
    const total = Date.now() - started;
    assert.ok(total >= delayMs, `served for the whole delay (${total} ms)`);
    await assert.rejects(postReview(w.port, ca), /ECONNREFUSED/);
    await assert.rejects(fetch(`http://127.0.0.1:${healthPort}/readyz`));
  });

  async function createForeign(name: string, metadata: V1MutatingWebhookConfiguration['metadata']) {
    configs.push(name);
    return admission.createMutatingWebhookConfiguration({
      body: { metadata: { ...metadata, name }, webhooks: [] },
    });
  }

  for (const [what, metadata, message] of [
    [
      "a Helm release's",
      {
        labels: { 'app.kubernetes.io/managed-by': 'Helm', 'app.kubernetes.io/name': 'netmesh' },
        annotations: {
          'meta.helm.sh/release-name': 'netmesh',
          'meta.helm.sh/release-namespace': 'netmesh-system',
        },
      },
      /belongs to Helm release netmesh in namespace netmesh-system/,
    ],
    ['an unlabelled', {}, /not registered by a local netmesh webhook/],
  ] as const) {
    test(`--register-url refuses ${what} configuration of the same name and leaves it untouched`, async () => {
      const name = `wh-e2e-foreign-${testId()}`;
      const created = await createForeign(name, metadata);
      await assert.rejects(
        startScopedWebhook(h, { systemNamespace: sysNs, webhookConfigName: name }),
        (err: unknown) => {
          assert.ok(err instanceof UserFacingError, String(err));
          assert.match(err.message, message);
          assert.match(err.message, new RegExp(`MutatingWebhookConfiguration ${name}`));
          assert.match(err.hint ?? '', /--webhook-config-name/);
          return true;
        },
      );
      const after = await admission.readMutatingWebhookConfiguration({ name });
      assert.equal(after.metadata?.resourceVersion, created.metadata?.resourceVersion, 'not modified');
      assert.deepEqual(after.webhooks ?? [], []);
      // Refused before the certificate source could create the Secret or patch a caBundle.
      assert.ok(
        await gone(() => h.core.readNamespacedSecret({ namespace: sysNs, name: 'netmesh-webhook-tls' })),
      );
    });
  }

  test('a re-run updates its own registration (same object, labelled) and removes it on stop', async () => {
    const name = `wh-e2e-rerun-${testId()}`;
    configs.push(name);
    const first = await startScopedWebhook(h, {
      systemNamespace: sysNs,
      webhookConfigName: name,
      unregisterOnStop: false,
    });
    await first.webhook.stop();
    const left = await admission.readMutatingWebhookConfiguration({ name });
    assert.equal(left.metadata?.labels?.[REGISTERED_BY_LABEL], REGISTERED_BY_VALUE);

    const second = await startScopedWebhook(h, { systemNamespace: sysNs, webhookConfigName: name });
    const updated = await admission.readMutatingWebhookConfiguration({ name });
    assert.equal(updated.metadata?.uid, left.metadata?.uid, 'updated in place, not replaced');
    assert.ok(
      updated.webhooks?.every((x) => x.clientConfig.url === `https://127.0.0.1:${second.port}/mutate`),
      'pointing at the new process',
    );
    await second.webhook.stop();
    assert.ok(await gone(() => admission.readMutatingWebhookConfiguration({ name })));
  });
});
