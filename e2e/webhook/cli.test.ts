// The `netmesh webhook`, `netmesh inject` and `netmesh explain` commands as a user runs them:
// a separate process, registration through --register-url, removal on SIGTERM.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AdmissionregistrationV1Api, type V1Pod } from '@kubernetes/client-node';
import { parse, parseAllDocuments } from 'yaml';
import { buildKubeconfig } from '../../lib/kubeconfig.ts';
import { createCertificateAuthority } from '../../lib/pki.ts';
import { buildMutatingWebhookConfiguration } from '../../webhook/webhook-config.ts';
import { createNamespace, deleteNamespace, eventually, gone, runNetmesh, useCluster } from '../support.ts';
import {
  courseConfigMap,
  ENABLED,
  freePort,
  isInjected,
  SCOPE_LABEL,
  testId,
  waitUntilInjecting,
} from './helpers.ts';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const bin = join(root, 'bin', 'netmesh.js');

const runCli = (args: string[], input?: string, env: NodeJS.ProcessEnv = {}) =>
  runNetmesh(args, { input, env });

/** The complete JSON lines so far (the last one may still be on its way through the pipe). */
function jsonLines(logs: string): Record<string, unknown>[] {
  return logs
    .slice(0, logs.lastIndexOf('\n') + 1)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('netmesh CLI', () => {
  const h = useCluster();
  const scope = testId();
  let sysNs: string;
  let appNs: string;
  let dir: string;

  before(async () => {
    sysNs = await createNamespace(h, 'wh-cli-sys', { [SCOPE_LABEL]: scope });
    const cm = await courseConfigMap();
    await h.core.createNamespacedConfigMap({
      namespace: sysNs,
      body: { metadata: { name: 'envoy-initializer' }, data: cm.data },
    });
    appNs = await createNamespace(h, 'wh-cli', { ...ENABLED, [SCOPE_LABEL]: scope });
    dir = mkdtempSync(join(tmpdir(), 'netmesh-cli-'));
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    for (const ns of [appNs, sysNs]) if (ns) await deleteNamespace(h, ns);
  });

  test('netmesh webhook --register-url serves, injects, and on SIGTERM turns unready, unregisters, then exits', async () => {
    const port = await freePort();
    const name = `wh-e2e-cli-${scope}`;
    const child: ChildProcess = spawn(
      process.execPath,
      [
        bin,
        'webhook',
        '--kubeconfig',
        h.cluster.kubeconfigPath,
        '--netmesh-namespace',
        sysNs,
        '--listen',
        `127.0.0.1:${port}`,
        '--health-listen',
        '127.0.0.1:0',
        '--register-url',
        `https://127.0.0.1:${port}/mutate`,
        '--webhook-config-name',
        name,
        '--namespace-selector',
        `${SCOPE_LABEL}=${scope}`,
      ],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NETMESH_TIMEOUT_SECONDS: '7', NETMESH_SHUTDOWN_DELAY: '6s' },
      },
    );
    // Apart, so a stderr chunk can never land inside a half-received JSON log line.
    let logs = '';
    let errors = '';
    child.stdout!.on('data', (d: Buffer) => {
      logs += d.toString();
    });
    child.stderr!.on('data', (d: Buffer) => {
      errors += d.toString();
    });
    let running = true;
    let terminated = false;
    const exited = new Promise<number | null>((r) =>
      // 'close', not 'exit': the last log lines may still be in the pipes when the process exits.
      child.on('close', (code) => {
        running = false;
        r(code);
      }),
    );
    const admission = h.kc.makeApiClient(AdmissionregistrationV1Api);
    try {
      const config = await eventually(
        'the configuration registered by the CLI',
        () => admission.readMutatingWebhookConfiguration({ name }),
        { timeoutMs: 60_000 },
      );
      assert.ok(
        config.webhooks?.every((w) => w.failurePolicy === 'Ignore'),
        'failurePolicy Ignore by default, as the chart',
      );
      assert.ok(
        config.webhooks?.every((w) => w.timeoutSeconds === 7),
        'env var NETMESH_TIMEOUT_SECONDS honoured',
      );
      assert.ok(
        config.metadata?.managedFields?.some(
          (f) => f.manager === 'netmesh-webhook' && f.operation === 'Apply',
        ),
        'server-side apply with field manager netmesh-webhook',
      );
      assert.equal(
        config.metadata?.labels?.['netmesh.io/registered-by'],
        'netmesh-webhook',
        'labelled as a local registration, so a re-run may update it',
      );
      await waitUntilInjecting(h, appNs);
      const pod = await h.core.createNamespacedPod({
        namespace: appNs,
        body: parse(readFileSync('examples/seed-myapp-pod.yaml', 'utf8')) as V1Pod,
      });
      assert.ok(isInjected(pod));
      // The line is written after the response (at the end of the event-loop turn) and crosses a
      // pipe, so the Pod can be back here before its log line is.
      const line = await eventually(
        'one log line per admission',
        async () => jsonLines(logs).find((l) => l['msg'] === 'admission' && l['name'] === 'myapp-pod'),
        { timeoutMs: 10_000, intervalMs: 50 },
      );
      assert.equal(line['namespace'], appNs);
      assert.equal(line['decision'], 'injected');
      assert.equal(typeof line['durationMs'], 'number');

      const started = await eventually('the "webhook started" line', async () =>
        jsonLines(logs).find((l) => l['msg'] === 'webhook started'),
      );
      const health = String(started?.['health']);
      assert.match(health, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal((await fetch(`${health}/readyz`)).status, 200);
      terminated = child.kill('SIGTERM');
      // NETMESH_SHUTDOWN_DELAY=6s: unready and unregistered at once, still up for the delay.
      await eventually('/readyz to fail with "stopping"', async () => {
        const res = await fetch(`${health}/readyz`);
        return res.status === 503 && /webhook failed: stopping/.test(await res.text());
      });
      await eventually('the configuration removed', () =>
        gone(() => admission.readMutatingWebhookConfiguration({ name })),
      );
      assert.ok(running, 'still serving during the shutdown delay');
    } finally {
      // Once only: a second SIGTERM ends the process at once, as it would for anyone.
      if (!terminated) child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, `${logs.slice(-2000)}${errors.slice(-2000)}`);
    await assert.rejects(
      admission.readMutatingWebhookConfiguration({ name }),
      (err: { code?: number }) => err.code === 404,
    );
  });

  test("netmesh webhook --register-url refuses the chart's configuration and says what to do", async () => {
    const admission = h.kc.makeApiClient(AdmissionregistrationV1Api);
    const name = `wh-e2e-cli-helm-${scope}`;
    await admission.createMutatingWebhookConfiguration({
      body: {
        metadata: {
          name,
          labels: { 'app.kubernetes.io/managed-by': 'Helm' },
          annotations: { 'meta.helm.sh/release-name': 'netmesh', 'meta.helm.sh/release-namespace': sysNs },
        },
        webhooks: [],
      },
    });
    try {
      const port = await freePort();
      const res = await runCli([
        'webhook',
        '--kubeconfig',
        h.cluster.kubeconfigPath,
        '--netmesh-namespace',
        sysNs,
        '--listen',
        `127.0.0.1:${port}`,
        '--health-listen',
        '127.0.0.1:0',
        '--register-url',
        `https://127.0.0.1:${port}/mutate`,
        '--webhook-config-name',
        name,
      ]);
      assert.equal(res.code, 1, res.stderr);
      assert.match(
        res.stderr,
        new RegExp(
          `MutatingWebhookConfiguration ${name} belongs to Helm release netmesh in namespace ${sysNs}`,
        ),
      );
      assert.match(res.stderr, /--webhook-config-name/);
      const still = await admission.readMutatingWebhookConfiguration({ name });
      assert.deepEqual(still.webhooks ?? [], [], 'left untouched');
      assert.equal(still.metadata?.labels?.['netmesh.io/registered-by'], undefined);
    } finally {
      await admission.deleteMutatingWebhookConfiguration({ name }).catch(() => {});
    }
  });

  test('netmesh inject -f with --template, and with the template read from the cluster', async () => {
    const manifest = join(dir, 'app.yaml');
    writeFileSync(
      manifest,
      [
        readFileSync('examples/seed-myapp-pod.yaml', 'utf8'),
        '---',
        'apiVersion: apps/v1',
        'kind: Deployment',
        'metadata: {name: web}',
        'spec:',
        '  selector: {matchLabels: {app: web}}',
        '  template:',
        '    metadata: {labels: {app: web}}',
        '    spec: {containers: [{name: web, image: busybox}]}',
        '---',
        'apiVersion: v1',
        'kind: Service',
        'metadata: {name: web}',
        'spec: {ports: [{port: 80}]}',
        '',
      ].join('\n'),
    );
    const out = join(dir, 'out.yaml');
    const offline = await runCli([
      'inject',
      '-f',
      manifest,
      '--template',
      'examples/seed-envoy-initializer-configmap.yaml',
      '--output-file',
      out,
    ]);
    assert.equal(offline.code, 0, offline.stderr);
    const docs = parseAllDocuments(readFileSync(out, 'utf8')).map((d) => d.toJS());
    assert.deepEqual(
      docs[0].spec.containers.map((c: { name: string }) => c.name),
      ['myapp-container', 'envoy'],
    );
    assert.deepEqual(
      docs[1].spec.template.spec.containers.map((c: { name: string }) => c.name),
      ['web', 'envoy'],
    );
    assert.equal(docs[2].kind, 'Service');
    assert.match(offline.stderr, /Pod myapp-pod: injected/);

    // From the cluster, stdin to stdout (YAML in, -o json out); the webhook then sees the Pod
    // as already injected.
    const fromCluster = await runCli(
      [
        'inject',
        '-f',
        '-',
        '--kubeconfig',
        h.cluster.kubeconfigPath,
        '--netmesh-namespace',
        sysNs,
        '-o',
        'json',
      ],
      readFileSync('examples/seed-myapp-pod.yaml', 'utf8'),
    );
    assert.equal(fromCluster.code, 0, fromCluster.stderr);
    const pod = JSON.parse(fromCluster.stdout) as V1Pod;
    assert.ok(isInjected(pod));
  });

  test('netmesh explain says why', async () => {
    // A configuration like the chart's, scoped to this file's namespaces, for explain to evaluate.
    const admission = h.kc.makeApiClient(AdmissionregistrationV1Api);
    const name = `wh-e2e-cli-explain-${scope}`;
    await admission.createMutatingWebhookConfiguration({
      body: buildMutatingWebhookConfiguration({
        name,
        namespace: sysNs,
        clientConfig: { url: 'https://127.0.0.1:9/mutate' },
        caBundle: createCertificateAuthority('explain').certPem,
        failurePolicy: 'Ignore',
        matchConditionsSupported: true,
        extraNamespaceSelector: [{ key: SCOPE_LABEL, operator: 'In', values: [scope] }],
      }),
    });
    try {
      const yes = await runCli([
        'explain',
        '-f',
        'examples/seed-myapp-pod.yaml',
        '--namespace',
        appNs,
        '--kubeconfig',
        h.cluster.kubeconfigPath,
        '--netmesh-namespace',
        sysNs,
        '--webhook-config-name',
        name,
      ]);
      assert.equal(yes.code, 0, yes.stdout + yes.stderr);
      assert.match(yes.stdout, /namespace\.netmesh\.io: called/);
      assert.match(yes.stdout, /selected: yes \(NamespaceEnabled\)/);
      assert.match(yes.stdout, /result: injected/);
    } finally {
      await admission.deleteMutatingWebhookConfiguration({ name });
    }
    // A kubeconfig that was asked for and is not there is an error, never a silent offline run.
    const no = await runCli([
      'explain',
      '-f',
      'examples/seed-myapp-pod.yaml',
      '--namespace-labels',
      'team=a',
      '--kubeconfig',
      '/dev/null/none',
    ]);
    assert.equal(no.code, 1, no.stderr);
    assert.match(no.stderr, /cannot load kubeconfig/);
    // Offline (no kubeconfig anywhere): labels given; not injected is exit status 1.
    const offline = await runCli(
      ['explain', '-f', 'examples/seed-myapp-pod.yaml', '--namespace-labels', 'team=a'],
      undefined,
      {
        HOME: dir,
      },
    );
    assert.equal(offline.code, 1, offline.stderr);
    assert.match(offline.stdout, /selected: no \(NamespaceNotEnabled\)/);
    const bad = await runCli(['inject', '-f', 'examples/seed-myapp-pod.yaml'], undefined, { HOME: dir });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^netmesh: no sidecar template: pass --template/);
  });

  test('netmesh operator with a Lease namespace that does not exist: one clear error, no retry loop', async () => {
    const started = Date.now();
    const r = await runCli([
      'operator',
      '--kubeconfig',
      h.cluster.kubeconfigPath,
      '--netmesh-namespace',
      `no-such-ns-${scope}`,
      '--health-listen',
      '127.0.0.1:0',
    ]);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.split('\n').filter((l) => !l.startsWith('{'));
    assert.deepEqual(lines.filter(Boolean), [
      `netmesh: namespace no-such-ns-${scope} does not exist (leader-election Lease no-such-ns-${scope}/netmesh-operator): --netmesh-namespace must be the namespace netmesh is installed in (the chart passes its own) and --lease-name the chart's <release>-operator`,
    ]);
    assert.ok(Date.now() - started < 20_000, 'fails at once');
  });

  test('an x509 failure says which certificate was refused', async () => {
    const server = h.kc.getCurrentCluster()!.server;
    const kubeconfig = join(dir, 'wrong-ca.kubeconfig');
    writeFileSync(
      kubeconfig,
      buildKubeconfig({
        server,
        caPem: createCertificateAuthority('not-the-apiserver-ca').certPem,
        user: { token: 'x' },
      }),
    );
    const r = await runCli(['explain', '--kubeconfig', kubeconfig, '-n', 'default', 'deploy/web']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `^netmesh: cannot read Deployment default/web: x509: the certificate presented by ${server.replace(/\./g, '\\.')} is not signed by a trusted CA \\(\\w+\\) \\(server certificate: CN=[^,]+, issued by CN=[^,]+, .*valid until \\d{4}-.*\\): the certificate-authority of the kubeconfig did not sign it`,
      ),
    );
    assert.doesNotMatch(r.stderr, /fetch failed/);
  });
});
