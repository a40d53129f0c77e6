// The decision behind `netmesh explain`, from what was read (the Pod or pod template, the
// namespace's labels, the live webhook configuration, the template): whether new Pods will be
// injected, and the first thing that stops them. Pure; the command does the reading.
import type { V1MutatingWebhookConfiguration, V1Pod } from '@kubernetes/client-node';
import { STATUS_ANNOTATION } from '../webhook/core/contract.ts';
import {
  type InjectionStatus,
  parseInjectionStatus,
  planInjection,
  summarizeStatus,
} from '../webhook/core/inject.ts';
import { decideSelection, type SelectionDecision } from '../webhook/core/selection.ts';
import type { SidecarTemplate } from '../webhook/core/template.ts';
import { matchWebhooks, type WebhookMatch } from './webhook-match.ts';

export interface ExplainInput {
  kind: string;
  name: string;
  namespace: string;
  /** Where the object came from: "cluster" or a file name. */
  source: string;
  /** The Pod, or the workload's pod template (metadata + spec). */
  pod: V1Pod;
  /** undefined: not known (no cluster and no --namespace-labels). */
  namespaceLabels: Record<string, string> | undefined;
  /** undefined: not consulted; null: not found. */
  webhookConfiguration?: { name: string; object: V1MutatingWebhookConfiguration | null } | undefined;
  /** The template, or why there is none; undefined: not consulted (offline, no --template). */
  template?: { template: SidecarTemplate; hash: string; where: string } | { error: string } | undefined;
  webhookNamespace: string;
}

export interface Explanation {
  object: { kind: string; namespace: string; name: string; source: string };
  namespaceLabels: Record<string, string> | null;
  webhookConfiguration?: { name: string; found: boolean; webhooks: WebhookMatch[] };
  /** For a live Pod: what was injected into it at its creation. */
  current?: { injected: boolean; status?: InjectionStatus; templateCurrent?: boolean };
  selection: SelectionDecision;
  plan?:
    | { action: 'inject'; adds: string; templateHash: string; template: string }
    | { action: 'skip'; reason: string; message: string };
  template?: { source: string; hash: string } | { error: string };
  warnings: string[];
  /** Whether new Pods will carry the sidecar. */
  injected: boolean;
  /** One sentence: why (not). */
  reason: string;
}

/** A Pod as it would be re-created: the sidecar and annotation netmesh added removed. */
export function withoutInjection(pod: V1Pod): { pod: V1Pod; status: InjectionStatus | undefined } {
  const annotations = pod.metadata?.annotations ?? {};
  const status = parseInjectionStatus(annotations[STATUS_ANNOTATION]);
  if (!Object.hasOwn(annotations, STATUS_ANNOTATION)) return { pod, status: undefined };
  const copy = structuredClone(pod);
  delete copy.metadata!.annotations![STATUS_ANNOTATION];
  if (status && copy.spec) {
    copy.spec.containers = copy.spec.containers.filter((c) => !status.containers.includes(c.name));
    if (copy.spec.initContainers) {
      copy.spec.initContainers = copy.spec.initContainers.filter(
        (c) => !status.initContainers.includes(c.name),
      );
    }
    if (copy.spec.volumes)
      copy.spec.volumes = copy.spec.volumes.filter((v) => !status.volumes.includes(v.name));
  }
  return { pod: copy, status };
}

