// Operating netmesh in-cluster: a `helm upgrade` rolls both replicas while Pods keep being
// created in a labelled namespace (failurePolicy Fail, so a missed call would be a failed
// admission) and Networks are watched for any loss of Ready; then the leader Pod is deleted and
// the other replica takes the Lease within the lease duration.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { installInCluster } from '../../cluster/chart.ts';
import { statusCode, statusMessage } from '../../lib/kube-errors.ts';
import { STATUS_ANNOTATION } from '../../webhook/core/contract.ts';
import { deleteNamespace, eventually, useCluster } from '../support.ts';
import {
  ENABLED,
  installRelease,
  leaderOf,
  liveLeaderOf,
  netmeshPods,
  type Release,
  requireNode,
} from './helpers.ts';

const LEASE_SECONDS = 15;

describe('netmesh in-cluster: rolling upgrade and leader loss', () => {
  const h = useCluster();
  let r: Release;
  let appNs: string;
  const networks = ['roll-a', 'roll-b', 'roll-c'];

  const networkReady = async (name: string): Promise<boolean> => {
    const n = (await h.custom.getNamespacedCustomObject({
      group: 'netmesh.io',
      version: 'v1',
      namespace: appNs,
      plural: 'networks',
      name,
    })) as { status?: { conditions?: { type: string; status: string }[] } };
    return !!n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  };

  before(async () => {
    r = await installRelease(h, { release: 'nmroll' });
    appNs = await r.appNamespace('roll-app', ENABLED);
    for (const [i, name] of networks.entries()) {
      await h.custom.createNamespacedCustomObject({
        group: 'netmesh.io',
        version: 'v1',
        namespace: appNs,
        plural: 'networks',
        body: {
          apiVersion: 'netmesh.io/v1',
          kind: 'Network',
          metadata: { name },
          spec: { cidr: `10.${100 + i}.0.0/16` },
        },
      });
    }
    await eventually('every Network Ready', async () =>
      (await Promise.all(networks.map(networkReady))).every(Boolean),
    );
  });
  after(async () => {
    if (appNs) await deleteNamespace(h, appNs);
    r?.uninstall();
  });

  test('helm upgrade rolls both replicas with no failed admission and no Network losing Ready', async () => {
    const image = requireNode(h);
    const before = new Set((await netmeshPods(h, r)).map((p) => p.metadata?.name));
    let stop = false;
    const admissions = { ok: 0, failed: [] as string[], notInjected: 0 };
    const lostReady: string[] = [];
    const createLoop = (async () => {
      for (let i = 0; !stop; i++) {
        try {
          const pod = await h.core.createNamespacedPod({
            namespace: appNs,
            // Dry run: the same admission chain (the webhook is called) without filling the node.
            dryRun: 'All',
            body: {
              metadata: { name: `during-${i}` },
              spec: { containers: [{ name: 'app', image: 'busybox:1.35', command: ['sleep', '1'] }] },
            },
          });
          admissions.ok++;
          if (!pod.metadata?.annotations?.[STATUS_ANNOTATION]) admissions.notInjected++;
        } catch (err) {
          // The apiserver's Status message says which webhook call failed and how.
          admissions.failed.push(`${statusCode(err) ?? ''} ${statusMessage(err) ?? (err as Error).message}`);
        }
        await new Promise((res) => setTimeout(res, 100));
      }
    })();
    const watchLoop = (async () => {
      while (!stop) {
        for (const n of networks) if (!(await networkReady(n).catch(() => true))) lostReady.push(n);
        await new Promise((res) => setTimeout(res, 250));
      }
    })();
    try {
      // A changed value (a Pod annotation) rolls the Deployment as an image change would.
      await installInCluster(h.cluster.kubeconfigPath, {
        release: r.release,
        namespace: r.namespace,
        image,
        values: { ...r.values, podAnnotations: { 'netmesh-e2e/rollout': String(Date.now()) } },
      });
      await eventually(
        'both replicas replaced',
        async () => {
          const pods = await netmeshPods(h, r);
          return pods.length === 2 && pods.every((p) => !before.has(p.metadata?.name));
        },
        // Two Pod starts and terminations one after the other, on a loaded node.
        { timeoutMs: 180_000 },
      );
      // Requests continue until the old replicas are gone: the last one keeps serving through
      // its shutdown delay, and the moment its endpoint goes away must be covered too.
      await eventually(
        'the old replicas gone',
        async () =>
          (await netmeshPods(h, r, { terminating: true })).every((p) => !before.has(p.metadata?.name)),
        { timeoutMs: 60_000, intervalMs: 250 },
      );
      await new Promise((res) => setTimeout(res, 1000));
    } finally {
      stop = true;
      await Promise.all([createLoop, watchLoop]);
    }
    console.log(
      `# during the rollout: ${admissions.ok} admissions, ${admissions.failed.length} failed, ${admissions.notInjected} not injected`,
    );
    assert.ok(admissions.ok > 20, `${admissions.ok} admissions during the rollout`);
    assert.deepEqual(admissions.failed, [], 'no admission failed');
    assert.equal(admissions.notInjected, 0, 'every Pod injected');
    assert.deepEqual(lostReady, [], 'no Network lost Ready');
  });

  test('deleting the leader Pod: another replica takes the Lease within the lease duration', async () => {
    // After the rollout the Lease may still name an old replica, or nobody once it released:
    // a new replica takes it on its next retry, or after the lease duration at worst.
    const leader = await eventually('a live replica holding the Lease', () => liveLeaderOf(h, r), {
      timeoutMs: LEASE_SECONDS * 1000 + 10_000,
      intervalMs: 100,
    });
    const others = (await netmeshPods(h, r)).map((p) => p.metadata!.name!).filter((n) => n !== leader);
    assert.equal(others.length, 1, 'one standby');
    const started = Date.now();
    await h.core.deleteNamespacedPod({ namespace: r.namespace, name: leader });
    const next = await eventually(
      'another replica holding the Lease',
      async () => {
        const holder = await leaderOf(h, r);
        return holder && holder !== leader ? holder : undefined;
      },
      { timeoutMs: LEASE_SECONDS * 1000 + 5000, intervalMs: 100 },
    );
    const seconds = (Date.now() - started) / 1000;
    console.log(`# leader ${leader} deleted; ${next} leads after ${seconds.toFixed(1)} s`);
    // The standby, or the replacement the ReplicaSet started at once: whichever asks first.
    const current = (await netmeshPods(h, r)).map((p) => p.metadata?.name);
    assert.ok(current.includes(next), `${next} is a live replica (${current.join(', ')})`);
    assert.ok(seconds < LEASE_SECONDS, `takeover in ${seconds} s, under the ${LEASE_SECONDS} s lease`);
    // The new leader works: a Network created now becomes Ready.
    await h.custom.createNamespacedCustomObject({
      group: 'netmesh.io',
      version: 'v1',
      namespace: appNs,
      plural: 'networks',
      body: {
        apiVersion: 'netmesh.io/v1',
        kind: 'Network',
        metadata: { name: 'after-failover' },
        spec: { cidr: '10.110.0.0/16' },
      },
    });
    await eventually('the new Network Ready', () => networkReady('after-failover'), { timeoutMs: 30_000 });
    const lease = await h.kc
      .makeApiClient(k8s.CoordinationV1Api)
      .readNamespacedLease({ namespace: r.namespace, name: `${r.fullname}-operator` });
    assert.equal(lease.spec?.holderIdentity, next);
  });
});
