/**
 * The MutatingWebhookConfiguration, built in one pure function so the object `netmesh webhook
 * --register-url` applies and the one the Helm chart renders cannot drift apart.
 *
 * Selection happens in two places on purpose. The apiserver filters with selectors and CEL
 * match conditions, so Pods that can never be injected (system namespaces, the webhook's own
 * namespace, opted-out, hostNetwork, mirror pods) never cost a webhook call and can never be
 * blocked by an unavailable webhook. The handler then applies the same rules again
 * (core/selection.ts), because selectors are only as good as the configuration installed.
 *
 * Webhooks, with disjoint match sets so a Pod is sent to at most one of them:
 *   - namespace.netmesh.io: namespaces labelled netmesh.io/injection=enabled, Pods not labelled
 *     netmesh.io/inject=false;
 *   - object.netmesh.io: other namespaces, Pods labelled netmesh.io/inject=true;
 *   - legacy.netmesh.io (only with match conditions): other namespaces, Pods without a
 *     true/false netmesh.io/inject label that carry the course's annotation
 *     initializer.kubernetes.io/envoy="true". Annotations cannot be selected with an
 *     objectSelector, but a CEL match condition can read them, so the apiserver still calls
 *     the webhook only for the Pods that ask for it. Without match conditions (apiservers
 *     older than 1.30) the annotation is honoured only for Pods that reach the webhook
 *     through one of the other two webhooks, i.e. effectively never on its own: use the
 *     label there.
 */
import type {
  AdmissionregistrationV1WebhookClientConfig,
  V1LabelSelectorRequirement,
  V1MatchCondition,
  V1MutatingWebhook,
  V1MutatingWebhookConfiguration,
} from '@kubernetes/client-node';
import {
  LEGACY_INJECT_ANNOTATION,
  MIRROR_POD_ANNOTATION,
  NAMESPACE_INJECTION_ENABLED,
  NAMESPACE_INJECTION_LABEL,
  POD_INJECT_LABEL,
  SYSTEM_NAMESPACES,
} from './core/contract.ts';

export const NAMESPACE_WEBHOOK_NAME = 'namespace.netmesh.io';
export const OBJECT_WEBHOOK_NAME = 'object.netmesh.io';
export const LEGACY_WEBHOOK_NAME = 'legacy.netmesh.io';
export const DEFAULT_WEBHOOK_CONFIG_NAME = 'netmesh';
export const DEFAULT_TIMEOUT_SECONDS = 10;
export const MUTATE_PATH = '/mutate';
/** Set by the apiserver on every namespace (1.21+): the only selectable form of a namespace's name. */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

export type FailurePolicy = 'Ignore' | 'Fail';
/**
 * Never (the default, as Istio's): one call per Pod. IfNeeded makes the apiserver call again
 * whenever a later admission step changed the Pod, and one always does after an injection (the
 * ServiceAccount plugin mounts the token into the added containers), so every injected Pod
 * costs a second call that finds it injected and answers with no patch.
 */
export type ReinvocationPolicy = 'Never' | 'IfNeeded';

export type WebhookClientConfig =
  | { url: string }
  | { service: { name: string; namespace: string; path?: string; port?: number } };

export interface WebhookConfigOptions {
  name: string;
  /** The webhook's own namespace: never injected (its Pods must not wait on themselves). */
  namespace: string;
  clientConfig: WebhookClientConfig;
  /** PEM bundle of the CA(s) the serving certificate chains to; omitted when cert-manager injects it. */
  caBundle?: string | undefined;
  failurePolicy: FailurePolicy;
  /** Default Never (see ReinvocationPolicy). */
  reinvocationPolicy?: ReinvocationPolicy | undefined;
  timeoutSeconds?: number | undefined;
  /** Whether the apiserver supports matchConditions (GA in 1.30). */
  matchConditionsSupported: boolean;
  /**
   * Further requirements on the namespace, added to every webhook (e.g. to scope a canary
   * installation, or a test run on a shared cluster, to some namespaces).
   */
  extraNamespaceSelector?: V1LabelSelectorRequirement[] | undefined;
  labels?: Record<string, string> | undefined;
}

/** CEL conditions shared by all webhooks; `object` is always set for CREATE. */
export const COMMON_MATCH_CONDITIONS: readonly V1MatchCondition[] = [
  {
    name: 'exclude-host-network',
    expression: '!has(object.spec.hostNetwork) || !object.spec.hostNetwork',
  },
  {
    name: 'exclude-mirror-pods',
    expression: `!has(object.metadata.annotations) || !('${MIRROR_POD_ANNOTATION}' in object.metadata.annotations)`,
  },
];

export const LEGACY_MATCH_CONDITION: V1MatchCondition = {
  name: 'legacy-annotation-opt-in',
  expression:
    `has(object.metadata.annotations) && '${LEGACY_INJECT_ANNOTATION}' in object.metadata.annotations` +
    ` && object.metadata.annotations['${LEGACY_INJECT_ANNOTATION}'] == 'true'`,
};

