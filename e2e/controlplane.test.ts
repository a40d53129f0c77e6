// Proves the control plane is real: the apiserver stores objects, kube-controller-manager's
// deployment and replicaset controllers create Pods, the namespace controller deletes
// namespaces and the garbage collector follows owner references.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { createDeployment, createNamespace, eventually, isNotFound, useCluster } from './support.ts';

describe('control plane', () => {
  const h = useCluster();

  test('reports the pinned Kubernetes version', async () => {
    const info = await h.kc.makeApiClient(k8s.VersionApi).getCode();
    if (h.cluster.kind === 'local') {
      assert.equal(info.gitVersion, 'v1.34.4');
      assert.equal(info.major, '1');
      assert.equal(info.minor, '34');
    } else {
      assert.match(info.gitVersion, /^v1\.\d+/);
    }
  });

  test('deployments create pods; deleting the namespace removes it and everything it owned', async () => {
    const ns = await createNamespace(h, 'cp');
    await h.core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'settings' }, data: { a: '1' } },
    });
    const cm = await h.core.readNamespacedConfigMap({ namespace: ns, name: 'settings' });
    assert.equal(cm.data?.['a'], '1');

    await createDeployment(h, ns, 'web');
    const rs = await eventually('a ReplicaSet owned by the Deployment', async () => {
      const list = await h.apps.listNamespacedReplicaSet({ namespace: ns });
      return list.items.find((r) =>
        r.metadata?.ownerReferences?.some((o) => o.kind === 'Deployment' && o.name === 'web'),
      );
    });
    const pods = await eventually('two Pods owned by the ReplicaSet', async () => {
      const list = await h.core.listNamespacedPod({ namespace: ns });
      const owned = list.items.filter((p) =>
        p.metadata?.ownerReferences?.some((o) => o.uid === rs.metadata?.uid),
      );
      return owned.length === 2 ? owned : undefined;
    });
    for (const p of pods)
      assert.ok(p.metadata?.generateName?.startsWith('web-'), 'controller-created Pods use generateName');

    // The garbage collector: deleting the ReplicaSet in the background deletes its Pods. On a
    // real node a deleted Pod stays (Terminating) until the kubelet has stopped it, so the
    // collector's work is done once every owned Pod carries a deletionTimestamp.
    await h.apps.deleteNamespacedReplicaSet({
      namespace: ns,
      name: rs.metadata!.name!,
      body: { propagationPolicy: 'Background' },
    });
    await eventually("the ReplicaSet's Pods collected or replaced", async () => {
      const list = await h.core.listNamespacedPod({ namespace: ns });
      return list.items.every(
        (p) =>
          p.metadata?.deletionTimestamp !== undefined ||
          !p.metadata?.ownerReferences?.some((o) => o.uid === rs.metadata?.uid),
      );
    });

    await h.core.deleteNamespace({ name: ns });
    await eventually(
      'the namespace to be gone',
      async () => {
        try {
          await h.core.readNamespace({ name: ns });
          return false;
        } catch (err) {
          return isNotFound(err);
        }
      },
      { timeoutMs: 60_000 },
    );
    const leftover = await h.apps.listDeploymentForAllNamespaces({
      fieldSelector: `metadata.namespace=${ns}`,
    });
    assert.equal(leftover.items.length, 0);
  });
});
