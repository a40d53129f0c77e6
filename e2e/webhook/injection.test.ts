// The webhook against the real apiserver, which calls it over TLS: selection by namespace and
// Pod labels, the legacy annotation, controller-created Pods, template edits and broken
// templates, warnings, readiness and metrics.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type CoreV1Event, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { STATUS_ANNOTATION } from '../../webhook/core/contract.ts';
import { parseInjectionStatus } from '../../webhook/core/inject.ts';
import { createDeployment, deleteNamespace, eventually, useCluster } from '../support.ts';
import {
  courseConfigMap,
  coursePod,
  createPodWithWarnings,
  ENABLED,
  isInjected,
  probePod,
  type ScopedWebhook,
  startScopedWebhook,
  waitUntilInjecting,
} from './helpers.ts';

async function httpGet(port: number, path: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, text: await res.text() };
}

describe('webhook injection through the apiserver', () => {
  const h = useCluster();
  let w: ScopedWebhook;
  let enabledNs: string;
  let plainNs: string;
  const namespaces: string[] = [];

  before(async () => {
    w = await startScopedWebhook(h);
    namespaces.push(w.systemNamespace);
    enabledNs = await w.namespace('wh-on', ENABLED);
    plainNs = await w.namespace('wh-off');
    namespaces.push(enabledNs, plainNs);
    await waitUntilInjecting(h, enabledNs);
  });

  after(async () => {
    await w?.webhook.stop();
    for (const ns of namespaces) await deleteNamespace(h, ns);
  });

  const readBack = (ns: string, name: string): Promise<V1Pod> =>
    h.core.readNamespacedPod({ namespace: ns, name });

  test('the course Pod in a labelled namespace is stored with myapp-container, envoy and envoy-conf', async () => {
    await h.core.createNamespacedPod({ namespace: enabledNs, body: await coursePod() });
    const pod = await readBack(enabledNs, 'myapp-pod');
    assert.deepEqual(
      pod.spec?.containers.map((c) => c.name),
      ['myapp-container', 'envoy'],
    );
    const envoy = pod.spec!.containers[1]!;
    assert.equal(envoy.image, 'lyft/envoy:845747db88f102c0fd262ab234308e9e22f693a1');
    assert.deepEqual(envoy.volumeMounts?.find((m) => m.name === 'envoy-conf')?.mountPath, '/etc/envoy');
    assert.ok(pod.spec?.volumes?.some((v) => v.name === 'envoy-conf' && v.configMap?.name === 'envoy'));
    // The ServiceAccount admission plugin's volume is still there: we appended, never replaced.
    assert.ok(pod.spec?.volumes?.some((v) => v.name.startsWith('kube-api-access-')));
    const status = parseInjectionStatus(pod.metadata?.annotations?.[STATUS_ANNOTATION]);
    assert.ok(status, 'status annotation present and well-formed');
    assert.deepEqual(status.containers, ['envoy']);
    assert.deepEqual(status.volumes, ['envoy-conf']);
    assert.equal(status.templateHash, w.webhook.template()?.hash);
    assert.equal(pod.metadata?.labels?.['app'], 'myapp');
  });

  test('a Pod in an unlabelled namespace gets nothing', async () => {
    await h.core.createNamespacedPod({ namespace: plainNs, body: await coursePod() });
    const pod = await readBack(plainNs, 'myapp-pod');
    assert.deepEqual(
      pod.spec?.containers.map((c) => c.name),
      ['myapp-container'],
    );
    assert.equal(isInjected(pod), false);
  });

  test('the opt-out label wins in a labelled namespace', async () => {
    const body = await coursePod();
    body.metadata!.name = 'opted-out';
    body.metadata!.labels = { ...body.metadata!.labels, 'netmesh.io/inject': 'false' };
    await h.core.createNamespacedPod({ namespace: enabledNs, body });
    const pod = await readBack(enabledNs, 'opted-out');
    assert.equal(pod.spec?.containers.length, 1);
    assert.equal(isInjected(pod), false);
  });

  test('the opt-in label works in an unlabelled namespace', async () => {
    const body = await coursePod();
    body.metadata!.name = 'opted-in';
    body.metadata!.labels = { ...body.metadata!.labels, 'netmesh.io/inject': 'true' };
    await h.core.createNamespacedPod({ namespace: plainNs, body });
    const pod = await readBack(plainNs, 'opted-in');
    assert.deepEqual(
      pod.spec?.containers.map((c) => c.name),
      ['myapp-container', 'envoy'],
    );
    assert.ok(isInjected(pod));
  });

  test("the course's annotation opts in through the legacy webhook's match condition", async () => {
    const body = await coursePod();
    body.metadata!.name = 'legacy';
    body.metadata!.annotations = { 'initializer.kubernetes.io/envoy': 'true' };
    await h.core.createNamespacedPod({ namespace: plainNs, body });
    const pod = await readBack(plainNs, 'legacy');
    assert.ok(isInjected(pod));
    assert.equal(pod.spec?.containers.length, 2);
  });

  test("hostNetwork Pods: skipped by the handler in a labelled namespace, by the legacy webhook's match condition elsewhere", async () => {
    const requests = async () =>
      (await w.webhook.metrics.requests.get()).values.reduce((sum, v) => sum + v.value, 0);
    const hostNetworkPod = (name: string, annotations?: Record<string, string>): V1Pod => ({
      metadata: { name, ...(annotations ? { annotations } : {}) },
      spec: { hostNetwork: true, containers: [{ name: 'app', image: 'busybox' }] },
    });
    // The selector-routed webhook has no CEL (the apiserver would convert every Pod for it), so
    // the Pod reaches the handler, which admits it unchanged and says why.
    let before = await requests();
    const labelled = await createPodWithWarnings(h.kc, enabledNs, hostNetworkPod('hostnet'), true);
    assert.equal(labelled.status, 201, labelled.text);
    assert.equal(isInjected(labelled.pod), false);
    assert.equal(labelled.pod.spec?.containers.length, 1);
    assert.ok(
      labelled.warnings.some((x) => x.startsWith('netmesh: sidecar not injected (HostNetwork)')),
      JSON.stringify(labelled.warnings),
    );
    assert.equal(await requests(), before + 1, 'the webhook was called once');
    // The legacy webhook needs CEL for the annotation anyway; its conditions also exclude it.
    before = await requests();
    const legacy = await createPodWithWarnings(
      h.kc,
      plainNs,
      hostNetworkPod('hostnet-legacy', { 'initializer.kubernetes.io/envoy': 'true' }),
      true,
    );
    assert.equal(legacy.status, 201, legacy.text);
    assert.equal(isInjected(legacy.pod), false);
    assert.deepEqual(legacy.warnings, []);
    assert.equal(await requests(), before, 'the webhook was not called');
  });

  test('a name conflict is admitted unchanged and kubectl sees the warning', async () => {
    const body = await coursePod();
    body.metadata!.name = 'conflict';
    body.spec!.volumes = [{ name: 'envoy-conf', emptyDir: {} }];
    const res = await createPodWithWarnings(h.kc, enabledNs, body);
    assert.equal(res.status, 201, res.text);
    assert.equal(isInjected(res.pod), false);
    assert.ok(
      res.warnings.some((x) => x.startsWith('netmesh: sidecar not injected (NameConflict)')),
      JSON.stringify(res.warnings),
    );
  });

  test('dry-run creates are injected too, and nothing is stored', async () => {
    const body = await coursePod();
    body.metadata!.name = 'dry';
    const pod = await h.core.createNamespacedPod({ namespace: enabledNs, body, dryRun: 'All' });
    assert.ok(isInjected(pod));
    await assert.rejects(readBack(enabledNs, 'dry'), (err: { code?: number }) => err.code === 404);
  });

  test("a Deployment's Pods (generateName, created by kube-controller-manager) are injected exactly once", async () => {
    await createDeployment(h, enabledNs, 'web');
    const pods = await eventually('two Pods of the Deployment', async () => {
      const list = await h.core.listNamespacedPod({ namespace: enabledNs, labelSelector: 'app=web' });
      return list.items.length === 2 ? list.items : undefined;
    });
    for (const pod of pods) {
      assert.ok(pod.metadata?.generateName?.startsWith('web-'));
      assert.deepEqual(
        pod.spec?.containers.map((c) => c.name),
        ['web', 'envoy'],
      );
      assert.equal(pod.spec?.volumes?.filter((v) => v.name === 'envoy-conf').length, 1);
      assert.ok(isInjected(pod));
    }
  });

  test('an edited ConfigMap changes the next Pod without a restart', async () => {
    const cm = await courseConfigMap();
    const oldHash = w.webhook.template()?.hash;
    const config = cm.data!['config']!.replace(
      'lyft/envoy:845747db88f102c0fd262ab234308e9e22f693a1',
      'envoyproxy/envoy:v1.31.0',
    );
    await h.core.replaceNamespacedConfigMap({
      namespace: w.systemNamespace,
      name: 'envoy-initializer',
      body: { metadata: { name: 'envoy-initializer' }, data: { config } },
    });
    await eventually('the new template in force', async () => w.webhook.template()?.hash !== oldHash, {
      timeoutMs: 10_000,
    });
    const body = await coursePod();
    body.metadata!.name = 'after-edit';
    await h.core.createNamespacedPod({ namespace: enabledNs, body });
    const pod = await readBack(enabledNs, 'after-edit');
    assert.equal(pod.spec?.containers[1]?.image, 'envoyproxy/envoy:v1.31.0');
    assert.equal(
      parseInjectionStatus(pod.metadata?.annotations?.[STATUS_ANNOTATION])?.templateHash,
      w.webhook.template()?.hash,
    );
  });

  test('a broken ConfigMap keeps the last good template, with a Warning Event, readiness and metrics', async () => {
    const good = w.webhook.template()!.hash;
    const errorsBefore = (await w.webhook.metrics.templateErrors.get()).values[0]?.value ?? 0;
    const updated = await h.core.replaceNamespacedConfigMap({
      namespace: w.systemNamespace,
      name: 'envoy-initializer',
      body: {
        metadata: { name: 'envoy-initializer' },
        data: { config: 'containers:\n  - name: Envoy_Proxy\n    image: envoy\n' },
      },
    });
    const event: CoreV1Event = await eventually(
      'an InvalidTemplate Warning Event on the ConfigMap',
      async () => {
        const list = await h.core.listNamespacedEvent({
          namespace: w.systemNamespace,
          fieldSelector: `involvedObject.kind=ConfigMap,involvedObject.name=envoy-initializer,reason=InvalidTemplate`,
        });
        return list.items.find((e) => e.involvedObject.resourceVersion === updated.metadata?.resourceVersion);
      },
    );
    assert.equal(event.type, 'Warning');
    assert.match(event.message ?? '', /containers\[0\].*not a valid DNS-1123 label/);
    assert.match(event.message ?? '', new RegExp(`last good template ${good}`));
    assert.equal(event.involvedObject.uid, updated.metadata?.uid);
    assert.equal(w.webhook.template()?.hash, good);

    const body = await coursePod();
    body.metadata!.name = 'during-broken';
    const res = await createPodWithWarnings(h.kc, enabledNs, body);
    assert.equal(res.status, 201, res.text);
    assert.equal(
      parseInjectionStatus(res.pod.metadata?.annotations?.[STATUS_ANNOTATION])?.templateHash,
      good,
    );
    assert.ok(
      res.warnings.some((x) => /last good sidecar template/.test(x)),
      JSON.stringify(res.warnings),
    );

    const ready = await httpGet(w.webhook.healthPort!, '/readyz?verbose');
    assert.equal(ready.status, 200, 'still ready: it has a last good template');
    assert.match(ready.text, /template: STALE/);
    const metrics = await httpGet(w.webhook.healthPort!, '/metrics');
    assert.match(metrics.text, /netmesh_webhook_template_stale 1/);
    const errorsAfter = (await w.webhook.metrics.templateErrors.get()).values[0]?.value ?? 0;
    assert.ok(errorsAfter > errorsBefore);

    // Fixing it clears the stale state.
    const cm = await courseConfigMap();
    await h.core.replaceNamespacedConfigMap({
      namespace: w.systemNamespace,
      name: 'envoy-initializer',
      body: { metadata: { name: 'envoy-initializer' }, data: cm.data },
    });
    await eventually('the template valid again', async () =>
      /template: ok/.test((await httpGet(w.webhook.healthPort!, '/readyz?verbose')).text),
    );
  });

  test('health, readiness and metrics on the plain HTTP port', async () => {
    const health = await httpGet(w.webhook.healthPort!, '/healthz');
    assert.equal(health.status, 200);
    const metrics = (await httpGet(w.webhook.healthPort!, '/metrics')).text;
    for (const name of [
      'netmesh_webhook_requests_total{outcome="injected"}',
      'netmesh_webhook_injection_duration_seconds_bucket',
      'netmesh_webhook_injections_total',
      'netmesh_webhook_skips_total{reason="NameConflict"}',
      'netmesh_webhook_template_reloads_total',
      'netmesh_webhook_template_errors_total',
      'netmesh_webhook_certificate_expiry_timestamp_seconds',
    ]) {
      assert.ok(metrics.includes(name), name);
    }
  });

  test('the TLS Secret holds the CA and a serving cert for the Service names and 127.0.0.1', async () => {
    const { inspectCertificate, isSignedBy } = await import('../../lib/pki.ts');
    const secret = await h.core.readNamespacedSecret({
      namespace: w.systemNamespace,
      name: 'netmesh-webhook-tls',
    });
    // Opaque, as the chart pre-creates it (a Secret's type cannot change afterwards).
    assert.equal(secret.type, 'Opaque');
    const d = (k: string) => Buffer.from(secret.data![k]!, 'base64').toString('utf8');
    const info = inspectCertificate(d('tls.crt'));
    assert.ok(info.dnsNames.includes(`netmesh-webhook.${w.systemNamespace}.svc`));
    assert.ok(info.dnsNames.includes(`netmesh-webhook.${w.systemNamespace}.svc.cluster.local`));
    assert.ok(info.ipAddresses.includes('127.0.0.1'));
    assert.ok(isSignedBy(d('tls.crt'), d('ca.crt')));
    assert.match(d('ca.key'), /PRIVATE KEY/);
    const config = await h.kc
      .makeApiClient((await import('@kubernetes/client-node')).AdmissionregistrationV1Api)
      .readMutatingWebhookConfiguration({ name: w.configName });
    for (const hook of config.webhooks ?? []) {
      assert.equal(Buffer.from(hook.clientConfig.caBundle!, 'base64').toString(), d('ca.crt'));
      assert.doesNotMatch(d('ca.crt'), /\r/);
    }
  });

  test('a deleted ConfigMap means no template: Pods are admitted unchanged with NoTemplate', async () => {
    await h.core.deleteNamespacedConfigMap({ namespace: w.systemNamespace, name: 'envoy-initializer' });
    await eventually('the template gone', async () => w.webhook.template() === undefined, {
      timeoutMs: 10_000,
    });
    const body = await coursePod();
    body.metadata!.name = 'no-template';
    const res = await createPodWithWarnings(h.kc, enabledNs, body);
    assert.equal(res.status, 201, res.text);
    assert.equal(isInjected(res.pod), false);
    assert.ok(
      res.warnings.some((x) => x.startsWith('netmesh: sidecar not injected (NoTemplate)')),
      JSON.stringify(res.warnings),
    );
    const ready = await httpGet(w.webhook.healthPort!, '/readyz?verbose');
    assert.equal(ready.status, 200);
    assert.match(ready.text, /template: none/);
    assert.match(
      (await httpGet(w.webhook.healthPort!, '/metrics')).text,
      /netmesh_webhook_skips_total\{reason="NoTemplate"\} 1/,
    );
  });

  test('a broken ConfigMap with no last good template: admitted unchanged (NoTemplate), still ready', async () => {
    // Follows the test above: the ConfigMap is gone, so there is no last good template.
    assert.equal(w.webhook.template(), undefined);
    const created = await h.core.createNamespacedConfigMap({
      namespace: w.systemNamespace,
      body: {
        metadata: { name: 'envoy-initializer' },
        data: { config: 'containers:\n  - name: Envoy_Proxy\n    image: envoy\n' },
      },
    });
    await eventually('the broken template seen', async () => {
      const state = w.webhook.readiness().message;
      return /is invalid and there is no last good template/.test(state);
    });
    const body = await coursePod();
    body.metadata!.name = 'broken-no-fallback';
    const res = await createPodWithWarnings(h.kc, enabledNs, body);
    assert.equal(res.status, 201, res.text);
    assert.equal(isInjected(res.pod), false);
    assert.ok(
      res.warnings.some((x) => x.startsWith('netmesh: sidecar not injected (NoTemplate)')),
      JSON.stringify(res.warnings),
    );
    const ready = await httpGet(w.webhook.healthPort!, '/readyz?verbose');
    assert.equal(ready.status, 200, 'as ready as with no ConfigMap: not being ready would change nothing');
    assert.match(
      ready.text,
      /\[\+\]webhook ok: .*is invalid and there is no last good template \(.*DNS-1123/,
    );
    assert.equal(w.webhook.readiness().ok, true);
    await h.core.deleteNamespacedConfigMap({
      namespace: w.systemNamespace,
      name: created.metadata!.name!,
    });
  });

  test('a namespace labelled a moment ago is injected at once (stale cache re-read)', async () => {
    const ns = await w.namespace('wh-late');
    namespaces.push(ns);
    // Restore a template first (the tests above removed it).
    const cm = await courseConfigMap();
    await h.core
      .createNamespacedConfigMap({
        namespace: w.systemNamespace,
        body: { metadata: { name: 'envoy-initializer' }, data: cm.data },
      })
      .catch((err: { code?: number }) => {
        if (err.code !== 409) throw err;
      });
    await eventually('the template back', async () => w.webhook.template() !== undefined);
    // Give the namespace informer time to cache the namespace without the label.
    await new Promise((r) => setTimeout(r, 1000));
    await h.core.patchNamespace(
      { name: ns, body: { metadata: { labels: ENABLED } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    // At once: once the apiserver selects the Pod by the new label, the webhook must agree even
    // if its cache has not seen the label yet. The apiserver matches namespaceSelector against
    // its own namespace cache, which can lag the patch too: a create it did not send to the
    // webhook says nothing about the webhook, so only those are retried. The watch usually wins
    // the webhook's race on a local apiserver, so this checks the end result;
    // webhook/namespaces.test.ts pins the re-read.
    const requests = async () =>
      (await w.webhook.metrics.requests.get()).values.reduce((sum, v) => sum + v.value, 0);
    const pod = await eventually(
      'a dry-run create the apiserver sends to the webhook',
      async () => {
        const before = await requests();
        const created = await h.core.createNamespacedPod({ namespace: ns, body: probePod(), dryRun: 'All' });
        return (await requests()) > before ? created : undefined;
      },
      { timeoutMs: 5000, intervalMs: 50 },
    );
    assert.ok(isInjected(pod));
  });
});
