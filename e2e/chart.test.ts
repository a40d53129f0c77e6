// The Helm chart, proven on the real control plane: lint, generated artefacts in sync,
// server-side dry run, install/upgrade/uninstall, two releases side by side, the CRD upgrade
// step, and netmesh running on the host under the chart's own ServiceAccount (its RBAC suffices
// and is not excessive), where the `helm test` check, the PrometheusRule and the Grafana
// dashboard are run against the real thing.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { operatorFlags, operatorOptionsFromFlags } from '../cli/commands/common.ts';
import { flags as runFlags } from '../cli/commands/run.ts';
import { webhookFlags, webhookOptionsFromFlags } from '../cli/commands/webhook.ts';
import { type FlagSpec, parseFlags, refuseWorkloadNamespace } from '../cli/flags.ts';
import {
  CHART_DIR,
  hostRunArgs,
  installChart,
  releaseExists,
  serviceAccountKubeconfig,
  uninstallChart,
} from '../cluster/chart.ts';
import { freePort } from '../cluster/controlplane.ts';
import { type NetmeshProcess, startNetmesh } from '../cluster/netmesh-process.ts';
import { helm, kubectl } from '../cluster/tools.ts';
import { buildMutatingWebhookConfiguration } from '../webhook/webhook-config.ts';
import { MANIFEST_PATH, readmeValuesSection, renderManifest, valuesTable } from './generate.ts';
import { Evaluator, type Labels, parsePromQL } from './monitoring/promql.ts';
import {
  alertRules,
  checkQuery,
  dashboardQueries,
  type Scrape,
  storeFromScrapes,
} from './monitoring/rules.ts';
import { createNamespace, deleteNamespace, eventually, gone, useCluster } from './support.ts';

type Obj = k8s.KubernetesObject & Record<string, unknown>;

function parseManifests(text: string): Obj[] {
  return parseAllDocuments(text)
    .map((d) => d.toJSON() as Obj)
    .filter(Boolean);
}

/** The release's objects as Helm installs them (the `helm test` hook is not among them). */
function render(args: string[] = [], release = 'netmesh', namespace = 'netmesh-system'): Obj[] {
  return parseManifests(
    helm('/dev/null', ['template', release, CHART_DIR, '--namespace', namespace, '--skip-tests', ...args]),
  );
}

/** The `helm test` hook's objects. */
function renderTestHook(args: string[] = [], release = 'netmesh', namespace = 'netmesh-system'): Obj[] {
  return parseManifests(
    helm('/dev/null', [
      'template',
      release,
      CHART_DIR,
      '--namespace',
      namespace,
      '--show-only',
      'templates/tests/injection.yaml',
      ...args,
    ]),
  );
}

const MONITORING = [
  '--set',
  'metrics.serviceMonitor.enabled=true',
  '--set',
  'metrics.prometheusRule.enabled=true',
  '--set',
  'metrics.dashboard.enabled=true',
];

