// The Network resource as the controller sees it, and the pure decisions of a reconcile:
// what the status should say, whether it changed, which Event a transition deserves, and what
// object the cluster's CNI should get. No I/O here; controller.ts performs what this decides.
import type { KubernetesObject, V1ConfigMap, V1OwnerReference } from '@kubernetes/client-node';
import { canonicalJson } from '../lib/canonical-json.ts';
import { FIELD_MANAGER, MANAGED_BY_LABEL } from '../lib/ownership.ts';
import type { NetworkSpecValidation } from './network/cidr.ts';
import { formatCidr, validateNetworkSpec } from './network/cidr.ts';
import { buildConflist, buildNadConfig } from './network/cni.ts';
import type { Entry, OverlapIndex } from './network/overlap-index.ts';

export const GROUP = 'netmesh.io';
export const VERSION = 'v1';
export const PLURAL = 'networks';
export const KIND = 'Network';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const FINALIZER = 'netmesh.io/network-cleanup';
export { FIELD_MANAGER, MANAGED_BY_LABEL } from '../lib/ownership.ts';
export const NETWORK_LABEL = 'netmesh.io/network';
export const CONFIGMAP_SUFFIX = '-cni';
export const CONFLIST_KEY = 'cni-conflist.json';
export const NAD_GROUP = 'k8s.cni.cncf.io';
export const NAD_API_VERSION = `${NAD_GROUP}/v1`;
export const NAD_PLURAL = 'network-attachment-definitions';

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface MaterializedRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
}

export interface NetworkStatus {
  observedGeneration?: number;
  phase?: string;
  gateway?: string;
  usableAddresses?: string;
  materialized?: MaterializedRef;
  conditions?: Condition[];
}

export interface Network extends KubernetesObject {
  spec?: { cidr?: unknown; gateway?: unknown };
  status?: NetworkStatus;
}

export type MaterializeMode = 'NetworkAttachmentDefinition' | 'ConfigMap';

/** What a reconcile concluded about one Network. */
export type Outcome =
  | { kind: 'Invalid'; message: string }
  | {
      kind: 'Overlap';
      blocker: Entry;
      message: string;
      validation: Extract<NetworkSpecValidation, { ok: true }>;
    }
  | {
      /** The apiserver refused the object to materialise (400, 403, 422): retried with backoff. */
      kind: 'MaterializeFailed';
      message: string;
      validation: Extract<NetworkSpecValidation, { ok: true }>;
    }
  | {
      /** The name of the object to materialise is held by an object netmesh does not own. */
      kind: 'Conflict';
      message: string;
      validation: Extract<NetworkSpecValidation, { ok: true }>;
    }
  | { kind: 'Ready'; ref: MaterializedRef; validation: Extract<NetworkSpecValidation, { ok: true }> };

export function keyOf(obj: KubernetesObject): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

