/**
 * The sidecar template: the `config` key of the `envoy-initializer` ConfigMap, in the
 * course's format (a fragment of a Pod spec with `containers`, `volumes` and optionally
 * `initContainers`).
 *
 * Validation is deliberately stricter than "parses as YAML": a template the apiserver would
 * reject after injection would make every selected Pod fail to create, so we refuse it up
 * front with a one-line message naming the offending path. It is not a full Pod schema
 * check; it covers the mistakes that break injection (names, images, volume sources, mounts).
 *
 * Mounts must refer to volumes defined in the template itself, not to volumes the target
 * Pod might have: the template is applied to Pods we have not seen yet, so anything else
 * would fail at admission time for some of them.
 *
 * `initContainers` must be native sidecars (`restartPolicy: Always`, Kubernetes 1.29+; the
 * chart's floor is 1.31). A plain init container must exit before the next one starts: a proxy
 * written there by mistake (the usual way to get one is to move a sidecar from `containers` and
 * forget `restartPolicy`) never exits and keeps every injected Pod in `Init` for good, so such a
 * template is refused. One-shot setup belongs in the application's own Pod spec.
 */
import { createHash } from 'node:crypto';
import type { V1Container, V1Volume } from '@kubernetes/client-node';
import { parseDocument } from 'yaml';
import { canonicalJson } from '../../lib/canonical-json.ts';

/**
 * Immutable once parsed (parseTemplate freezes it): one template serves every Pod, and the
 * injection planner caches what it derives from it (core/inject.ts).
 */
export interface SidecarTemplate {
  containers: V1Container[];
  initContainers: V1Container[];
  volumes: V1Volume[];
}

export type ParseTemplateResult =
  | { ok: true; template: SidecarTemplate; hash: string }
  | { ok: false; error: string };

const TOP_LEVEL_KEYS = ['containers', 'initContainers', 'volumes'] as const;

/** From V1Volume: every field except `name` is a volume source, and exactly one must be set. */
export const VOLUME_SOURCE_KEYS: readonly string[] = [
  'awsElasticBlockStore',
  'azureDisk',
  'azureFile',
  'cephfs',
  'cinder',
  'configMap',
  'csi',
  'downwardAPI',
  'emptyDir',
  'ephemeral',
  'fc',
  'flexVolume',
  'flocker',
  'gcePersistentDisk',
  'gitRepo',
  'glusterfs',
  'hostPath',
  'image',
  'iscsi',
  'nfs',
  'persistentVolumeClaim',
  'photonPersistentDisk',
  'portworxVolume',
  'projected',
  'quobyte',
  'rbd',
  'scaleIO',
  'secret',
  'storageos',
  'vsphereVolume',
];

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_LABEL_MAX = 63;

