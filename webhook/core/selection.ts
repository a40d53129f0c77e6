/**
 * Which Pods get the sidecar. The order of the rules matters and is the documented one:
 *   1. never: kube-system, kube-public, kube-node-lease, the webhook's own namespace
 *      (a webhook gating its own pods or the control plane's add-ons can deadlock the cluster),
 *      mirror pods (the kubelet owns them; mutations are not reflected on the node),
 *      hostNetwork pods (the sidecar would bind ports on the node itself);
 *   2. already injected (reinvocation, re-applied manifests): no;
 *   3. pod label netmesh.io/inject="false": no, even in an enabled namespace;
 *   4. namespace label netmesh.io/injection=enabled: yes;
 *   5. pod label netmesh.io/inject="true": yes;
 *   6. the course's annotation initializer.kubernetes.io/envoy="true": yes;
 *   7. otherwise no.
 */
import type { V1Pod } from '@kubernetes/client-node';
import {
  LEGACY_INJECT_ANNOTATION,
  MIRROR_POD_ANNOTATION,
  NAMESPACE_INJECTION_ENABLED,
  NAMESPACE_INJECTION_LABEL,
  POD_INJECT_LABEL,
  STATUS_ANNOTATION,
  SYSTEM_NAMESPACES,
} from './contract.ts';

export type SelectionReason =
  | 'SystemNamespace'
  | 'OwnNamespace'
  | 'MirrorPod'
  | 'HostNetwork'
  | 'AlreadyInjected'
  | 'PodOptOut'
  | 'NamespaceEnabled'
  | 'PodOptIn'
  | 'LegacyAnnotationOptIn'
  | 'NamespaceNotEnabled';

export interface SelectionDecision {
  inject: boolean;
  reason: SelectionReason;
  message: string;
}

export interface SelectionInput {
  pod: V1Pod;
  /** The admission request's namespace (a Pod being created may not carry metadata.namespace). */
  namespace: string;
  namespaceLabels?: Record<string, string> | undefined;
  webhookNamespace: string;
}

/** Reads a string-valued map defensively: admission input is JSON we did not validate. */
function readMap(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

export function podLabels(pod: V1Pod): Record<string, unknown> {
  return readMap(readMap(pod?.metadata)['labels']);
}

export function podAnnotations(pod: V1Pod): Record<string, unknown> {
  return readMap(readMap(pod?.metadata)['annotations']);
}

export function hasOwn(map: Record<string, unknown>, key: string): boolean {
  return Object.hasOwn(map, key);
}

function skip(reason: SelectionReason, message: string): SelectionDecision {
  return { inject: false, reason, message };
}

function select(reason: SelectionReason, message: string): SelectionDecision {
  return { inject: true, reason, message };
}

/**
 * Whether a Pod gets the sidecar, in three steps read top to bottom: places and kinds of Pod that
 * are never injected, then the opt-out and opt-ins (namespace label, pod label, legacy
 * annotation), and otherwise a skip that names every label that was there but not "true".
 */
export function decideSelection(input: SelectionInput): SelectionDecision {
  const facts: SelectionFacts = {
    namespace: input.namespace,
    namespaceLabels: readMap(input.namespaceLabels),
    labels: podLabels(input.pod),
    annotations: podAnnotations(input.pod),
  };
  return neverInjected(input.pod, facts, input.webhookNamespace) ?? optedOutOrIn(facts) ?? notEnabled(facts);
}

interface SelectionFacts {
  namespace: string;
  namespaceLabels: Record<string, unknown>;
  labels: Record<string, unknown>;
  annotations: Record<string, unknown>;
}

/** System and own namespaces, mirror Pods, host-network Pods and Pods we already injected. */
function neverInjected(
  pod: V1Pod,
  { namespace, annotations }: SelectionFacts,
  webhookNamespace: string,
): SelectionDecision | undefined {
  if (SYSTEM_NAMESPACES.includes(namespace)) {
    return skip(
      'SystemNamespace',
      `namespace ${JSON.stringify(namespace)} is a system namespace and is never injected`,
    );
  }
  if (namespace === webhookNamespace) {
    return skip(
      'OwnNamespace',
      `namespace ${JSON.stringify(namespace)} is the webhook's own namespace and is never injected`,
    );
  }
  if (hasOwn(annotations, MIRROR_POD_ANNOTATION)) {
    return skip(
      'MirrorPod',
      `pod is a mirror pod (annotation ${MIRROR_POD_ANNOTATION}) and is never injected`,
    );
  }
  if (readMap(pod?.spec)['hostNetwork'] === true) {
    return skip('HostNetwork', 'pod uses spec.hostNetwork: true; a sidecar would bind ports on the node');
  }
  if (hasOwn(annotations, STATUS_ANNOTATION)) {
    return skip('AlreadyInjected', `pod already carries annotation ${STATUS_ANNOTATION}`);
  }
  return undefined;
}

/** The pod's opt-out wins over everything; then the namespace label, pod label, legacy annotation. */
function optedOutOrIn({
  namespace,
  namespaceLabels,
  labels,
  annotations,
}: SelectionFacts): SelectionDecision | undefined {
  const podLabel = labels[POD_INJECT_LABEL];
  if (podLabel === 'false') {
    return skip('PodOptOut', `pod has label ${POD_INJECT_LABEL}=false`);
  }
  if (namespaceLabels[NAMESPACE_INJECTION_LABEL] === NAMESPACE_INJECTION_ENABLED) {
    return select(
      'NamespaceEnabled',
      `namespace ${JSON.stringify(namespace)} has label ${NAMESPACE_INJECTION_LABEL}=${NAMESPACE_INJECTION_ENABLED}`,
    );
  }
  if (podLabel === 'true') {
    return select('PodOptIn', `pod has label ${POD_INJECT_LABEL}=true`);
  }
  if (annotations[LEGACY_INJECT_ANNOTATION] === 'true') {
    return select('LegacyAnnotationOptIn', `pod has annotation ${LEGACY_INJECT_ANNOTATION}=true`);
  }
  return undefined;
}

/** Nobody opted in: the skip names each label or annotation that was set to something else. */
function notEnabled({ namespace, namespaceLabels, labels, annotations }: SelectionFacts): SelectionDecision {
  const notes: string[] = [];
  const nsValue = namespaceLabels[NAMESPACE_INJECTION_LABEL];
  if (nsValue !== undefined) {
    notes.push(
      `its label ${NAMESPACE_INJECTION_LABEL}=${String(nsValue)} is not "${NAMESPACE_INJECTION_ENABLED}"`,
    );
  }
  const podLabel = labels[POD_INJECT_LABEL];
  if (podLabel !== undefined) {
    notes.push(
      `pod label ${POD_INJECT_LABEL}=${JSON.stringify(podLabel)} is neither "true" nor "false" and was ignored`,
    );
  }
  const legacy = annotations[LEGACY_INJECT_ANNOTATION];
  if (legacy !== undefined) {
    notes.push(`pod annotation ${LEGACY_INJECT_ANNOTATION}=${JSON.stringify(legacy)} is not "true"`);
  }
  return skip(
    'NamespaceNotEnabled',
    `namespace ${JSON.stringify(namespace)} does not have label ${NAMESPACE_INJECTION_LABEL}=${NAMESPACE_INJECTION_ENABLED}` +
      ` and the pod does not opt in (label ${POD_INJECT_LABEL}=true or annotation ${LEGACY_INJECT_ANNOTATION}=true)` +
      (notes.length > 0 ? `; ${notes.join('; ')}` : ''),
  );
}
