import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import jsonpatch from 'fast-json-patch';
import { courseTemplate } from '../../examples/course.ts';
import { parseInjectionStatus, planEncodedInjection, planInjection } from './inject.ts';
import {
  OVERRIDE_ANNOTATIONS as A,
  applyOverrides,
  hasOverrideAnnotations,
  isImageReference,
  parsePort,
  parseQuantity,
} from './overrides.ts';
import { parseTemplate, type SidecarTemplate } from './template.ts';

function parsed(text: string): { template: SidecarTemplate; hash: string } {
  const r = parseTemplate(text);
  if (!r.ok) throw new Error(r.error);
  return r;
}

/** The in-cluster suites' template (cluster/chart.ts): a native sidecar taking its ports from its command line. */
const STANDIN = parsed(
  [
    'initContainers:',
    '  - name: envoy',
    '    image: localhost/envoy-standin:1',
    '    restartPolicy: Always',
    '    args: ["--config-path", "/etc/envoy/envoy.yaml", "--listen", ":15001", "--admin", ":15000"]',
    '    ports: [{name: envoy-proxy, containerPort: 15001, protocol: TCP}]',
    '    resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 200m, memory: 64Mi}}',
    '    startupProbe: {httpGet: {path: /ready, port: 15000}, periodSeconds: 1, failureThreshold: 60}',
    '    readinessProbe: {httpGet: {path: /ready, port: 15000}, periodSeconds: 1}',
    '    volumeMounts: [{name: envoy-conf, mountPath: /etc/envoy, readOnly: true}]',
    'volumes:',
    '  - {name: envoy-conf, configMap: {name: envoy}}',
  ].join('\n'),
);
/** The chart's default: a native sidecar whose listener port is set by the bootstrap file. */
const CHART_DEFAULT = parsed(
  [
    'initContainers:',
    '  - name: envoy',
    '    image: envoyproxy/envoy:v1.36.2',
    '    restartPolicy: Always',
    '    args: ["--config-path", "/etc/envoy/envoy.yaml", "--concurrency", "2", "--log-level", "warn"]',
    '    ports: [{name: envoy-proxy, containerPort: 15001, protocol: TCP}]',
    '    resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {cpu: "1", memory: 256Mi}}',
    '    readinessProbe: {tcpSocket: {port: 15001}}',
  ].join('\n'),
);
const COURSE = courseTemplate();

function sidecar(template: SidecarTemplate): V1Container {
  return template.initContainers[0] ?? template.containers[0]!;
}

describe('parseQuantity: Kubernetes quantity syntax', () => {
  const valid: Array<[string, number]> = [
    ['100m', 0.1],
    ['1', 1],
    ['0.5', 0.5],
    ['.5', 0.5],
    ['2.', 2],
    ['+1', 1],
    ['64Mi', 64 * 2 ** 20],
    ['1Gi', 2 ** 30],
    ['1k', 1000],
    ['1M', 1e6],
    ['1e3', 1000],
    ['1E-3', 0.001],
    ['500u', 0.0005],
    ['0', 0],
  ];
  for (const [text, value] of valid) {
    it(`accepts ${text}`, () => {
      const got = parseQuantity(text);
      assert.ok(got !== undefined);
      assert.ok(Math.abs(got - value) <= value * 1e-12, `${text} = ${got}, expected ${value}`);
    });
  }
  for (const text of [
    '',
    'abc',
    '1.5.5',
    '-1',
    '100 m',
    '1mi',
    '1KB',
    '1Gib',
    'm',
    '1e',
    '1e3m',
    ' 1',
    '1 ',
    '0x10',
  ]) {
    it(`rejects ${JSON.stringify(text)}`, () => assert.equal(parseQuantity(text), undefined));
  }
});

