// Random Pods and sidecar templates (fast-check arbitraries) for the property tests of the
// injector: webhook/core/inject.property.test.ts (pure) and e2e/webhook/properties.test.ts
// (a sample through the apiserver's server-side dry-run). Test support, never the product.
//
// `validPod` and `validTemplate` stay inside what the apiserver accepts (DNS-1123 names,
// qualified label keys, C identifiers for env, absolute mount paths, ports in range), so that
// whatever the apiserver rejects after injection is the injector's fault. `oddPod` adds what
// only a broken client sends: nulls, empty lists, unknown fields, keys with `/` and `~`.
import fc from 'fast-check';
import { stringify } from 'yaml';
import { OVERRIDE_ANNOTATIONS } from '../webhook/core/overrides.ts';

/**
 * What the webhook receives is parsed JSON: plain objects (fast-check's records may have a
 * null prototype) and no undefined.
 */
const asJson = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

const label = fc.stringMatching(/^[a-z]([a-z0-9-]{0,10}[a-z0-9])?$/);
/** A few names on purpose shared by Pods and templates, so name conflicts come up too. */
const containerName = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom('envoy', 'app', 'web') },
  { weight: 6, arbitrary: label },
);
const volumeName = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom('envoy-conf', 'data') },
  { weight: 6, arbitrary: label },
);
const image = fc.constantFrom(
  'busybox',
  'envoyproxy/envoy:v1.31.0',
  'localhost/netmesh:0.1.0',
  `registry.example/a/b@sha256:${'a'.repeat(64)}`,
);
const qualifiedName = fc.stringMatching(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?$/);
const qualifiedKey = fc.oneof(
  qualifiedName,
  fc
    .tuple(fc.constantFrom('example.com', 'netmesh.io', 'a.b-c.io'), qualifiedName)
    .map(([p, n]) => `${p}/${n}`),
);
const labelValue = fc.oneof(fc.constant(''), qualifiedName);
const envName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,12}$/);
/**
 * Values for the per-Pod override annotations (webhook/core/overrides.ts), good and bad: the
 * good ones are applied, the bad ones warned about; neither may make the apiserver refuse the Pod.
 */
const overrideValue = fc.oneof(
  fc.constantFrom('100m', '0.5', '2', '1e3', '128Mi', '1Gi', '64M', '.5', '1.', '0'),
  fc.constantFrom('-1', 'abc', '1.5.5', '', ' 1', '1 Gi', '10Qi', '9'.repeat(40)),
  fc.constantFrom('debug', 'warn', 'off', 'verbose', 'INFO'),
  fc.constantFrom('envoyproxy/envoy:v1.31.0', 'localhost:5000/a/b:c', 'UPPER/case', 'a@sha256:xyz', 'x:'),
  fc.integer({ min: -2, max: 70_000 }).map(String),
);

function containerArb(mountable: readonly string[]): fc.Arbitrary<Record<string, unknown>> {
  return fc.record(
    {
      image,
      args: fc.array(fc.string({ maxLength: 12 }), { maxLength: 3 }),
      env: fc.uniqueArray(fc.record({ name: envName, value: fc.string({ maxLength: 16 }) }), {
        maxLength: 3,
        selector: (e) => e.name,
      }),
      ports: fc.uniqueArray(
        fc.record({
          containerPort: fc.integer({ min: 1, max: 65535 }),
          protocol: fc.constantFrom('TCP', 'UDP'),
        }),
        { maxLength: 3, selector: (p) => `${p.containerPort}/${p.protocol}` },
      ),
      volumeMounts: fc
        .subarray([...mountable])
        .map((names) => names.map((name, i) => ({ name, mountPath: `/mnt/${i}-${name}` }))),
    },
    { requiredKeys: ['image'] },
  );
}

const volumeArb = (name: string): fc.Arbitrary<Record<string, unknown>> =>
  fc.oneof(
    fc.constant({ name, emptyDir: {} }),
    fc.record({ name: fc.constant(name), emptyDir: fc.record({ medium: fc.constant('Memory') }) }),
    label.map((cm) => ({ name, configMap: { name: cm, optional: true } })),
  );

/** Names unique across one Pod's (or template's) containers and init containers, and its volumes. */
const namesArb = (max: { containers: number; init: number; volumes: number; minContainers: number }) =>
  fc.record({
    containers: fc.uniqueArray(containerName, {
      minLength: max.minContainers + max.init,
      maxLength: max.containers + max.init,
    }),
    volumes: fc.uniqueArray(volumeName, { maxLength: max.volumes }),
    initCount: fc.integer({ min: 0, max: max.init }),
  });

/**
 * A list of containers with the given names, each mounting some of `volumes`. Init containers
 * of a template are native sidecars (`restartPolicy: Always`, which the parser requires); a
 * Pod's may be either.
 */
function containersNamed(
  names: string[],
  volumes: string[],
  restart: 'none' | 'always' | 'either',
): fc.Arbitrary<Record<string, unknown>[]> {
  return fc.tuple(
    ...names.map((name) =>
      fc
        .tuple(containerArb(volumes), restart === 'either' ? fc.boolean() : fc.constant(restart === 'always'))
        .map(([c, always]) => ({
          name,
          ...c,
          ...(always ? { restartPolicy: 'Always' } : {}),
        })),
    ),
  );
}

export interface TemplateSample {
  /** The template as the ConfigMap's `config` text. */
  text: string;
  object: { containers?: unknown[]; initContainers?: unknown[]; volumes?: unknown[] };
}

