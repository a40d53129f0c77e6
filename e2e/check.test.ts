// `netmesh check` and live `netmesh explain` against a real installation: the chart installed
// with the webhook pointed at a `netmesh run` on this host (webhook.localRunURL), netmesh running
// under the chart's ServiceAccount. Every check line is asserted while things work, then things
// are broken one at a time (caBundle, uninjected Pods, RBAC, template, netmesh stopped, CRD
// deleted) and the matching line must turn ✖ with a non-zero exit.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { parseReadyz } from '../cli/check-core.ts';
import { rawGet } from '../cli/raw.ts';
import { hostRunArgs, installChart, serviceAccountKubeconfig, uninstallChart } from '../cluster/chart.ts';
import { freePort } from '../cluster/controlplane.ts';
import { type NetmeshProcess, startNetmesh } from '../cluster/netmesh-process.ts';
import { kubectl } from '../cluster/tools.ts';
import { createCertificateAuthority } from '../lib/pki.ts';
import {
  createNamespace,
  deleteNamespace,
  eventually,
  gone,
  runNetmeshIsolated,
  useCluster,
} from './support.ts';

/** netmesh as a user runs it, with no kubeconfig but the one given on its command line. */
const netmesh = runNetmeshIsolated;

/** The line of check `name`, e.g. "✔ CRD networks.netmesh.io: established...". */
function line(out: string, name: string): string {
  const found = out.split('\n').find((l) => l.slice(2).startsWith(`${name}:`));
  assert.ok(found, `no line for "${name}" in:\n${out}`);
  return found;
}

