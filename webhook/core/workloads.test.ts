import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1CronJob, V1Deployment, V1Pod } from '@kubernetes/client-node';
import { parse, parseAllDocuments } from 'yaml';
import { coursePod, courseTemplate } from '../../examples/course.ts';
import { UserFacingError } from '../../lib/errors.ts';
import { parseInjectionStatus } from './inject.ts';
import { explainPod, injectManifests, podTemplatePath } from './workloads.ts';

const { template: COURSE, hash: HASH } = courseTemplate();
const ENVOY = COURSE.containers[0]!;
const ENVOY_CONF = COURSE.volumes[0]!;

const SERVICE = `apiVersion: v1
kind: Service
metadata:
  name: web # the front door
spec:
  selector:
    app: web
  ports:
    - port: 80
      targetPort: 8080
`;

const MANIFEST = `# Deployment first: the comment must survive injection.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web # pod label
    spec:
      containers:
        - name: web
          image: nginx:1.27 # pinned
          ports:
            - containerPort: 8080
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        metadata:
          annotations:
            example.com/team: data
        spec:
          restartPolicy: OnFailure
          containers:
            - name: report
              image: busybox
              args: ["sh", "-c", "echo report"]
          volumes:
            - name: scratch
              emptyDir: {}
---
${SERVICE}---
apiVersion: v1
kind: Pod
metadata:
  name: myapp-pod
  labels:
    app: myapp
spec:
  containers:
    - name: myapp-container
      image: busybox
      command: ['sh', '-c', 'echo Hello Kubernetes! && sleep 3600']
`;

function docsOf(output: string): unknown[] {
  const docs = parseAllDocuments(output);
  assert.ok(Array.isArray(docs));
  for (const doc of docs) assert.deepEqual(doc.errors, []);
  return docs.map((d) => d.toJS());
}

const COURSE_STATUS = `{"version":1,"containers":["envoy"],"initContainers":[],"volumes":["envoy-conf"],"templateHash":"${HASH}"}`;

