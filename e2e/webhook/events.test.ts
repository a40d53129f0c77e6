// The injector's decisions as Events, through the real apiserver (the kube-controller-manager
// creates the ReplicaSet and its Pods; the webhook runs on this host): a Deployment's Pods are
// counted up on one Injected Event on the Deployment; a skipped Pod gets InjectionSkipped with
// the reason; a dry run records nothing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CoreV1Event } from '@kubernetes/client-node';
import { createDeployment, deleteNamespace, eventually, useCluster } from '../support.ts';
import {
  coursePod,
  createPodWithWarnings,
  ENABLED,
  type ScopedWebhook,
  startScopedWebhook,
  waitUntilInjecting,
} from './helpers.ts';

describe('webhook Events on the owning workload', () => {
  const h = useCluster();
  let w: ScopedWebhook;
  let enabledNs: string;
  const namespaces: string[] = [];

  before(async () => {
    w = await startScopedWebhook(h);
    namespaces.push(w.systemNamespace);
    enabledNs = await w.namespace('wh-ev', ENABLED);
    namespaces.push(enabledNs);
    await waitUntilInjecting(h, enabledNs);
  });

  after(async () => {
    await w?.webhook.stop();
    for (const ns of namespaces) await deleteNamespace(h, ns);
  });

  const eventsFor = async (kind: string, name: string, reason: string): Promise<CoreV1Event[]> =>
    (
      await h.core.listNamespacedEvent({
        namespace: enabledNs,
        fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name},reason=${reason}`,
      })
    ).items;

  test('a Deployment of N replicas: one Injected Event on the Deployment, counted up to N', async () => {
    const replicas = 6;
    await createDeployment(h, enabledNs, 'web', replicas);
    const events = await eventually(
      `an Injected Event on Deployment web with count >= ${replicas}`,
      async () => {
        const list = await eventsFor('Deployment', 'web', 'Injected');
        const total = list.reduce((n, e) => n + (e.count ?? 1), 0);
        return total >= replicas ? list : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    assert.equal(
      events.length,
      1,
      `aggregated into one Event: ${JSON.stringify(events.map((e) => e.count))}`,
    );
    const e = events[0]!;
    assert.equal(e.type, 'Normal');
    assert.equal(e.involvedObject.apiVersion, 'apps/v1');
    assert.ok(e.involvedObject.uid, 'points at the Deployment by uid');
    assert.match(e.message ?? '', new RegExp(`template ${w.webhook.template()?.hash}`));
    assert.equal(e.reportingComponent, 'netmesh-webhook');
    // None on the Pods or the ReplicaSet: the Deployment is what a person describes.
    const onPods = (await h.core.listNamespacedEvent({ namespace: enabledNs })).items.filter(
      (x) => x.reason === 'Injected' && x.involvedObject.kind !== 'Deployment',
    );
    assert.deepEqual(onPods, []);
  });

  test('a skipped Pod: InjectionSkipped with the reason on the Pod; a dry run records nothing', async () => {
    // A volume named like the template's: admitted unchanged (NameConflict).
    const conflicting = async (name: string) => {
      const pod = await coursePod();
      pod.metadata!.name = name;
      pod.spec!.volumes = [{ name: 'envoy-conf', emptyDir: {} }];
      return pod;
    };
    const dry = await createPodWithWarnings(h.kc, enabledNs, await conflicting('dry'), true);
    assert.equal(dry.status, 201, dry.text);
    const res = await createPodWithWarnings(h.kc, enabledNs, await conflicting('has-conflict'));
    assert.equal(res.status, 201, res.text);
    assert.ok(
      res.warnings.some((x) => x.startsWith('netmesh: sidecar not injected (NameConflict)')),
      JSON.stringify(res.warnings),
    );
    const event = await eventually(
      'an InjectionSkipped Event on Pod has-conflict',
      async () => (await eventsFor('Pod', 'has-conflict', 'InjectionSkipped'))[0],
    );
    assert.equal(event.type, 'Normal');
    assert.match(event.message ?? '', /^sidecar not injected \(NameConflict\): /);
    await w.webhook.flushEvents();
    assert.deepEqual(await eventsFor('Pod', 'dry', 'InjectionSkipped'), [], 'no Event for the dry run');
  });
});