/** kind/namespace/name of every object ('' namespace for cluster-scoped ones). */
function identities(objs: Obj[]): string[] {
  return objs.map((o) => `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`);
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

  test("the Deployment's args are flags of the command it runs, in every mode", () => {
    const commands: Record<string, Record<string, FlagSpec>> = {
      run: runFlags,
      operator: operatorFlags,
      webhook: webhookFlags,
    };
    for (const [set, expected] of [
      [[], 'run'],
      [['--set', 'webhook.enabled=false'], 'operator'],
      [['--set', 'operator.enabled=false'], 'webhook'],
    ] as const) {
      const dep = render([...set]).find((o) => o.kind === 'Deployment') as unknown as k8s.V1Deployment;
      // The kubelet expands $(POD_NAMESPACE) from the env the Deployment sets.
      const [cmd, ...args] = dep.spec!.template.spec!.containers[0]!.args!.map((a) =>
        a.replace('$(POD_NAMESPACE)', 'netmesh-system'),
      );
      assert.equal(cmd, expected);
      const { values } = parseFlags(cmd!, '', args, commands[cmd!]!, {
        refuse: refuseWorkloadNamespace(cmd!),
      });
      assert.equal(values['netmesh-namespace'], 'netmesh-system', `${cmd}: ${args.join(' ')}`);
      if (cmd !== 'operator') webhookOptionsFromFlags(values as never);
      if (cmd !== 'webhook') operatorOptionsFromFlags(values as never);
    }
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

  test('the schema stays strict and accepts the common keys', () => {
    const objs = render(
      [
        '--set',
        'global.imageRegistry=registry.example',
        '--set',
        'nameOverride=mesh',
        '--set',
        'podLabels.team=net',
        '--set',
        'podAnnotations.note=x',
        '--set',
        'image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
        '--set',
        'extraArgs[0]=--retry-qps=5',
        '--set',
        'extraEnv[0].name=NODE_OPTIONS',
        '--set',
        'extraEnv[0].value=--max-old-space-size=200',
        '--set',
        'topologySpreadConstraints[0].maxSkew=1',
        '--set',
        'topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone',
        '--set',
        'topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway',
      ],
      'edge',
    );
    const dep = objs.find((o) => o.kind === 'Deployment') as unknown as k8s.V1Deployment;
    const pod = dep.spec!.template;
    const c = pod.spec!.containers[0]!;
    assert.equal(dep.metadata?.labels?.['app.kubernetes.io/name'], 'mesh');
    assert.equal(dep.metadata?.name, 'edge-mesh', 'nameOverride feeds the full name');
    assert.equal(pod.metadata?.labels?.['team'], 'net');
    assert.equal(pod.metadata?.annotations?.['note'], 'x');
    assert.equal(
      c.image,
      'localhost/netmesh:0.1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
    );
    assert.equal(c.args?.at(-1), '--retry-qps=5', 'extra arguments come last, so they win');
    assert.deepEqual(c.env?.at(-1), { name: 'NODE_OPTIONS', value: '--max-old-space-size=200' });
    // A constraint without a selector spreads this release's Pods, not every Pod of the zone.
    assert.deepEqual(pod.spec?.topologySpreadConstraints?.[0]?.labelSelector?.matchLabels, {
      'app.kubernetes.io/name': 'mesh',
      'app.kubernetes.io/instance': 'edge',
    });
    assert.equal(
      render(['--set', 'fullnameOverride=edge-mesh']).find((o) => o.kind === 'MutatingWebhookConfiguration')
        ?.metadata?.name,
      'edge-mesh',
    );
    assert.throws(() => render(['--set', 'replicas=2']), /additional properties 'replicas' not allowed/);
    assert.throws(() => render(['--set', 'image.digest=latest']), /digest/);
    assert.throws(() => render(['--set', 'extraEnv[0].value=x']), /name/);
  });

  test('netmesh works as a subchart: global values and overrides through the parent', () => {
    const dir = mkdtempSync(join(tmpdir(), 'netmesh-umbrella-'));
    try {
      writeFileSync(
        join(dir, 'Chart.yaml'),
        `apiVersion: v2\nname: platform\nversion: 1.0.0\ndependencies:\n  - name: netmesh\n    version: ${
          (parseYaml(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as { version: string }).version
        }\n    repository: file://${CHART_DIR}\n`,
      );
      writeFileSync(
        join(dir, 'values.yaml'),
        'global:\n  imageRegistry: registry.example\nnetmesh:\n  replicaCount: 3\n',
      );
      helm('/dev/null', ['dependency', 'update', dir]);
      const objs = parseManifests(
        helm('/dev/null', ['template', 'platform', dir, '--namespace', 'plat', '--skip-tests']),
      );
      const dep = objs.find((o) => o.kind === 'Deployment') as unknown as k8s.V1Deployment;
      assert.equal(dep.metadata?.name, 'platform-netmesh');
      assert.equal(dep.spec?.replicas, 3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('hostNetwork: node network, cluster DNS, the configured webhook port', () => {
    const dep = render([
      '--set',
      'hostNetwork=true',
      '--set',
      'webhook.port=10260',
      '--set',
      'healthPort=10261',
    ]).find((o) => o.kind === 'Deployment') as unknown as k8s.V1Deployment;
    const spec = dep.spec!.template.spec!;
    assert.equal(spec.hostNetwork, true);
    assert.equal(spec.dnsPolicy, 'ClusterFirstWithHostNet');
    const c = spec.containers[0]!;
    assert.ok(c.args?.includes('--listen=0.0.0.0:10260'));
    assert.ok(c.args?.includes('--health-listen=0.0.0.0:10261'));
    assert.deepEqual(
      c.ports?.map((p) => [p.name, p.containerPort]),
      [
        ['webhook', 10260],
        ['health', 10261],
      ],
    );
    const plain = render().find((o) => o.kind === 'Deployment') as unknown as k8s.V1Deployment;
    assert.equal(plain.spec!.template.spec!.hostNetwork, undefined);
  });

  test('the Service carries the metrics port, also without the webhook', () => {
    for (const [args, ports] of [
      [[], ['https-webhook', 'http-metrics']],
      [['--set', 'webhook.enabled=false'], ['http-metrics']],
    ] as const) {
      const svc = render([...args]).find((o) => o.kind === 'Service') as unknown as k8s.V1Service;
      assert.deepEqual(
        svc.spec?.ports?.map((p) => p.name),
        ports,
      );
      assert.equal(svc.spec?.ports?.find((p) => p.name === 'http-metrics')?.targetPort, 'health');
    }
  });

  test('two releases in different namespaces share no object name', () => {
    const a = identities(render(MONITORING, 'edge', 'edge-system'));
    const b = identities(render(MONITORING, 'core', 'core-system'));
    assert.deepEqual(
      a.filter((id) => b.includes(id)),
      [],
    );
    // Cluster-scoped objects carry the release's full name; the fixed user-facing names
    // (template envoy-initializer, bootstrap envoy, TLS Secret) live in the release namespace.
    const clusterScoped = a.filter((id) => id.split('/')[1] === '');
    assert.deepEqual(clusterScoped.sort(), [
      'ClusterRole//edge-netmesh',
      'ClusterRoleBinding//edge-netmesh',
      'MutatingWebhookConfiguration//edge-netmesh',
      'ValidatingAdmissionPolicy//edge-netmesh-writes',
      'ValidatingAdmissionPolicyBinding//edge-netmesh-writes',
    ]);
    for (const id of a.filter((x) => x.split('/')[1] !== ''))
      assert.equal(id.split('/')[1], 'edge-system', `${id} lives in the release namespace`);
    const hookA = identities(renderTestHook([], 'edge', 'edge-system'));
    const hookB = identities(renderTestHook([], 'core', 'core-system'));
    assert.deepEqual(
      hookA.filter((id) => hookB.includes(id)),
      [],
    );
  });

  test('monitoring objects are valid Prometheus Operator objects selecting this release', async () => {
    const { ServiceMonitor } = await import(
      '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor'
    );
    const { PodMonitor } = await import(
      '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor'
    );
    const { PrometheusRule } = await import(
      '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule'
    );
    assert.deepEqual(
      render().filter((o) => o.apiVersion === 'monitoring.coreos.com/v1'),
      [],
      'nothing without the CRDs unless asked',
    );
    const objs = render([...MONITORING, '--set', 'metrics.serviceMonitor.labels.release=kps']);
    const sm = objs.find((o) => o.kind === 'ServiceMonitor')!;
    new ServiceMonitor(sm as never).validate();
    const smSpec = sm['spec'] as {
      selector: { matchLabels: Record<string, string> };
      endpoints: { port: string; relabelings: { targetLabel: string; replacement: string }[] }[];
    };
    assert.equal(sm.metadata?.labels?.['release'], 'kps');
    const svc = objs.find((o) => o.kind === 'Service') as unknown as k8s.V1Service;
    for (const [k, v] of Object.entries(smSpec.selector.matchLabels))
      assert.equal(svc.metadata?.labels?.[k], v);
    assert.ok(svc.spec?.ports?.some((p) => p.name === smSpec.endpoints[0]!.port));
    assert.deepEqual(smSpec.endpoints[0]!.relabelings[0], {
      action: 'replace',
      targetLabel: 'job',
      replacement: 'netmesh',
    });

    const pm = render(['--set', 'metrics.podMonitor.enabled=true']).find((o) => o.kind === 'PodMonitor')!;
    new PodMonitor(pm as never).validate();
    assert.throws(
      () =>
        render(['--set', 'metrics.podMonitor.enabled=true', '--set', 'metrics.serviceMonitor.enabled=true']),
      /enable one of metrics.serviceMonitor and metrics.podMonitor/,
    );

    const rule = objs.find((o) => o.kind === 'PrometheusRule')!;
    new PrometheusRule(rule as never).validate();
    const rules = alertRules(rule);
    // GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens.
    const runbooks = new Set(
      [...readFileSync('docs/troubleshooting.md', 'utf8').matchAll(/^#{2,3} (.+)$/gm)].map((m) =>
        m[1]!
          .toLowerCase()
          .replace(/[^a-z0-9 -]/g, '')
          .replace(/ /g, '-'),
      ),
    );
    assert.deepEqual(
      rules.map((r) => r.alert),
      [
        'NetmeshWebhookCertificateExpiringSoon',
        'NetmeshWebhookTemplateInvalid',
        'NetmeshWebhookTemplateMissing',
        'NetmeshWebhookErrors',
        'NetmeshWebhookLatencyHigh',
        'NetmeshReconcileErrors',
        'NetmeshNoLeader',
      ],
    );
    for (const r of rules) {
      assert.doesNotThrow(() => parsePromQL(r.expr), r.alert);
      assert.match(r.expr, /job="netmesh",namespace="netmesh-system"/, `${r.alert} selects this release`);
      const anchor = /docs\/troubleshooting\.md#([a-z0-9-]+)$/.exec(
        r.annotations?.['runbook_url'] ?? '',
      )?.[1];
      assert.ok(
        anchor && runbooks.has(anchor),
        `${r.alert}: runbook section #${anchor} in docs/troubleshooting.md`,
      );
      assert.match(r.annotations?.['description'] ?? '', /\S/);
    }
    // Only the alerts of the parts that run; thresholds, extra labels and opt-outs apply.
    const operatorOnly = alertRules(
      render(['--set', 'metrics.prometheusRule.enabled=true', '--set', 'webhook.enabled=false']).find(
        (o) => o.kind === 'PrometheusRule',
      ),
    );
    assert.deepEqual(
      operatorOnly.map((r) => r.alert),
      ['NetmeshReconcileErrors', 'NetmeshNoLeader'],
    );
    const tuned = alertRules(
      render([
        '--set',
        'metrics.prometheusRule.enabled=true',
        '--set',
        'metrics.prometheusRule.certificateExpiryDays=3',
        '--set',
        'metrics.prometheusRule.webhookLatencyP99Seconds=0.25',
        '--set',
        'metrics.prometheusRule.alertLabels.team=platform',
        '--set',
        'metrics.prometheusRule.disabled[0]=NetmeshWebhookErrors',
        '--set',
        'metrics.prometheusRule.selector=job="custom"',
      ]).find((o) => o.kind === 'PrometheusRule'),
    );
    assert.ok(!tuned.some((r) => r.alert === 'NetmeshWebhookErrors'));
    assert.match(
      tuned.find((r) => r.alert === 'NetmeshWebhookCertificateExpiringSoon')!.expr,
      /< 3 \* 86400$/,
    );
    assert.match(tuned.find((r) => r.alert === 'NetmeshWebhookLatencyHigh')!.expr, /> 0\.25$/);
    assert.ok(tuned.every((r) => r.labels?.['team'] === 'platform' && r.expr.includes('{job="custom"')));
    assert.throws(
      () => render(['--set', 'metrics.prometheusRule.disabled[0]=NoSuchAlert']),
      /disabled/,
      'a misspelt alert name is an error, not a silent no-op',
    );
  });

  test('the Grafana dashboard ships in the chart and is sound', () => {
    const file = readFileSync(join(CHART_DIR, 'dashboards', 'netmesh.json'), 'utf8');
    const dashboard = JSON.parse(file) as { uid: string; panels: { id: number }[] };
    assert.equal(dashboard.uid, 'netmesh-overview');
    const ids = dashboard.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    const queries = dashboardQueries(dashboard, { namespace: 'netmesh-system', job: 'netmesh' });
    assert.ok(queries.length >= 20, `${queries.length} queries`);
    for (const q of queries) assert.doesNotThrow(() => parsePromQL(q.expr), `${q.panel}: ${q.expr}`);
    const cm = render([
      '--set',
      'metrics.dashboard.enabled=true',
      '--set',
      'metrics.dashboard.namespace=monitoring',
    ]).find(
      (o) => o.kind === 'ConfigMap' && o.metadata?.name === 'netmesh-dashboard',
    ) as unknown as k8s.V1ConfigMap;
    assert.equal(cm.metadata?.namespace, 'monitoring');
    assert.equal(cm.metadata?.labels?.['grafana_dashboard'], '1');
    assert.deepEqual(JSON.parse(cm.data?.['netmesh.json'] ?? ''), dashboard);
  });

  test('helm test hook: a labelled namespace, least privilege, the netmesh image', () => {
    const objs = renderTestHook([
      '--set',
      'webhook.extraNamespaceSelector[0].key=team',
      '--set',
      'webhook.extraNamespaceSelector[0].operator=In',
      '--set',
      'webhook.extraNamespaceSelector[0].values[0]=canary',
    ]);
    for (const o of objs) {
      assert.equal(o.metadata?.annotations?.['helm.sh/hook'], 'test', `${o.kind} is a test hook`);
      assert.equal(
        o.metadata?.annotations?.['helm.sh/hook-delete-policy'],
        'before-hook-creation,hook-succeeded',
      );
    }
    const ns = objs.find((o) => o.kind === 'Namespace')!;
    assert.equal(ns.metadata?.name, 'netmesh-test');
    assert.deepEqual(
      { injection: ns.metadata?.labels?.['netmesh.io/injection'], team: ns.metadata?.labels?.['team'] },
      { injection: 'enabled', team: 'canary' },
      'the namespace matches every webhook selector',
    );
    const role = objs.find((o) => o.kind === 'Role') as unknown as k8s.V1Role;
    assert.equal(role.metadata?.namespace, 'netmesh-test');
    assert.deepEqual(role.rules, [{ apiGroups: [''], resources: ['pods'], verbs: ['create'] }]);
    const pod = objs.find((o) => o.kind === 'Pod') as unknown as k8s.V1Pod;
    assert.equal(pod.metadata?.namespace, 'netmesh-system', 'runs in the (never injected) release namespace');
    assert.equal(pod.metadata?.labels?.['netmesh.io/inject'], 'false');
    const c = pod.spec!.containers[0]!;
    assert.equal(c.image, 'localhost/netmesh:0.1.0');
    assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
    assert.equal(env['NETMESH_TEST_NAMESPACE'], 'netmesh-test');
    assert.equal(env['NETMESH_EXPECTED_CONTAINERS'], '["envoy"]');
    // An existing namespace instead: no Namespace is created, the Role goes there.
    const given = renderTestHook(['--set', 'tests.namespace=apps']);
    assert.ok(!given.some((o) => o.kind === 'Namespace'));
    assert.equal(given.find((o) => o.kind === 'Role')?.metadata?.namespace, 'apps');
    assert.throws(() => renderTestHook(['--set', 'tests.enabled=false']), /could not find template/);
  });

  test('NOTES: restarting existing workloads, helm test, netmesh check', () => {
    const text = helm('/dev/null', [
      'install',
      'netmesh',
      CHART_DIR,
      '--namespace',
      'netmesh-system',
      '--dry-run=client',
    ]).slice(-2500);
    assert.match(text, /kubectl -n <namespace> rollout restart deploy,statefulset,daemonset/);
    assert.match(text, /helm test netmesh -n netmesh-system --logs/);
    assert.match(text, /netmesh check --netmesh-namespace netmesh-system --release netmesh\n/);
    assert.doesNotMatch(text, /helm show crds/, 'the CRD step is shown on upgrades only');
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
      const out = helm('/dev/null', ['template', 'dry', CHART_DIR, '--namespace', ns, '--skip-tests']);
      const res = kubectl(h.cluster.kubeconfigPath, ['apply', '--dry-run=server', '-f', '-'], out);
      assert.match(res, /deployment\.apps\/dry-netmesh created \(server dry run\)/);
      assert.match(
        res,
        /mutatingwebhookconfiguration\.admissionregistration\.k8s\.io\/dry-netmesh created \(server dry run\)/,
      );
      // The `helm test` hook's objects too, in an existing namespace. The Pod's ServiceAccount
      // must exist for its dry run, so the hook's other objects are created for real (they go
      // with the namespace at the end).
      const hook = parseManifests(
        helm('/dev/null', [
          'template',
          'dry',
          CHART_DIR,
          '--namespace',
          ns,
          '--show-only',
          'templates/tests/injection.yaml',
          '--set',
          `tests.namespace=${ns}`,
        ]),
      );
      const toText = (objs: Obj[]) => objs.map((o) => JSON.stringify(o)).join('\n');
      const hookRes = kubectl(
        h.cluster.kubeconfigPath,
        ['apply', '-f', '-'],
        toText(hook.filter((o) => o.kind !== 'Pod')),
      );
      assert.match(hookRes, /role\.rbac\.authorization\.k8s\.io\/dry-netmesh-test created/);
      assert.match(
        kubectl(
          h.cluster.kubeconfigPath,
          ['apply', '--dry-run=server', '-f', '-'],
          toText(hook.filter((o) => o.kind === 'Pod')),
        ),
        /pod\/dry-netmesh-test created \(server dry run\)/,
      );
    } finally {
      kubectl(h.cluster.kubeconfigPath, ['delete', 'namespace', ns, '--wait=false']);
    }
  });

  test('install creates every object; upgrade applies changed values; uninstall leaves only the CRDs', async () => {
    const release = 'nmup';
    const ns = 'nmup-system';
    // The whole chart, Deployment included (on a cluster with a node its Pods really run).
    installChart(h.cluster.kubeconfigPath, release, ns, {
      runInCluster: true,
      'webhook.failurePolicy': 'Ignore',
    });
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
      runInCluster: true,
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

  test('two releases side by side: both install, neither touches the other, each uninstalls cleanly', async () => {
    const a = { release: 'nm-a', ns: 'nm-a-system' };
    const b = { release: 'nm-b', ns: 'nm-b-system' };
    const admission = h.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
    const rbac = h.kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    try {
      installChart(h.cluster.kubeconfigPath, a.release, a.ns, { 'webhook.failurePolicy': 'Ignore' });
      // The second release as a canary webhook: its own namespaces only, no second operator
      // (one operator reconciles every Network of the cluster).
      installChart(h.cluster.kubeconfigPath, b.release, b.ns, {
        'operator.enabled': false,
        'webhook.failurePolicy': 'Ignore',
        'webhook.extraNamespaceSelector[0].key': 'netmesh.io/canary',
        'webhook.extraNamespaceSelector[0].operator': 'Exists',
      });
      for (const r of [a, b]) {
        const full = `${r.release}-netmesh`;
        const mwc = await admission.readMutatingWebhookConfiguration({ name: full });
        assert.equal(mwc.webhooks?.[0]?.clientConfig.service?.namespace, r.ns);
        await rbac.readClusterRole({ name: full });
        for (const name of ['envoy', 'envoy-initializer'])
          await h.core.readNamespacedConfigMap({ namespace: r.ns, name });
        await h.core.readNamespacedSecret({ namespace: r.ns, name: 'netmesh-webhook-tls' });
      }
      // The same release name in another namespace would need the same cluster-scoped names:
      // Helm refuses it (ownership annotations) instead of taking them over.
      assert.throws(
        () => installChart(h.cluster.kubeconfigPath, a.release, 'nm-a-other'),
        /invalid ownership metadata|exists and cannot be imported/,
      );
      const mwcA = await admission.readMutatingWebhookConfiguration({ name: 'nm-a-netmesh' });
      assert.equal(
        mwcA.metadata?.annotations?.['meta.helm.sh/release-namespace'],
        a.ns,
        'release a untouched',
      );

      uninstallChart(h.cluster.kubeconfigPath, b.release, b.ns);
      await eventually('release b gone', () =>
        gone(() => admission.readMutatingWebhookConfiguration({ name: 'nm-b-netmesh' })),
      );
      await admission.readMutatingWebhookConfiguration({ name: 'nm-a-netmesh' });
      await h.core.readNamespacedConfigMap({ namespace: a.ns, name: 'envoy-initializer' });
    } finally {
      for (const r of [a, b])
        if (releaseExists(h.cluster.kubeconfigPath, r.release, r.ns))
          uninstallChart(h.cluster.kubeconfigPath, r.release, r.ns);
      if (releaseExists(h.cluster.kubeconfigPath, a.release, 'nm-a-other'))
        uninstallChart(h.cluster.kubeconfigPath, a.release, 'nm-a-other');
      for (const ns of [a.ns, b.ns, 'nm-a-other'])
        kubectl(h.cluster.kubeconfigPath, ['delete', 'namespace', ns, '--wait=false', '--ignore-not-found']);
    }
  });

  test('CRD upgrade: helm upgrade leaves the CRD alone; the documented server-side apply updates it', async () => {
    const crdPath = 'crds/networks.netmesh.io.yaml';
    const current = parseYaml(readFileSync(crdPath, 'utf8')) as {
      spec: { versions: { additionalPrinterColumns?: { name: string }[] }[] };
    };
    const columns = (crd: unknown) =>
      ((crd as typeof current).spec.versions[0]!.additionalPrinterColumns ?? []).map((c) => c.name);
    const wanted = columns(current);
    assert.ok(wanted.length > 1);
    // An older release's CRD: one printer column fewer, owned by Helm's field manager.
    const older = structuredClone(current);
    older.spec.versions[0]!.additionalPrinterColumns =
      older.spec.versions[0]!.additionalPrinterColumns!.slice(0, -1);
    const ext = h.kc.makeApiClient(k8s.ApiextensionsV1Api);
    const release = 'nmcrd';
    const ns = 'nmcrd-system';
    const appNs = await createNamespace(h, 'crd-upgrade');
    try {
      // Helm 4 server-side-applies crds/ on a first install even over an existing CRD (Helm 3
      // skips it); neither touches it on upgrade, which is what this is about.
      installChart(h.cluster.kubeconfigPath, release, ns);
      kubectl(
        h.cluster.kubeconfigPath,
        ['apply', '--server-side', '--force-conflicts', '--field-manager=helm', '-f', '-'],
        JSON.stringify(older),
      );
      kubectl(h.cluster.kubeconfigPath, ['apply', '-n', appNs, '-f', 'deploy/examples/example-network.yaml']);
      installChart(h.cluster.kubeconfigPath, release, ns, { replicaCount: 1 });
      assert.deepEqual(
        columns(await ext.readCustomResourceDefinition({ name: 'networks.netmesh.io' })),
        wanted.slice(0, -1),
        'helm upgrade did not touch the CRD',
      );
      // The README's upgrade step, verbatim.
      const crds = helm('/dev/null', ['show', 'crds', CHART_DIR]);
      kubectl(h.cluster.kubeconfigPath, ['apply', '--server-side', '--force-conflicts', '-f', '-'], crds);
      assert.deepEqual(
        columns(await ext.readCustomResourceDefinition({ name: 'networks.netmesh.io' })),
        wanted,
      );
      const n = await h.custom.getNamespacedCustomObject({
        group: 'netmesh.io',
        version: 'v1',
        namespace: appNs,
        plural: 'networks',
        name: 'example-network',
      });
      assert.ok(n, 'existing Networks survive the CRD update');
    } finally {
      // No operator runs here: nothing would release a finalizer, and none was added.
      kubectl(h.cluster.kubeconfigPath, ['apply', '--server-side', '--force-conflicts', '-f', crdPath]);
      if (releaseExists(h.cluster.kubeconfigPath, release, ns))
        uninstallChart(h.cluster.kubeconfigPath, release, ns);
      await deleteNamespace(h, appNs);
      kubectl(h.cluster.kubeconfigPath, ['delete', 'namespace', ns, '--wait=false', '--ignore-not-found']);
    }
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
        ['myapp-container'],
      );
      // The chart's default template is a native sidecar: first among the init containers.
      assert.deepEqual(
        stored.spec?.initContainers?.map((c) => [c.name, c.restartPolicy]),
        [['envoy', 'Always']],
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

    test('helm test: the hook passes against this release, and fails when the namespace is not labelled', async () => {
      // Everything `helm test` would create except the Pod (no kubelet here): its script runs on
      // this host instead, under the hook's own ServiceAccount, with the Pod's environment.
      const hooks = parseManifests(helm(h.cluster.kubeconfigPath, ['get', 'hooks', release, '-n', systemNs]));
      const pod = hooks.find((o) => o.kind === 'Pod') as unknown as k8s.V1Pod;
      const script = (hooks.find((o) => o.kind === 'ConfigMap') as unknown as k8s.V1ConfigMap).data?.[
        'check-injection.mjs'
      ];
      assert.ok(pod && script);
      const others = hooks.filter((o) => o.kind !== 'Pod');
      const manifest = others.map((o) => JSON.stringify(o)).join('\n');
      kubectl(h.cluster.kubeconfigPath, ['apply', '-f', '-'], manifest);
      const dir = mkdtempSync(join(tmpdir(), 'netmesh-helm-test-'));
      const token = await serviceAccountKubeconfig(h.kc, systemNs, pod.spec!.serviceAccountName!);
      try {
        writeFileSync(join(dir, 'token'), token.token, { mode: 0o600 });
        writeFileSync(join(dir, 'ca.crt'), Buffer.from(h.kc.getCurrentCluster()!.caData!, 'base64'));
        writeFileSync(join(dir, 'check-injection.mjs'), script);
        const server = new URL(h.kc.getCurrentCluster()!.server);
        const env: Record<string, string> = {
          PATH: process.env['PATH'] ?? '',
          ...Object.fromEntries((pod.spec!.containers[0]!.env ?? []).map((e) => [e.name, e.value ?? ''])),
          KUBERNETES_SERVICE_HOST: server.hostname,
          KUBERNETES_SERVICE_PORT: server.port || '443',
          NETMESH_TEST_SA_DIR: dir,
        };
        const run = () =>
          new Promise<{ code: number; out: string }>((resolve) => {
            execFile(
              process.execPath,
              [join(dir, 'check-injection.mjs')],
              { env, timeout: 60_000 },
              (err, stdout, stderr) =>
                resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
            );
          });
        const testNs = env['NETMESH_TEST_NAMESPACE']!;
        const ok = await run();
        assert.equal(ok.code, 0, ok.out);
        assert.match(
          ok.out,
          new RegExp(
            `ok: a Pod created in ${testNs} would be injected; initContainers envoy; containers app`,
          ),
        );
        // Nothing was stored: it was a dry run.
        assert.equal((await h.core.listNamespacedPod({ namespace: testNs })).items.length, 0);

        kubectl(h.cluster.kubeconfigPath, ['label', 'namespace', testNs, 'netmesh.io/injection-']);
        // The apiserver's namespace cache and netmesh's may both still say "enabled" a moment
        // after the label is gone; the test Pod must fail once they have caught up.
        const failed = await eventually(
          'the helm test to fail once the label is gone',
          async () => {
            const r = await run();
            return r.code === 1 ? r : undefined;
          },
          { intervalMs: 500 },
        );
        assert.equal(failed.code, 1, failed.out);
        assert.match(failed.out, /netmesh helm test FAILED: the Pod was admitted without the sidecar/);
      } finally {
        token.remove();
        rmSync(dir, { recursive: true, force: true });
        kubectl(
          h.cluster.kubeconfigPath,
          ['delete', '--ignore-not-found', '--wait=false', '-f', '-'],
          manifest,
        );
      }
    });

    test('metrics: process and build info, and the PrometheusRule and dashboard against the real /metrics', async () => {
      // A Pod the webhook skips, so that every labelled series the rules use has samples.
      await h.core.createNamespacedPod({
        namespace: appNs,
        body: {
          metadata: { name: 'own-envoy' },
          spec: { containers: [{ name: 'envoy', image: 'registry.invalid/own-envoy:1' }] },
        },
      });
      const target = {
        job: 'netmesh',
        namespace: systemNs,
        pod: 'netmesh-host',
        instance: `127.0.0.1:${proc!.healthPort}`,
      };
      const scrape = async (): Promise<Scrape> => {
        const res = await fetch(`http://127.0.0.1:${proc!.healthPort}/metrics`);
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
        return { t: Date.now(), text: await res.text(), target };
      };
      const s0 = await scrape();
      await new Promise((r) => setTimeout(r, 1500));
      const s1 = await scrape();
      const { store, families } = storeFromScrapes([s0, s1]);

      for (const name of [
        'process_cpu_seconds_total',
        'process_resident_memory_bytes',
        'process_open_fds',
        'nodejs_heap_size_used_bytes',
        'nodejs_eventloop_lag_p99_seconds',
        'nodejs_gc_duration_seconds',
      ])
        assert.ok(families.has(name), `${name} exported`);
      const info = families.get('netmesh_build_info')!.samples[0]!;
      const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
      assert.equal(info.labels['version'], pkg.version);
      assert.match(info.labels['commit'] ?? '', /^[0-9a-f]{12}$|^unknown$/);
      assert.equal(info.labels['node'], process.versions.node);
      assert.equal(families.get('netmesh_leader')?.samples[0]?.value, 1, 'this process holds the Lease');

      const TARGET_LABELS = Object.keys(target);
      const rules = alertRules(
        render(['--set', 'metrics.prometheusRule.enabled=true'], release, systemNs).find(
          (o) => o.kind === 'PrometheusRule',
        ),
      );
      assert.equal(rules.length, 7);
      const healthy = new Evaluator(store);
      for (const r of rules) {
        assert.deepEqual(checkQuery(r.expr, families, TARGET_LABELS), [], `${r.alert}: ${r.expr}`);
        const v = healthy.query(r.expr, s1.t);
        assert.equal(v.type, 'vector', r.alert);
        assert.deepEqual(
          v.type === 'vector' ? v.samples : v,
          [],
          `${r.alert} is silent on a healthy netmesh`,
        );
      }

      // Each alert fires on its condition, and only that one: one minute after the second
      // scrape, a third sample set equal to it but for the one change.
      const t2 = s1.t + 60_000;
      const named = (l: Labels, n: string) => l['__name__'] === n;
      const scenario = (
        mutate: (l: Labels, v: number) => number = (_l, v) => v,
        extra: { labels: Labels; v2: number }[] = [],
      ): Evaluator => {
        const s = storeFromScrapes([s0, s1]).store;
        for (const series of s.series())
          if (series.samples.at(-1)?.t === s1.t)
            s.add(series.labels, t2, mutate(series.labels, series.samples.at(-1)!.v));
        for (const e of extra) {
          s.add({ ...target, ...e.labels }, s1.t, 0);
          s.add({ ...target, ...e.labels }, t2, e.v2);
        }
        return new Evaluator(s);
      };
      const firing = (ev: Evaluator) =>
        rules
          .filter((r) => {
            const v = ev.query(r.expr, t2);
            return v.type === 'vector' && v.samples.length > 0;
          })
          .map((r) => r.alert);
      assert.deepEqual(firing(scenario()), [], 'a minute later, nothing changed: silent');
      const cases: [string, Evaluator][] = [
        [
          'NetmeshWebhookCertificateExpiringSoon',
          scenario((l, v) =>
            named(l, 'netmesh_webhook_certificate_expiry_timestamp_seconds') ? t2 / 1000 + 86_400 : v,
          ),
        ],
        [
          'NetmeshWebhookTemplateInvalid',
          scenario((l, v) => (named(l, 'netmesh_webhook_template_stale') ? 1 : v)),
        ],
        [
          'NetmeshWebhookTemplateMissing',
          scenario(undefined, [
            { labels: { __name__: 'netmesh_webhook_skips_total', reason: 'NoTemplate' }, v2: 4 },
          ]),
        ],
        [
          'NetmeshWebhookErrors',
          scenario(undefined, [
            { labels: { __name__: 'netmesh_webhook_requests_total', outcome: 'error' }, v2: 4 },
          ]),
        ],
        [
          'NetmeshWebhookLatencyHigh',
          // 100 admissions that took between 1 and 2.5 s.
          scenario((l, v) => {
            const base = 'netmesh_webhook_injection_duration_seconds';
            if (named(l, `${base}_bucket`)) return l['le'] === '+Inf' || Number(l['le']) >= 1 ? v + 100 : v;
            if (named(l, `${base}_count`)) return v + 100;
            if (named(l, `${base}_sum`)) return v + 150;
            return v;
          }),
        ],
        [
          'NetmeshReconcileErrors',
          scenario((l, v) => (named(l, 'netmesh_reconcile_errors_total') ? v + 3 : v)),
        ],
        ['NetmeshNoLeader', scenario((l, v) => (named(l, 'netmesh_leader') ? 0 : v))],
      ];
      for (const [alert, ev] of cases)
        assert.deepEqual(firing(ev), [alert], `${alert} fires alone on its condition`);

      // The dashboard: every query sound against the same metrics, and evaluable.
      const dashboard = JSON.parse(readFileSync(join(CHART_DIR, 'dashboards', 'netmesh.json'), 'utf8'));
      const base = scenario();
      for (const q of dashboardQueries(dashboard, { namespace: systemNs, job: 'netmesh' })) {
        assert.deepEqual(checkQuery(q.expr, families, TARGET_LABELS), [], `${q.panel}: ${q.expr}`);
        assert.doesNotThrow(() => base.query(q.expr, t2), `${q.panel}: ${q.expr}`);
      }
      const leader = base.query(
        'max by (pod) (netmesh_leader{namespace="netmesh-system",job="netmesh"}) == 1',
        t2,
      );
      assert.deepEqual(leader.type === 'vector' ? leader.samples : leader, [
        { labels: { pod: 'netmesh-host' }, value: 1 },
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
      await forbidden('creating Pods', () =>
        core.createNamespacedPod({
          namespace: appNs,
          body: {
            metadata: { name: 'not-allowed' },
            spec: { containers: [{ name: 'c', image: 'busybox' }] },
          },
        }),
      );
      const validating = h.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
      await validating.createValidatingWebhookConfiguration({
        body: { metadata: { name: 'someone-elses-validating' }, webhooks: [] },
      });
      try {
        await forbidden('patching a validating webhook configuration', () =>
          kc
            .makeApiClient(k8s.AdmissionregistrationV1Api)
            .patchValidatingWebhookConfiguration(
              { name: 'someone-elses-validating', body: { metadata: { labels: { x: 'y' } } } },
              k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
            ),
        );
      } finally {
        await validating.deleteValidatingWebhookConfiguration({ name: 'someone-elses-validating' });
      }
      const adminCore = h.core;
      await adminCore.createNamespacedSecret({
        namespace: appNs,
        body: { metadata: { name: 'app-secret' }, stringData: { password: 'x' } },
      });
      await forbidden('reading a Secret in an application namespace', () =>
        core.readNamespacedSecret({ namespace: appNs, name: 'app-secret' }),
      );

      // ConfigMaps: netmesh writes only objects carrying its label (ValidatingAdmissionPolicy
      // on its ServiceAccount); kube-system/coredns (or aws-auth on EKS) is out of reach.
      const createdCoredns = await adminCore
        .createNamespacedConfigMap({
          namespace: 'kube-system',
          body: {
            metadata: { name: 'coredns', labels: { 'k8s-app': 'kube-dns' } },
            data: { Corefile: '.:53 {}' },
          },
        })
        .then(
          () => true,
          (err: { code?: number }) => {
            if (err.code !== 409) throw err;
            return false;
          },
        );
      try {
        const coredns = await adminCore.readNamespacedConfigMap({
          namespace: 'kube-system',
          name: 'coredns',
        });
        const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
        const apply = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.ServerSideApply);
        const ours = { 'app.kubernetes.io/managed-by': 'netmesh-operator' };
        const refused = (err: { code?: number }) => err.code === 403;
        await eventually('the policy in force: patching kube-system/coredns refused', async () => {
          await assert.rejects(
            core.patchNamespacedConfigMap(
              { namespace: 'kube-system', name: 'coredns', body: { data: { Corefile: 'hijacked' } } },
              mergePatch,
            ),
            refused,
          );
          return true;
        });
        await forbidden('labelling kube-system/coredns as netmesh', () =>
          core.patchNamespacedConfigMap(
            { namespace: 'kube-system', name: 'coredns', body: { metadata: { labels: ours } } },
            mergePatch,
          ),
        );
        await forbidden('server-side applying over kube-system/coredns', () =>
          core.patchNamespacedConfigMap(
            {
              namespace: 'kube-system',
              name: 'coredns',
              fieldManager: 'netmesh-operator',
              force: true,
              body: {
                apiVersion: 'v1',
                kind: 'ConfigMap',
                metadata: { name: 'coredns', namespace: 'kube-system', labels: ours },
                data: { Corefile: 'hijacked' },
              },
            },
            apply,
          ),
        );
        await forbidden('replacing kube-system/coredns', () =>
          core.replaceNamespacedConfigMap({
            namespace: 'kube-system',
            name: 'coredns',
            body: { ...coredns, data: { Corefile: 'hijacked' } },
          }),
        );
        await forbidden('deleting kube-system/coredns', () =>
          core.deleteNamespacedConfigMap({ namespace: 'kube-system', name: 'coredns' }),
        );
        await forbidden('creating an unlabelled ConfigMap', () =>
          core.createNamespacedConfigMap({ namespace: appNs, body: { metadata: { name: 'plain' } } }),
        );
        const after = await adminCore.readNamespacedConfigMap({ namespace: 'kube-system', name: 'coredns' });
        assert.equal(after.metadata?.resourceVersion, coredns.metadata?.resourceVersion, 'coredns untouched');
      } finally {
        if (createdCoredns)
          await adminCore.deleteNamespacedConfigMap({ namespace: 'kube-system', name: 'coredns' });
      }
      await forbidden('creating Leases other than its own', () =>
        kc
          .makeApiClient(k8s.CoordinationV1Api)
          .createNamespacedLease({ namespace: systemNs, body: { metadata: { name: 'other' }, spec: {} } }),
      );
    });
  });
});