describe('injectManifests', () => {
  it('injects a Deployment, a CronJob and a Pod, and passes a Service through', () => {
    const { output, results } = injectManifests(MANIFEST, COURSE, HASH);
    assert.deepEqual(
      results.map((r) => [r.kind, r.name, r.decision.action, r.decision.reason]),
      [
        ['Deployment', 'web', 'injected', 'Injected'],
        ['CronJob', 'nightly', 'injected', 'Injected'],
        ['Service', 'web', 'unchanged', 'UnsupportedKind'],
        ['Pod', 'myapp-pod', 'injected', 'Injected'],
      ],
    );
    assert.equal(results[0]!.decision.message, 'added containers envoy; volumes envoy-conf');

    const [deployment, cronJob, service, pod] = docsOf(output) as [V1Deployment, V1CronJob, unknown, V1Pod];
    const input = docsOf(MANIFEST) as [V1Deployment, V1CronJob, unknown, V1Pod];

    // Deployment: only the pod template changed.
    const expectedDeployment = structuredClone(input[0]);
    expectedDeployment.spec!.template.spec!.containers.push(ENVOY);
    expectedDeployment.spec!.template.spec!.volumes = [ENVOY_CONF];
    expectedDeployment.spec!.template.metadata!.annotations = { 'netmesh.io/status': COURSE_STATUS };
    assert.deepStrictEqual(deployment, expectedDeployment);

    // CronJob: its existing volume and annotation are kept, ours appended.
    const expectedCronJob = structuredClone(input[1]);
    const podTemplate = expectedCronJob.spec!.jobTemplate.spec!.template;
    podTemplate.spec!.containers.push(ENVOY);
    podTemplate.spec!.volumes!.push(ENVOY_CONF);
    podTemplate.metadata!.annotations!['netmesh.io/status'] = COURSE_STATUS;
    assert.deepStrictEqual(cronJob, expectedCronJob);

    assert.deepStrictEqual(service, parse(SERVICE));

    // The course's Pod ends up with myapp-container and envoy and the envoy-conf volume.
    assert.deepEqual(
      pod.spec?.containers.map((c) => c.name),
      ['myapp-container', 'envoy'],
    );
    assert.deepEqual(
      pod.spec?.volumes?.map((v) => v.name),
      ['envoy-conf'],
    );
    assert.deepEqual(
      parseInjectionStatus(pod.metadata?.annotations?.['netmesh.io/status'])?.templateHash,
      HASH,
    );
  });

  it('keeps comments and the untouched documents as written', () => {
    const { output } = injectManifests(MANIFEST, COURSE, HASH);
    for (const comment of [
      '# Deployment first: the comment must survive injection.',
      '# pod label',
      '# pinned',
      '# the front door',
    ]) {
      assert.ok(output.includes(comment), `missing ${comment}`);
    }
    assert.ok(output.includes(SERVICE), 'the Service document is reproduced verbatim');
    assert.equal(output.match(/^---$/gm)?.length, 3, 'four documents, three separators');
  });

  it('is idempotent: injecting the output again changes nothing', () => {
    const first = injectManifests(MANIFEST, COURSE, HASH);
    const second = injectManifests(first.output, COURSE, HASH);
    assert.deepStrictEqual(docsOf(second.output), docsOf(first.output));
    assert.deepEqual(
      second.results.map((r) => [r.kind, r.decision.action, r.decision.reason]),
      [
        ['Deployment', 'skipped', 'AlreadyInjected'],
        ['CronJob', 'skipped', 'AlreadyInjected'],
        ['Service', 'unchanged', 'UnsupportedKind'],
        ['Pod', 'skipped', 'AlreadyInjected'],
      ],
    );
  });

  it('does not modify the template', () => {
    const before = structuredClone(COURSE);
    injectManifests(MANIFEST, COURSE, HASH);
    assert.deepStrictEqual(COURSE, before);
  });

  it('handles every workload kind at its pod template path', () => {
    const kinds: Array<[string, string, string[]]> = [
      ['apps/v1', 'StatefulSet', ['spec', 'template']],
      ['apps/v1', 'DaemonSet', ['spec', 'template']],
      ['apps/v1', 'ReplicaSet', ['spec', 'template']],
      ['batch/v1', 'Job', ['spec', 'template']],
    ];
    for (const [apiVersion, kind] of kinds) {
      const text = `apiVersion: ${apiVersion}\nkind: ${kind}\nmetadata: {name: w}\nspec:\n  template:\n    metadata: {labels: {app: w}}\n    spec:\n      containers: [{name: app, image: busybox}]\n`;
      const { output, results } = injectManifests(text, COURSE, HASH);
      assert.equal(results[0]!.decision.action, 'injected', kind);
      const doc = parse(output) as { spec: { template: V1Pod } };
      assert.deepEqual(
        doc.spec.template.spec?.containers.map((c) => c.name),
        ['app', 'envoy'],
        kind,
      );
    }
    for (const [apiVersion, kind, path] of kinds) {
      assert.deepEqual(podTemplatePath({ apiVersion, kind }), path);
    }
    assert.deepEqual(podTemplatePath({ apiVersion: 'batch/v1', kind: 'CronJob' }), [
      'spec',
      'jobTemplate',
      'spec',
      'template',
    ]);
    assert.deepEqual(podTemplatePath({ apiVersion: 'v1', kind: 'Pod' }), []);
    assert.equal(podTemplatePath({ apiVersion: 'v1', kind: 'Service' }), undefined);
  });

  it('leaves kinds of other API groups alone, even with a familiar kind name', () => {
    const text =
      'apiVersion: batch.volcano.sh/v1alpha1\nkind: Job\nmetadata: {name: vj}\nspec:\n  tasks:\n    - template:\n        spec:\n          containers: [{name: a, image: b}]\n';
    const { output, results } = injectManifests(text, COURSE, HASH);
    assert.equal(results[0]!.decision.action, 'unchanged');
    assert.equal(results[0]!.decision.reason, 'UnsupportedKind');
    assert.deepStrictEqual(parse(output), parse(text));
  });

  it('passes List documents through', () => {
    const text =
      'apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Pod\n    metadata: {name: p}\n    spec:\n      containers: [{name: a, image: b}]\n';
    const { output, results } = injectManifests(text, COURSE, HASH);
    assert.equal(results[0]!.kind, 'List');
    assert.equal(results[0]!.decision.action, 'unchanged');
    assert.match(results[0]!.decision.message, /List documents are passed through/);
    assert.deepStrictEqual(parse(output), parse(text));
  });

  it('respects an explicit opt-out on the pod template', () => {
    const text =
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec:\n  template:\n    metadata:\n      labels: {app: w, netmesh.io/inject: "false"}\n    spec:\n      containers: [{name: app, image: busybox}]\n';
    const { output, results } = injectManifests(text, COURSE, HASH);
    assert.deepEqual([results[0]!.decision.action, results[0]!.decision.reason], ['skipped', 'PodOptOut']);
    assert.deepStrictEqual(parse(output), parse(text));
  });

  it('does not inject hostNetwork pods', () => {
    const text =
      'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostNetwork: true\n  containers: [{name: a, image: b}]\n';
    const { results } = injectManifests(text, COURSE, HASH);
    assert.equal(results[0]!.decision.reason, 'HostNetwork');
  });

  it('reports plan skips such as name conflicts, leaving the document unchanged', () => {
    const text =
      'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: app, image: b}]\n  volumes: [{name: envoy-conf, emptyDir: {}}]\n';
    const { output, results } = injectManifests(text, COURSE, HASH);
    assert.deepEqual([results[0]!.decision.action, results[0]!.decision.reason], ['skipped', 'NameConflict']);
    assert.equal(output, text);
  });

  it('forces selection offline, warning only when namespace labels say the webhook would not', () => {
    const pod =
      'apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec:\n  containers: [{name: a, image: b}]\n';
    const silent = injectManifests(pod, COURSE, HASH);
    assert.equal(silent.results[0]!.decision.action, 'injected');
    assert.deepEqual(silent.results[0]!.decision.warnings, []);

    const notEnabled = injectManifests(pod, COURSE, HASH, { namespaceLabels: {} });
    assert.equal(notEnabled.results[0]!.decision.action, 'injected');
    assert.equal(notEnabled.results[0]!.decision.warnings.length, 1);
    assert.match(
      notEnabled.results[0]!.decision.warnings[0]!,
      /^the webhook would not inject this pod \(NamespaceNotEnabled: namespace "shop" does not have label/,
    );

    const enabled = injectManifests(pod, COURSE, HASH, {
      namespaceLabels: { 'netmesh.io/injection': 'enabled' },
    });
    assert.deepEqual(enabled.results[0]!.decision.warnings, []);
  });

  it('creates the pod template metadata when a workload has none', () => {
    const text =
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec:\n  template:\n    spec:\n      containers: [{name: app, image: busybox}]\n';
    const { output } = injectManifests(text, COURSE, HASH);
    const doc = parse(output) as { spec: { template: V1Pod } };
    assert.deepEqual(doc.spec.template.metadata, { annotations: { 'netmesh.io/status': COURSE_STATUS } });
  });

  it('reports a workload without a pod template and leaves it unchanged', () => {
    const text = 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec: {replicas: 1}\n';
    const { output, results } = injectManifests(text, COURSE, HASH);
    assert.deepEqual(
      [results[0]!.decision.action, results[0]!.decision.reason],
      ['skipped', 'InvalidManifest'],
    );
    assert.deepStrictEqual(parse(output), parse(text));
  });

  it('gets anchors and aliases right (falls back to re-serialising the document)', () => {
    const text = [
      'apiVersion: apps/v1',
      'kind: Deployment',
      'metadata: {name: w, labels: &labels {app: w}}',
      'spec:',
      '  selector: {matchLabels: *labels}',
      '  template:',
      '    metadata: {labels: *labels}',
      '    spec:',
      '      containers: [{name: app, image: busybox}]',
      '',
    ].join('\n');
    const { output, results } = injectManifests(text, COURSE, HASH);
    assert.equal(results[0]!.decision.action, 'injected');
    const doc = parse(output) as V1Deployment;
    assert.deepEqual(doc.metadata?.labels, { app: 'w' });
    assert.equal(doc.metadata?.annotations, undefined, 'the workload itself gets no annotation');
    assert.deepEqual(doc.spec?.selector.matchLabels, { app: 'w' });
    assert.deepEqual(doc.spec?.template.metadata, {
      labels: { app: 'w' },
      annotations: { 'netmesh.io/status': COURSE_STATUS },
    });
  });

  it('does not write through an alias into the anchored original', () => {
    const text = [
      'apiVersion: apps/v1',
      'kind: Deployment',
      'metadata:',
      '  name: w',
      '  annotations: &ann {owner: team-a}',
      'spec:',
      '  template:',
      '    metadata:',
      '      annotations: *ann',
      '    spec:',
      '      containers: &cs [{name: app, image: busybox}]',
      '',
    ].join('\n');
    const { output, results } = injectManifests(text, COURSE, HASH);
    assert.equal(results[0]!.decision.action, 'injected');
    const doc = parse(output) as V1Deployment;
    assert.deepEqual(doc.metadata?.annotations, { owner: 'team-a' });
    assert.deepEqual(doc.spec?.template.metadata?.annotations, {
      owner: 'team-a',
      'netmesh.io/status': COURSE_STATUS,
    });
    assert.deepEqual(
      doc.spec?.template.spec?.containers.map((c) => c.name),
      ['app', 'envoy'],
    );
  });

  it('names generateName-only pods and keeps empty documents as they were', () => {
    const text =
      '---\napiVersion: v1\nkind: Pod\nmetadata: {generateName: job-}\nspec:\n  containers: [{name: a, image: b}]\n---\n---\n';
    const { output, results } = injectManifests(text, COURSE, HASH);
    assert.deepEqual(
      results.map((r) => [r.name, r.decision.action]),
      [['job-*', 'injected']],
    );
    assert.ok(output.endsWith('\n---\n---\n'), output);
    const docs = docsOf(output) as Array<V1Pod | null>;
    assert.equal(docs.length, 3);
    assert.deepEqual(
      docs[0]?.spec?.containers.map((c) => c.name),
      ['a', 'envoy'],
    );
  });

  it('reproduces a stream with nothing to inject byte for byte', () => {
    const text = `# leading comment\n\n${SERVICE}...\n--- # marker comment\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: "1"}\n\n---\n# just a comment\n`;
    const { output, results } = injectManifests(text, COURSE, HASH);
    assert.equal(output, text);
    assert.deepEqual(
      results.map((r) => r.kind),
      ['Service', 'ConfigMap'],
    );
  });

  it('keeps the documents around an injected one byte for byte', () => {
    const before = `# head\n${SERVICE}`;
    const after = '---\n# tail comment\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n';
    const pod =
      '---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: b}]\n';
    const { output } = injectManifests(before + pod + after, COURSE, HASH);
    assert.ok(output.startsWith(before), output);
    assert.ok(output.endsWith(after), output);
    assert.ok(output.includes('\n    - {name: a, image: b}\n    - name: envoy\n'), output);
  });

  it('turns flow collections that receive the sidecar into block style, leaving the others alone', () => {
    const text =
      'apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: a}}\nspec: {containers: [{name: a, image: b}], volumes: [{name: x, emptyDir: {}}]}\n';
    const { output } = injectManifests(text, COURSE, HASH);
    assert.ok(
      output.startsWith(
        'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {app: a}\n  annotations:\n',
      ),
      output,
    );
    assert.ok(
      output.includes(
        '\n    - {name: x, emptyDir: {}}\n    - name: envoy-conf\n      configMap:\n        name: envoy\n',
      ),
      output,
    );
    const pod = parse(output) as V1Pod;
    assert.deepEqual(
      pod.spec?.containers.map((c) => c.name),
      ['a', 'envoy'],
    );
  });

  it('throws a UserFacingError naming the document for invalid YAML', () => {
    assert.throws(
      () => injectManifests(`${SERVICE}---\nkind: Pod\nmetadata: [\n`, COURSE, HASH),
      (error: unknown) =>
        error instanceof UserFacingError && /^manifest document 2 is not valid YAML: /.test(error.message),
    );
  });

  it('returns nothing for an empty input', () => {
    assert.deepEqual(injectManifests('', COURSE, HASH), { output: '', results: [] });
  });
});

describe('explainPod', () => {
  const ENABLED = { 'netmesh.io/injection': 'enabled' };

  it("explains the course's Pod in an enabled namespace", () => {
    const text = explainPod(coursePod(), 'default', ENABLED, COURSE);
    assert.equal(
      text,
      [
        'Pod default/myapp-pod',
        '  selected: yes (NamespaceEnabled): namespace "default" has label netmesh.io/injection=enabled',
        `  plan: add containers envoy; volumes envoy-conf and annotation netmesh.io/status (template ${HASH}), 3 patch operation(s)`,
        '  result: injected',
      ].join('\n'),
    );
  });

  it('stops at selection when the pod is not selected', () => {
    const text = explainPod(coursePod(), 'kube-system', ENABLED, COURSE);
    assert.match(text, /^Pod kube-system\/myapp-pod\n {2}selected: no \(SystemNamespace\): /);
    assert.match(text, /result: not injected$/);
    assert.doesNotMatch(text, /plan:/);
  });

  it('explains a plan skip and its warnings', () => {
    const pod: V1Pod = {
      metadata: { generateName: 'web-', labels: { 'netmesh.io/inject': 'true' } },
      spec: { containers: [{ name: 'envoy', image: 'own' }] },
    };
    const text = explainPod(pod, 'shop', {}, COURSE);
    assert.match(text, /^Pod shop\/web-\*\n/);
    assert.match(text, /selected: yes \(PodOptIn\)/);
    assert.match(text, /plan: skip \(AlreadyInjected\): pod already has the template's containers "envoy"/);
    assert.match(text, /warning: template volumes missing from the pod: "envoy-conf"/);
    assert.match(text, /result: not injected$/);
  });

  it('says so when no template is given', () => {
    const text = explainPod(coursePod(), 'default', ENABLED);
    assert.match(text, /plan: not evaluated \(no template given\)/);
  });

  it('uses the given template hash', () => {
    const text = explainPod(coursePod(), 'default', ENABLED, COURSE, { templateHash: 'abc' });
    assert.match(text, /\(template abc\)/);
  });
});
