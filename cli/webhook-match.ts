// Which webhooks of a live MutatingWebhookConfiguration the apiserver would call for a Pod
// CREATE: rules, namespaceSelector, objectSelector and matchConditions, evaluated the way the
// apiserver does (k8s.io/apiserver admission/plugin/webhook), so `netmesh explain` can say
// "not called: the namespaceSelector wants netmesh.io/injection In [enabled]". Pure.
//
// matchConditions are CEL; netmesh does not embed a CEL interpreter. The expressions the chart
// and `netmesh webhook --register-url` write are recognised by their exact text and evaluated
// natively; any other expression is reported as not evaluated rather than guessed.
import type {
  V1LabelSelector,
  V1LabelSelectorRequirement,
  V1MatchCondition,
  V1MutatingWebhook,
  V1MutatingWebhookConfiguration,
  V1Pod,
} from '@kubernetes/client-node';
import { LEGACY_INJECT_ANNOTATION, MIRROR_POD_ANNOTATION } from '../webhook/core/contract.ts';
import { podAnnotations, podLabels } from '../webhook/core/selection.ts';
import {
  COMMON_MATCH_CONDITIONS,
  LEGACY_MATCH_CONDITION,
  NAMESPACE_NAME_LABEL,
} from '../webhook/webhook-config.ts';

export interface SelectorResult {
  matches: boolean;
  /** The first requirement that failed, in the selector's own words. */
  failed?: string;
}

function requirementText(r: V1LabelSelectorRequirement): string {
  return r.values && r.values.length > 0
    ? `${r.key} ${r.operator} [${r.values.join(', ')}]`
    : `${r.key} ${r.operator}`;
}

/** metav1.LabelSelector semantics; an absent selector matches everything. */
export function matchSelector(
  selector: V1LabelSelector | undefined,
  labels: Record<string, string>,
): SelectorResult {
  for (const [key, value] of Object.entries(selector?.matchLabels ?? {})) {
    if (labels[key] !== value) return { matches: false, failed: `${key}=${value}` };
  }
  for (const r of selector?.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, r.key);
    const value = labels[r.key];
    let ok: boolean;
    switch (r.operator) {
      case 'In':
        ok = has && (r.values ?? []).includes(value!);
        break;
      case 'NotIn':
        ok = !has || !(r.values ?? []).includes(value!);
        break;
      case 'Exists':
        ok = has;
        break;
      case 'DoesNotExist':
        ok = !has;
        break;
      default:
        // The apiserver rejects unknown operators at creation; treat as not matching.
        ok = false;
    }
    if (!ok) return { matches: false, failed: requirementText(r) };
  }
  return { matches: true };
}

type Evaluator = (pod: V1Pod) => boolean;

const KNOWN_CONDITIONS: ReadonlyMap<string, Evaluator> = new Map<string, Evaluator>([
  [COMMON_MATCH_CONDITIONS[0]!.expression, (pod) => pod.spec?.hostNetwork !== true],
  [
    COMMON_MATCH_CONDITIONS[1]!.expression,
    (pod) => !Object.hasOwn(podAnnotations(pod), MIRROR_POD_ANNOTATION),
  ],
  [LEGACY_MATCH_CONDITION.expression, (pod) => podAnnotations(pod)[LEGACY_INJECT_ANNOTATION] === 'true'],
]);

export function evaluateCondition(condition: V1MatchCondition, pod: V1Pod): boolean | 'unknown' {
  const evaluate = KNOWN_CONDITIONS.get(condition.expression);
  return evaluate ? evaluate(pod) : 'unknown';
}

export interface WebhookMatch {
  name: string;
  /** true: the apiserver calls it; false: it does not; 'unknown': a CEL condition we cannot evaluate. */
  called: boolean | 'unknown';
  /** Why, one clause per check that decided. */
  reasons: string[];
  failurePolicy: string;
}

function ruleMatchesPodCreate(w: V1MutatingWebhook): boolean {
  const any = (list: string[] | undefined, want: string) => (list ?? []).some((v) => v === '*' || v === want);
  return (w.rules ?? []).some(
    (r) =>
      any(r.operations, 'CREATE') &&
      any(r.apiGroups, '') &&
      any(r.apiVersions, 'v1') &&
      (r.resources ?? []).some((res) => res === '*' || res === 'pods' || res === '*/*') &&
      (r.scope === undefined || r.scope === '*' || r.scope === 'Namespaced'),
  );
}

/**
 * The webhooks the apiserver would call for the creation of `pod` in `namespace`.
 * `namespaceLabels` are the namespace's labels; kubernetes.io/metadata.name is added as the
 * apiserver guarantees it.
 */
export function matchWebhooks(
  config: V1MutatingWebhookConfiguration,
  pod: V1Pod,
  namespace: string,
  namespaceLabels: Record<string, string>,
): WebhookMatch[] {
  const nsLabels = { ...namespaceLabels, [NAMESPACE_NAME_LABEL]: namespace };
  const labels = Object.fromEntries(
    Object.entries(podLabels(pod)).filter((e): e is [string, string] => typeof e[1] === 'string'),
  );
  return (config.webhooks ?? []).map((w) => {
    const result = (called: boolean | 'unknown', reasons: string[]): WebhookMatch => ({
      name: w.name,
      called,
      reasons,
      failurePolicy: w.failurePolicy ?? 'Fail',
    });
    if (!ruleMatchesPodCreate(w)) return result(false, ['its rules do not cover Pod CREATE']);
    const ns = matchSelector(w.namespaceSelector, nsLabels);
    if (!ns.matches) return result(false, [`namespaceSelector requires ${ns.failed}`]);
    const obj = matchSelector(w.objectSelector, labels);
    if (!obj.matches) return result(false, [`objectSelector requires ${obj.failed}`]);
    const reasons = ['namespaceSelector and objectSelector match'];
    let unknown = false;
    for (const c of w.matchConditions ?? []) {
      const r = evaluateCondition(c, pod);
      if (r === false) return result(false, [...reasons, `matchCondition ${c.name} is false`]);
      if (r === 'unknown') {
        unknown = true;
        reasons.push(`matchCondition ${c.name} not evaluated here (CEL: ${c.expression})`);
      }
    }
    if ((w.matchConditions ?? []).length > 0 && !unknown) reasons.push('matchConditions true');
    return result(unknown ? 'unknown' : true, reasons);
  });
}

/** The namespaces a configuration excludes by name (kubernetes.io/metadata.name NotIn ...). */
export function excludedByName(config: V1MutatingWebhookConfiguration): string[] {
  const out = new Set<string>();
  for (const w of config.webhooks ?? []) {
    for (const r of w.namespaceSelector?.matchExpressions ?? []) {
      if (r.key === NAMESPACE_NAME_LABEL && r.operator === 'NotIn')
        for (const v of r.values ?? []) out.add(v);
    }
  }
  return [...out].sort();
}
