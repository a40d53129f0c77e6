import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { COURSE_EXAMPLES_DIR, courseTemplate, courseTemplateText } from '../../examples/course.ts';
import { canonicalJson, hashTemplate, isDns1123Label, isEmptyTemplate, parseTemplate } from './template.ts';

const configMapFile = new URL('seed-envoy-initializer-configmap.yaml', COURSE_EXAMPLES_DIR);

describe('parseTemplate: the course ConfigMap', () => {
  it('parses data.config into containers, initContainers and volumes', () => {
    const result = parseTemplate(courseTemplateText());
    assert.ok(result.ok, result.ok ? '' : result.error);
    assert.deepEqual(result.template, {
      containers: [
        {
          name: 'envoy',
          image: 'lyft/envoy:845747db88f102c0fd262ab234308e9e22f693a1',
          command: ['/usr/local/bin/envoy'],
          args: ['--concurrency 4', '--config-path /etc/envoy/envoy.json', '--mode serve'],
          ports: [{ containerPort: 80, protocol: 'TCP' }],
          resources: {
            limits: { cpu: '1000m', memory: '512Mi' },
            requests: { cpu: '100m', memory: '64Mi' },
          },
          volumeMounts: [{ name: 'envoy-conf', mountPath: '/etc/envoy' }],
        },
      ],
      initContainers: [],
      volumes: [{ name: 'envoy-conf', configMap: { name: 'envoy' } }],
    });
    assert.match(result.hash, /^[0-9a-f]{16}$/);
  });

  it('is frozen all the way down: one template serves every Pod and the planner caches from it', () => {
    const result = parseTemplate(courseTemplateText());
    assert.ok(result.ok);
    const { template } = result;
    assert.ok(Object.isFrozen(template) && Object.isFrozen(template.containers));
    assert.ok(Object.isFrozen(template.containers[0]!.volumeMounts![0]));
    assert.throws(() => {
      template.containers[0]!.image = 'changed';
    }, TypeError);
    assert.throws(() => {
      template.volumes.push({ name: 'x', emptyDir: {} });
    }, TypeError);
  });

  it('reading the ConfigMap from the course file gives the same template', () => {
    const configMap = parse(readFileSync(configMapFile, 'utf8')) as { data: { config: string } };
    const result = parseTemplate(configMap.data.config);
    assert.ok(result.ok);
    assert.deepEqual(result.template, courseTemplate().template);
    assert.equal(result.hash, courseTemplate().hash);
  });
});

describe('template hash', () => {
  const base =
    'containers:\n  - name: envoy\n    image: envoy:1\n    args: [a, b]\nvolumes:\n  - name: v\n    emptyDir: {}\n';
  const hashOf = (text: string): string => {
    const result = parseTemplate(text);
    assert.ok(result.ok, result.ok ? '' : result.error);
    return result.hash;
  };

  it('is stable and equals hashTemplate of the parsed template', () => {
    const result = parseTemplate(base);
    assert.ok(result.ok);
    assert.equal(result.hash, hashOf(base));
    assert.equal(result.hash, hashTemplate(result.template));
  });
  it('ignores key order, comments, formatting and an explicit empty initContainers', () => {
    const reordered =
      '# comment\nvolumes: [{emptyDir: {}, name: v}]\ninitContainers: []\ncontainers:\n  - image: envoy:1\n    args: ["a", "b"]\n    name: envoy\n';
    assert.equal(hashOf(reordered), hashOf(base));
  });
  it('changes when the content changes, including list order', () => {
    assert.notEqual(hashOf(base.replace('envoy:1', 'envoy:2')), hashOf(base));
    assert.notEqual(hashOf(base.replace('[a, b]', '[b, a]')), hashOf(base));
  });
  it('canonicalJson sorts keys at every level and keeps array order', () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } }),
      '{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}',
    );
  });
});

describe('parseTemplate: valid shapes', () => {
  it('accepts an empty mapping as an empty template', () => {
    const result = parseTemplate('{}');
    assert.ok(result.ok);
    assert.deepEqual(result.template, { containers: [], initContainers: [], volumes: [] });
    assert.ok(isEmptyTemplate(result.template));
  });
  it('accepts native sidecars (initContainers with restartPolicy Always) with mounts of template volumes', () => {
    const result = parseTemplate(
      'initContainers:\n  - name: init-net\n    image: busybox\n    restartPolicy: Always\n    volumeMounts: [{name: scratch, mountPath: /s}]\nvolumes:\n  - name: scratch\n    emptyDir: {}\n',
    );
    assert.ok(result.ok, result.ok ? '' : result.error);
    assert.equal(result.template.initContainers[0]?.name, 'init-net');
    assert.deepEqual(result.template.containers, []);
    assert.ok(!isEmptyTemplate(result.template));
  });
  it('accepts a volumes-only template', () => {
    const result = parseTemplate('volumes:\n  - name: v\n    secret: {secretName: s}\n');
    assert.ok(result.ok);
    assert.equal(result.template.volumes.length, 1);
  });
});