describe('isImageReference: the container runtime reference grammar', () => {
  for (const ref of [
    'envoyproxy/envoy:v1.36.2',
    'envoy',
    'localhost/netmesh-e2e/envoy-standin:1',
    'registry.example.com:5000/team/envoy:1.0',
    `envoyproxy/envoy@sha256:${'a'.repeat(64)}`,
    `envoyproxy/envoy:v1@sha256:${'a'.repeat(64)}`,
    'gcr.io/a_b/c__d/e-f--g:tag_1.2-x',
  ]) {
    it(`accepts ${ref}`, () => assert.ok(isImageReference(ref)));
  }
  for (const ref of [
    '',
    'Envoy',
    'envoy:',
    'envoy:tag with space',
    'envoy@sha256:abc',
    '/envoy',
    'envoy/',
    'a'.repeat(256),
    'envoy:-bad',
    'envoy;rm -rf',
  ]) {
    it(`rejects ${JSON.stringify(ref.length > 40 ? `${ref.slice(0, 20)}...` : ref)}`, () =>
      assert.equal(isImageReference(ref), false));
  }
});

describe('parsePort', () => {
  it('accepts 1-65535 in plain decimal', () => {
    assert.equal(parsePort('1'), 1);
    assert.equal(parsePort('15002'), 15002);
    assert.equal(parsePort('65535'), 65535);
  });
  for (const text of ['0', '65536', '015001', '-1', '+80', '80.0', 'http', '']) {
    it(`rejects ${JSON.stringify(text)}`, () => assert.equal(parsePort(text), undefined));
  }
});

