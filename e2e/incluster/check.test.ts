// `netmesh check` against netmesh as users run it: the chart installed with runInCluster (the
// Deployment on the real node, the webhook behind its Service). This is the path the host-run
// suite (e2e/check.test.ts) cannot take: the Service's ready endpoints, and the caBundle verifying
// the certificate each endpoint Pod actually presents on its Pod IP. Every check must pass; then
// the Deployment is scaled to 0 and the endpoint check must fail with a hint and exit status 1.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { deleteNamespace, eventually, runNetmeshIsolated, useCluster } from '../support.ts';
import { ENABLED, installRelease, type Release, waitPodReady } from './helpers.ts';

interface CheckJson {
  ok: boolean;
  checks: { name: string; status: 'ok' | 'fail' | 'warn' | 'skip'; message: string; hint?: string }[];
}

/** netmesh as a user runs it, with no kubeconfig but the one given on its command line. */
const netmesh = runNetmeshIsolated;

describe('netmesh check against the in-cluster installation on a real node', () => {
  const h = useCluster();
  let r: Release;
  const namespaces: string[] = [];
  const check = (...extra: string[]) =>
    netmesh([
      'check',
      '--kubeconfig',
      h.cluster.kubeconfigPath,
      '--netmesh-namespace',
      r.namespace,
      '--release',
      r.release,
      ...extra,
    ]);

  before(async () => {
    r = await installRelease(h, { release: 'nmick' });
    // An injected Pod in a labelled namespace of this release: the uninjected-Pods check has
    // something to look at, and it must count this one as injected.
    const ns = await r.appNamespace('ick-app', ENABLED);
    namespaces.push(ns);
    await h.core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'web' },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [{ name: 'app', image: 'busybox:1.35', command: ['sleep', '3600'] }],
        },
      },
    });
    await waitPodReady(h, ns, 'web');
  });
  after(async () => {
    for (const ns of namespaces) await deleteNamespace(h, ns);
    r?.uninstall();
  });

  test('every check passes, the endpoint check probing each ready Pod of the Service', async () => {
    // The leader's caches report synced through /readyz shortly after the rollout.
    const res = await eventually(
      'netmesh check exits 0',
      async () => {
        const out = await check('-o', 'json');
        return out.code === 0 ? out : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 2000 },
    ).catch(async (err) => {
      const out = await check();
      throw new Error(`${(err as Error).message}\n${out.stdout}${out.stderr}`);
    });
    const report = JSON.parse(res.stdout) as CheckJson;
    assert.equal(report.ok, true);
    const names = report.checks.map((c) => c.name);
    assert.deepEqual(names, [
      'cluster',
      'permissions',
      'CRD networks.netmesh.io',
      `webhook configuration ${r.fullname}`,
      'webhook endpoint',
      'certificate expiry',
      'sidecar template',
      'operator leader',
      'operator caches',
      'RBAC',
      'injected namespaces',
    ]);
    for (const c of report.checks) assert.equal(c.status, 'ok', `${c.name}: ${c.message}`);
    const endpoint = report.checks.find((c) => c.name === 'webhook endpoint')!;
    // Both replicas' Pod IPs, on the webhook port, verified for <service>.<namespace>.svc.
    assert.match(
      endpoint.message,
      new RegExp(
        `^Service ${r.namespace}/${r.fullname}: \\d+\\.\\d+\\.\\d+\\.\\d+:8443, \\d+\\.\\d+\\.\\d+\\.\\d+:8443 present .*verified by the caBundle for ${r.fullname}\\.${r.namespace}\\.svc$`,
      ),
    );
    assert.doesNotMatch(endpoint.message, /unreachable/);
    const text = await check();
    for (const l of text.stdout.trimEnd().split('\n')) console.log(`# ${l}`);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /11 checks: 11 passed, 0 failed, 0 warnings, 0 skipped/);
    // -n: the injected Pod on the node, in its namespace only.
    const scoped = await check('-n', namespaces[0]!);
    assert.equal(scoped.code, 0, scoped.stdout);
    assert.match(
      scoped.stdout,
      new RegExp(`\n✔ injected namespaces: namespace ${namespaces[0]}: 1 Pod\\(s\\), all with the sidecar`),
    );
  });

  test('the Deployment scaled to 0: the endpoint check fails with a hint and a non-zero exit', async () => {
    await h.apps.patchNamespacedDeploymentScale(
      {
        namespace: r.namespace,
        name: r.fullname,
        body: [{ op: 'replace', path: '/spec/replicas', value: 0 }],
      },
      // JSON Patch is the client's default for patch calls.
    );
    const res = await eventually(
      'the endpoint check fails',
      async () => {
        const out = await check();
        return /✖ webhook endpoint:/.test(out.stdout) ? out : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 2000 },
    );
    assert.equal(res.code, 1);
    const lines = res.stdout.split('\n');
    const i = lines.findIndex((l) => l.startsWith('✖ webhook endpoint:'));
    assert.equal(
      lines[i],
      `✖ webhook endpoint: Service ${r.namespace}/${r.fullname} has no ready endpoints: the apiserver cannot reach the webhook`,
    );
    assert.match(
      lines[i + 1] ?? '',
      /^ {4}hint: kubectl -n \S+ get pods,endpointslices -l app\.kubernetes\.io\/name=netmesh: are netmesh's Pods Running and Ready\?$/,
    );
    assert.match(res.stdout, /\d+ checks: \d+ passed, [1-9]\d* failed/);
  });
});
