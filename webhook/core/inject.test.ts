import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Container, V1Pod, V1Volume } from '@kubernetes/client-node';
import jsonpatch from 'fast-json-patch';
import { coursePod, courseTemplate } from '../../examples/course.ts';
import {
  escapePointer,
  type InjectionPlan,
  parseInjectionStatus,
  planEncodedInjection,
  planInjection,
  pointer,
  serializeStatus,
  summarizeStatus,
} from './inject.ts';
import { parseTemplate, type SidecarTemplate } from './template.ts';

const { template: COURSE, hash: HASH } = courseTemplate();
const ENVOY = COURSE.containers[0]!;
const ENVOY_CONF = COURSE.volumes[0]!;
const APP: V1Container = { name: 'app', image: 'busybox' };

function status(
  hash: string,
  added: { containers?: string[]; initContainers?: string[]; volumes?: string[] } = {},
): string {
  return JSON.stringify({
    version: 1,
    containers: added.containers ?? [],
    initContainers: added.initContainers ?? [],
    volumes: added.volumes ?? [],
    templateHash: hash,
  });
}

const COURSE_STATUS = status(HASH, { containers: ['envoy'], volumes: ['envoy-conf'] });

const INIT_TEMPLATE: SidecarTemplate = (() => {
  const result = parseTemplate(
    [
      'initContainers:',
      '  - name: mesh-init',
      '    image: netmesh/init:1',
      '    args: ["--redirect"]',
      '    restartPolicy: Always',
      'containers:',
      '  - name: envoy',
      '    image: envoy:1',
      '    volumeMounts: [{name: envoy-conf, mountPath: /etc/envoy}]',
      'volumes:',
      '  - name: envoy-conf',
      '    configMap: {name: envoy}',
    ].join('\n'),
  );
  if (!result.ok) throw new Error(result.error);
  return result.template;
})();
const INIT_HASH = 'feedfacefeedface';

function apply(pod: V1Pod, plan: InjectionPlan): V1Pod {
  assert.equal(plan.action, 'inject', plan.action === 'skip' ? `${plan.reason}: ${plan.message}` : '');
  if (plan.action !== 'inject') throw new Error('unreachable');
  // validateOperation=true: fast-json-patch re-checks every operation against the document.
  return jsonpatch.applyPatch(jsonpatch.deepClone(pod), plan.patch, true).newDocument;
}

interface InjectCase {
  title: string;
  pod: V1Pod;
  template?: SidecarTemplate;
  hash?: string;
  expected: V1Pod;
  paths?: string[];
  warnings?: RegExp[];
}