describe('parseTemplate: invalid templates', () => {
  const container = (extra: string) => `containers:\n  - name: envoy\n    image: envoy:1\n${extra}`;
  const cases: Array<[string, string, string | RegExp]> = [
    ['broken YAML', 'containers: [', /^invalid YAML: Flow sequence .* at line 1, column \d+/],
    [
      'duplicate keys',
      'containers: []\ncontainers: []\n',
      /^invalid YAML: Map keys must be unique at line 2/,
    ],
    [
      'several documents',
      'containers: []\n---\nvolumes: []\n',
      /^invalid YAML: Source contains multiple documents/,
    ],
    [
      'empty text',
      '',
      'template is empty: expected a mapping with containers, volumes and optionally initContainers',
    ],
    [
      'only a comment',
      '# nothing\n',
      'template is empty: expected a mapping with containers, volumes and optionally initContainers',
    ],
    ['a list at the top', '- name: envoy\n', 'template must be a mapping, got a list'],
    ['a scalar at the top', 'hello', 'template must be a mapping, got string "hello"'],
    [
      'unknown top-level key',
      'containers: []\nsidecars: []\n',
      'unknown top-level key "sidecars" (allowed: containers, initContainers, volumes)',
    ],
    [
      'a Pod spec instead of a fragment',
      'spec:\n  containers: []\n',
      'unknown top-level key "spec" (allowed: containers, initContainers, volumes)',
    ],
    ['containers is a mapping', 'containers:\n  name: envoy\n', 'containers: must be a list, got a mapping'],
    ['containers is null', 'containers:\n', 'containers: must be a list, got null'],
    ['volumes is a string', 'volumes: envoy-conf\n', 'volumes: must be a list, got string "envoy-conf"'],
    ['initContainers is a number', 'initContainers: 3\n', 'initContainers: must be a list, got number 3'],
    [
      'container is a string',
      'containers: [envoy]\n',
      'containers[0]: must be a mapping, got string "envoy"',
    ],
    ['container is a list', 'containers: [[]]\n', 'containers[0]: must be a mapping, got a list'],
    ['container without name', 'containers:\n  - image: envoy:1\n', 'containers[0]: missing name'],
    [
      'container with empty name',
      'containers:\n  - name: ""\n    image: envoy:1\n',
      'containers[0]: missing name',
    ],
    [
      'container name not a string',
      'containers:\n  - name: 5\n    image: envoy:1\n',
      'containers[0]: name must be a string, got number 5',
    ],
    [
      'container name not DNS-1123',
      'containers:\n  - name: Envoy_Proxy\n    image: envoy:1\n',
      /^containers\[0\]: name "Envoy_Proxy" is not a valid DNS-1123 label \(/,
    ],
    [
      'container name ending with a dash',
      'containers:\n  - name: envoy-\n    image: envoy:1\n',
      /^containers\[0\]: name "envoy-" is not a valid DNS-1123 label/,
    ],
    [
      'container name too long',
      `containers:\n  - name: ${'a'.repeat(64)}\n    image: envoy:1\n`,
      /^containers\[0\]: name "a{64}" is not a valid DNS-1123 label/,
    ],
    ['container without image', 'containers:\n  - name: envoy\n', 'containers[0]: missing image'],
    [
      'container with empty image',
      'containers:\n  - name: envoy\n    image: ""\n',
      'containers[0]: missing image',
    ],
    [
      'container image not a string',
      'containers:\n  - name: envoy\n    image: [a]\n',
      'containers[0]: image must be a string, got a list',
    ],
    [
      'container image with whitespace',
      'containers:\n  - name: envoy\n    image: " envoy:1"\n',
      'containers[0]: image must not have leading or trailing whitespace',
    ],
    [
      'second container without image',
      'containers:\n  - name: envoy\n    image: envoy:1\n  - name: agent\n',
      'containers[1]: missing image',
    ],
    ['init container without image', 'initContainers:\n  - name: init\n', 'initContainers[0]: missing image'],
    [
      'a plain init container (no restartPolicy): it would keep every injected Pod in Init',
      'initContainers:\n  - name: envoy\n    image: envoy:1\n',
      /^initContainers\[0\]: restartPolicy: Always is required: a template's initContainers are native sidecars; a plain init container that does not exit \(a proxy\) would keep every injected Pod in Init$/,
    ],
    [
      'an init container with restartPolicy OnFailure',
      'initContainers:\n  - name: envoy\n    image: envoy:1\n    restartPolicy: OnFailure\n',
      'initContainers[0]: restartPolicy must be Always (a native sidecar), got string "OnFailure"',
    ],
    [
      'restartPolicy on a regular container',
      'containers:\n  - name: envoy\n    image: envoy:1\n    restartPolicy: Always\n',
      /^containers\[0\]: restartPolicy is only allowed on initContainers/,
    ],
    [
      'duplicate container names',
      'containers:\n  - name: envoy\n    image: a\n  - name: envoy\n    image: b\n',
      'containers[1]: duplicate container name "envoy" (also containers[0])',
    ],
    [
      'container and init container share a name',
      'containers:\n  - name: envoy\n    image: a\ninitContainers:\n  - name: envoy\n    image: b\n    restartPolicy: Always\n',
      'initContainers[0]: duplicate container name "envoy" (also containers[0])',
    ],
    ['volume is a string', 'volumes: [conf]\n', 'volumes[0]: must be a mapping, got string "conf"'],
    ['volume without name', 'volumes:\n  - emptyDir: {}\n', 'volumes[0]: missing name'],
    [
      'volume name not DNS-1123',
      'volumes:\n  - name: Envoy.Conf\n    emptyDir: {}\n',
      /^volumes\[0\]: name "Envoy.Conf" is not a valid DNS-1123 label/,
    ],
    [
      'duplicate volume names',
      'volumes:\n  - name: v\n    emptyDir: {}\n  - name: v\n    secret: {secretName: s}\n',
      'volumes[1]: duplicate volume name "v" (also volumes[0])',
    ],
    [
      'volume without source',
      'volumes:\n  - name: v\n',
      'volumes[0]: no volume source (expected exactly one of configMap, secret, emptyDir, projected, ...)',
    ],
    [
      'volume with two sources',
      'volumes:\n  - name: v\n    configMap: {name: a}\n    secret: {secretName: b}\n',
      'volumes[0]: multiple volume sources (configMap, secret); expected exactly one',
    ],
    [
      'volume with a misspelt source',
      'volumes:\n  - name: v\n    configmap: {name: a}\n',
      'volumes[0]: unknown field "configmap"',
    ],
    [
      'volume source left empty',
      'volumes:\n  - name: v\n    emptyDir:\n',
      'volumes[0].emptyDir: must be a mapping (use {} for defaults), got null',
    ],
    [
      'volumeMounts is a mapping',
      container('    volumeMounts: {name: v}\n'),
      'containers[0].volumeMounts: must be a list, got a mapping',
    ],
    [
      'mount of a volume the template does not define',
      container('    volumeMounts:\n      - name: data\n        mountPath: /data\n'),
      `containers[0].volumeMounts[0]: volume "data" is not defined in the template's volumes`,
    ],
    [
      'mount without name',
      container('    volumeMounts:\n      - mountPath: /data\n'),
      'containers[0].volumeMounts[0]: missing name',
    ],
    [
      'mount without mountPath',
      `${container('    volumeMounts:\n      - name: v\n')}volumes:\n  - name: v\n    emptyDir: {}\n`,
      'containers[0].volumeMounts[0]: missing mountPath',
    ],
    [
      'two mounts at the same path',
      `${container('    volumeMounts:\n      - {name: v, mountPath: /x}\n      - {name: w, mountPath: /x}\n')}volumes:\n  - {name: v, emptyDir: {}}\n  - {name: w, emptyDir: {}}\n`,
      'containers[0].volumeMounts[1]: duplicate mountPath "/x" (also volumeMounts[0])',
    ],
    [
      'init container mount of an unknown volume',
      'initContainers:\n  - name: init\n    image: busybox\n    volumeMounts: [{name: nope, mountPath: /n}]\n',
      `initContainers[0].volumeMounts[0]: volume "nope" is not defined in the template's volumes`,
    ],
  ];

  for (const [title, text, expected] of cases) {
    it(`rejects ${title}`, () => {
      const result = parseTemplate(text);
      assert.equal(result.ok, false, `expected an error for: ${text}`);
      if (result.ok) return;
      assert.ok(!result.error.includes('\n'), `error must be one line: ${JSON.stringify(result.error)}`);
      if (typeof expected === 'string') assert.equal(result.error, expected);
      else assert.match(result.error, expected);
    });
  }

  it('rejects the course template with its volume removed, naming the dangling mount', () => {
    const text = courseTemplateText().replace(/volumes:[\s\S]*$/, '');
    const result = parseTemplate(text);
    assert.deepEqual(result, {
      ok: false,
      error: `containers[0].volumeMounts[0]: volume "envoy-conf" is not defined in the template's volumes`,
    });
  });
});

describe('isDns1123Label', () => {
  for (const good of ['a', 'envoy', 'envoy-conf', '0', 'a1-b2', 'x'.repeat(63)]) {
    it(`accepts ${JSON.stringify(good.length > 10 ? `${good.slice(0, 5)}…(${good.length})` : good)}`, () => {
      assert.ok(isDns1123Label(good));
    });
  }
  for (const bad of ['', 'A', '-a', 'a-', 'a_b', 'a.b', 'a b', 'é', 'x'.repeat(64)]) {
    it(`rejects ${JSON.stringify(bad.length > 10 ? `${bad.slice(0, 5)}…(${bad.length})` : bad)}`, () => {
      assert.ok(!isDns1123Label(bad));
    });
  }
});
