// `netmesh run` (what the chart deploys: webhook on every replica, Network controller and
// Envoy bootstrap copier on the leader) on the host under the chart's own ServiceAccount, with
// the full chart installed (webhook.localRunURL), as in chart.test.ts: the bootstrap copies'
// ownership and lifecycle; start-up when the Network CRD is missing (as with a chart installed
// with --skip-crds; an RBAC gap looks the same to the informers); shutdown within the grace
// period with the Lease released.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import {
  hostRunArgs,
  installChart,
  releaseExists,
  serviceAccountKubeconfig,
  uninstallChart,
} from '../cluster/chart.ts';
import { freePort } from '../cluster/controlplane.ts';
import { type NetmeshProcess, startNetmesh } from '../cluster/netmesh-process.ts';
import { kubectl } from '../cluster/tools.ts';
import { auditLog } from './operator-support.ts';
import { createNamespace, deleteNamespace, eventually, useCluster } from './support.ts';
import { waitUntilInjecting } from './webhook/helpers.ts';

const CRD = 'networks.netmesh.io';
const ENABLED = { 'netmesh.io/injection': 'enabled' };
/** Short enough for a test; the default is 2 minutes. */
const SYNC_TIMEOUT_ENV = { NETMESH_CACHE_SYNC_TIMEOUT: '3s' };
const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('netmesh run under the chart identity', () => {
  const h = useCluster();
  const release = 'nmrun';
  const systemNs = 'nmrun-system';
  const fullname = 'nmrun-netmesh';
  const leaseName = `${fullname}-operator`;
  let identity: string;
  let removeToken: (() => void) | undefined;
  let port: number;
  let chart: ReturnType<typeof installChart>;
  const procs: NetmeshProcess[] = [];
  const namespaces: string[] = [];

  const run = async (env: NodeJS.ProcessEnv = {}) => {
    const p = await startNetmesh('run', hostRunArgs(chart, identity, port), env);
    procs.push(p);
    return p;
  };
  const coord = () => h.kc.makeApiClient(k8s.CoordinationV1Api);
  const holder = async () =>
    (await coord().readNamespacedLease({ namespace: systemNs, name: leaseName })).spec?.holderIdentity ?? '';
  const readyz = async (p: NetmeshProcess) => {
    const res = await fetch(`http://127.0.0.1:${p.healthPort}/readyz?verbose`);
    return { status: res.status, body: await res.text() };
  };
  const stopTimed = async (p: NetmeshProcess) => {
    const t0 = Date.now();
    const code = await p.stop();
    return { code, ms: Date.now() - t0 };
  };
  const namespace = async (prefix: string, labels: Record<string, string> = {}) => {
    const ns = await createNamespace(h, prefix, labels);
    namespaces.push(ns);
    return ns;
  };
  const assertNoKeyLogged = async (logs: string) => {
    const secret = await h.core.readNamespacedSecret({ namespace: systemNs, name: 'netmesh-webhook-tls' });
    assert.ok(logs.length > 0);
    assert.doesNotMatch(logs, /PRIVATE KEY/);
    for (const key of ['ca.key', 'tls.key']) {
      const b64 = secret.data?.[key];
      assert.ok(b64, `${key} in the Secret`);
      const body = Buffer.from(b64, 'base64')
        .toString('utf8')
        .replace(/-----[A-Z ]+-----/g, '')
        .replace(/\s+/g, '');
      for (const fragment of [b64.slice(0, 48), body.slice(0, 48), body.slice(-48)])
        assert.ok(!logs.includes(fragment), `part of ${key} found in the logs`);
    }
  };
  /** Namespaces watches open on the apiserver now (all clients: the controller-manager's too). */
  // Namespace watches this run's identity opened since `since` (the harness's audit log records
  // every namespaces watch); other processes' watches on the shared cluster do not count.
  const namespaceWatches = (since: string): number | undefined => {
    const audit = auditLog(h.cluster.kubeconfigPath);
    if (!audit) return undefined;
    return audit
      .read()
      .filter(
        (e) =>
          e.stage === 'ResponseStarted' &&
          e.verb === 'watch' &&
          e.objectRef?.resource === 'namespaces' &&
          e.user.username === `system:serviceaccount:${systemNs}:${fullname}` &&
          e.requestReceivedTimestamp >= since,
      ).length;
  };
  const copyIn = (ns: string) =>
    h.core.readNamespacedConfigMap({ namespace: ns, name: 'envoy' }).catch(() => undefined);

  before(async () => {
    // The controller of the same process needs its CRD (the copier does not depend on it);
    // the start-up tests below delete it, as a chart installed with --skip-crds would lack it.
    kubectl(h.cluster.kubeconfigPath, ['apply', '-f', 'crds/']);
    port = await freePort();
    chart = installChart(h.cluster.kubeconfigPath, release, systemNs, {
      'webhook.localRunURL': `https://127.0.0.1:${port}/mutate`,
      replicaCount: 1,
    });
    const sa = await serviceAccountKubeconfig(h.kc, systemNs, fullname);
    identity = sa.path;
    removeToken = sa.remove;
  });

  after(async () => {
    for (const p of procs) if (p.child.exitCode === null) await p.stop();
    for (const ns of namespaces) await deleteNamespace(h, ns);
    if (releaseExists(h.cluster.kubeconfigPath, release, systemNs))
      uninstallChart(h.cluster.kubeconfigPath, release, systemNs);
    kubectl(h.cluster.kubeconfigPath, ['delete', 'namespace', systemNs, '--wait=false']);
    removeToken?.();
    kubectl(h.cluster.kubeconfigPath, ['apply', '-f', 'crds/']);
  });

  test('the Envoy bootstrap is copied only where netmesh owns the name, owned by the webhook configuration, and removed when no longer wanted', async () => {
    const started = new Date().toISOString();
    const p = await run();
    await p.waitReady(60_000);
    let code: number | null = null;
    try {
      const source = await h.core.readNamespacedConfigMap({ namespace: systemNs, name: 'envoy' });
      const label = (ns: string, labels: Record<string, string | null>) =>
        h.core.patchNamespace({ name: ns, body: { metadata: { labels } } }, mergePatch);
      const mine = await namespace('boot', ENABLED);
      // Someone else's `envoy` (e.g. Helm's envoyBootstrap.namespaces) in a labelled namespace.
      const theirs = await namespace('boot-theirs');
      await h.core.createNamespacedConfigMap({
        namespace: theirs,
        body: {
          metadata: { name: 'envoy', labels: { 'app.kubernetes.io/managed-by': 'Helm' } },
          data: { 'envoy.yaml': 'theirs' },
        },
      });
      const before = await h.core.readNamespacedConfigMap({ namespace: theirs, name: 'envoy' });
      await label(theirs, ENABLED);

      const copy = await eventually('the copy in the labelled namespace', () => copyIn(mine));
      // The webhook's selection and the leader's copier share one namespaces informer.
      const watches = namespaceWatches(started);
      if (watches === undefined)
        console.log('# no apiserver audit log on this target: namespace watches not counted');
      else assert.equal(watches, 1, 'netmesh run opened one namespaces watch (audit log)');
      assert.deepEqual(copy.data, source.data);
      assert.equal(copy.metadata?.labels?.['netmesh.io/bootstrap-copy'], 'true');
      assert.equal(copy.metadata?.annotations?.['netmesh.io/copied-from'], `${systemNs}/envoy`);
      await sleep(1500); // time for any (wrong) write to land
      const after = await h.core.readNamespacedConfigMap({ namespace: theirs, name: 'envoy' });
      assert.equal(after.metadata?.resourceVersion, before.metadata?.resourceVersion, 'not overwritten');
      assert.ok(!after.metadata?.managedFields?.some((f) => f.manager === 'netmesh-operator'));
      await eventually('a Warning Event on the ConfigMap netmesh leaves alone', async () =>
        (await h.core.listNamespacedEvent({ namespace: theirs })).items.find(
          (e) => e.involvedObject.name === 'envoy' && e.type === 'Warning',
        ),
      );

      await label(mine, { 'netmesh.io/injection': null });
      await eventually(
        'the copy removed once the namespace is unlabelled',
        async () => !(await copyIn(mine)),
      );
      await label(mine, ENABLED);
      await eventually('the copy back once labelled again', () => copyIn(mine));

      await h.core.deleteNamespacedConfigMap({ namespace: systemNs, name: 'envoy' });
      await eventually('the copy removed with its source', async () => !(await copyIn(mine)));
      await h.core.createNamespacedConfigMap({
        namespace: systemNs,
        body: {
          metadata: {
            name: 'envoy',
            labels: source.metadata?.labels ?? {},
            annotations: source.metadata?.annotations ?? {},
          },
          data: source.data ?? {},
        },
      });
      await eventually('the copy back with its source', () => copyIn(mine));
      assert.equal(
        (await h.core.readNamespacedConfigMap({ namespace: theirs, name: 'envoy' })).metadata
          ?.resourceVersion,
        before.metadata?.resourceVersion,
      );
      // Owned by the webhook configuration, so that helm uninstall has it collected (last test).
      const mwc = await h.kc
        .makeApiClient(k8s.AdmissionregistrationV1Api)
        .readMutatingWebhookConfiguration({ name: fullname });
      assert.deepEqual(JSON.parse(JSON.stringify(copy.metadata?.ownerReferences)), [
        {
          apiVersion: 'admissionregistration.k8s.io/v1',
          kind: 'MutatingWebhookConfiguration',
          name: fullname,
          uid: mwc.metadata?.uid,
        },
      ]);
    } finally {
      code = await p.stop();
    }
    assert.equal(code, 0, `exits cleanly; log ${p.logFile}`);
  });

  test('netmesh operator without its CRD: the cache sync times out with the reason in readiness, logs and an Event; SIGTERM stops it at once and releases the Lease', async () => {
    kubectl(h.cluster.kubeconfigPath, ['delete', 'crd', CRD, '--ignore-not-found', '--wait=true']);
    const p = await startNetmesh(
      'operator',
      [
        ...['--kubeconfig', identity, '--netmesh-namespace', systemNs, '--lease-name', leaseName],
        ...[
          '--identity',
          'start-a',
          '--lease-duration',
          '4s',
          '--renew-deadline',
          '3s',
          '--retry-period',
          '500ms',
        ],
      ],
      SYNC_TIMEOUT_ENV,
    );
    procs.push(p);
    await eventually('start-a to lead', async () => (await holder()) === 'start-a');
    const probe = await eventually('readiness to give the reason', async () => {
      const r = await readyz(p);
      return r.status === 503 && /cache sync timed out/.test(r.body) ? r : undefined;
    });
    assert.match(probe.body, /informer networks/, `names the informer: ${probe.body}`);
    assert.match(probe.body, /404|not found/i, `says why: ${probe.body}`);
    await eventually('the log line', async () => /cache sync timed out/.test(p.logs()));
    const ev = await eventually('a CacheSyncTimeout Warning Event', async () =>
      (await h.core.listNamespacedEvent({ namespace: systemNs })).items.find(
        (e) => e.reason === 'CacheSyncTimeout',
      ),
    );
    assert.equal(ev.type, 'Warning');
    assert.equal(ev.involvedObject.kind, 'Lease');
    assert.match(ev.message ?? '', /informer networks/);
    const { code, ms } = await stopTimed(p);
    assert.equal(code, 0, `exits cleanly; log ${p.logFile}`);
    assert.ok(ms < 10_000, `SIGTERM took ${ms} ms`);
    assert.equal(await holder(), '', 'the Lease released on the way out');
  });

  test('netmesh run without the CRD: the webhook stays ready and injects, copies still happen; SIGTERM is bounded; the controller starts once the CRD exists', {
    timeout: 240_000,
  }, async () => {
    kubectl(h.cluster.kubeconfigPath, ['delete', 'crd', CRD, '--ignore-not-found', '--wait=true']);
    let p = await run(SYNC_TIMEOUT_ENV);
    // The webhook's readiness does not depend on the controller's.
    await p.waitReady(60_000);
    await eventually('the operator reason shown, without failing readiness', async () => {
      const r = await readyz(p);
      assert.equal(r.status, 200, r.body);
      return /operator ok: .*cache sync timed out/.test(r.body);
    });
    const admission = h.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
    await eventually('caBundle patched into the chart webhook configuration', async () => {
      const mwc = await admission.readMutatingWebhookConfiguration({ name: fullname });
      return mwc.webhooks?.every((w) => (w.clientConfig.caBundle ?? '').length > 0);
    });
    const app = await namespace('run-app', ENABLED);
    // failurePolicy Ignore: a first call that is slow or refused would store the Pod uninjected.
    await waitUntilInjecting(h, app);
    const pod = parseYaml(readFileSync('examples/seed-myapp-pod.yaml', 'utf8')) as k8s.V1Pod;
    await h.core.createNamespacedPod({ namespace: app, body: pod });
    const stored = await h.core.readNamespacedPod({ namespace: app, name: 'myapp-pod' });
    assert.deepEqual(
      stored.spec?.containers.map((c) => c.name),
      ['myapp-container'],
    );
    // The chart's default template is a native sidecar: first among the init containers.
    assert.deepEqual(
      stored.spec?.initContainers?.map((c) => [c.name, c.restartPolicy]),
      [['envoy', 'Always']],
    );
    // The copier does not wait for the Network caches.
    await eventually('the Envoy bootstrap copied without the Network caches', () => copyIn(app));

    // The CA key and the serving key are never logged (this run logs at debug level).
    await assertNoKeyLogged(p.logs());

    const first = await stopTimed(p);
    assert.equal(first.code, 0, `exits cleanly; log ${p.logFile}`);
    assert.ok(first.ms < 10_000, `SIGTERM took ${first.ms} ms`);
    assert.equal(await holder(), '', 'the Lease released');

    p = await run(SYNC_TIMEOUT_ENV);
    await p.waitReady(60_000);
    kubectl(h.cluster.kubeconfigPath, ['apply', '-f', 'crds/']);
    kubectl(h.cluster.kubeconfigPath, ['wait', '--for=condition=Established', `crd/${CRD}`, '--timeout=30s']);
    await h.custom.createNamespacedCustomObject({
      group: 'netmesh.io',
      version: 'v1',
      namespace: app,
      plural: 'networks',
      body: {
        apiVersion: 'netmesh.io/v1',
        kind: 'Network',
        metadata: { name: 'late' },
        spec: { cidr: '10.95.0.0/24' },
      },
    });
    await eventually(
      'the Network Ready once the CRD exists, without a restart',
      async () => {
        const n = (await h.custom.getNamespacedCustomObject({
          group: 'netmesh.io',
          version: 'v1',
          namespace: app,
          plural: 'networks',
          name: 'late',
        })) as { status?: { conditions?: { type: string; status: string }[] } };
        return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      },
      { timeoutMs: 90_000, intervalMs: 1000 },
    );
    assert.doesNotMatch((await readyz(p)).body, /cache sync timed out/, 'the reason is cleared');
    const second = await stopTimed(p);
    assert.equal(second.code, 0, `exits cleanly; log ${p.logFile}`);
    assert.equal(await holder(), '', 'the Lease released');
  });

  test('helm uninstall: the garbage collector removes the copies with the webhook configuration', async () => {
    const copies = async () =>
      (
        await h.core.listConfigMapForAllNamespaces({
          labelSelector: 'netmesh.io/bootstrap-copy=true',
          fieldSelector: 'metadata.name=envoy',
        })
      ).items.filter((c) => c.metadata?.annotations?.['netmesh.io/copied-from'] === `${systemNs}/envoy`);
    assert.ok((await copies()).length > 0, 'copies left by the previous test');
    uninstallChart(h.cluster.kubeconfigPath, release, systemNs);
    await eventually('every copy collected', async () => (await copies()).length === 0);
  });
});