export function explain(input: ExplainInput): Explanation {
  const warnings: string[] = [];
  const isLivePod = input.kind === 'Pod' && input.source === 'cluster';
  const live = isLivePod ? liveInjection(input, warnings) : undefined;
  const pod = live?.pod ?? input.pod;
  const labels = input.namespaceLabels;
  if (labels === undefined) {
    warnings.push('namespace labels unknown (no cluster): pass --namespace-labels k=v,... or a kubeconfig');
  }
  const selection = decideSelection({
    pod,
    namespace: input.namespace,
    namespaceLabels: labels ?? {},
    webhookNamespace: input.webhookNamespace,
  });
  const out: Explanation = {
    object: { kind: input.kind, namespace: input.namespace, name: input.name, source: input.source },
    namespaceLabels: labels ?? null,
    selection,
    warnings,
    injected: false,
    reason: '',
    ...(live ? { current: live.current } : {}),
  };
  if (input.template) {
    out.template =
      'error' in input.template
        ? { error: input.template.error }
        : { source: input.template.where, hash: input.template.hash };
  }
  const verdict = (injected: boolean, reason: string): Explanation => {
    out.injected = injected;
    out.reason = reason;
    return out;
  };
  // 1. Does the apiserver call the webhook at all?
  const calledUnknown = input.webhookConfiguration
    ? explainCalls(out, input.webhookConfiguration, pod, input.namespace, labels ?? {})
    : false;
  // 2. Pods that already carry the sidecar (a manifest injected offline): nothing more to do.
  if (selection.reason === 'AlreadyInjected' && !isLivePod) {
    return verdict(
      true,
      `the pod template already carries the sidecar (annotation ${STATUS_ANNOTATION}, injected offline)`,
    );
  }
  const notCalled = whyNotCalled(out.webhookConfiguration, calledUnknown);
  if (notCalled) return verdict(false, notCalled);
  if (calledUnknown)
    warnings.push('a matchCondition could not be evaluated here; the result assumes it is true');
  // 3. The webhook's own selection.
  if (!selection.inject) return verdict(false, selection.message);
  // 4. The template and the plan.
  return explainPlan(out, input, pod, selection.message, verdict);
}

/** A live Pod: what it got at creation, and the Pod as it was before (to decide again). */
function liveInjection(
  input: ExplainInput,
  warnings: string[],
): { pod: V1Pod; current: NonNullable<Explanation['current']> } {
  const stripped = withoutInjection(input.pod);
  const templateHash = input.template && 'hash' in input.template ? input.template.hash : undefined;
  const current: NonNullable<Explanation['current']> = stripped.status
    ? {
        injected: true,
        status: stripped.status,
        ...(templateHash ? { templateCurrent: stripped.status.templateHash === templateHash } : {}),
      }
    : { injected: false };
  if (current.templateCurrent === false) {
    warnings.push(
      `this Pod was injected from template ${stripped.status!.templateHash}; the template is now ${templateHash}: re-create it to get the current sidecar`,
    );
  }
  return { pod: stripped.pod, current };
}

/**
 * Which webhooks of the live configuration the apiserver would call; true when that depends
 * on a matchCondition that cannot be evaluated here.
 */
function explainCalls(
  out: Explanation,
  config: NonNullable<ExplainInput['webhookConfiguration']>,
  pod: V1Pod,
  namespace: string,
  labels: Record<string, string>,
): boolean {
  const { name, object } = config;
  if (!object) {
    out.webhookConfiguration = { name, found: false, webhooks: [] };
    return false;
  }
  const webhooks = matchWebhooks(object, pod, namespace, labels);
  out.webhookConfiguration = { name, found: true, webhooks };
  const withoutCaBundle = webhooks.some(
    (w) =>
      (w.called === true || w.called === 'unknown') &&
      !object.webhooks?.find((x) => x.name === w.name)?.clientConfig.caBundle,
  );
  if (withoutCaBundle) {
    out.warnings.push(
      `MutatingWebhookConfiguration ${name} has no caBundle yet: the apiserver cannot call the webhook (netmesh patches it in at start)`,
    );
  }
  return !webhooks.some((w) => w.called === true) && webhooks.some((w) => w.called === 'unknown');
}

