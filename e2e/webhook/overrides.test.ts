// Per-Pod sidecar overrides and native sidecars through the real apiserver, which calls the
// webhook over TLS and then validates the patched Pod: overrides applied to the sidecar only,
// invalid ones answered with an admission warning naming the annotation and the value (the
// Pod is still created, with the template's default), and the native sidecar placed before the
// Pod's own init containers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { standinTemplate } from '../../cluster/chart.ts';
import { STATUS_ANNOTATION } from '../../webhook/core/contract.ts';
import { parseInjectionStatus } from '../../webhook/core/inject.ts';
import { deleteNamespace, eventually, useCluster } from '../support.ts';
import {
  createPodWithWarnings,
  ENABLED,
  type ScopedWebhook,
  startScopedWebhook,
  waitUntilInjecting,
} from './helpers.ts';

const IMAGE = 'localhost/netmesh-e2e/envoy-standin:1';

describe('per-Pod overrides and native sidecars through the apiserver', () => {
  const h = useCluster();
  let w: ScopedWebhook;
  let ns: string;
  const namespaces: string[] = [];

  before(async () => {
    w = await startScopedWebhook(h, { withTemplate: false });
    namespaces.push(w.systemNamespace);
    await h.core.createNamespacedConfigMap({
      namespace: w.systemNamespace,
      body: { metadata: { name: 'envoy-initializer' }, data: { config: standinTemplate(IMAGE) } },
    });
    ns = await w.namespace('wh-ovr', ENABLED);
    namespaces.push(ns);
    await waitUntilInjecting(h, ns);
  });

  after(async () => {
    await w?.webhook.stop();
    for (const n of namespaces) await deleteNamespace(h, n);
  });

  const app = (name: string, annotations: Record<string, string>): V1Pod => ({
    metadata: { name, annotations },
    spec: {
      initContainers: [{ name: 'migrate', image: 'busybox:1.35', command: ['true'] }],
      containers: [{ name: 'app', image: 'busybox:1.35', ports: [{ containerPort: 8080 }] }],
    },
  });

  test('valid overrides are applied to the sidecar, which goes before the Pod’s init container', async () => {
    const annotations = {
      'sidecar.netmesh.io/proxy-cpu-request': '20m',
      'sidecar.netmesh.io/proxy-cpu-limit': '300m',
      'sidecar.netmesh.io/proxy-memory-limit': '96Mi',
      'sidecar.netmesh.io/proxy-image': 'localhost/netmesh-e2e/envoy-standin:2',
      'sidecar.netmesh.io/proxy-log-level': 'debug',
      'sidecar.netmesh.io/proxy-port': '15101',
    };
    const res = await createPodWithWarnings(h.kc, ns, app('tuned', annotations));
    assert.equal(res.status, 201, res.text);
    assert.deepEqual(res.warnings, []);
    const pod = await h.core.readNamespacedPod({ namespace: ns, name: 'tuned' });
    assert.deepEqual(
      pod.spec?.initContainers?.map((c) => c.name),
      ['envoy', 'migrate'],
    );
    assert.deepEqual(
      pod.spec?.containers.map((c) => c.name),
      ['app'],
    );
    const envoy = pod.spec!.initContainers![0]!;
    assert.equal(envoy.restartPolicy, 'Always');
    assert.equal(envoy.image, 'localhost/netmesh-e2e/envoy-standin:2');
    assert.deepEqual(structuredClone(envoy.resources), {
      requests: { cpu: '20m', memory: '16Mi' },
      limits: { cpu: '300m', memory: '96Mi' },
    });
    assert.deepEqual(envoy.args, [
      '--config-path',
      '/etc/envoy/envoy.yaml',
      '--listen',
      ':15101',
      '--admin',
      ':15000',
      '--log-level',
      'debug',
    ]);
    assert.equal(envoy.ports?.[0]?.containerPort, 15101);
    // The application's containers are untouched.
    assert.equal(pod.spec!.containers[0]!.resources?.limits, undefined);
    const status = parseInjectionStatus(pod.metadata?.annotations?.[STATUS_ANNOTATION]);
    assert.deepEqual(status?.initContainers, ['envoy']);
    assert.deepEqual(status?.overrides, annotations);
  });

  test('an invalid override is an admission warning naming the annotation and value; the Pod gets the default', async () => {
    const res = await createPodWithWarnings(
      h.kc,
      ns,
      app('untuned', {
        'sidecar.netmesh.io/proxy-cpu-request': 'lots',
        'sidecar.netmesh.io/proxy-memory-limit': '8Mi',
        'sidecar.netmesh.io/proxy-port': '8080',
        'sidecar.netmesh.io/proxy-log-level': 'warning',
      }),
    );
    assert.equal(res.status, 201, `created, never rejected: ${res.text}`);
    const joined = res.warnings.join('\n');
    assert.equal(res.warnings.length, 3, joined);
    assert.match(
      joined,
      /netmesh: annotation sidecar\.netmesh\.io\/proxy-cpu-request="lots" ignored: not a Kubernetes quantity/,
    );
    assert.match(
      joined,
      /netmesh: annotation sidecar\.netmesh\.io\/proxy-memory-limit="8Mi" ignored: the memory request 16Mi would exceed the limit 8Mi/,
    );
    assert.match(
      joined,
      /netmesh: annotation sidecar\.netmesh\.io\/proxy-port="8080" ignored: port 8080 is already declared by a container of the pod/,
    );
    const pod = await eventually('the Pod stored', () =>
      h.core.readNamespacedPod({ namespace: ns, name: 'untuned' }),
    );
    const envoy = pod.spec!.initContainers![0]!;
    assert.deepEqual(structuredClone(envoy.resources), {
      requests: { cpu: '10m', memory: '16Mi' },
      limits: { cpu: '200m', memory: '64Mi' },
    });
    assert.equal(envoy.ports?.[0]?.containerPort, 15001);
    assert.equal(envoy.args?.at(-1), 'warning', 'the valid override next to the invalid ones is applied');
    assert.deepEqual(parseInjectionStatus(pod.metadata?.annotations?.[STATUS_ANNOTATION])?.overrides, {
      'sidecar.netmesh.io/proxy-log-level': 'warning',
    });
  });
});