describe('applyOverrides', () => {
  it('leaves the template itself when the Pod has no override annotation', () => {
    const r = applyOverrides({ 'other.io/x': '1' }, STANDIN.template, []);
    assert.equal(r.template, STANDIN.template);
    assert.deepEqual(r.applied, {});
    assert.deepEqual(r.warnings, []);
    assert.equal(hasOverrideAnnotations(undefined), false);
  });

  it('applies every override to the native sidecar, and nothing else', () => {
    const annotations = {
      [A.cpuRequest]: '20m',
      [A.cpuLimit]: '500m',
      [A.memoryRequest]: '32Mi',
      [A.memoryLimit]: '128Mi',
      [A.image]: 'localhost/envoy-standin:2',
      [A.logLevel]: 'debug',
      [A.port]: '15101',
    };
    const before = structuredClone(STANDIN.template);
    const r = applyOverrides(annotations, STANDIN.template, [
      { name: 'app', ports: [{ containerPort: 8080 }] },
    ]);
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.applied, annotations);
    assert.deepEqual(STANDIN.template, before, 'the shared template is not modified');
    const c = sidecar(r.template);
    assert.deepEqual(c.resources, {
      requests: { cpu: '20m', memory: '32Mi' },
      limits: { cpu: '500m', memory: '128Mi' },
    });
    assert.equal(c.image, 'localhost/envoy-standin:2');
    assert.deepEqual(c.args, [
      '--config-path',
      '/etc/envoy/envoy.yaml',
      '--listen',
      ':15101',
      '--admin',
      ':15000',
      '--log-level',
      'debug',
    ]);
    assert.deepEqual(c.ports, [{ name: 'envoy-proxy', containerPort: 15101, protocol: 'TCP' }]);
    // The stand-in's probes ask the admin port, which the proxy port override leaves alone.
    assert.equal(c.readinessProbe?.httpGet?.port, 15000);
    assert.equal(c.restartPolicy, 'Always');
    assert.deepEqual(r.template.volumes, STANDIN.template.volumes);
  });

  it("rewrites a probe on the proxy port and replaces an existing --log-level (the chart's default)", () => {
    const tpl = parsed(
      sidecarYaml({
        args: '["--listen", ":15001", "--log-level", "warn"]',
        probe: '{tcpSocket: {port: 15001}}',
      }),
    ).template;
    const r = applyOverrides({ [A.port]: '16001', [A.logLevel]: 'error' }, tpl, []);
    assert.deepEqual(r.warnings, []);
    const c = sidecar(r.template);
    assert.deepEqual(c.args, ['--listen', ':16001', '--log-level', 'error']);
    assert.equal(c.readinessProbe?.tcpSocket?.port, 16001);
  });

  it("sets the log level in the course's one-token form, and on a plain container sidecar", () => {
    const r = applyOverrides({ [A.logLevel]: 'trace' }, COURSE.template, []);
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(sidecar(r.template).args, [
      '--concurrency 4',
      '--config-path /etc/envoy/envoy.json',
      '--mode serve',
      '--log-level',
      'trace',
    ]);
    assert.equal(r.template.containers.length, 1);
  });

  const invalid: Array<[string, Record<string, string>, RegExp]> = [
    [
      'a CPU request that is not a quantity',
      { [A.cpuRequest]: '100 millicores' },
      /^annotation sidecar\.netmesh\.io\/proxy-cpu-request="100 millicores" ignored: not a Kubernetes quantity .*; the template's default is kept$/,
    ],
    [
      'a negative memory limit',
      { [A.memoryLimit]: '-1Gi' },
      /proxy-memory-limit="-1Gi" ignored: not a Kubernetes quantity/,
    ],
    [
      'a CPU request above the template limit (1)',
      { [A.cpuRequest]: '2' },
      /proxy-cpu-request="2" ignored: the cpu request 2 would exceed the limit 1; /,
    ],
    [
      'a memory limit below the template request (64Mi)',
      { [A.memoryLimit]: '32Mi' },
      /proxy-memory-limit="32Mi" ignored: the memory request 64Mi would exceed the limit 32Mi; /,
    ],
    [
      'an image with uppercase letters',
      { [A.image]: 'Envoy:1' },
      /proxy-image="Envoy:1" ignored: not an image reference/,
    ],
    [
      'a log level Envoy does not know',
      { [A.logLevel]: 'verbose' },
      /proxy-log-level="verbose" ignored: not an Envoy log level \(trace, debug, info, warning, warn, error, critical, off\)/,
    ],
    ['port 0', { [A.port]: '0' }, /proxy-port="0" ignored: not a port number \(1-65535\)/],
    ['port 70000', { [A.port]: '70000' }, /proxy-port="70000" ignored: not a port number/],
    [
      "a port the app's container declares",
      { [A.port]: '8080' },
      /proxy-port="8080" ignored: port 8080 is already declared by a container of the pod/,
    ],
    [
      'an unknown override',
      { 'sidecar.netmesh.io/proxy-env': 'X=1' },
      /^annotation sidecar\.netmesh\.io\/proxy-env ignored: not an override netmesh knows \(allowed: proxy-cpu-request, .*proxy-port\)$/,
    ],
  ];
  for (const [title, annotations, warning] of invalid) {
    it(`warns and keeps the default: ${title}`, () => {
      const r = applyOverrides(annotations, CHART_DEFAULT.template, [
        { name: 'app', ports: [{ containerPort: 8080 }] },
      ]);
      assert.equal(r.warnings.length, 1, r.warnings.join('\n'));
      assert.match(r.warnings[0]!, warning);
      assert.deepEqual(r.applied, {});
      assert.equal(r.template, CHART_DEFAULT.template, 'the default is kept');
    });
  }

  it('a valid request and limit that agree are applied even above the template limit', () => {
    const r = applyOverrides({ [A.cpuRequest]: '2', [A.cpuLimit]: '4' }, CHART_DEFAULT.template, []);
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(sidecar(r.template).resources, {
      requests: { cpu: '2', memory: '64Mi' },
      limits: { cpu: '4', memory: '256Mi' },
    });
  });

  it('keeps the valid overrides when another one is invalid', () => {
    const r = applyOverrides(
      { [A.cpuRequest]: 'lots', [A.memoryRequest]: '100Mi' },
      CHART_DEFAULT.template,
      [],
    );
    assert.equal(r.warnings.length, 1);
    assert.deepEqual(r.applied, { [A.memoryRequest]: '100Mi' });
    assert.deepEqual(sidecar(r.template).resources?.requests, { cpu: '50m', memory: '100Mi' });
  });

  it("refuses a port the sidecar's command line does not carry (the chart's Envoy reads it from its bootstrap)", () => {
    const r = applyOverrides({ [A.port]: '15002' }, CHART_DEFAULT.template, []);
    assert.deepEqual(r.warnings, [
      `annotation sidecar.netmesh.io/proxy-port="15002" ignored: sidecar "envoy" does not take port 15001 from its command line (its configuration file sets it); the template's default is kept`,
    ]);
  });

  it("refuses a port the template's other containers use (the stand-in's admin port is not a containerPort)", () => {
    const tpl = parsed(
      [
        'initContainers:',
        '  - {name: envoy, image: e, restartPolicy: Always, args: ["--listen", ":15001"], ports: [{containerPort: 15001}]}',
        '  - {name: agent, image: a, restartPolicy: Always, ports: [{containerPort: 9000}]}',
      ].join('\n'),
    ).template;
    const r = applyOverrides({ [A.port]: '9000' }, tpl, []);
    assert.match(r.warnings[0]!, /port 9000 is already declared by a container of the pod/);
  });

  it('says so when the template has no container to apply overrides to', () => {
    const tpl = parsed('volumes: [{name: v, emptyDir: {}}]').template;
    const r = applyOverrides({ [A.image]: 'envoy:2' }, tpl, []);
    assert.match(r.warnings[0]!, /proxy-image="envoy:2" ignored: the template has no sidecar container/);
  });
});