const injectCases: InjectCase[] = [
  {
    title: "the course's Pod",
    pod: coursePod(),
    expected: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'myapp-pod',
        labels: { app: 'myapp' },
        annotations: { 'netmesh.io/status': COURSE_STATUS },
      },
      spec: {
        containers: [
          {
            name: 'myapp-container',
            image: 'busybox',
            command: ['sh', '-c', 'echo Hello Kubernetes! && sleep 3600'],
          },
          ENVOY,
        ],
        volumes: [ENVOY_CONF],
      },
    },
    paths: ['/spec/containers/-', '/spec/volumes', '/metadata/annotations'],
    // The course's envoy declares port 80; busybox declares none.
    warnings: [],
  },
  {
    title: 'a pod with volumes of its own: the template volume is appended',
    pod: {
      metadata: { name: 'p', annotations: { a: 'b' } },
      spec: {
        containers: [{ ...APP, volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
        volumes: [{ name: 'data', emptyDir: {} }],
      },
    },
    expected: {
      metadata: { name: 'p', annotations: { a: 'b', 'netmesh.io/status': COURSE_STATUS } },
      spec: {
        containers: [{ ...APP, volumeMounts: [{ name: 'data', mountPath: '/data' }] }, ENVOY],
        volumes: [{ name: 'data', emptyDir: {} }, ENVOY_CONF],
      },
    },
    paths: ['/spec/containers/-', '/spec/volumes/-', '/metadata/annotations/netmesh.io~1status'],
  },
  {
    title: 'labels but no annotations: the annotation map is created, labels kept',
    pod: {
      metadata: { name: 'p', labels: { app: 'x', 'netmesh.io/inject': 'true' } },
      spec: { containers: [APP] },
    },
    expected: {
      metadata: {
        name: 'p',
        labels: { app: 'x', 'netmesh.io/inject': 'true' },
        annotations: { 'netmesh.io/status': COURSE_STATUS },
      },
      spec: { containers: [APP, ENVOY], volumes: [ENVOY_CONF] },
    },
    paths: ['/spec/containers/-', '/spec/volumes', '/metadata/annotations'],
  },
  {
    title: 'annotation keys with "/" and "~" stay as they are',
    pod: {
      metadata: {
        name: 'p',
        annotations: {
          'example.com/owner': 'team-a',
          'weird~key': '1',
          'a~1b': 'not an escape',
          'x/~/y': 'both',
          'initializer.kubernetes.io/envoy': 'true',
        },
      },
      spec: { containers: [APP] },
    },
    expected: {
      metadata: {
        name: 'p',
        annotations: {
          'example.com/owner': 'team-a',
          'weird~key': '1',
          'a~1b': 'not an escape',
          'x/~/y': 'both',
          'initializer.kubernetes.io/envoy': 'true',
          'netmesh.io/status': COURSE_STATUS,
        },
      },
      spec: { containers: [APP, ENVOY], volumes: [ENVOY_CONF] },
    },
    paths: ['/spec/containers/-', '/spec/volumes', '/metadata/annotations/netmesh.io~1status'],
  },
  {
    title: 'existing init containers are kept; the template has none',
    pod: {
      metadata: { name: 'p' },
      spec: { initContainers: [{ name: 'migrate', image: 'm' }], containers: [APP] },
    },
    expected: {
      metadata: { name: 'p', annotations: { 'netmesh.io/status': COURSE_STATUS } },
      spec: {
        initContainers: [{ name: 'migrate', image: 'm' }],
        containers: [APP, ENVOY],
        volumes: [ENVOY_CONF],
      },
    },
    paths: ['/spec/containers/-', '/spec/volumes', '/metadata/annotations'],
  },
  {
    title: "template initContainers (native sidecars) go before the pod's own init containers",
    template: INIT_TEMPLATE,
    hash: INIT_HASH,
    pod: {
      metadata: { name: 'p' },
      spec: { initContainers: [{ name: 'migrate', image: 'm' }], containers: [APP] },
    },
    expected: {
      metadata: {
        name: 'p',
        annotations: {
          'netmesh.io/status': status(INIT_HASH, {
            containers: ['envoy'],
            initContainers: ['mesh-init'],
            volumes: ['envoy-conf'],
          }),
        },
      },
      spec: {
        initContainers: [INIT_TEMPLATE.initContainers[0]!, { name: 'migrate', image: 'm' }],
        containers: [APP, INIT_TEMPLATE.containers[0]!],
        volumes: [INIT_TEMPLATE.volumes[0]!],
      },
    },
    paths: ['/spec/initContainers/0', '/spec/containers/-', '/spec/volumes', '/metadata/annotations'],
  },
  {
    title: 'template initContainers when the pod has none: the list is created',
    template: INIT_TEMPLATE,
    hash: INIT_HASH,
    pod: { metadata: { name: 'p' }, spec: { containers: [APP] } },
    expected: {
      metadata: {
        name: 'p',
        annotations: {
          'netmesh.io/status': status(INIT_HASH, {
            containers: ['envoy'],
            initContainers: ['mesh-init'],
            volumes: ['envoy-conf'],
          }),
        },
      },
      spec: {
        containers: [APP, INIT_TEMPLATE.containers[0]!],
        initContainers: [INIT_TEMPLATE.initContainers[0]!],
        volumes: [INIT_TEMPLATE.volumes[0]!],
      },
    },
    paths: ['/spec/initContainers', '/spec/containers/-', '/spec/volumes', '/metadata/annotations'],
  },
  {
    title: 'an empty containers array (the apiserver will judge the pod, we only add)',
    pod: { metadata: { name: 'p' }, spec: { containers: [] } },
    expected: {
      metadata: { name: 'p', annotations: { 'netmesh.io/status': COURSE_STATUS } },
      spec: { containers: [ENVOY], volumes: [ENVOY_CONF] },
    },
    paths: ['/spec/containers/-', '/spec/volumes', '/metadata/annotations'],
  },
  {
    title: 'a pod created by a controller: generateName only',
    pod: {
      metadata: {
        generateName: 'web-7d4b9c-',
        namespace: 'shop',
        labels: { app: 'web', 'pod-template-hash': '7d4b9c' },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d4b9c', uid: 'u1' }],
      },
      spec: { containers: [APP] },
    },
    expected: {
      metadata: {
        generateName: 'web-7d4b9c-',
        namespace: 'shop',
        labels: { app: 'web', 'pod-template-hash': '7d4b9c' },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d4b9c', uid: 'u1' }],
        annotations: { 'netmesh.io/status': COURSE_STATUS },
      },
      spec: { containers: [APP, ENVOY], volumes: [ENVOY_CONF] },
    },
  },
  {
    title: 'no metadata at all',
    pod: { spec: { containers: [APP] } },
    expected: {
      metadata: { annotations: { 'netmesh.io/status': COURSE_STATUS } },
      spec: { containers: [APP, ENVOY], volumes: [ENVOY_CONF] },
    },
    paths: ['/spec/containers/-', '/spec/volumes', '/metadata'],
  },
  {
    title: 'null annotations and null volumes are treated as absent',
    pod: {
      metadata: { name: 'p', annotations: null },
      spec: { containers: [APP], volumes: null },
    } as unknown as V1Pod,
    expected: {
      metadata: { name: 'p', annotations: { 'netmesh.io/status': COURSE_STATUS } },
      spec: { containers: [APP, ENVOY], volumes: [ENVOY_CONF] },
    },
    paths: ['/spec/containers/-', '/spec/volumes', '/metadata/annotations'],
  },
  {
    title: 'an empty annotation map gets the key, not a new map',
    pod: { metadata: { name: 'p', annotations: {} }, spec: { containers: [APP], volumes: [] } },
    expected: {
      metadata: { name: 'p', annotations: { 'netmesh.io/status': COURSE_STATUS } },
      spec: { containers: [APP, ENVOY], volumes: [ENVOY_CONF] },
    },
    paths: ['/spec/containers/-', '/spec/volumes/-', '/metadata/annotations/netmesh.io~1status'],
  },
  {
    title: 'two template containers keep their order',
    template: {
      containers: [
        { name: 'envoy', image: 'envoy:1' },
        { name: 'agent', image: 'agent:1' },
      ],
      initContainers: [],
      volumes: [],
    },
    hash: 'h',
    pod: { metadata: { name: 'p' }, spec: { containers: [APP] } },
    expected: {
      metadata: {
        name: 'p',
        annotations: { 'netmesh.io/status': status('h', { containers: ['envoy', 'agent'] }) },
      },
      spec: {
        containers: [APP, { name: 'envoy', image: 'envoy:1' }, { name: 'agent', image: 'agent:1' }],
      },
    },
    paths: ['/spec/containers/-', '/spec/containers/-', '/metadata/annotations'],
  },
  {
    title: 'no containers list at all: it is created, not replaced',
    pod: { metadata: { name: 'p' }, spec: {} } as V1Pod,
    expected: {
      metadata: { name: 'p', annotations: { 'netmesh.io/status': COURSE_STATUS } },
      spec: { containers: [ENVOY], volumes: [ENVOY_CONF] },
    },
    paths: ['/spec/containers', '/spec/volumes', '/metadata/annotations'],
  },
  {
    title: 'a port clash is injected with a warning',
    pod: {
      metadata: { name: 'p' },
      spec: {
        containers: [{ ...APP, ports: [{ containerPort: 80 }, { containerPort: 80, protocol: 'UDP' }] }],
      },
    },
    expected: {
      metadata: { name: 'p', annotations: { 'netmesh.io/status': COURSE_STATUS } },
      spec: {
        containers: [
          { ...APP, ports: [{ containerPort: 80 }, { containerPort: 80, protocol: 'UDP' }] },
          ENVOY,
        ],
        volumes: [ENVOY_CONF],
      },
    },
    warnings: [
      /^container "app" and sidecar "envoy" both declare port 80\/TCP; one of them will fail to bind$/,
    ],
  },
  {
    title: "several native sidecars go first, in the template's order, before two init containers of the pod",
    template: {
      containers: [],
      initContainers: [
        { name: 'proxy', image: 'envoy:1', restartPolicy: 'Always' },
        { name: 'agent', image: 'agent:1', restartPolicy: 'Always' },
      ],
      volumes: [],
    },
    hash: 'h',
    pod: {
      metadata: { name: 'p' },
      spec: {
        initContainers: [
          { name: 'migrate', image: 'm' },
          { name: 'seed', image: 's' },
        ],
        containers: [APP],
      },
    },
    expected: {
      metadata: {
        name: 'p',
        annotations: { 'netmesh.io/status': status('h', { initContainers: ['proxy', 'agent'] }) },
      },
      spec: {
        initContainers: [
          { name: 'proxy', image: 'envoy:1', restartPolicy: 'Always' },
          { name: 'agent', image: 'agent:1', restartPolicy: 'Always' },
          { name: 'migrate', image: 'm' },
          { name: 'seed', image: 's' },
        ],
        containers: [APP],
      },
    },
    paths: ['/spec/initContainers/0', '/spec/initContainers/1', '/metadata/annotations'],
  },
  {
    title: 'a native sidecar into an empty initContainers list',
    template: {
      containers: [],
      initContainers: [{ name: 'proxy', image: 'envoy:1', restartPolicy: 'Always' }],
      volumes: [],
    },
    hash: 'h',
    pod: { metadata: { name: 'p' }, spec: { initContainers: [], containers: [APP] } },
    expected: {
      metadata: {
        name: 'p',
        annotations: { 'netmesh.io/status': status('h', { initContainers: ['proxy'] }) },
      },
      spec: {
        initContainers: [{ name: 'proxy', image: 'envoy:1', restartPolicy: 'Always' }],
        containers: [APP],
      },
    },
    paths: ['/spec/initContainers/0', '/metadata/annotations'],
  },
  {
    title: "a native sidecar's port clashing with an app port is injected with a warning",
    template: {
      containers: [],
      initContainers: [
        { name: 'proxy', image: 'envoy:1', restartPolicy: 'Always', ports: [{ containerPort: 15001 }] },
      ],
      volumes: [],
    },
    hash: 'h',
    pod: {
      metadata: { name: 'p' },
      spec: { containers: [{ ...APP, ports: [{ containerPort: 15001 }] }] },
    },
    expected: {
      metadata: {
        name: 'p',
        annotations: { 'netmesh.io/status': status('h', { initContainers: ['proxy'] }) },
      },
      spec: {
        containers: [{ ...APP, ports: [{ containerPort: 15001 }] }],
        initContainers: [
          { name: 'proxy', image: 'envoy:1', restartPolicy: 'Always', ports: [{ containerPort: 15001 }] },
        ],
      },
    },
    warnings: [
      /^container "app" and sidecar "proxy" both declare port 15001\/TCP; one of them will fail to bind$/,
    ],
  },
];

describe('planInjection: injects', () => {
  for (const c of injectCases) {
    it(c.title, () => {
      const template = c.template ?? COURSE;
      const hash = c.hash ?? HASH;
      const original = structuredClone(c.pod);
      const templateBefore = structuredClone(template);
      const plan = planInjection(c.pod, template, { templateHash: hash });
      const injected = apply(c.pod, plan);
      assert.deepStrictEqual(injected, c.expected);
      assert.deepStrictEqual(c.pod, original, 'the input pod must not be modified');
      assert.deepStrictEqual(template, templateBefore, 'the template must not be modified');
      if (plan.action !== 'inject') return;

      // Only additions, and only the documented paths.
      for (const op of plan.patch) assert.equal(op.op, 'add');
      if (c.paths)
        assert.deepEqual(
          plan.patch.map((op) => op.path),
          c.paths,
        );
      assert.equal(plan.warnings.length, c.warnings?.length ?? 0, plan.warnings.join('\n'));
      c.warnings?.forEach((re, i) => {
        assert.match(plan.warnings[i]!, re);
      });

      // The record says what was added and parses back.
      const annotation = injected.metadata?.annotations?.['netmesh.io/status'];
      assert.deepEqual(parseInjectionStatus(annotation), plan.status);
      assert.equal(plan.status.templateHash, hash);

      // Idempotency: reinvocation or a second create of the same object adds nothing.
      const again = planInjection(injected, template, { templateHash: hash });
      assert.equal(again.action, 'skip');
      if (again.action === 'skip') {
        assert.equal(again.reason, 'AlreadyInjected');
        assert.deepEqual(again.warnings, []);
      }
    });
  }

  it('the patch shares no objects with the template (mutating it leaves the template intact)', () => {
    const plan = planInjection(coursePod(), COURSE, { templateHash: HASH });
    assert.equal(plan.action, 'inject');
    if (plan.action !== 'inject') return;
    const added = plan.patch[0] as { value: V1Container };
    assert.deepStrictEqual(added.value, ENVOY);
    assert.notEqual(added.value, ENVOY);
    assert.notEqual(added.value.volumeMounts, ENVOY.volumeMounts);
    added.value.name = 'mutated';
    added.value.volumeMounts![0]!.mountPath = '/mutated';
    (plan.patch[1] as { value: V1Volume[] }).value[0]!.name = 'mutated';
    assert.equal(COURSE.containers[0]!.name, 'envoy');
    assert.equal(COURSE.containers[0]!.volumeMounts![0]!.mountPath, '/etc/envoy');
    assert.equal(COURSE.volumes[0]!.name, 'envoy-conf');
    const second = planInjection(coursePod(), COURSE, { templateHash: HASH });
    assert.ok(second.action === 'inject');
    assert.deepStrictEqual((second.patch[0] as { value: V1Container }).value, ENVOY);
  });

  it('the injected pod shares no objects with the template either', () => {
    const plan = planInjection(coursePod(), COURSE, { templateHash: HASH });
    const injected = apply(coursePod(), plan);
    injected.spec!.containers[1]!.args!.push('--extra');
    assert.equal(COURSE.containers[0]!.args!.length, 3);
  });

  it('the status annotation has the documented JSON layout', () => {
    const plan = planInjection(coursePod(), COURSE, { templateHash: HASH });
    const injected = apply(coursePod(), plan);
    assert.equal(
      injected.metadata?.annotations?.['netmesh.io/status'],
      `{"version":1,"containers":["envoy"],"initContainers":[],"volumes":["envoy-conf"],"templateHash":"${HASH}"}`,
    );
  });

  it('the patch is valid for fast-json-patch and JSON round-trips (it is sent as JSON)', () => {
    const pod = coursePod();
    const plan = planInjection(pod, COURSE, { templateHash: HASH });
    assert.ok(plan.action === 'inject');
    const wire = JSON.parse(JSON.stringify(plan.patch));
    assert.equal(jsonpatch.validate(wire, pod), undefined);
    assert.deepStrictEqual(
      jsonpatch.applyPatch(jsonpatch.deepClone(pod), wire, true).newDocument,
      apply(pod, plan),
    );
  });
});

interface SkipCase {
  title: string;
  pod: V1Pod;
  template?: SidecarTemplate;
  reason: string;
  message: RegExp;
  warnings?: RegExp[];
}

const skipCases: SkipCase[] = [
  {
    title: 'already injected: status annotation with the current template',
    pod: {
      metadata: { name: 'p', annotations: { 'netmesh.io/status': COURSE_STATUS } },
      spec: { containers: [APP, ENVOY], volumes: [ENVOY_CONF] },
    },
    reason: 'AlreadyInjected',
    message: new RegExp(
      `^pod already carries annotation netmesh.io/status \\(containers envoy; volumes envoy-conf, template ${HASH}\\)$`,
    ),
  },
  {
    title: 'already injected from an older template: skip with a warning',
    pod: {
      metadata: {
        name: 'p',
        annotations: { 'netmesh.io/status': status('0000000000000000', { containers: ['envoy'] }) },
      },
      spec: { containers: [APP, ENVOY] },
    },
    reason: 'AlreadyInjected',
    message: /template 0000000000000000/,
    warnings: [
      new RegExp(
        `^pod was injected from template 0000000000000000, the current template is ${HASH}; recreate`,
      ),
    ],
  },
  {
    title: 'a status annotation that is not a record still means injected',
    pod: {
      metadata: { name: 'p', annotations: { 'netmesh.io/status': 'yes' } },
      spec: { containers: [APP] },
    },
    reason: 'AlreadyInjected',
    message: /^pod already carries annotation netmesh.io\/status$/,
    warnings: [/is not a valid injection record/],
  },
  {
    title: 'an empty status annotation still means injected',
    pod: { metadata: { name: 'p', annotations: { 'netmesh.io/status': '' } }, spec: { containers: [APP] } },
    reason: 'AlreadyInjected',
    message: /netmesh.io\/status/,
    warnings: [/is not a valid injection record/],
  },
  {
    title: "the pod already holds the template's containers and volumes (no record)",
    pod: { metadata: { name: 'p' }, spec: { containers: [APP, ENVOY], volumes: [ENVOY_CONF] } },
    reason: 'AlreadyInjected',
    message:
      /^pod already has the template's containers "envoy" \(no netmesh.io\/status annotation\); not injecting again$/,
  },
  {
    title: "the pod holds the template's containers but not its volume",
    pod: { metadata: { name: 'p' }, spec: { containers: [{ name: 'envoy', image: 'own' }, APP] } },
    reason: 'AlreadyInjected',
    message: /containers "envoy"/,
    warnings: [/^template volumes missing from the pod: "envoy-conf"$/],
  },
  {
    title: 'volumes-only template whose volumes the pod has',
    template: { containers: [], initContainers: [], volumes: [{ name: 'shared', emptyDir: {} }] },
    pod: {
      metadata: { name: 'p' },
      spec: { containers: [APP], volumes: [{ name: 'shared', emptyDir: {} }] },
    },
    reason: 'AlreadyInjected',
    message: /volumes "shared"/,
  },
  {
    title: 'name conflict: a user container named like the sidecar, the volume free',
    template: {
      containers: [ENVOY, { name: 'agent', image: 'a' }],
      initContainers: [],
      volumes: [ENVOY_CONF],
    },
    pod: { metadata: { name: 'p' }, spec: { containers: [APP, { name: 'agent', image: 'mine' }] } },
    reason: 'NameConflict',
    message: /^pod already defines container "agent" that the template also uses; not injecting/,
  },
  {
    title: 'name conflict: a user volume named like the template volume',
    pod: {
      metadata: { name: 'p' },
      spec: { containers: [APP], volumes: [{ name: 'envoy-conf', emptyDir: {} }] },
    },
    reason: 'NameConflict',
    message: /^pod already defines volume "envoy-conf" that the template also uses/,
  },
  {
    title: 'name conflict: container and volume',
    template: {
      containers: [ENVOY, { name: 'agent', image: 'a' }],
      initContainers: [],
      volumes: [ENVOY_CONF],
    },
    pod: {
      metadata: { name: 'p' },
      spec: {
        containers: [APP, { name: 'envoy', image: 'own' }],
        volumes: [{ name: 'envoy-conf', emptyDir: {} }],
      },
    },
    reason: 'NameConflict',
    message: /^pod already defines container "envoy" and volume "envoy-conf" that the template also uses/,
  },
  {
    title: "name conflict: the sidecar's name used by a user init container",
    pod: {
      metadata: { name: 'p' },
      spec: { initContainers: [{ name: 'envoy', image: 'x' }], containers: [APP] },
    },
    reason: 'NameConflict',
    message: /container "envoy"/,
  },
  {
    title: "name conflict: the sidecar's name used by an ephemeral container",
    pod: {
      metadata: { name: 'p' },
      spec: { containers: [APP], ephemeralContainers: [{ name: 'envoy', image: 'debug' }] },
    },
    reason: 'NameConflict',
    message: /container "envoy"/,
  },
  {
    title: 'empty template',
    template: { containers: [], initContainers: [], volumes: [] },
    pod: coursePod(),
    reason: 'EmptyTemplate',
    message: /nothing to add/,
  },
  {
    title: 'a pod without spec',
    pod: { metadata: { name: 'p' } },
    reason: 'InvalidPod',
    message: /^cannot inject: pod has no spec$/,
  },
  {
    title: 'containers that are not a list',
    pod: { metadata: { name: 'p' }, spec: { containers: { name: 'x' } } } as unknown as V1Pod,
    reason: 'InvalidPod',
    message: /spec.containers is not a list/,
  },
  {
    title: 'annotations that are not a map',
    pod: { metadata: { name: 'p', annotations: 'a=b' }, spec: { containers: [APP] } } as unknown as V1Pod,
    reason: 'InvalidPod',
    message: /metadata.annotations is not a mapping/,
  },
  {
    title: 'not an object at all',
    pod: 'pod' as unknown as V1Pod,
    reason: 'InvalidPod',
    message: /pod is not an object/,
  },
];

describe('planInjection: skips', () => {
  for (const c of skipCases) {
    it(c.title, () => {
      const original = structuredClone(c.pod);
      const plan = planInjection(c.pod, c.template ?? COURSE, { templateHash: HASH });
      assert.equal(plan.action, 'skip');
      if (plan.action !== 'skip') return;
      assert.equal(plan.reason, c.reason, plan.message);
      assert.match(plan.message, c.message);
      assert.ok(!plan.message.includes('\n'));
      assert.equal(plan.warnings.length, c.warnings?.length ?? 0, plan.warnings.join('\n'));
      c.warnings?.forEach((re, i) => {
        assert.match(plan.warnings[i]!, re);
      });
      assert.deepStrictEqual(c.pod, original);
    });
  }
});

describe("planEncodedInjection: the webhook's encoded patch", () => {
  const decode = (b64: string): unknown => JSON.parse(Buffer.from(b64, 'base64').toString('utf8'));

  for (const c of injectCases) {
    it(`agrees with planInjection: ${c.title}`, () => {
      const template = c.template ?? COURSE;
      const options = { templateHash: c.hash ?? HASH };
      const original = structuredClone(c.pod);
      const plain = planInjection(c.pod, template, options);
      // Twice: the second answer comes from the per-template cache.
      for (let i = 0; i < 2; i++) {
        const encoded = planEncodedInjection(c.pod, template, options);
        assert.ok(plain.action === 'inject' && encoded.action === 'inject');
        assert.deepStrictEqual(decode(encoded.patchBase64), JSON.parse(JSON.stringify(plain.patch)));
        assert.deepStrictEqual(encoded.status, plain.status);
        assert.deepStrictEqual(encoded.warnings, plain.warnings);
      }
      assert.deepStrictEqual(c.pod, original, 'the input pod must not be modified');
    });
  }

  for (const c of skipCases) {
    it(`skips as planInjection does: ${c.title}`, () => {
      const options = { templateHash: HASH };
      assert.deepStrictEqual(
        planEncodedInjection(c.pod, c.template ?? COURSE, options),
        planInjection(c.pod, c.template ?? COURSE, options),
      );
    });
  }

  it('Pods of different shapes get their own patch from the same template', () => {
    const withVolumes: V1Pod = {
      metadata: { name: 'p', annotations: {} },
      spec: { containers: [APP], volumes: [{ name: 'data', emptyDir: {} }] },
    };
    const bare: V1Pod = { spec: { containers: [APP] } };
    const a = planEncodedInjection(withVolumes, COURSE, { templateHash: HASH });
    const b = planEncodedInjection(bare, COURSE, { templateHash: HASH });
    const again = planEncodedInjection(withVolumes, COURSE, { templateHash: HASH });
    assert.ok(a.action === 'inject' && b.action === 'inject' && again.action === 'inject');
    const paths = (b64: string) => (decode(b64) as { path: string }[]).map((op) => op.path);
    assert.deepEqual(paths(a.patchBase64), [
      '/spec/containers/-',
      '/spec/volumes/-',
      '/metadata/annotations/netmesh.io~1status',
    ]);
    assert.deepEqual(paths(b.patchBase64), ['/spec/containers/-', '/spec/volumes', '/metadata']);
    assert.equal(again.patchBase64, a.patchBase64);
  });

  it('the record follows the hash it is given, even for a cached template', () => {
    const first = planEncodedInjection(coursePod(), COURSE, { templateHash: HASH });
    const other = planEncodedInjection(coursePod(), COURSE, { templateHash: 'aaaaaaaaaaaaaaaa' });
    assert.ok(first.action === 'inject' && other.action === 'inject');
    assert.equal(other.status.templateHash, 'aaaaaaaaaaaaaaaa');
    const annotation = (decode(other.patchBase64) as { value: unknown }[]).at(-1)!.value as Record<
      string,
      string
    >;
    assert.match(annotation['netmesh.io/status']!, /"templateHash":"aaaaaaaaaaaaaaaa"/);
  });

  it('a template that is not frozen is planned afresh every time (it may have changed)', () => {
    const template: SidecarTemplate = structuredClone(COURSE);
    assert.ok(!Object.isFrozen(template));
    const before = planEncodedInjection(coursePod(), template, { templateHash: HASH });
    template.containers[0]!.image = 'envoy:changed';
    const after = planEncodedInjection(coursePod(), template, { templateHash: HASH });
    assert.ok(before.action === 'inject' && after.action === 'inject');
    assert.notEqual(before.patchBase64, after.patchBase64);
    assert.match(Buffer.from(after.patchBase64, 'base64').toString('utf8'), /envoy:changed/);
  });
});

describe('JSON Pointer helpers', () => {
  const cases: Array<[string, string]> = [
    ['plain', 'plain'],
    ['netmesh.io/status', 'netmesh.io~1status'],
    ['a~b', 'a~0b'],
    ['~/', '~0~1'],
    ['a~1b', 'a~01b'],
    ['/~0', '~1~00'],
    ['', ''],
  ];
  for (const [raw, escaped] of cases) {
    it(`escapes ${JSON.stringify(raw)} as ${JSON.stringify(escaped)} and fast-json-patch agrees`, () => {
      assert.equal(escapePointer(raw), escaped);
      assert.equal(jsonpatch.escapePathComponent(raw), escaped);
      assert.equal(jsonpatch.unescapePathComponent(escaped), raw);
    });
  }
  it('builds pointers from raw segments', () => {
    assert.equal(
      pointer('metadata', 'annotations', 'netmesh.io/status'),
      '/metadata/annotations/netmesh.io~1status',
    );
    assert.equal(pointer(), '');
  });
  it('a pointer built for a key with "/" and "~" reaches exactly that key', () => {
    const doc = { metadata: { annotations: { 'a/b~c': 'old' } } };
    const patched = jsonpatch.applyPatch(doc, [
      { op: 'add', path: pointer('metadata', 'annotations', 'x/~y'), value: 'new' },
    ]).newDocument;
    assert.deepStrictEqual(patched.metadata.annotations, { 'a/b~c': 'old', 'x/~y': 'new' });
  });
});

describe('status record', () => {
  it('round-trips', () => {
    const record = {
      version: 1,
      containers: ['a'],
      initContainers: ['i'],
      volumes: ['v'],
      templateHash: 'h',
    };
    assert.deepEqual(parseInjectionStatus(serializeStatus(record)), record);
    assert.equal(summarizeStatus(record), 'initContainers i; containers a; volumes v');
  });
  for (const bad of [
    undefined,
    5,
    '',
    'null',
    '[]',
    '{"version":1}',
    '{"version":"1","containers":[],"initContainers":[],"volumes":[],"templateHash":"h"}',
    '{"version":1,"containers":[1],"initContainers":[],"volumes":[],"templateHash":"h"}',
  ]) {
    it(`rejects ${JSON.stringify(bad)}`, () => {
      assert.equal(parseInjectionStatus(bad), undefined);
    });
  }
});
