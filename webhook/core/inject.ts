/**
 * Injection planning: Pod + template → JSON Patch (RFC 6902) made only of `add` operations.
 *
 * The patch never replaces a list or map the user wrote (declarative API: other writers'
 * fields are left alone); it appends to existing lists with `/-` and creates a list or the
 * annotation map only when it is absent. The template's init containers (native sidecars,
 * `restartPolicy: Always`) are the exception to appending: they are inserted at the front of
 * `spec.initContainers` (`/spec/initContainers/0`, `/1`, ...), because init containers start in
 * order and the Pod's own init containers may need the proxy, as with Istio's native sidecars.
 * It refuses, rather than guesses, whenever the result could be rejected by the apiserver
 * (duplicate container or volume names) or would double-inject (reinvocation, re-applied
 * manifests, controller pods with generateName). Per-Pod override annotations
 * (core/overrides.ts) adjust the sidecar before the patch is built.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { Operation } from 'fast-json-patch';
import jsonpatch from 'fast-json-patch';
import { POD_INJECT_LABEL, STATUS_ANNOTATION, STATUS_VERSION } from './contract.ts';
import { applyOverrides, hasOverrideAnnotations } from './overrides.ts';
import { deepFreeze, isEmptyTemplate, isPlainObject, type SidecarTemplate } from './template.ts';

/** The value of the `netmesh.io/status` annotation, serialised as JSON in this key order. */
export interface InjectionStatus {
  version: number;
  containers: string[];
  initContainers: string[];
  volumes: string[];
  templateHash: string;
  /** The per-Pod override annotations applied to the sidecar (core/overrides.ts); absent when none. */
  overrides?: Record<string, string>;
}

export type SkipReason = 'AlreadyInjected' | 'NameConflict' | 'EmptyTemplate' | 'InvalidPod';

export type SkipPlan = { action: 'skip'; reason: SkipReason; message: string; warnings: string[] };

export type InjectionPlan =
  | { action: 'inject'; patch: Operation[]; status: InjectionStatus; warnings: string[] }
  | SkipPlan;

export interface PlanOptions {
  templateHash: string;
}

/** RFC 6901: `~` first, otherwise the `~1` produced for `/` would be re-escaped. */
export function escapePointer(segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1');
}

export function pointer(...segments: string[]): string {
  return segments.map((s) => `/${escapePointer(s)}`).join('');
}