export function splitKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf('/');
  return { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/**
 * Brings the overlap index in line with `net` (undefined: the Network is gone) and returns
 * every key whose verdict may have changed: the Network itself and whatever overlapped it
 * before the change or overlaps it after. The index holds exactly the Networks whose spec is
 * valid (a Network that is Invalid, for whatever field, claims no range), keyed by CIDR and
 * ranked by creationTimestamp, so it is a function of the stored objects alone: after any
 * sequence of edits it equals the index a freshly started operator builds from a list. That
 * is why validity is re-evaluated on every update, not only when spec.cidr changes: a
 * gateway-only edit can make a Network valid or invalid, and so move it into or out of the
 * index.
 */
export function reindexNetwork(index: OverlapIndex, key: string, net: Network | undefined): string[] {
  const before = index.get(key);
  const v = net ? validateNetworkSpec(net.spec) : undefined;
  const created = net?.metadata?.creationTimestamp;
  const after = v?.ok ? { cidr: v.cidr, rank: { creationTimestamp: created, key } } : undefined;
  if (!before && !after) return [key];
  if (
    before &&
    after &&
    before.cidr.family === after.cidr.family &&
    before.cidr.network === after.cidr.network &&
    before.cidr.prefix === after.cidr.prefix &&
    String(before.rank.creationTimestamp) === String(after.rank.creationTimestamp)
  ) {
    return [key]; // same claim, same rank: nobody else's verdict can change
  }
  const affected = new Set<string>([key]);
  if (before) for (const e of index.overlapping(key)) affected.add(e.key);
  if (after) {
    index.upsert(key, after.cidr, after.rank);
    for (const e of index.overlapping(key)) affected.add(e.key);
  } else {
    index.remove(key);
  }
  return [...affected];
}

export function overlapMessage(blocker: Entry): string {
  const when = Number.isFinite(blocker.createdAt)
    ? `created ${new Date(blocker.createdAt).toISOString()}`
    : 'older';
  return `cidr overlaps Network ${blocker.key} (${formatCidr(blocker.cidr)}, ${when}), which takes precedence; this Network becomes Ready when that one is deleted or moved`;
}

/** The status a Network should carry for an outcome. Keeps lastTransitionTime when nothing transitioned. */
export function desiredStatus(net: Network, outcome: Outcome, now: Date): NetworkStatus {
  const generation = net.metadata?.generation;
  const previous = net.status?.conditions?.find((c) => c.type === 'Ready');
  const ready = outcome.kind === 'Ready';
  const reason = outcome.kind === 'Ready' ? 'Materialized' : outcome.kind;
  const message = boundedMessage(
    outcome.kind === 'Ready'
      ? `materialized as ${outcome.ref.kind} ${outcome.ref.namespace}/${outcome.ref.name}`
      : outcome.message,
  );
  const status: 'True' | 'False' = ready ? 'True' : 'False';
  const transitioned = !previous || previous.status !== status;
  const condition: Condition = {
    type: 'Ready',
    status,
    reason,
    message,
    lastTransitionTime: transitioned
      ? now.toISOString().replace(/\.\d{3}Z$/, 'Z')
      : previous.lastTransitionTime,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
  const result: NetworkStatus = {
    phase: outcome.kind,
    conditions: [condition],
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
  if (outcome.kind !== 'Invalid') {
    result.gateway = outcome.validation.canonicalGateway;
    result.usableAddresses = outcome.validation.usable.toString();
  }
  if (outcome.kind === 'Ready') result.materialized = outcome.ref;
  return result;
}

/** Longest condition message written (the apiserver's limit is 32 KiB; Events take 1 KiB). */
export const MAX_MESSAGE_LENGTH = 1024;

/** Cut to MAX_MESSAGE_LENGTH: whatever a message quotes, the status write must not be refused. */
export function boundedMessage(message: string): string {
  return message.length <= MAX_MESSAGE_LENGTH ? message : `${message.slice(0, MAX_MESSAGE_LENGTH - 1)}…`;
}

/** Deep equality on the JSON form: the controller writes status only when this is false. */
export function sameStatus(a: NetworkStatus | undefined, b: NetworkStatus): boolean {
  return canonicalJson(a ?? {}) === canonicalJson(b);
}

export interface EventSpec {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/**
 * The Event for a status change, or undefined when the Ready condition kept its status,
 * reason and message (a resync or an unrelated edit is not news).
 */
export function transitionEvent(
  previous: NetworkStatus | undefined,
  next: NetworkStatus,
): EventSpec | undefined {
  const before = previous?.conditions?.find((c) => c.type === 'Ready');
  const after = next.conditions?.find((c) => c.type === 'Ready');
  if (!after) return undefined;
  if (
    before &&
    before.status === after.status &&
    before.reason === after.reason &&
    before.message === after.message
  ) {
    return undefined;
  }
  if (after.status === 'True') return { type: 'Normal', reason: 'Ready', message: after.message };
  return { type: 'Warning', reason: after.reason, message: after.message };
}

/** True when `obj` has a controller reference to exactly this Network (same UID). */
export function controlledBy(obj: KubernetesObject, net: Network): boolean {
  return (
    obj.metadata?.ownerReferences?.some(
      (o) =>
        o.controller === true &&
        o.apiVersion === API_VERSION &&
        o.kind === KIND &&
        o.uid === net.metadata?.uid,
    ) ?? false
  );
}

/**
 * Who holds an existing object of the name netmesh would materialise `net` under, when it is
 * not netmesh's to write; undefined when it is. netmesh's ownership mark on a materialised
 * object is a controller reference to the Network: to this Network (its UID), or, together
 * with the label app.kubernetes.io/managed-by=netmesh-operator, to an earlier Network of the
 * same namespace/name (deleted and recreated: the garbage collector is about to remove the old
 * object, and adopting it is what would happen after that anyway). Anything else belongs to
 * someone else and is never changed.
 */
export function foreignHolder(live: KubernetesObject, net: Network): string | undefined {
  if (controlledBy(live, net)) return undefined;
  const controller = live.metadata?.ownerReferences?.find((o) => o.controller === true);
  if (
    controller?.apiVersion === API_VERSION &&
    controller.kind === KIND &&
    controller.name === net.metadata?.name &&
    live.metadata?.labels?.[MANAGED_BY_LABEL] === FIELD_MANAGER
  ) {
    return undefined;
  }
  return controller
    ? `is controlled by ${controller.kind} ${controller.name}`
    : 'was not created by netmesh (it has no controller reference to this Network)';
}

export function conflictMessage(ref: MaterializedRef, holder: string): string {
  return `${ref.kind} ${ref.namespace}/${ref.name} already exists and ${holder}; netmesh does not change objects it does not own. Delete or rename that object and this Network becomes Ready by itself`;
}

export function ownerReference(net: Network): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: net.metadata!.name!,
    uid: net.metadata!.uid!,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export interface NetworkAttachmentDefinition extends KubernetesObject {
  spec?: { config?: string };
}

/**
 * Our labels. The Network's name goes in netmesh.io/network only when it is a valid label
 * value (at most 63 characters; a Network's name may have up to 253): a longer one would make
 * the apiserver refuse the object, and the owner reference names the Network anyway.
 */
function labels(net: Network): Record<string, string> {
  const name = net.metadata!.name!;
  return {
    [MANAGED_BY_LABEL]: FIELD_MANAGER,
    ...(LABEL_VALUE.test(name) ? { [NETWORK_LABEL]: name } : {}),
  };
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

export function configMapName(networkName: string): string {
  return `${networkName}${CONFIGMAP_SUFFIX}`;
}

/** The object the CNI consumes for a valid Network, as a server-side-apply body. */
export function desiredMaterialization(
  net: Network,
  validation: Extract<NetworkSpecValidation, { ok: true }>,
  mode: MaterializeMode,
): {
  object: KubernetesObject & { data?: Record<string, string>; spec?: { config: string } };
  ref: MaterializedRef;
} {
  const namespace = net.metadata!.namespace!;
  const name = net.metadata!.name!;
  const input = {
    namespace,
    name,
    cidr: validation.cidr,
    gateway: validation.gateway,
    family: validation.cidr.family,
  };
  if (mode === 'NetworkAttachmentDefinition') {
    const object = {
      apiVersion: NAD_API_VERSION,
      kind: 'NetworkAttachmentDefinition',
      metadata: { name, namespace, labels: labels(net), ownerReferences: [ownerReference(net)] },
      spec: { config: buildNadConfig(input).json },
    };
    return {
      object,
      ref: { apiVersion: NAD_API_VERSION, kind: 'NetworkAttachmentDefinition', name, namespace },
    };
  }
  const cmName = configMapName(name);
  const object: V1ConfigMap & KubernetesObject = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: cmName, namespace, labels: labels(net), ownerReferences: [ownerReference(net)] },
    data: { [CONFLIST_KEY]: buildConflist(input).json },
  };
  return { object, ref: { apiVersion: 'v1', kind: 'ConfigMap', name: cmName, namespace } };
}

/**
 * True when the live object already carries everything we would apply (our labels, our
 * controller reference, the same payload): then no write is needed. Anything else (an edit by
 * hand, a deleted object, a changed CIDR) is drift that the next apply repairs.
 */
export function materializationUpToDate(
  live: (KubernetesObject & { data?: Record<string, string>; spec?: { config?: string } }) | undefined,
  desired: KubernetesObject & { data?: Record<string, string>; spec?: { config?: string } },
): boolean {
  if (!live) return false;
  const wantLabels = desired.metadata?.labels ?? {};
  for (const [k, v] of Object.entries(wantLabels)) if (live.metadata?.labels?.[k] !== v) return false;
  const owner = desired.metadata?.ownerReferences?.[0];
  if (!live.metadata?.ownerReferences?.some((o) => o.uid === owner?.uid && o.controller === true))
    return false;
  if (desired.data) {
    // Only the keys we own: keys another manager added cannot be removed by our apply, and
    // insisting on them would re-apply on every reconcile without ever converging.
    const liveData = live.data ?? {};
    for (const [k, v] of Object.entries(desired.data)) if (liveData[k] !== v) return false;
  }
  if (desired.spec && live.spec?.config !== desired.spec.config) return false;
  return true;
}

export function hasFinalizer(net: Network): boolean {
  return net.metadata?.finalizers?.includes(FINALIZER) ?? false;
}
