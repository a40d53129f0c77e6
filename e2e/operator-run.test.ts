// `netmesh run` (what the chart deploys: webhook on every replica, Network controller and
// Envoy bootstrap copier on the leader) on the host under the chart's own ServiceAccount, with
// the full chart installed (webhook.localRunURL), as in chart.test.ts: the bootstrap copies'
// ownership and lifecycle.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
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
import { createNamespace, deleteNamespace, eventually, useCluster } from './support.ts';

const ENABLED = { 'netmesh.io/injection': 'enabled' };
const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('netmesh run under the chart identity', () => {
  const h = useCluster();
  const release = 'nmrun';
  const systemNs = 'nmrun-system';
  const fullname = 'nmrun-netmesh';
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
  const namespace = async (prefix: string, labels: Record<string, string> = {}) => {
    const ns = await createNamespace(h, prefix, labels);
    namespaces.push(ns);
    return ns;
  };
  const copyIn = (ns: string) =>
    h.core.readNamespacedConfigMap({ namespace: ns, name: 'envoy' }).catch(() => undefined);

  before(async () => {
    // The controller of the same process needs its CRD (the copier does not depend on it).
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
  });

  test('the Envoy bootstrap is copied only where netmesh owns the name, owned by the webhook configuration, and removed when no longer wanted', async () => {
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