/** A template the webhook's parser must accept, as JSON or YAML text. */
export const validTemplate: fc.Arbitrary<TemplateSample> = namesArb({
  containers: 2,
  init: 2,
  volumes: 2,
  minContainers: 0,
})
  .chain(({ containers, volumes, initCount }) =>
    fc.record({
      containers: containersNamed(containers.slice(initCount), volumes, 'none'),
      initContainers: containersNamed(containers.slice(0, initCount), volumes, 'always'),
      volumes: fc.tuple(...volumes.map(volumeArb)),
      omitEmpty: fc.boolean(),
      format: fc.constantFrom('json', 'yaml'),
    }),
  )
  .map(({ containers, initContainers, volumes, omitEmpty, format }) => {
    const object: TemplateSample['object'] = {};
    for (const [key, list] of [
      ['containers', containers],
      ['initContainers', initContainers],
      ['volumes', volumes],
    ] as const) {
      if (list.length > 0 || !omitEmpty) object[key] = list;
    }
    return {
      object: asJson(object),
      text: format === 'json' ? JSON.stringify(object, null, 1) : stringify(object),
    };
  });

/** A Pod the apiserver accepts as it is. */
export const validPod: fc.Arbitrary<Record<string, unknown>> = namesArb({
  containers: 3,
  init: 2,
  volumes: 3,
  minContainers: 1,
})
  .chain(({ containers, volumes, initCount }) =>
    fc.record(
      {
        name: label,
        labels: fc.dictionary(qualifiedKey, labelValue, { maxKeys: 4 }),
        annotations: fc.dictionary(qualifiedKey, fc.string({ maxLength: 40 }), { maxKeys: 4 }),
        containers: containersNamed(containers.slice(initCount), volumes, 'none'),
        initContainers: containersNamed(containers.slice(0, initCount), volumes, 'either'),
        overrides: fc.dictionary(fc.constantFrom(...Object.values(OVERRIDE_ANNOTATIONS)), overrideValue, {
          maxKeys: 4,
        }),
        volumes: fc.tuple(...volumes.map(volumeArb)),
        restartPolicy: fc.constantFrom('Always', 'OnFailure', 'Never'),
        terminationGracePeriodSeconds: fc.integer({ min: 0, max: 120 }),
        nodeSelector: fc.dictionary(qualifiedKey, labelValue, { maxKeys: 2 }),
      },
      { requiredKeys: ['name', 'containers', 'volumes'] },
    ),
  )
  .map((p) => {
    const metadata: Record<string, unknown> = { name: p.name };
    if (p.labels) metadata['labels'] = p.labels;
    if (p.annotations || p.overrides) metadata['annotations'] = { ...p.annotations, ...p.overrides };
    const spec: Record<string, unknown> = { containers: p.containers };
    for (const key of [
      'initContainers',
      'volumes',
      'restartPolicy',
      'terminationGracePeriodSeconds',
      'nodeSelector',
    ] as const) {
      const value = p[key];
      if (value !== undefined && !(Array.isArray(value) && value.length === 0 && key !== 'volumes'))
        spec[key] = value;
    }
    return asJson({ apiVersion: 'v1', kind: 'Pod', metadata, spec });
  });

/** Any JSON key, `/`, `~` and the empty string included (JSON Pointer escaping). */
const anyKey = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.constantFrom('a/b', '~', '~1', '/', '', 'netmesh.io~status'),
);

/**
 * validPod bent the way only a broken or unusual client bends it: lists and maps absent,
 * null or empty, metadata missing, unknown fields at every level, odd annotation keys.
 */
export const oddPod: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(
    validPod,
    fc.record({
      metadata: fc.constantFrom('keep', 'absent', 'null', 'empty'),
      annotations: fc.constantFrom('keep', 'absent', 'null', 'empty'),
      containers: fc.constantFrom('keep', 'absent', 'null', 'empty'),
      initContainers: fc.constantFrom('keep', 'absent', 'null', 'empty'),
      volumes: fc.constantFrom('keep', 'absent', 'null', 'empty'),
      ephemeralContainers: fc.constantFrom('absent', 'null', 'empty', 'some'),
      extraTop: fc.dictionary(anyKey, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 3 }),
      extraSpec: fc.dictionary(anyKey, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 3 }),
      oddAnnotations: fc.dictionary(anyKey, fc.string({ maxLength: 10 }), { maxKeys: 3 }),
    }),
  )
  .map(([pod, how]) => {
    const out = structuredClone(pod) as { metadata?: unknown; spec: Record<string, unknown> } & Record<
      string,
      unknown
    >;
    const apply = (holder: Record<string, unknown>, key: string, mode: string, empty: unknown): void => {
      if (mode === 'absent') delete holder[key];
      else if (mode === 'null') holder[key] = null;
      else if (mode === 'empty') holder[key] = empty;
    };
    for (const key of ['containers', 'initContainers', 'volumes'] as const)
      apply(out.spec, key, how[key], []);
    if (how.ephemeralContainers === 'some')
      out.spec['ephemeralContainers'] = [{ name: 'debug', image: 'busybox' }];
    else apply(out.spec, 'ephemeralContainers', how.ephemeralContainers, []);
    const metadata = out.metadata as Record<string, unknown>;
    // Unknown keys never overwrite the fields the injector reads.
    metadata['annotations'] = { ...how.oddAnnotations, ...(metadata['annotations'] as object | undefined) };
    delete (metadata['annotations'] as Record<string, unknown>)['netmesh.io/status'];
    apply(metadata, 'annotations', how.annotations, {});
    apply(out as Record<string, unknown>, 'metadata', how.metadata, {});
    for (const [k, v] of Object.entries(how.extraSpec)) if (!Object.hasOwn(out.spec, k)) out.spec[k] = v;
    for (const [k, v] of Object.entries(how.extraTop)) if (!Object.hasOwn(out, k)) out[k] = v;
    return asJson(out);
  });