function sidecarYaml(o: { args: string; probe: string }): string {
  return [
    'initContainers:',
    '  - name: envoy',
    '    image: envoy:1',
    '    restartPolicy: Always',
    `    args: ${o.args}`,
    '    ports: [{name: envoy-proxy, containerPort: 15001}]',
    `    readinessProbe: ${o.probe}`,
  ].join('\n');
}

describe('the planner with overrides', () => {
  const pod = (annotations: Record<string, string>): V1Pod => ({
    metadata: { name: 'p', annotations },
    spec: { containers: [{ name: 'app', image: 'busybox' }] },
  });

  it('injects the overridden sidecar, records the overrides and warns about the invalid ones', () => {
    const p = pod({ [A.cpuLimit]: '300m', [A.image]: 'not an image' });
    const plan = planInjection(p, STANDIN.template, { templateHash: STANDIN.hash });
    assert.equal(plan.action, 'inject');
    if (plan.action !== 'inject') return;
    const injected = jsonpatch.applyPatch(jsonpatch.deepClone(p), plan.patch, true).newDocument;
    const envoy = injected.spec!.initContainers![0]!;
    assert.equal(envoy.resources?.limits?.['cpu'], '300m');
    assert.equal(envoy.image, 'localhost/envoy-standin:1', 'the invalid image is not applied');
    assert.deepEqual(plan.warnings, [
      `annotation sidecar.netmesh.io/proxy-image="not an image" ignored: not an image reference ([registry[:port]/]name[:tag][@sha256:digest], lowercase name); the template's default is kept`,
    ]);
    const status = parseInjectionStatus(injected.metadata?.annotations?.['netmesh.io/status']);
    assert.deepEqual(status?.overrides, { [A.cpuLimit]: '300m' });
    assert.equal(status?.templateHash, STANDIN.hash, 'the record names the shared template');
    // Reinvocation adds nothing.
    const again = planInjection(injected, STANDIN.template, { templateHash: STANDIN.hash });
    assert.equal(again.action, 'skip');
  });

  it('the webhook planner gives the same patch, and its cache stays the template default for other Pods', () => {
    const plain = pod({});
    const before = planEncodedInjection(plain, STANDIN.template, { templateHash: STANDIN.hash });
    const p = pod({ [A.memoryLimit]: '100Mi' });
    const slow = planInjection(p, STANDIN.template, { templateHash: STANDIN.hash });
    const fast = planEncodedInjection(p, STANDIN.template, { templateHash: STANDIN.hash });
    assert.ok(slow.action === 'inject' && fast.action === 'inject');
    assert.equal(fast.patchBase64, Buffer.from(JSON.stringify(slow.patch)).toString('base64'));
    assert.deepEqual(fast.status, slow.status);
    const after = planEncodedInjection(plain, STANDIN.template, { templateHash: STANDIN.hash });
    assert.ok(before.action === 'inject' && after.action === 'inject');
    assert.equal(after.patchBase64, before.patchBase64);
    assert.equal(after.status.overrides, undefined);
  });

  it('a Pod whose overrides are all invalid gets the default patch and the warnings', () => {
    const plain = planEncodedInjection(pod({}), STANDIN.template, { templateHash: STANDIN.hash });
    const p = planEncodedInjection(pod({ [A.logLevel]: 'loud' }), STANDIN.template, {
      templateHash: STANDIN.hash,
    });
    assert.ok(plain.action === 'inject' && p.action === 'inject');
    assert.equal(p.warnings.length, 1);
    assert.match(p.warnings[0]!, /proxy-log-level="loud" ignored/);
    // Both Pods have an annotation map: the same shape, so the same (default) patch.
    assert.equal(p.patchBase64, plain.patchBase64);
    assert.deepEqual(p.status, plain.status);
  });
});