export function isDns1123Label(value: string): boolean {
  return value.length <= DNS1123_LABEL_MAX && DNS1123_LABEL.test(value);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Thrown internally to stop at the first problem; never escapes parseTemplate. */
class TemplateError extends Error {}

function fail(message: string): never {
  throw new TemplateError(message);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}

function checkName(path: string, value: unknown): string {
  if (value === undefined || value === null || value === '') fail(`${path}: missing name`);
  if (typeof value !== 'string') fail(`${path}: name must be a string, got ${describe(value)}`);
  if (!isDns1123Label(value)) {
    fail(
      `${path}: name ${JSON.stringify(value)} is not a valid DNS-1123 label ` +
        `(lowercase letters, digits and '-', starting and ending with a letter or digit, at most ${DNS1123_LABEL_MAX} characters)`,
    );
  }
  return value;
}

function checkList(key: string, value: unknown): Record<string, unknown>[] {
  if (!Array.isArray(value)) fail(`${key}: must be a list, got ${describe(value)}`);
  value.forEach((item, i) => {
    if (!isPlainObject(item)) fail(`${key}[${i}]: must be a mapping, got ${describe(item)}`);
  });
  return value as Record<string, unknown>[];
}

function checkVolumes(items: Record<string, unknown>[]): Set<string> {
  const seen = new Map<string, number>();
  items.forEach((volume, i) => {
    const path = `volumes[${i}]`;
    const name = checkName(path, volume['name']);
    const first = seen.get(name);
    if (first !== undefined)
      fail(`${path}: duplicate volume name ${JSON.stringify(name)} (also volumes[${first}])`);
    seen.set(name, i);
    const sources: string[] = [];
    for (const key of Object.keys(volume)) {
      if (key === 'name') continue;
      if (!VOLUME_SOURCE_KEYS.includes(key)) fail(`${path}: unknown field ${JSON.stringify(key)}`);
      sources.push(key);
    }
    if (sources.length === 0) {
      fail(`${path}: no volume source (expected exactly one of configMap, secret, emptyDir, projected, ...)`);
    }
    if (sources.length > 1)
      fail(`${path}: multiple volume sources (${sources.join(', ')}); expected exactly one`);
    const source = sources[0]!;
    if (!isPlainObject(volume[source])) {
      fail(`${path}.${source}: must be a mapping (use {} for defaults), got ${describe(volume[source])}`);
    }
  });
  return new Set(seen.keys());
}

/** Native sidecars are init containers with restartPolicy Always; nothing else may set it. */
function checkRestartPolicy(path: string, container: Record<string, unknown>, init: boolean): void {
  const policy = container['restartPolicy'];
  if (!init) {
    if (policy !== undefined) {
      fail(
        `${path}: restartPolicy is only allowed on initContainers (a native sidecar is an initContainer with restartPolicy: Always)`,
      );
    }
    return;
  }
  if (policy === 'Always') return;
  if (policy === undefined) {
    fail(
      `${path}: restartPolicy: Always is required: a template's initContainers are native sidecars; a plain init container that does not exit (a proxy) would keep every injected Pod in Init`,
    );
  }
  fail(`${path}: restartPolicy must be Always (a native sidecar), got ${describe(policy)}`);
}

function checkContainer(
  path: string,
  container: Record<string, unknown>,
  volumes: Set<string>,
  init = false,
): string {
  const name = checkName(path, container['name']);
  const image = container['image'];
  if (image === undefined || image === null || image === '') fail(`${path}: missing image`);
  if (typeof image !== 'string') fail(`${path}: image must be a string, got ${describe(image)}`);
  if (image.trim() !== image) fail(`${path}: image must not have leading or trailing whitespace`);
  const mounts = container['volumeMounts'];
  if (mounts !== undefined) checkMounts(path, mounts, volumes);
  checkRestartPolicy(path, container, init);
  return name;
}

function checkMounts(path: string, mounts: unknown, volumes: Set<string>): void {
  const mountPaths = new Map<string, number>();
  checkList(`${path}.volumeMounts`, mounts).forEach((mount, j) => {
    const mountPath = `${path}.volumeMounts[${j}]`;
    const volume = mount['name'];
    if (typeof volume !== 'string' || volume === '') fail(`${mountPath}: missing name`);
    if (!volumes.has(volume)) {
      fail(`${mountPath}: volume ${JSON.stringify(volume)} is not defined in the template's volumes`);
    }
    const at = mount['mountPath'];
    if (typeof at !== 'string' || at === '') fail(`${mountPath}: missing mountPath`);
    const first = mountPaths.get(at);
    if (first !== undefined) {
      fail(`${mountPath}: duplicate mountPath ${JSON.stringify(at)} (also volumeMounts[${first}])`);
    }
    mountPaths.set(at, j);
  });
}

function validate(root: unknown): SidecarTemplate {
  if (root === null || root === undefined) {
    fail('template is empty: expected a mapping with containers, volumes and optionally initContainers');
  }
  if (!isPlainObject(root)) fail(`template must be a mapping, got ${describe(root)}`);
  for (const key of Object.keys(root)) {
    if (!(TOP_LEVEL_KEYS as readonly string[]).includes(key)) {
      fail(`unknown top-level key ${JSON.stringify(key)} (allowed: ${TOP_LEVEL_KEYS.join(', ')})`);
    }
  }
  const lists = {
    containers: root['containers'] === undefined ? [] : checkList('containers', root['containers']),
    initContainers:
      root['initContainers'] === undefined ? [] : checkList('initContainers', root['initContainers']),
    volumes: root['volumes'] === undefined ? [] : checkList('volumes', root['volumes']),
  };
  const volumeNames = checkVolumes(lists.volumes);
  // Regular and init containers share one name space inside a Pod.
  const names = new Map<string, string>();
  for (const key of ['containers', 'initContainers'] as const) {
    lists[key].forEach((container, i) => {
      const path = `${key}[${i}]`;
      const name = checkContainer(path, container, volumeNames, key === 'initContainers');
      const first = names.get(name);
      if (first !== undefined)
        fail(`${path}: duplicate container name ${JSON.stringify(name)} (also ${first})`);
      names.set(name, path);
    });
  }
  // The checks above are what make these casts sound.
  return {
    containers: lists.containers as unknown as V1Container[],
    initContainers: lists.initContainers as unknown as V1Container[],
    volumes: lists.volumes as unknown as V1Volume[],
  };
}

/** JSON with object keys sorted at every level, so equal templates hash equally. */
export { canonicalJson };

/** First 16 hex digits of the sha256 of the template's canonical JSON. */
export function hashTemplate(template: SidecarTemplate): string {
  const normalized = {
    containers: template.containers,
    initContainers: template.initContainers,
    volumes: template.volumes,
  };
  return createHash('sha256').update(canonicalJson(normalized)).digest('hex').slice(0, 16);
}

export function isEmptyTemplate(template: SidecarTemplate): boolean {
  return (
    template.containers.length === 0 && template.initContainers.length === 0 && template.volumes.length === 0
  );
}

/**
 * A sidecar template is a few kilobytes (the course's is one). The yaml library takes about a
 * second per 100 KiB on a busy 2-core machine, all of it on the webhook's event loop, where
 * admission requests wait: a 1 MiB ConfigMap would stall injection for ten seconds, longer
 * than the apiserver's webhook timeout. Larger templates are refused with this reason.
 */
export const MAX_TEMPLATE_BYTES = 64 * 1024;

export function parseTemplate(text: string): ParseTemplateResult {
  if (typeof text !== 'string') return { ok: false, error: `template must be text, got ${describe(text)}` };
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_TEMPLATE_BYTES) {
    return { ok: false, error: `template is ${bytes} bytes, over the limit of ${MAX_TEMPLATE_BYTES}` };
  }
  const doc = parseDocument(text);
  const yamlError = doc.errors[0];
  if (yamlError) {
    // The yaml library appends a multi-line source excerpt; the first line already says where.
    return { ok: false, error: `invalid YAML: ${yamlError.message.split('\n')[0]}` };
  }
  let root: unknown;
  try {
    // Resolving aliases throws (an unknown anchor, or an alias bomb past the library's limit).
    root = doc.toJS();
  } catch (error) {
    return { ok: false, error: `invalid YAML: ${String((error as Error)?.message ?? error).split('\n')[0]}` };
  }
  let template: SidecarTemplate;
  try {
    template = validate(root);
  } catch (error) {
    if (error instanceof TemplateError) return { ok: false, error: error.message };
    throw error;
  }
  return { ok: true, template: deepFreeze(template), hash: hashTemplate(template) };
}

/** Freezes an object graph of plain data (JSON-like), returning it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