export function serializeStatus(status: InjectionStatus): string {
  // Explicit key order: the annotation is read by people as well as by code.
  return JSON.stringify({
    version: status.version,
    containers: status.containers,
    initContainers: status.initContainers,
    volumes: status.volumes,
    templateHash: status.templateHash,
    ...(status.overrides && Object.keys(status.overrides).length > 0 ? { overrides: status.overrides } : {}),
  });
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

/** Returns undefined for anything that is not a well-formed record (hand-edited, other tool). */
export function parseInjectionStatus(value: unknown): InjectionStatus | undefined {
  if (typeof value !== 'string') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (!isPlainObject(parsed)) return undefined;
  const { version, containers, initContainers, volumes, templateHash, overrides } = parsed;
  if (typeof version !== 'number' || typeof templateHash !== 'string') return undefined;
  if (!isStringArray(containers) || !isStringArray(initContainers) || !isStringArray(volumes))
    return undefined;
  if (overrides !== undefined) {
    if (!isPlainObject(overrides) || !Object.values(overrides).every((v) => typeof v === 'string'))
      return undefined;
    return {
      version,
      containers,
      initContainers,
      volumes,
      templateHash,
      overrides: overrides as Record<string, string>,
    };
  }
  return { version, containers, initContainers, volumes, templateHash };
}

/** One line, e.g. `containers envoy; volumes envoy-conf`. */
export function summarizeStatus(status: InjectionStatus): string {
  const parts: string[] = [];
  if (status.initContainers.length > 0) parts.push(`initContainers ${status.initContainers.join(', ')}`);
  if (status.containers.length > 0) parts.push(`containers ${status.containers.join(', ')}`);
  if (status.volumes.length > 0) parts.push(`volumes ${status.volumes.join(', ')}`);
  const overrides = Object.entries(status.overrides ?? {});
  if (overrides.length > 0) parts.push(`overrides ${overrides.map(([k, v]) => `${k}=${v}`).join(', ')}`);
  return parts.join('; ');
}

interface PodShape {
  metadata: Record<string, unknown> | undefined;
  annotations: Record<string, unknown> | undefined;
  containers: unknown[] | undefined;
  initContainers: unknown[] | undefined;
  ephemeralContainers: unknown[] | undefined;
  volumes: unknown[] | undefined;
}

/** Admission input is JSON we did not validate: absent and null both mean "not there". */
function readShape(pod: unknown): PodShape | string {
  if (!isPlainObject(pod)) return 'pod is not an object';
  const metadata = pod['metadata'];
  if (metadata != null && !isPlainObject(metadata)) return 'metadata is not a mapping';
  const annotations = metadata?.['annotations'];
  if (annotations != null && !isPlainObject(annotations)) return 'metadata.annotations is not a mapping';
  const spec = pod['spec'];
  if (spec == null) return 'pod has no spec';
  if (!isPlainObject(spec)) return 'spec is not a mapping';
  const lists: Record<string, unknown[] | undefined> = {};
  for (const key of ['containers', 'initContainers', 'ephemeralContainers', 'volumes']) {
    const value = spec[key];
    if (value != null && !Array.isArray(value)) return `spec.${key} is not a list`;
    lists[key] = value ?? undefined;
  }
  return {
    metadata: metadata ?? undefined,
    annotations: annotations ?? undefined,
    containers: lists['containers'],
    initContainers: lists['initContainers'],
    ephemeralContainers: lists['ephemeralContainers'],
    volumes: lists['volumes'],
  };
}

function namesOf(list: readonly unknown[] | undefined): string[] {
  const names: string[] = [];
  for (const item of list ?? []) {
    if (isPlainObject(item) && typeof item['name'] === 'string') names.push(item['name']);
  }
  return names;
}

function quoted(names: readonly string[]): string {
  return names.map((n) => JSON.stringify(n)).join(', ');
}

function portsOf(container: unknown): string[] {
  if (!isPlainObject(container) || !Array.isArray(container['ports'])) return [];
  const ports: string[] = [];
  for (const port of container['ports']) {
    if (isPlainObject(port) && typeof port['containerPort'] === 'number') {
      ports.push(
        `${port['containerPort']}/${typeof port['protocol'] === 'string' ? port['protocol'] : 'TCP'}`,
      );
    }
  }
  return ports;
}

/** Containers of one Pod share a network namespace: the same port in two of them cannot both bind. */
function portWarnings(shape: PodShape, template: SidecarTemplate): string[] {
  const warnings: string[] = [];
  for (const sidecar of [...template.initContainers, ...template.containers]) {
    const sidecarPorts = new Set(portsOf(sidecar));
    for (const container of shape.containers ?? []) {
      const name = isPlainObject(container) ? String(container['name']) : '?';
      for (const port of portsOf(container)) {
        if (sidecarPorts.has(port)) {
          warnings.push(
            `container ${JSON.stringify(name)} and sidecar ${JSON.stringify(sidecar.name)} both declare port ${port}; one of them will fail to bind`,
          );
        }
      }
    }
  }
  return warnings;
}

function alreadyInjectedByStatus(value: unknown, templateHash: string): SkipPlan {
  const status = parseInjectionStatus(value);
  const warnings: string[] = [];
  if (!status) {
    warnings.push(
      `annotation ${STATUS_ANNOTATION} is not a valid injection record; treating the pod as injected`,
    );
  } else if (status.templateHash !== templateHash) {
    warnings.push(
      `pod was injected from template ${status.templateHash}, the current template is ${templateHash}; recreate the pod to pick up the new sidecar`,
    );
  }
  const what = status
    ? ` (${summarizeStatus(status) || 'nothing added'}, template ${status.templateHash})`
    : '';
  return {
    action: 'skip',
    reason: 'AlreadyInjected',
    message: `pod already carries annotation ${STATUS_ANNOTATION}${what}`,
    warnings,
  };
}

/**
 * Where the patch goes: which of the lists and maps it adds to already exist in the Pod. With
 * the template, this is all the patch depends on, so a template has at most 24 distinct patches.
 */
interface PatchTarget {
  initContainers: boolean;
  containers: boolean;
  volumes: boolean;
  metadata: 'absent' | 'noAnnotations' | 'annotations';
}

function targetOf(shape: PodShape): PatchTarget {
  return {
    initContainers: shape.initContainers !== undefined,
    containers: shape.containers !== undefined,
    volumes: shape.volumes !== undefined,
    metadata:
      shape.metadata === undefined
        ? 'absent'
        : shape.annotations === undefined
          ? 'noAnnotations'
          : 'annotations',
  };
}

function targetKey(t: PatchTarget): string {
  return `${+t.initContainers}${+t.containers}${+t.volumes}${t.metadata}`;
}

/** Inserts `items` before the list's first element, in their order (index i lands at i). */
function prependOps(listPath: string, exists: boolean, items: readonly object[]): Operation[] {
  if (items.length === 0) return [];
  if (!exists) {
    return [{ op: 'add', path: listPath, value: items.map((i) => structuredClone(i)) }];
  }
  return items.map((item, i) => ({ op: 'add', path: `${listPath}/${i}`, value: structuredClone(item) }));
}

function appendOps(listPath: string, exists: boolean, items: readonly object[]): Operation[] {
  if (items.length === 0) return [];
  if (!exists) {
    return [{ op: 'add', path: listPath, value: items.map((i) => structuredClone(i)) }];
  }
  return items.map((item) => ({ op: 'add', path: `${listPath}/-`, value: structuredClone(item) }));
}

/** The patch for one target, as fresh objects (nothing shared with the template). */
function buildPatch(target: PatchTarget, template: SidecarTemplate, statusJson: string): Operation[] {
  const patch: Operation[] = [
    ...prependOps(pointer('spec', 'initContainers'), target.initContainers, template.initContainers),
    ...appendOps(pointer('spec', 'containers'), target.containers, template.containers),
    ...appendOps(pointer('spec', 'volumes'), target.volumes, template.volumes),
  ];
  if (target.metadata === 'absent') {
    patch.push({
      op: 'add',
      path: pointer('metadata'),
      value: { annotations: { [STATUS_ANNOTATION]: statusJson } },
    });
  } else if (target.metadata === 'noAnnotations') {
    patch.push({
      op: 'add',
      path: pointer('metadata', 'annotations'),
      value: { [STATUS_ANNOTATION]: statusJson },
    });
  } else {
    patch.push({ op: 'add', path: pointer('metadata', 'annotations', STATUS_ANNOTATION), value: statusJson });
  }
  return patch;
}

/** The smallest document with the target's structure: what an add operation's validity depends on. */
function skeletonOf(target: PatchTarget): Record<string, unknown> {
  const spec: Record<string, unknown[]> = {};
  if (target.initContainers) spec['initContainers'] = [];
  if (target.containers) spec['containers'] = [];
  if (target.volumes) spec['volumes'] = [];
  const doc: Record<string, unknown> = { spec };
  if (target.metadata !== 'absent')
    doc['metadata'] = target.metadata === 'annotations' ? { annotations: {} } : {};
  return doc;
}

function internalError(detail: string): Error {
  return new Error(`netmesh internal error: generated an invalid JSON Patch (${detail})`);
}

/** fast-json-patch's own verdict on the patch, against the target's skeleton (no Pod clone). */
function validatePatch(patch: Operation[], target: PatchTarget): void {
  const error = jsonpatch.validate(patch, skeletonOf(target));
  if (error) throw internalError(`${error.name}: ${error.message}`);
}

/** Where one add operation lands: its parent's segments, and whether the parent is a list (`/-`, `/0`). */
interface AddTarget {
  path: string;
  parent: readonly string[];
  list: boolean;
}

/** The distinct parents of a patch's operations (appending several items needs one check). */
function addTargetsOf(patch: readonly Operation[]): AddTarget[] {
  const seen = new Map<string, AddTarget>();
  for (const op of patch) {
    const segments = op.path
      .split('/')
      .slice(1)
      .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
    // Array indices appear only under spec's lists (annotation keys are never bare digits here).
    const last = segments.at(-1) ?? '';
    const list = last === '-' || (segments[0] === 'spec' && /^(0|[1-9][0-9]*)$/.test(last));
    const parent = segments.slice(0, -1);
    const key = `${list}${JSON.stringify(parent)}`;
    if (!seen.has(key)) seen.set(key, { path: op.path, parent, list });
  }
  return [...seen.values()];
}

/**
 * Checks, on the Pod itself and without copying it, that every operation's parent is there:
 * an add needs an existing object, or an existing array for `/-`, and creating a key is always
 * allowed. A failure means readShape and the patch disagree: a bug here, not bad input.
 */
function assertAddable(pod: unknown, targets: readonly AddTarget[]): void {
  for (const target of targets) {
    let node: unknown = pod;
    for (const segment of target.parent) node = isPlainObject(node) ? node[segment] : undefined;
    if (target.list ? !Array.isArray(node) : !isPlainObject(node)) {
      throw internalError(`the parent of ${target.path} is not in the pod`);
    }
  }
}

type Decision = SkipPlan | { action: 'inject'; shape: PodShape; status: InjectionStatus; statusJson: string };

/** What the decision needs from the template and its hash: the same for every Pod. */
interface TemplateFacts {
  wanted: { containers: string[]; initContainers: string[]; volumes: string[] };
  status: InjectionStatus;
  statusJson: string;
}

function factsOf(template: SidecarTemplate, templateHash: string): TemplateFacts {
  const wanted = {
    containers: template.containers.map((c) => c.name),
    initContainers: template.initContainers.map((c) => c.name),
    volumes: template.volumes.map((v) => v.name),
  };
  const status: InjectionStatus = {
    version: STATUS_VERSION,
    containers: wanted.containers,
    initContainers: wanted.initContainers,
    volumes: wanted.volumes,
    templateHash,
  };
  return { wanted, status, statusJson: serializeStatus(status) };
}

/** Everything planInjection decides, without building the patch. */
function decide(
  pod: unknown,
  template: SidecarTemplate,
  templateHash: string,
  facts: () => TemplateFacts,
): Decision {
  const shape = readShape(pod);
  if (typeof shape === 'string') {
    return { action: 'skip', reason: 'InvalidPod', message: `cannot inject: ${shape}`, warnings: [] };
  }
  if (shape.annotations && Object.hasOwn(shape.annotations, STATUS_ANNOTATION)) {
    return alreadyInjectedByStatus(shape.annotations[STATUS_ANNOTATION], templateHash);
  }
  if (isEmptyTemplate(template)) {
    return {
      action: 'skip',
      reason: 'EmptyTemplate',
      message: 'the template defines no containers, initContainers or volumes; nothing to add',
      warnings: [],
    };
  }

  const { wanted, status, statusJson } = facts();
  const have = {
    containers: namesOf(shape.containers),
    initContainers: namesOf(shape.initContainers),
    ephemeralContainers: namesOf(shape.ephemeralContainers),
    volumes: namesOf(shape.volumes),
  };

  // Injected without a record (by hand, by an older injector, by `kubectl apply` of an
  // injected manifest whose annotations were stripped): injecting again would duplicate names.
  const sidecarCount = wanted.containers.length + wanted.initContainers.length;
  const holdsAll =
    sidecarCount > 0
      ? wanted.containers.every((n) => have.containers.includes(n)) &&
        wanted.initContainers.every((n) => have.initContainers.includes(n))
      : wanted.volumes.every((n) => have.volumes.includes(n));
  if (holdsAll) {
    const missingVolumes = wanted.volumes.filter((n) => !have.volumes.includes(n));
    const held = sidecarCount > 0 ? [...wanted.initContainers, ...wanted.containers] : wanted.volumes;
    return {
      action: 'skip',
      reason: 'AlreadyInjected',
      message: `pod already has the template's ${sidecarCount > 0 ? 'containers' : 'volumes'} ${quoted(held)} (no ${STATUS_ANNOTATION} annotation); not injecting again`,
      warnings:
        missingVolumes.length > 0 ? [`template volumes missing from the pod: ${quoted(missingVolumes)}`] : [],
    };
  }

  // Container names are unique across all container lists of a Pod, volume names per Pod.
  const podContainerNames = new Set([
    ...have.containers,
    ...have.initContainers,
    ...have.ephemeralContainers,
  ]);
  const containerConflicts = [...wanted.initContainers, ...wanted.containers].filter((n) =>
    podContainerNames.has(n),
  );
  const volumeConflicts = wanted.volumes.filter((n) => have.volumes.includes(n));
  if (containerConflicts.length > 0 || volumeConflicts.length > 0) {
    const parts: string[] = [];
    if (containerConflicts.length > 0) {
      parts.push(`container${containerConflicts.length > 1 ? 's' : ''} ${quoted(containerConflicts)}`);
    }
    if (volumeConflicts.length > 0) {
      parts.push(`volume${volumeConflicts.length > 1 ? 's' : ''} ${quoted(volumeConflicts)}`);
    }
    return {
      action: 'skip',
      reason: 'NameConflict',
      message: `pod already defines ${parts.join(' and ')} that the template also uses; not injecting (rename them, or opt out with label ${POD_INJECT_LABEL}=false)`,
      warnings: [],
    };
  }

  return { action: 'inject', shape, status, statusJson };
}

function injectionWarnings(shape: PodShape, template: SidecarTemplate): string[] {
  return portWarnings(shape, template);
}

/**
 * The Pod's override annotations applied to the template's sidecar: the template to inject and
 * the record to write. Without any override annotation, the template and record as they are.
 */
function overridden(
  decision: Extract<Decision, { action: 'inject' }>,
  template: SidecarTemplate,
): { template: SidecarTemplate; status: InjectionStatus; statusJson: string; warnings: string[] } {
  const { shape } = decision;
  if (!hasOverrideAnnotations(shape.annotations)) {
    return { template, status: decision.status, statusJson: decision.statusJson, warnings: [] };
  }
  const result = applyOverrides(shape.annotations, template, [
    ...(shape.containers ?? []),
    ...(shape.initContainers ?? []),
  ]);
  if (Object.keys(result.applied).length === 0) {
    return { template, status: decision.status, statusJson: decision.statusJson, warnings: result.warnings };
  }
  const status: InjectionStatus = { ...decision.status, overrides: result.applied };
  return {
    template: result.template,
    status,
    statusJson: serializeStatus(status),
    warnings: result.warnings,
  };
}

export function planInjection(pod: V1Pod, template: SidecarTemplate, options: PlanOptions): InjectionPlan {
  const decision = decide(pod, template, options.templateHash, () => factsOf(template, options.templateHash));
  if (decision.action === 'skip') return decision;
  const effective = overridden(decision, template);
  const target = targetOf(decision.shape);
  const patch = buildPatch(target, effective.template, effective.statusJson);
  validatePatch(patch, target);
  assertAddable(pod, addTargetsOf(patch));
  return {
    action: 'inject',
    patch,
    status: effective.status,
    warnings: [...injectionWarnings(decision.shape, effective.template), ...effective.warnings],
  };
}

/** planInjection's result with the patch as the apiserver wants it: base64 of its JSON. */
export type EncodedInjectionPlan =
  | { action: 'inject'; patchBase64: string; status: Readonly<InjectionStatus>; warnings: string[] }
  | SkipPlan;

/** Per template: its facts and the encoded patch of each target seen so far, for one hash. */
interface EncodedPatches {
  templateHash: string;
  facts: TemplateFacts;
  byTarget: Map<string, { patchBase64: string; targets: AddTarget[] }>;
}

const encodedPatches = new WeakMap<SidecarTemplate, EncodedPatches>();

/**
 * The webhook's planInjection: the same decision, and the same patch (a test holds them equal),
 * but the patch comes encoded, built and validated once per template and target instead of
 * cloned, serialised and base64-encoded for every Pod. Only frozen templates (parseTemplate's)
 * are cached, since a cache keyed by an object that can change would serve stale patches.
 */
export function planEncodedInjection(
  pod: V1Pod,
  template: SidecarTemplate,
  options: PlanOptions,
): EncodedInjectionPlan {
  let cache = Object.isFrozen(template) ? encodedPatches.get(template) : undefined;
  if (cache === undefined || cache.templateHash !== options.templateHash) {
    // Frozen: every plan of this template returns these objects.
    const facts = deepFreeze(factsOf(template, options.templateHash));
    cache = { templateHash: options.templateHash, facts, byTarget: new Map() };
    if (Object.isFrozen(template)) encodedPatches.set(template, cache);
  }
  const { facts } = cache;
  const decision = decide(pod, template, options.templateHash, () => facts);
  if (decision.action === 'skip') return decision;
  if (hasOverrideAnnotations(decision.shape.annotations)) {
    // A Pod of its own: the patch depends on its annotations, so it is neither cached nor cached from.
    const plan = planInjection(pod, template, options);
    if (plan.action === 'skip') return plan;
    return {
      action: 'inject',
      patchBase64: Buffer.from(JSON.stringify(plan.patch), 'utf8').toString('base64'),
      status: plan.status,
      warnings: plan.warnings,
    };
  }
  const target = targetOf(decision.shape);
  const key = targetKey(target);
  let encoded = cache.byTarget.get(key);
  if (encoded === undefined) {
    const patch = buildPatch(target, template, decision.statusJson);
    validatePatch(patch, target);
    encoded = {
      patchBase64: Buffer.from(JSON.stringify(patch), 'utf8').toString('base64'),
      targets: addTargetsOf(patch),
    };
    cache.byTarget.set(key, encoded);
  }
  assertAddable(pod, encoded.targets);
  return {
    action: 'inject',
    patchBase64: encoded.patchBase64,
    status: decision.status,
    warnings: injectionWarnings(decision.shape, template),
  };
}
