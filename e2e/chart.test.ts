// The Helm chart, proven on the real control plane: lint, generated artefacts in sync,
// server-side dry run, install/upgrade/uninstall, and netmesh running on the host under the
// chart's own ServiceAccount (its RBAC suffices and is not excessive).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import {
  CHART_DIR,
  hostRunArgs,
  installChart,
  serviceAccountKubeconfig,
  uninstallChart,
} from '../cluster/chart.ts';
import { freePort } from '../cluster/controlplane.ts';
import { type NetmeshProcess, startNetmesh } from '../cluster/netmesh-process.ts';
import { helm, kubectl } from '../cluster/tools.ts';
import { buildMutatingWebhookConfiguration } from '../webhook/webhook-config.ts';
import { MANIFEST_PATH, readmeValuesSection, renderManifest, valuesTable } from './generate.ts';
import { createNamespace, deleteNamespace, eventually, gone, useCluster } from './support.ts';

type Obj = k8s.KubernetesObject & Record<string, unknown>;

function render(args: string[] = [], release = 'netmesh', namespace = 'netmesh-system'): Obj[] {
  const out = helm('/dev/null', ['template', release, CHART_DIR, '--namespace', namespace, ...args]);
  return parseAllDocuments(out)
    .map((d) => d.toJSON() as Obj)
    .filter(Boolean);
}