describe('netmesh check and netmesh explain on a live installation', () => {
  const h = useCluster();
  const release = 'nmcheck';
  const ns = 'nmcheck-system';
  const fullname = 'nmcheck-netmesh';
  let port: number;
  let proc: NetmeshProcess | undefined;
  let sa: { path: string; remove(): void } | undefined;
  let admin: string;
  const namespaces: string[] = [];
  const admission = () => h.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
  const check = (...extra: string[]) =>
    netmesh([
      'check',
      '--kubeconfig',
      admin,
      '--netmesh-namespace',
      ns,
      '--release',
      release,
      '--leader-health-url',
      `http://127.0.0.1:${proc?.healthPort ?? 1}`,
      ...extra,
    ]);

  before(async () => {
    admin = h.cluster.kubeconfigPath;
    port = await freePort();
    const chart = installChart(admin, release, ns, {
      'webhook.localRunURL': `https://127.0.0.1:${port}/mutate`,
      'webhook.failurePolicy': 'Ignore',
      replicaCount: 1,
    });
    sa = await serviceAccountKubeconfig(h.kc, ns, fullname);
    proc = await startNetmesh('run', [
      ...hostRunArgs(chart, sa.path, port),
      '--lease-duration',
      '4s',
      '--renew-deadline',
      '3s',
      '--retry-period',
      '500ms',
    ]);
    await proc.waitReady(60_000);
    // `run` is ready while its webhook serves; its operator leads and works a moment later.
    await eventually('the operator leading and working', async () => {
      const res = await fetch(`http://127.0.0.1:${proc!.healthPort}/readyz?verbose`);
      return (await res.text()).includes('[+]operator ok: leader, working');
    });
    await eventually('caBundle patched', async () => {
      const mwc = await admission().readMutatingWebhookConfiguration({ name: fullname });
      return mwc.webhooks?.every((w) => (w.clientConfig.caBundle ?? '').length > 0);
    });
  });

  after(async () => {
    for (const n of namespaces) await deleteNamespace(h, n);
    await proc?.stop();
    try {
      uninstallChart(admin, release, ns);
    } finally {
      sa?.remove();
      kubectl(admin, ['delete', 'namespace', ns, '--wait=false', '--ignore-not-found']);
    }
  });

  test('a working installation: every check passes, exit 0', async () => {
    const r = await check();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      // The apiserver's address: loopback, or the node's bridge address when the cluster has a node.
      new RegExp(`^netmesh check: release ${release} in namespace ${ns}, https://[\\d.]+:\\d+ `),
    );
    assert.match(line(r.stdout, 'cluster'), /^✔ cluster: Kubernetes v1\.\d+\.\d+ at https:\/\/[\d.]+:\d+$/);
    assert.match(line(r.stdout, 'permissions'), /^✔ /);
    assert.equal(
      line(r.stdout, 'CRD networks.netmesh.io'),
      '✔ CRD networks.netmesh.io: established, v1 served and stored',
    );
    assert.match(
      line(r.stdout, `webhook configuration ${fullname}`),
      new RegExp(
        `^✔ .*: 3 webhooks calling https://127\\.0\\.0\\.1:${port}/mutate, failurePolicy Ignore, caBundle with 1 CA\\(s\\)$`,
      ),
    );
    assert.match(
      line(r.stdout, 'webhook endpoint'),
      new RegExp(
        `^✔ webhook endpoint: https://127\\.0\\.0\\.1:${port}/mutate: 127\\.0\\.0\\.1:${port} presents CN=.*, verified by the caBundle for 127\\.0\\.0\\.1$`,
      ),
    );
    assert.match(
      line(r.stdout, 'certificate expiry'),
      /^✔ certificate expiry: .* expires \d{4}-.* \(in \d+d\)$/,
    );
    assert.match(
      line(r.stdout, 'sidecar template'),
      new RegExp(
        `^✔ sidecar template: ConfigMap ${ns}/envoy-initializer parses: initContainers envoy; volumes envoy-conf`,
      ),
    );
    assert.match(
      line(r.stdout, 'operator leader'),
      new RegExp(`^✔ operator leader: Lease ${ns}/${fullname}-operator held by \\S+, renewed \\d+s ago$`),
    );
    assert.match(
      line(r.stdout, 'operator caches'),
      /^✔ operator caches: leader \S+: caches synced and workers running$/,
    );
    assert.match(
      line(r.stdout, 'RBAC'),
      new RegExp(`^✔ RBAC: system:serviceaccount:${ns}:${fullname} has the \\d+ permissions netmesh needs$`),
    );
    assert.match(line(r.stdout, 'injected namespaces'), /^✔ /);
    assert.match(r.stdout, /\n11 checks: 11 passed, 0 failed, 0 warnings, 0 skipped\n$/);

    const json = await check('-o', 'json');
    assert.equal(json.code, 0);
    const parsed = JSON.parse(json.stdout) as {
      ok: boolean;
      netmeshNamespace: string;
      namespace?: string;
      checks: { name: string; status: string }[];
    };
    assert.equal(parsed.ok, true);
    assert.equal(parsed.netmeshNamespace, ns);
    assert.equal(parsed.namespace, undefined, 'no -n: every labelled namespace');
    assert.ok(parsed.checks.every((c) => c.status === 'ok'));
  });

  test("the apiserver's own /readyz?verbose, read with the kubeconfig's credentials, parses as netmesh's does", async () => {
    // The leader's /readyz is read the same way through the pod proxy (in-cluster suites).
    const { status, body } = await rawGet(h.kc, '/readyz?verbose');
    assert.equal(status, 200);
    const checks = parseReadyz(body);
    assert.ok(
      checks.some((c) => c.name === 'ping' && c.ok),
      body,
    );
    assert.ok(checks.every((c) => c.ok));
  });

  test('as the ServiceAccount: what it may not read is a warning, the RBAC review is skipped', async () => {
    const r = await netmesh([
      'check',
      '--kubeconfig',
      sa!.path,
      '--netmesh-namespace',
      ns,
      '--release',
      release,
      '--leader-health-url',
      `http://127.0.0.1:${proc!.healthPort}`,
    ]);
    assert.match(
      line(r.stdout, 'permissions'),
      /^‼ permissions: this identity may not .*get customresourcedefinitions\.apiextensions\.k8s\.io/,
    );
    assert.match(
      line(r.stdout, 'RBAC'),
      /^- RBAC: cannot review the permissions of .* may not create SubjectAccessReviews$/,
    );
  });

  test('explain live: a Deployment in a labelled namespace will be injected, in another it will not (exit 1)', async () => {
    const shop = await createNamespace(h, 'check-shop', { 'netmesh.io/injection': 'enabled' });
    const other = await createNamespace(h, 'check-other');
    namespaces.push(shop, other);
    for (const n of [shop, other]) {
      await h.apps.createNamespacedDeployment({
        namespace: n,
        body: {
          metadata: { name: 'web' },
          spec: {
            replicas: 0,
            selector: { matchLabels: { app: 'web' } },
            template: {
              metadata: { labels: { app: 'web' } },
              spec: { containers: [{ name: 'web', image: 'busybox' }] },
            },
          },
        },
      });
    }
    const yes = await netmesh([
      'explain',
      '--kubeconfig',
      admin,
      '-n',
      shop,
      'deploy/web',
      '--release',
      release,
    ]);
    assert.equal(yes.code, 0, yes.stdout + yes.stderr);
    assert.match(
      yes.stdout,
      new RegExp(`^Deployment ${shop}/web \\(pod template\\): new Pods will be injected$`, 'm'),
    );
    assert.match(
      yes.stdout,
      /namespace\.netmesh\.io: called \(namespaceSelector and objectSelector match\)$/m,
    );
    assert.match(
      yes.stdout,
      /object\.netmesh\.io: not called \(namespaceSelector requires netmesh\.io\/injection NotIn \[enabled\]\)/,
    );
    assert.match(
      yes.stdout,
      new RegExp(
        `plan: add initContainers envoy; volumes envoy-conf .* from ConfigMap ${ns}/envoy-initializer\\)`,
      ),
    );

    const no = await netmesh([
      'explain',
      '--kubeconfig',
      admin,
      '-n',
      other,
      'deploy',
      'web',
      '--release',
      release,
      '-o',
      'json',
    ]);
    assert.equal(no.code, 1, no.stderr);
    const e = JSON.parse(no.stdout) as {
      injected: boolean;
      items: { reason: string; namespaceLabels: Record<string, string> }[];
    };
    assert.equal(e.injected, false);
    assert.match(e.items[0]!.reason, new RegExp(`calls none of the webhooks of ${fullname}`));
    assert.equal(e.items[0]!.namespaceLabels['kubernetes.io/metadata.name'], other);

    const missing = await netmesh([
      'explain',
      '--kubeconfig',
      admin,
      '-n',
      other,
      'deploy/nope',
      '--release',
      release,
    ]);
    assert.equal(missing.code, 1);
    assert.equal(
      missing.stderr.trim(),
      `netmesh: Deployment ${other}/nope not found: check the name and -n/--namespace`,
    );
  });

  test('a labelled namespace with a Pod created before the label: ✖ with the restart hint, and explain pod/ says why', async () => {
    const late = await createNamespace(h, 'check-late');
    namespaces.push(late);
    await h.core.createNamespacedPod({
      namespace: late,
      body: { metadata: { name: 'old' }, spec: { containers: [{ name: 'app', image: 'busybox' }] } },
    });
    await h.core.patchNamespace(
      { name: late, body: { metadata: { labels: { 'netmesh.io/injection': 'enabled' } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    const r = await check();
    assert.equal(r.code, 1);
    assert.match(
      line(r.stdout, 'injected namespaces'),
      new RegExp(
        `^✖ injected namespaces: 1 Pod\\(s\\) without the sidecar in labelled namespaces: ${late}/old$`,
      ),
    );
    assert.match(r.stdout, /hint: re-create them \(kubectl delete pod/);

    // -n scopes the data-plane check to one namespace, as kubectl's -n does.
    const clean = await createNamespace(h, 'check-clean', { 'netmesh.io/injection': 'enabled' });
    namespaces.push(clean);
    const scoped = await check('-n', clean);
    assert.equal(scoped.code, 0, scoped.stdout);
    assert.match(
      scoped.stdout,
      new RegExp(`^netmesh check: release ${release} in namespace ${ns}, Pods of namespace ${clean}, `),
    );
    assert.equal(
      line(scoped.stdout, 'injected namespaces'),
      `✔ injected namespaces: namespace ${clean}: 0 Pod(s), all with the sidecar (or opted out)`,
    );
    const scopedLate = await check('-n', late, '-o', 'json');
    assert.equal(scopedLate.code, 1);
    const lateJson = JSON.parse(scopedLate.stdout) as {
      namespace: string;
      checks: { name: string; status: string; message: string }[];
    };
    assert.equal(lateJson.namespace, late);
    assert.deepEqual(
      lateJson.checks.find((c) => c.name === 'injected namespaces'),
      {
        name: 'injected namespaces',
        status: 'fail',
        message: `1 Pod(s) without the sidecar in namespace ${late}: ${late}/old`,
        hint: 're-create them (kubectl delete pod; their controller recreates them injected)',
      },
    );
    const unlabelled = await check('-n', 'default');
    assert.equal(unlabelled.code, 0, unlabelled.stdout);
    assert.equal(
      line(unlabelled.stdout, 'injected namespaces'),
      '- injected namespaces: namespace default is not labelled netmesh.io/injection=enabled: its Pods are not injected',
    );
    const own = await check('-n', ns);
    assert.match(
      line(own.stdout, 'injected namespaces'),
      /^- .*never injected \(the namespace netmesh is installed in\)$/,
    );
    const typo = await check('-n', `no-such-${late}`);
    assert.equal(typo.code, 1);
    assert.equal(
      line(typo.stdout, 'injected namespaces'),
      `✖ injected namespaces: namespace no-such-${late} not found`,
    );

    const pod = await netmesh([
      'explain',
      '--kubeconfig',
      admin,
      '-n',
      late,
      'pod/old',
      '--release',
      release,
    ]);
    assert.equal(pod.code, 0, pod.stdout + pod.stderr);
    assert.match(pod.stdout, /this Pod: not injected at creation/);
    assert.match(pod.stdout, /new Pods will be injected/);
    await h.core.deleteNamespacedPod({ namespace: late, name: 'old', gracePeriodSeconds: 0 });
    await eventually('the old Pod gone', () =>
      gone(() => h.core.readNamespacedPod({ namespace: late, name: 'old' })),
    );
    assert.equal((await check()).code, 0);
  });

  test('a caBundle that does not sign the serving certificate: ✖ naming both', async () => {
    const mwc = await admission().readMutatingWebhookConfiguration({ name: fullname });
    const original = mwc.webhooks!.map((w) => w.clientConfig.caBundle!);
    const wrong = Buffer.from(createCertificateAuthority('not-the-webhook-ca').certPem).toString('base64');
    const patch = (bundles: string[]) =>
      admission().patchMutatingWebhookConfiguration(
        {
          name: fullname,
          body: bundles.map((b, i) => ({
            op: 'replace',
            path: `/webhooks/${i}/clientConfig/caBundle`,
            value: b,
          })),
        },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
      );
    try {
      // The running netmesh puts its own caBundle back on its next certificate resync; should that
      // land between the patch and the check, break it again and check again.
      const r = await eventually(
        'check to see the wrong caBundle',
        async () => {
          await patch(original.map(() => wrong));
          const out = await check();
          return out.code === 1 && /^✖ webhook endpoint/m.test(out.stdout) ? out : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 0 },
      );
      assert.equal(r.code, 1);
      assert.match(
        line(r.stdout, 'webhook endpoint'),
        /^✖ webhook endpoint: the caBundle does not verify the certificate presented: 127\.0\.0\.1:\d+ presents CN=.*: it is signed by CN=.*, which is not in the caBundle \(CN=not-the-webhook-ca\)$/,
      );
      assert.match(r.stdout, /hint: restart netmesh so it re-patches the caBundle/);
    } finally {
      await patch(original);
    }
  });

  test('netmesh stopped, RBAC removed, template broken, CRD deleted: each its ✖, exit 1', async () => {
    await proc!.stop();
    const stopped = await check();
    assert.equal(stopped.code, 1);
    assert.match(
      line(stopped.stdout, 'operator leader'),
      /^✖ operator leader: Lease .*: no holder: no replica leads/,
    );
    assert.match(line(stopped.stdout, 'operator caches'), /^- operator caches: no live leader$/);
    assert.match(
      line(stopped.stdout, 'webhook endpoint'),
      new RegExp(
        `^✖ webhook endpoint: cannot reach 127\\.0\\.0\\.1:${port} \\(connection refused at 127\\.0\\.0\\.1:${port}\\) from this machine$`,
      ),
    );

    const rbac = h.kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    await rbac.deleteNamespacedRoleBinding({ namespace: ns, name: fullname });
    await h.core.patchNamespacedConfigMap(
      { namespace: ns, name: 'envoy-initializer', body: { data: { config: 'containers: [' } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    const broken = await check();
    assert.equal(broken.code, 1);
    assert.match(
      line(broken.stdout, 'RBAC'),
      new RegExp(
        `^✖ RBAC: system:serviceaccount:${ns}:${fullname} may not get leases\\.coordination\\.k8s\\.io ${fullname}-operator in ${ns} \\(leader election\\)`,
      ),
    );
    assert.match(
      line(broken.stdout, 'sidecar template'),
      new RegExp(`^✖ sidecar template: ConfigMap ${ns}/envoy-initializer does not parse: `),
    );

    const crds = h.kc.makeApiClient(k8s.ApiextensionsV1Api);
    await crds.deleteCustomResourceDefinition({ name: 'networks.netmesh.io' });
    try {
      await eventually('the CRD gone', () =>
        gone(() => crds.readCustomResourceDefinition({ name: 'networks.netmesh.io' })),
      );
      const noCrd = await check();
      assert.equal(noCrd.code, 1);
      assert.equal(line(noCrd.stdout, 'CRD networks.netmesh.io'), '✖ CRD networks.netmesh.io: not installed');
      assert.match(noCrd.stdout, /hint: kubectl apply -f crds\//);
    } finally {
      // Other suites of the run need it back.
      kubectl(admin, ['apply', '-f', 'crds/']);
      kubectl(admin, ['wait', '--for=condition=Established', 'crd/networks.netmesh.io', '--timeout=60s']);
    }
  });
});