/** Namespaces never injected, sorted and de-duplicated for a stable rendering. */
export function excludedNamespaces(ownNamespace: string): string[] {
  return [...new Set([...SYSTEM_NAMESPACES, ownNamespace])].sort();
}

function toClientConfig(
  config: WebhookClientConfig,
  caBundle: string | undefined,
): AdmissionregistrationV1WebhookClientConfig {
  const out: AdmissionregistrationV1WebhookClientConfig =
    'url' in config
      ? { url: config.url }
      : {
          service: {
            name: config.service.name,
            namespace: config.service.namespace,
            path: config.service.path ?? MUTATE_PATH,
            port: config.service.port ?? 443,
          },
        };
  if (caBundle !== undefined && caBundle !== '') {
    out.caBundle = Buffer.from(caBundle, 'utf8').toString('base64');
  }
  return out;
}

export function buildMutatingWebhookConfiguration(
  opts: WebhookConfigOptions,
): V1MutatingWebhookConfiguration {
  const excluded: V1LabelSelectorRequirement = {
    key: NAMESPACE_NAME_LABEL,
    operator: 'NotIn',
    values: excludedNamespaces(opts.namespace),
  };
  const extra = opts.extraNamespaceSelector ?? [];
  const enabled: V1LabelSelectorRequirement = {
    key: NAMESPACE_INJECTION_LABEL,
    operator: 'In',
    values: [NAMESPACE_INJECTION_ENABLED],
  };
  const notEnabled: V1LabelSelectorRequirement = { ...enabled, operator: 'NotIn' };
  const base = (name: string): V1MutatingWebhook => {
    const webhook: V1MutatingWebhook = {
      name,
      admissionReviewVersions: ['v1'],
      clientConfig: toClientConfig(opts.clientConfig, opts.caBundle),
      failurePolicy: opts.failurePolicy,
      matchPolicy: 'Equivalent',
      reinvocationPolicy: opts.reinvocationPolicy ?? 'Never',
      rules: [
        {
          apiGroups: [''],
          apiVersions: ['v1'],
          operations: ['CREATE'],
          resources: ['pods'],
          scope: 'Namespaced',
        },
      ],
      // The handler writes Events (Injected, InjectionSkipped), but never for a dry run.
      sideEffects: 'NoneOnDryRun',
      timeoutSeconds: opts.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS,
    };
    return webhook;
  };
  // The two selector-routed webhooks carry no matchConditions: the apiserver converts the whole
  // Pod for CEL on every call of a webhook that has any (measured: 28% of the apiserver's
  // mutating-webhook time in a CPU profile), to spare a call for the rare hostNetwork or
  // mirror Pod that the handler skips anyway (core/selection.ts). The legacy webhook needs CEL
  // to read the annotation, so there the common exclusions come for free.

  const webhooks: V1MutatingWebhook[] = [
    {
      ...base(NAMESPACE_WEBHOOK_NAME),
      namespaceSelector: { matchExpressions: [enabled, excluded, ...extra] },
      objectSelector: { matchExpressions: [{ key: POD_INJECT_LABEL, operator: 'NotIn', values: ['false'] }] },
    },
    {
      ...base(OBJECT_WEBHOOK_NAME),
      namespaceSelector: { matchExpressions: [notEnabled, excluded, ...extra] },
      objectSelector: { matchExpressions: [{ key: POD_INJECT_LABEL, operator: 'In', values: ['true'] }] },
    },
  ];
  if (opts.matchConditionsSupported) {
    webhooks.push({
      ...base(LEGACY_WEBHOOK_NAME),
      namespaceSelector: { matchExpressions: [notEnabled, excluded, ...extra] },
      // NotIn also matches Pods without the label; "true" is object.netmesh.io's, "false" opts out.
      objectSelector: {
        matchExpressions: [{ key: POD_INJECT_LABEL, operator: 'NotIn', values: ['true', 'false'] }],
      },
      matchConditions: [...COMMON_MATCH_CONDITIONS, LEGACY_MATCH_CONDITION],
    });
  }
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: {
      name: opts.name,
      labels: {
        'app.kubernetes.io/name': 'netmesh',
        'app.kubernetes.io/component': 'webhook',
        ...(opts.labels ?? {}),
      },
    },
    webhooks,
  };
}

/** matchConditions went GA (on by default) in Kubernetes 1.30; beta and on by default since 1.28. */
export function supportsMatchConditions(version: { major: string; minor: string }): boolean {
  const major = Number.parseInt(version.major, 10);
  const minor = Number.parseInt(version.minor, 10);
  if (!Number.isFinite(major) || !Number.isFinite(minor)) return false;
  return major > 1 || (major === 1 && minor >= 28);
}