describe('helm chart: static checks', () => {
  test('helm lint --strict is clean', () => {
    const out = helm('/dev/null', ['lint', '--strict', CHART_DIR]);
    assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  test('the chart ships the same CRD files as crds/', () => {
    assert.equal(
      readFileSync(`${CHART_DIR}/crds/networks.netmesh.io.yaml`, 'utf8'),
      readFileSync('crds/networks.netmesh.io.yaml', 'utf8'),
    );
  });

  test('deploy/netmesh.yaml is the chart rendered with default values (npm run generate)', () => {
    assert.equal(
      readFileSync(MANIFEST_PATH, 'utf8'),
      renderManifest(),
      'deploy/netmesh.yaml is stale: run npm run generate',
    );
  });

  test("the README's values table matches values.yaml (npm run generate)", () => {
    assert.equal(readmeValuesSection(), valuesTable(), 'README values table is stale: run npm run generate');
  });

  test('the rendered webhook configuration is the one `netmesh webhook` builds', () => {
    const rendered = render().find(
      (o) => o.kind === 'MutatingWebhookConfiguration',
    ) as unknown as k8s.V1MutatingWebhookConfiguration;
    const built = buildMutatingWebhookConfiguration({
      name: 'netmesh',
      namespace: 'netmesh-system',
      clientConfig: { service: { name: 'netmesh', namespace: 'netmesh-system', path: '/mutate', port: 443 } },
      failurePolicy: 'Ignore',
      timeoutSeconds: 10,
      matchConditionsSupported: true,
    });
    assert.deepEqual(rendered.webhooks, JSON.parse(JSON.stringify(built.webhooks)));
    for (const w of rendered.webhooks ?? [])
      assert.equal(w.clientConfig.caBundle, undefined, 'never an empty caBundle');
  });

  test('extraNamespaceSelector scopes every webhook, as `netmesh webhook` does', () => {
    const rendered = render([
      '--set',
      'webhook.extraNamespaceSelector[0].key=team',
      '--set',
      'webhook.extraNamespaceSelector[0].operator=In',
      '--set',
      'webhook.extraNamespaceSelector[0].values[0]=canary',
    ]).find(
      (o) => o.kind === 'MutatingWebhookConfiguration',
    ) as unknown as k8s.V1MutatingWebhookConfiguration;
    const built = buildMutatingWebhookConfiguration({
      name: 'netmesh',
      namespace: 'netmesh-system',
      clientConfig: { service: { name: 'netmesh', namespace: 'netmesh-system', path: '/mutate', port: 443 } },
      failurePolicy: 'Ignore',
      timeoutSeconds: 10,
      matchConditionsSupported: true,
      extraNamespaceSelector: [{ key: 'team', operator: 'In', values: ['canary'] }],
    });
    assert.deepEqual(rendered.webhooks, JSON.parse(JSON.stringify(built.webhooks)));
  });

  test('pod security and probes', () => {
    const dep = render().find((o) => o.kind === 'Deployment') as unknown as k8s.V1Deployment;
    const pod = dep.spec!.template.spec!;
    const c = pod.containers[0]!;
    assert.equal(pod.securityContext?.runAsNonRoot, true);
    assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault');
    assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
    assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
    assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL']);
    assert.ok(c.resources?.requests && c.resources?.limits);
    assert.equal(c.livenessProbe?.httpGet?.path, '/healthz');
    assert.equal(c.readinessProbe?.httpGet?.path, '/readyz');
    assert.equal(c.args?.[0], 'run');
    assert.equal(dep.spec?.replicas, 2);
  });

  test('cert-manager mode: Certificate and inject-ca-from annotation, no self-managed Secret', () => {
    const objs = render(['--set', 'webhook.certificates.mode=cert-manager']);
    const mwc = objs.find((o) => o.kind === 'MutatingWebhookConfiguration')!;
    // The caBundle trusts the CA certificate, which outlives the serving certificates it issues.
    assert.equal(mwc.metadata?.annotations?.['cert-manager.io/inject-ca-from'], 'netmesh-system/netmesh-ca');
    const certs = objs.filter((o) => o.kind === 'Certificate') as unknown as {
      metadata: { name: string };
      spec: { isCA?: boolean; issuerRef?: { name?: string } };
    }[];
    assert.equal(certs.find((c) => c.metadata.name === 'netmesh-ca')?.spec.isCA, true);
    assert.equal(
      certs.find((c) => c.metadata.name === 'netmesh-webhook')?.spec.issuerRef?.name,
      'netmesh-ca',
    );
    assert.ok(!objs.some((o) => o.kind === 'Secret'));
  });

  test('bad values fail with a clear message (values.schema.json)', () => {
    assert.throws(
      () => render(['--set', 'webhook.failurePolicy=Sometimes']),
      /failurePolicy.*must be one of 'Ignore', 'Fail'/s,
    );
    assert.throws(() => render(['--set', 'replicaCount=0']), /replicaCount/);
  });
});

describe('helm chart on the control plane', () => {
  const h = useCluster();

  test('helm template output is accepted by kubectl apply --dry-run=server', () => {
    kubectl(h.cluster.kubeconfigPath, ['apply', '-f', 'crds/']);
    kubectl(
      h.cluster.kubeconfigPath,
      ['create', 'namespace', 'netmesh-system', '--dry-run=client', '-o', 'yaml'],
      undefined,
    );
    const ns = 'nm-dryrun';
    kubectl(h.cluster.kubeconfigPath, ['create', 'namespace', ns]);
    try {
      const out = helm('/dev/null', ['template', 'dry', CHART_DIR, '--namespace', ns]);
      const res = kubectl(h.cluster.kubeconfigPath, ['apply', '--dry-run=server', '-f', '-'], out);
      assert.match(res, /deployment\.apps\/dry-netmesh created \(server dry run\)/);
      assert.match(
        res,
        /mutatingwebhookconfiguration\.admissionregistration\.k8s\.io\/dry-netmesh created \(server dry run\)/,
      );
    } finally {
      kubectl(h.cluster.kubeconfigPath, ['delete', 'namespace', ns, '--wait=false']);
    }
  });

  test('install creates every object; upgrade applies changed values; uninstall leaves only the CRDs', async () => {
    const release = 'nmup';
    const ns = 'nmup-system';
    installChart(h.cluster.kubeconfigPath, release, ns, { 'webhook.failurePolicy': 'Ignore' });
    const rendered = render([], release, ns).filter((o) => o.kind !== 'CustomResourceDefinition');
    assert.ok(rendered.length >= 12, `${rendered.length} objects rendered`);
    for (const o of rendered) {
      const args = [
        'get',
        o.kind!,
        o.metadata!.name!,
        '-o',
        'name',
        ...(o.metadata?.namespace ? ['-n', o.metadata.namespace] : []),
      ];
      assert.doesNotThrow(
        () => kubectl(h.cluster.kubeconfigPath, args),
        `${o.kind} ${o.metadata!.name} was installed`,
      );
    }
    const admission = h.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
    const mwc = await admission.readMutatingWebhookConfiguration({ name: 'nmup-netmesh' });
    assert.equal(mwc.webhooks?.[0]?.failurePolicy, 'Ignore');

    installChart(h.cluster.kubeconfigPath, release, ns, {
      'webhook.failurePolicy': 'Fail',
      replicaCount: 3,
      'operator.workers': 4,
    });
    const dep = await h.apps.readNamespacedDeployment({ namespace: ns, name: 'nmup-netmesh' });
    assert.equal(dep.spec?.replicas, 3);
    assert.ok(dep.spec?.template.spec?.containers[0]?.args?.includes('--workers=4'));
    assert.equal(
      (await admission.readMutatingWebhookConfiguration({ name: 'nmup-netmesh' })).webhooks?.[0]
        ?.failurePolicy,
      'Fail',
    );

    uninstallChart(h.cluster.kubeconfigPath, release, ns);
    const rbac = h.kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    await eventually(
      'cluster-scoped objects removed',
      async () =>
        (await gone(() => admission.readMutatingWebhookConfiguration({ name: 'nmup-netmesh' }))) &&
        (await gone(() => rbac.readClusterRole({ name: 'nmup-netmesh' }))) &&
        (await gone(() => rbac.readClusterRoleBinding({ name: 'nmup-netmesh' }))),
    );
    const left = kubectl(h.cluster.kubeconfigPath, [
      'get',
      '-n',
      ns,
      'deploy,svc,sa,cm,secret,lease,pdb,role,rolebinding',
      '-o',
      'name',
      '--ignore-not-found',
    ]);
    const leftovers = left
      .split('\n')
      .filter((l) => l && !l.endsWith('/default') && !l.endsWith('/kube-root-ca.crt'));
    assert.deepEqual(leftovers, [], 'nothing of the release left in its namespace');
    await h.kc
      .makeApiClient(k8s.ApiextensionsV1Api)
      .readCustomResourceDefinition({ name: 'networks.netmesh.io' });
    kubectl(h.cluster.kubeconfigPath, ['delete', 'namespace', ns, '--wait=false']);
  });

  describe('netmesh on the host under the chart identity', () => {
    const release = 'netmesh';
    const systemNs = 'netmesh-system';
    let proc: NetmeshProcess | undefined;
    let identity: string;
    let removeToken: (() => void) | undefined;
    let appNs: string;

    after(async () => {
      if (appNs) await deleteNamespace(h, appNs);
      if (appNs)
        await eventually('app namespace gone', () => gone(() => h.core.readNamespace({ name: appNs })), {
          timeoutMs: 60_000,
        }).catch(() => {});
      const code = await proc?.stop();
      uninstallChart(h.cluster.kubeconfigPath, release, systemNs);
      removeToken?.();
      assert.equal(code, 0, `netmesh run exits cleanly; log ${proc?.logFile}`);
    });

    test('netmesh run injects Pods and reconciles Networks with only the chart RBAC', async () => {
      const port = await freePort();
      const chart = installChart(h.cluster.kubeconfigPath, release, systemNs, {
        'webhook.localRunURL': `https://127.0.0.1:${port}/mutate`,
        'webhook.failurePolicy': 'Fail',
        replicaCount: 1,
      });
      const sa = await serviceAccountKubeconfig(h.kc, systemNs, 'netmesh');
      identity = sa.path;
      removeToken = sa.remove;
      proc = await startNetmesh('run', hostRunArgs(chart, identity, port));
      await proc.waitReady(60_000);
      const admission = h.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
      await eventually('caBundle patched into the chart webhook configuration', async () => {
        const mwc = await admission.readMutatingWebhookConfiguration({ name: 'netmesh' });
        return mwc.webhooks?.every((w) => (w.clientConfig.caBundle ?? '').length > 0);
      });

      appNs = await createNamespace(h, 'chart-app', { 'netmesh.io/injection': 'enabled' });
      const pod = parseYaml(readFileSync('examples/seed-myapp-pod.yaml', 'utf8')) as k8s.V1Pod;
      await eventually('the course Pod admitted through the webhook', async () =>
        h.core.createNamespacedPod({ namespace: appNs, body: pod }).then(() => true),
      );
      const stored = await h.core.readNamespacedPod({ namespace: appNs, name: 'myapp-pod' });
      assert.deepEqual(
        stored.spec?.containers.map((c) => c.name),
        ['myapp-container', 'envoy'],
      );
      assert.ok(stored.spec?.volumes?.some((v) => v.name === 'envoy-conf'));
      assert.ok(stored.metadata?.annotations?.['netmesh.io/status']);
      // The sidecar's bootstrap volume resolves in the Pod's namespace: the leader copies it there.
      const source = await h.core.readNamespacedConfigMap({ namespace: systemNs, name: 'envoy' });
      const copy = await eventually('the envoy bootstrap copied into the labelled namespace', async () =>
        h.core.readNamespacedConfigMap({ namespace: appNs, name: 'envoy' }).catch(() => undefined),
      );
      assert.deepEqual(copy.data, source.data);
      assert.match(copy.data?.['envoy.yaml'] ?? '', /port_value: 15001/);

      kubectl(h.cluster.kubeconfigPath, ['apply', '-n', appNs, '-f', 'deploy/examples/example-network.yaml']);
      await eventually('the example Network Ready', async () => {
        const n = (await h.custom.getNamespacedCustomObject({
          group: 'netmesh.io',
          version: 'v1',
          namespace: appNs,
          plural: 'networks',
          name: 'example-network',
        })) as { status?: { conditions?: { type: string; status: string }[] } };
        return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      });
      await kubectl(h.cluster.kubeconfigPath, [
        'delete',
        '-n',
        appNs,
        'network',
        'example-network',
        '--wait=true',
      ]);
    });

    test('the chart identity is not excessive', async () => {
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(identity);
      const core = kc.makeApiClient(k8s.CoreV1Api);
      const forbidden = async (what: string, call: () => Promise<unknown>) => {
        await assert.rejects(call, (err: { code?: number }) => err.code === 403, `${what} must be forbidden`);
      };
      await forbidden('reading Secrets in kube-system', () =>
        core.listNamespacedSecret({ namespace: 'kube-system' }),
      );
      await forbidden('listing Secrets of its own namespace', () =>
        core.listNamespacedSecret({ namespace: systemNs }),
      );
      await forbidden('reading Secrets in an application namespace', () =>
        core.listNamespacedSecret({ namespace: appNs }),
      );
      const admissionAdmin = h.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
      await admissionAdmin.createMutatingWebhookConfiguration({
        body: { metadata: { name: 'someone-elses' }, webhooks: [] },
      });
      try {
        const admission = kc.makeApiClient(k8s.AdmissionregistrationV1Api);
        await forbidden('patching another webhook configuration', () =>
          admission.patchMutatingWebhookConfiguration(
            { name: 'someone-elses', body: [{ op: 'add', path: '/metadata/labels', value: { x: 'y' } }] },
            k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
          ),
        );
        await forbidden('listing webhook configurations', () => admission.listMutatingWebhookConfiguration());
      } finally {
        await admissionAdmin.deleteMutatingWebhookConfiguration({ name: 'someone-elses' });
      }
      await forbidden('deleting Pods', () => core.deleteCollectionNamespacedPod({ namespace: appNs }));
      await forbidden('creating Leases other than its own', () =>
        kc
          .makeApiClient(k8s.CoordinationV1Api)
          .createNamespacedLease({ namespace: systemNs, body: { metadata: { name: 'other' }, spec: {} } }),
      );
    });
  });
});
