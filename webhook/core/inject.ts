/**
 * Injection planning: Pod + template → JSON Patch (RFC 6902) made only of `add` operations.
 *
 * The patch never replaces a list or map the user wrote (declarative API: other writers'
 * fields are left alone); it appends to existing lists with `/-` and creates a list or the
 * annotation map only when it is absent. It refuses, rather than guesses, whenever the
 * result could be rejected by the apiserver (duplicate container or volume names) or would
 * double-inject (reinvocation, re-applied manifests, controller pods with generateName).
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { Operation } from 'fast-json-patch';
import jsonpatch from 'fast-json-patch';
import { POD_INJECT_LABEL, STATUS_ANNOTATION, STATUS_VERSION } from './contract.ts';
import { isEmptyTemplate, isPlainObject, type SidecarTemplate } from './template.ts';

/** The value of the `netmesh.io/status` annotation, serialised as JSON in this key order. */
export interface InjectionStatus {
  version: number;
  containers: string[];
  initContainers: string[];
  volumes: string[];
  templateHash: string;
}

export type SkipReason = 'AlreadyInjected' | 'NameConflict' | 'EmptyTemplate' | 'InvalidPod';

export type InjectionPlan =
  | { action: 'inject'; patch: Operation[]; status: InjectionStatus; warnings: string[] }
  | { action: 'skip'; reason: SkipReason; message: string; warnings: string[] };

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
  const { version, containers, initContainers, volumes, templateHash } = parsed;
  if (typeof version !== 'number' || typeof templateHash !== 'string') return undefined;
  if (!isStringArray(containers) || !isStringArray(initContainers) || !isStringArray(volumes))
    return undefined;
  return { version, containers, initContainers, volumes, templateHash };
}

/** One line, e.g. `containers envoy; volumes envoy-conf`. */
export function summarizeStatus(status: InjectionStatus): string {
  const parts: string[] = [];
  if (status.initContainers.length > 0) parts.push(`initContainers ${status.initContainers.join(', ')}`);
  if (status.containers.length > 0) parts.push(`containers ${status.containers.join(', ')}`);
  if (status.volumes.length > 0) parts.push(`volumes ${status.volumes.join(', ')}`);
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
  for (const sidecar of template.containers) {
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

function orderingWarnings(shape: PodShape, template: SidecarTemplate): string[] {
  const existing = shape.initContainers?.length ?? 0;
  if (existing === 0) return [];
  return template.initContainers
    .filter((c) => c.restartPolicy === 'Always')
    .map(
      (c) =>
        `sidecar init container ${JSON.stringify(c.name)} is appended after the pod's ${existing} init container(s), which run without it`,
    );
}

function alreadyInjectedByStatus(value: unknown, templateHash: string): InjectionPlan {
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

function appendOps(listPath: string, existing: unknown[] | undefined, items: readonly object[]): Operation[] {
  if (items.length === 0) return [];
  if (existing === undefined) {
    return [{ op: 'add', path: listPath, value: items.map((i) => structuredClone(i)) }];
  }
  return items.map((item) => ({ op: 'add', path: `${listPath}/-`, value: structuredClone(item) }));
}

export function planInjection(pod: V1Pod, template: SidecarTemplate, options: PlanOptions): InjectionPlan {
  const shape = readShape(pod);
  if (typeof shape === 'string') {
    return { action: 'skip', reason: 'InvalidPod', message: `cannot inject: ${shape}`, warnings: [] };
  }
  if (shape.annotations && Object.hasOwn(shape.annotations, STATUS_ANNOTATION)) {
    return alreadyInjectedByStatus(shape.annotations[STATUS_ANNOTATION], options.templateHash);
  }
  if (isEmptyTemplate(template)) {
    return {
      action: 'skip',
      reason: 'EmptyTemplate',
      message: 'the template defines no containers, initContainers or volumes; nothing to add',
      warnings: [],
    };
  }

  const wanted = {
    containers: template.containers.map((c) => c.name),
    initContainers: template.initContainers.map((c) => c.name),
    volumes: template.volumes.map((v) => v.name),
  };
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

  const status: InjectionStatus = {
    version: STATUS_VERSION,
    containers: wanted.containers,
    initContainers: wanted.initContainers,
    volumes: wanted.volumes,
    templateHash: options.templateHash,
  };
  const statusJson = serializeStatus(status);

  const patch: Operation[] = [
    ...appendOps(pointer('spec', 'initContainers'), shape.initContainers, template.initContainers),
    ...appendOps(pointer('spec', 'containers'), shape.containers, template.containers),
    ...appendOps(pointer('spec', 'volumes'), shape.volumes, template.volumes),
  ];
  if (shape.metadata === undefined) {
    patch.push({
      op: 'add',
      path: pointer('metadata'),
      value: { annotations: { [STATUS_ANNOTATION]: statusJson } },
    });
  } else if (shape.annotations === undefined) {
    patch.push({
      op: 'add',
      path: pointer('metadata', 'annotations'),
      value: { [STATUS_ANNOTATION]: statusJson },
    });
  } else {
    patch.push({ op: 'add', path: pointer('metadata', 'annotations', STATUS_ANNOTATION), value: statusJson });
  }

  // validate() works on a clone; a failure here is a bug in this module, not bad input.
  const error = jsonpatch.validate(patch, pod);
  if (error) {
    throw new Error(
      `netmesh internal error: generated an invalid JSON Patch (${error.name}: ${error.message})`,
    );
  }

  return {
    action: 'inject',
    patch,
    status,
    warnings: [...portWarnings(shape, template), ...orderingWarnings(shape, template)],
  };
}