/** Why the apiserver would not call netmesh for this Pod, if it would not. */
function whyNotCalled(wc: Explanation['webhookConfiguration'], calledUnknown: boolean): string | undefined {
  if (wc && !wc.found) {
    return `MutatingWebhookConfiguration ${wc.name} not found: the apiserver calls no netmesh webhook`;
  }
  if (wc && !calledUnknown && !wc.webhooks.some((w) => w.called === true)) {
    const why = wc.webhooks.map((w) => `${w.name}: ${w.reasons[w.reasons.length - 1]}`).join('; ');
    return `the apiserver calls none of the webhooks of ${wc.name} for this Pod (${why || 'it has no webhooks'})`;
  }
  return undefined;
}

/** The last step: whether the template can be injected into this Pod. */
function explainPlan(
  out: Explanation,
  input: ExplainInput,
  pod: V1Pod,
  selected: string,
  verdict: (injected: boolean, reason: string) => Explanation,
): Explanation {
  if (!input.template) {
    return verdict(true, `${selected} (the plan was not evaluated: no template given)`);
  }
  if ('error' in input.template) {
    return verdict(false, `no usable template (${input.template.error}): the webhook admits Pods unchanged`);
  }
  const plan = planInjection(pod, input.template.template, { templateHash: input.template.hash });
  out.warnings.push(...plan.warnings);
  if (plan.action === 'skip') {
    out.plan = { action: 'skip', reason: plan.reason, message: plan.message };
    return verdict(false, plan.message);
  }
  out.plan = {
    action: 'inject',
    adds: summarizeStatus(plan.status),
    templateHash: input.template.hash,
    template: input.template.where,
  };
  return verdict(true, selected);
}

function labelText(labels: Record<string, string>): string {
  const entries = Object.entries(labels);
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(', ') : '(no labels)';
}

export function renderExplanation(e: Explanation): string {
  const o = e.object;
  const what =
    o.kind === 'Pod' ? `Pod ${o.namespace}/${o.name}` : `${o.kind} ${o.namespace}/${o.name} (pod template)`;
  const lines = [`${what}: new Pods will ${e.injected ? '' : 'NOT '}be injected`];
  if (e.current) {
    lines.push(
      e.current.status
        ? `  this Pod: injected at creation (${summarizeStatus(e.current.status)}; template ${e.current.status.templateHash}${e.current.templateCurrent === false ? ', not the current one' : ''})`
        : '  this Pod: not injected at creation',
    );
  }
  lines.push(
    `  namespace ${o.namespace}: ${e.namespaceLabels ? labelText(e.namespaceLabels) : 'labels unknown'}`,
  );
  if (e.webhookConfiguration) {
    const wc = e.webhookConfiguration;
    if (!wc.found) lines.push(`  webhook configuration ${wc.name}: not found`);
    else {
      lines.push(`  webhook configuration ${wc.name}:`);
      for (const w of wc.webhooks) {
        const mark = w.called === true ? 'called' : w.called === false ? 'not called' : 'maybe called';
        lines.push(`    ${w.name}: ${mark} (${w.reasons.join('; ')})`);
      }
    }
  }
  lines.push(
    `  selected: ${e.selection.inject ? 'yes' : 'no'} (${e.selection.reason}): ${e.selection.message}`,
  );
  if (e.template && 'error' in e.template) lines.push(`  template: ${e.template.error}`);
  if (e.plan?.action === 'inject') {
    lines.push(
      `  plan: add ${e.plan.adds} and annotation ${STATUS_ANNOTATION} (template ${e.plan.templateHash} from ${e.plan.template})`,
    );
  } else if (e.plan?.action === 'skip') {
    lines.push(`  plan: skip (${e.plan.reason}): ${e.plan.message}`);
  } else if (e.selection.inject && !e.template) {
    lines.push('  plan: not evaluated (no template given)');
  }
  for (const w of e.warnings) lines.push(`  warning: ${w}`);
  lines.push(`  result: ${e.injected ? 'injected' : 'not injected'}: ${e.reason}`);
  return lines.join('\n');
}
