// netmesh as users run it: the image built from deploy/Dockerfile, installed by the chart and
// running as its Deployment on a real node. The apiserver calls the webhook through the chart's
// Service over TLS, the operator reaches the apiserver through the `kubernetes` Service, and an
// injected Pod really starts with its sidecar and the sidecar's bootstrap volume.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect } from 'node:tls';
import * as k8s from '@kubernetes/client-node';
import { helmAsync, kubectl } from '../../cluster/tools.ts';
import { coursePod } from '../../examples/course.ts';
import { STATUS_ANNOTATION } from '../../webhook/core/contract.ts';
import { deleteNamespace, eventually, useCluster } from '../support.ts';
import {
  ENABLED,
  installRelease,
  leaderOf,
  netmeshPods,
  podReady,
  type Release,
  requireNode,
  waitPodReady,
} from './helpers.ts';

describe('netmesh in-cluster: the chart on a real node', () => {
  const h = useCluster();
  let r: Release;
  const namespaces: string[] = [];

  before(async () => {
    r = await installRelease(h, { release: 'nmic' });
    console.log(`# helm install to every replica Ready: ${r.readySeconds.toFixed(1)} s`);
  });
  after(async () => {
    for (const ns of namespaces) await deleteNamespace(h, ns);
    r?.uninstall();
  });

  test('both replicas Ready (probes passing) and exactly one holds the leader Lease', async () => {
    const pods = await netmeshPods(h, r);
    assert.equal(pods.length, 2);
    for (const p of pods) {
      assert.ok(podReady(p), `${p.metadata?.name} Ready`);
      const c = p.spec!.containers[0]!;
      assert.equal(c.imagePullPolicy, 'Never', 'nothing is pulled: the image was built on this machine');
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
    }
    const leader = await eventually('a leader', () => leaderOf(h, r));
    assert.ok(
      pods.some((p) => p.metadata?.name === leader),
      `the Lease holder ${leader} is one of the chart's Pods`,
    );
  });

  test("the webhook Service's endpoints present a certificate for <service>.<namespace>.svc that the caBundle verifies", async () => {
    const admission = h.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
    const mwc = await eventually('caBundle patched in', async () => {
      const m = await admission.readMutatingWebhookConfiguration({ name: r.fullname });
      return m.webhooks?.every((w) => w.clientConfig.caBundle) ? m : undefined;
    });
    const hook = mwc.webhooks![0]!;
    assert.deepEqual(hook.clientConfig.service?.name, r.fullname);
    assert.equal(hook.clientConfig.url, undefined, 'the apiserver calls the Service, not a host URL');
    const ca = Buffer.from(hook.clientConfig.caBundle!, 'base64').toString('utf8');
    // helm --wait waits for the Pods; the EndpointSlice controller follows a moment later.
    const ready = await eventually('both replicas serve the webhook (EndpointSlice)', async () => {
      const slices = await h.kc.makeApiClient(k8s.DiscoveryV1Api).listNamespacedEndpointSlice({
        namespace: r.namespace,
        labelSelector: `kubernetes.io/service-name=${r.fullname}`,
      });
      const addresses = slices.items
        .flatMap((s) => (s.endpoints ?? []).filter((e) => e.conditions?.ready))
        .flatMap((e) => e.addresses);
      return addresses.length === 2 ? addresses : undefined;
    });
    const servername = `${r.fullname}.${r.namespace}.svc`;
    for (const ip of ready) {
      // The same check the apiserver makes: chain to the caBundle, name = the Service DNS name.
      const cert = await new Promise<{ subjectaltname?: string }>((resolve, reject) => {
        const s = connect({ host: ip, port: 8443, ca, servername }, () => {
          resolve(s.getPeerCertificate());
          s.end();
        });
        s.on('error', reject);
      });
      assert.match(cert.subjectaltname ?? '', new RegExp(`DNS:${servername.replace(/\./g, '\\.')}`));
    }
  });

  test("the course's Pod runs with its sidecar: every container ready, envoy-conf mounted from the bootstrap", async () => {
    const ns = await r.appNamespace('ic-course', ENABLED);
    namespaces.push(ns);
    const started = Date.now();
    await h.core.createNamespacedPod({ namespace: ns, body: coursePod() });
    const pod = await waitPodReady(h, ns, 'myapp-pod');
    console.log(
      `# course Pod create to Running with every container ready: ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    // The chart's default template is a native sidecar: an init container that keeps running.
    assert.deepEqual(
      pod.spec?.containers.map((c) => c.name),
      ['myapp-container'],
    );
    assert.deepEqual(
      pod.spec?.initContainers?.map((c) => [c.name, c.restartPolicy]),
      [['envoy', 'Always']],
    );
    const envoyStatus = pod.status?.initContainerStatuses?.find((s) => s.name === 'envoy');
    assert.ok(envoyStatus?.started && envoyStatus.ready, 'the native sidecar is started and ready');
    assert.ok(pod.metadata?.annotations?.[STATUS_ANNOTATION], 'the injection record');
    const vol = pod.spec?.volumes?.find((v) => v.name === 'envoy-conf');
    assert.equal(vol?.configMap?.name, 'envoy');
    const copy = await h.core.readNamespacedConfigMap({ namespace: ns, name: 'envoy' });
    assert.match(copy.data?.['envoy.yaml'] ?? '', /port_value: 15001/);
    // The stand-in is Ready only once it read the file; its log names what it read.
    // Polled: a container's first line reaches its log file through containerd's shim a moment
    // after the container counts as started.
    const logged = (container: string, expect: RegExp) =>
      eventually(`${container}'s log to match ${expect}`, async () =>
        expect.test(kubectl(h.cluster.kubeconfigPath, ['logs', '-n', ns, 'myapp-pod', '-c', container])),
      );
    await logged('envoy', /read configuration \/etc\/envoy\/envoy\.yaml \(\d+ bytes/);
    await logged('myapp-container', /Hello Kubernetes!/);
  });

  test('Deployments, StatefulSets and Jobs in a labelled namespace roll out with the sidecar', async () => {
    const ns = await r.appNamespace('ic-workloads', ENABLED);
    namespaces.push(ns);
    const apps = h.apps;
    const podSpec = (name: string): k8s.V1PodTemplateSpec => ({
      metadata: { labels: { app: name } },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [{ name: 'app', image: 'busybox:1.35', command: ['sleep', '3600'] }],
      },
    });
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name: 'web' },
        spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template: podSpec('web') },
      },
    });
    await apps.createNamespacedStatefulSet({
      namespace: ns,
      body: {
        metadata: { name: 'db' },
        spec: {
          replicas: 1,
          serviceName: 'db',
          selector: { matchLabels: { app: 'db' } },
          template: podSpec('db'),
        },
      },
    });
    await h.kc.makeApiClient(k8s.BatchV1Api).createNamespacedJob({
      namespace: ns,
      body: {
        metadata: { name: 'once' },
        spec: {
          backoffLimit: 0,
          template: {
            metadata: { labels: { app: 'once' } },
            spec: {
              restartPolicy: 'Never',
              terminationGracePeriodSeconds: 1,
              containers: [{ name: 'app', image: 'busybox:1.35', command: ['sh', '-c', 'echo job ran'] }],
            },
          },
        },
      },
    });
    await eventually(
      'the Deployment and StatefulSet rolled out, every Pod 2/2 with the sidecar',
      async () => {
        const dep = await apps.readNamespacedDeployment({ namespace: ns, name: 'web' });
        const sts = await apps.readNamespacedStatefulSet({ namespace: ns, name: 'db' });
        return dep.status?.readyReplicas === 2 && sts.status?.readyReplicas === 1;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    const pods = (await h.core.listNamespacedPod({ namespace: ns })).items;
    for (const p of pods.filter((p) => p.metadata?.labels?.['app'] !== 'once')) {
      assert.deepEqual(
        p.spec?.containers.map((c) => c.name),
        ['app'],
      );
      assert.deepEqual(
        p.spec?.initContainers?.map((c) => c.name),
        ['envoy'],
        `${p.metadata?.name} injected`,
      );
      assert.ok(podReady(p), `${p.metadata?.name} Ready`);
    }
    // A native sidecar stops once the Job's own containers have exited: the Job completes (with a
    // plain sidecar container it never would).
    const batch = h.kc.makeApiClient(k8s.BatchV1Api);
    const started = Date.now();
    const done = await eventually(
      'the injected Job Complete',
      async () => {
        const j = await batch.readNamespacedJob({ namespace: ns, name: 'once' });
        if (j.status?.conditions?.some((c) => c.type === 'Failed' && c.status === 'True')) {
          throw new Error(`the Job failed: ${JSON.stringify(j.status)}`);
        }
        return j.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True')
          ? j
          : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    console.log(`# injected Job Complete ${((Date.now() - started) / 1000).toFixed(1)} s after the rollouts`);
    assert.equal(done.status?.succeeded, 1);
    const [jobPod] = (await h.core.listNamespacedPod({ namespace: ns, labelSelector: 'app=once' })).items;
    assert.equal(jobPod?.status?.phase, 'Succeeded');
    assert.deepEqual(
      jobPod?.spec?.initContainers?.map((c) => [c.name, c.restartPolicy]),
      [['envoy', 'Always']],
      'the Job Pod was injected with the native sidecar',
    );
    assert.equal(
      jobPod?.status?.containerStatuses?.find((s) => s.name === 'app')?.state?.terminated?.exitCode,
      0,
    );
    assert.match(
      kubectl(h.cluster.kubeconfigPath, ['logs', '-n', ns, jobPod!.metadata!.name!, '-c', 'app']),
      /job ran/,
    );
  });

  test("a native sidecar starts before the Pod's own init containers, which can reach it", async () => {
    const ns = await r.appNamespace('ic-order', ENABLED);
    namespaces.push(ns);
    // The app's init container asks the sidecar's admin port: it succeeds only if the sidecar is
    // already up with its bootstrap read (the stand-in's /ready answers "LIVE <hash>").
    await h.core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'ordered' },
        spec: {
          restartPolicy: 'Never',
          terminationGracePeriodSeconds: 1,
          initContainers: [
            {
              name: 'needs-proxy',
              image: 'busybox:1.35',
              command: ['sh', '-c', 'wget -qO- http://127.0.0.1:15000/ready | grep LIVE'],
            },
          ],
          containers: [{ name: 'app', image: 'busybox:1.35', command: ['true'] }],
        },
      },
    });
    const pod = await eventually(
      'the Pod Succeeded',
      async () => {
        const p = await h.core.readNamespacedPod({ namespace: ns, name: 'ordered' });
        if (p.status?.phase === 'Failed') throw new Error(`the Pod failed: ${JSON.stringify(p.status)}`);
        return p.status?.phase === 'Succeeded' ? p : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    assert.deepEqual(
      pod.spec?.initContainers?.map((c) => c.name),
      ['envoy', 'needs-proxy'],
    );
    const init = pod.status?.initContainerStatuses?.find((s) => s.name === 'needs-proxy');
    assert.equal(init?.state?.terminated?.exitCode, 0, "the app's init container reached the proxy");
  });

  test('a Network is reconciled by the in-cluster leader through the kubernetes Service', async () => {
    const ns = await r.appNamespace('ic-net');
    namespaces.push(ns);
    kubectl(h.cluster.kubeconfigPath, ['apply', '-n', ns, '-f', 'deploy/examples/example-network.yaml']);
    const net = await eventually(
      'example-network Ready',
      async () => {
        const n = (await h.custom.getNamespacedCustomObject({
          group: 'netmesh.io',
          version: 'v1',
          namespace: ns,
          plural: 'networks',
          name: 'example-network',
        })) as {
          status?: { conditions?: { type: string; status: string }[]; materialized?: { name: string } };
        };
        return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? n : undefined;
      },
      { timeoutMs: 30_000 },
    );
    const cm = await h.core.readNamespacedConfigMap({ namespace: ns, name: net.status!.materialized!.name });
    assert.match(Object.values(cm.data ?? {})[0] ?? '', /"subnet": ?"192\.168\.0\.0\/16"/);
  });

  test('the PodDisruptionBudget keeps one replica: a second eviction is refused until the first is replaced', async () => {
    const pods = await netmeshPods(h, r);
    const evict = (name: string) =>
      h.core.createNamespacedPodEviction({
        namespace: r.namespace,
        name,
        body: { metadata: { name, namespace: r.namespace } },
      });
    await eventually('the PDB allows one disruption', async () => {
      const pdb = await h.kc
        .makeApiClient(k8s.PolicyV1Api)
        .readNamespacedPodDisruptionBudget({ namespace: r.namespace, name: r.fullname });
      return pdb.status?.disruptionsAllowed === 1;
    });
    const evicted = pods[0]!.metadata!.name!;
    await evict(evicted);
    await assert.rejects(evict(pods[1]!.metadata!.name!), (err: { code?: number }) => err.code === 429);
    await eventually(
      'the evicted replica replaced: 2 Ready Pods again',
      async () => {
        const now = await netmeshPods(h, r);
        return now.length === 2 && now.every((p) => p.metadata?.name !== evicted && podReady(p));
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
  });

  test('helm test: the hook Pod runs on the node and proves a Pod in a labelled namespace would be injected', async () => {
    const out = await helmAsync(h.cluster.kubeconfigPath, [
      'test',
      r.release,
      '--namespace',
      r.namespace,
      '--timeout',
      '120s',
      // The hook Pod's log, in the output and in the error when it fails.
      '--logs',
    ]);
    assert.match(out, /Phase:\s+Succeeded/);
  });

  test('the image runs `netmesh --help` and `netmesh version` as its non-root user on a read-only root', async () => {
    const image = requireNode(h);
    const ns = await r.appNamespace('ic-image');
    namespaces.push(ns);
    for (const [name, args, expect] of [
      ['help', ['--help'], /usage: netmesh <command>/],
      ['version', ['version'], /^netmesh \d+\.\d+\.\d+ \(commit [0-9a-f]{12}(-dirty)?, node 24\.\d+\.\d+/],
    ] as const) {
      await h.core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name },
          spec: {
            restartPolicy: 'Never',
            securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [
              {
                name: 'netmesh',
                image,
                imagePullPolicy: 'Never',
                args: [...args],
                securityContext: {
                  readOnlyRootFilesystem: true,
                  allowPrivilegeEscalation: false,
                  capabilities: { drop: ['ALL'] },
                },
              },
            ],
          },
        },
      });
      await eventually(
        `${name} Pod Succeeded`,
        async () => {
          const p = await h.core.readNamespacedPod({ namespace: ns, name });
          if (p.status?.phase === 'Failed') throw new Error(`${name} failed`);
          return p.status?.phase === 'Succeeded';
        },
        { timeoutMs: 60_000, intervalMs: 250 },
      );
      assert.match(kubectl(h.cluster.kubeconfigPath, ['logs', '-n', ns, name]), expect);
    }
  });
});
