/**
 * The sidecar template in force: the `config` key of one ConfigMap (default envoy-initializer),
 * read through an informer (list+watch with a fieldSelector on its name) so an edit applies to
 * new Pods within seconds, without a restart.
 *
 * A broken template never reaches injection: the last good one stays in force, and the problem
 * is logged, counted (netmesh_webhook_template_errors_total, netmesh_webhook_template_stale),
 * shown on /readyz and recorded as a Warning Event (reason InvalidTemplate) on the ConfigMap,
 * where `kubectl describe configmap` shows it to whoever made the edit. A key `config` that is
 * missing counts as broken. A deleted ConfigMap is a deliberate "no template": Pods are then
 * admitted unchanged (reason NoTemplate) until it is created again. A broken ConfigMap with no
 * last good template behind it is the same for admission (NoTemplate) and for readiness (ready,
 * with the reason in the detail): only the first list decides readiness.
 *
 * The Event is written here, by the template watcher, through the webhook's EventRecorder
 * (runtime/events.ts). Its name is derived from the ConfigMap's uid and resourceVersion, so
 * replicas that all notice the same broken version record it once.
 */
import type { CoreV1Api, V1ConfigMap } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { LoadedTemplate } from './admission.ts';
import { TEMPLATE_CONFIGMAP_KEY } from './core/contract.ts';
import { parseTemplate } from './core/template.ts';
/** A readiness verdict with one line per check (e.g. "template: ok (hash ...)"). */
export interface Readiness {
  ok: boolean;
  message: string;
}

import type { EventRecorder } from '../runtime/events.ts';
import type { SharedInformerFactory } from '../runtime/informer-factory.ts';
import { type ResilientInformer, sharedCache } from './informer.ts';
import type { WebhookMetrics } from './metrics.ts';

export interface TemplateState {
  /** The last good template, with the ConfigMap version it came from. */
  good: (LoadedTemplate & { resourceVersion: string | undefined; loadedAt: Date }) | undefined;
  /** Set while the ConfigMap's current content is invalid. */
  error: { message: string; resourceVersion: string | undefined; at: Date } | undefined;
  /** Whether the ConfigMap exists. */
  present: boolean;
}

export type TemplateEffect =
  | { kind: 'loaded'; hash: string; previousHash: string | undefined }
  | { kind: 'unchanged'; hash: string; recovered: boolean }
  | { kind: 'invalid'; message: string; keptHash: string | undefined }
  | { kind: 'removed'; previousHash: string | undefined };

export const INITIAL_TEMPLATE_STATE: TemplateState = { good: undefined, error: undefined, present: false };

/** Pure: the next state for a ConfigMap seen (upsert) or gone (delete). */
export function reduceTemplate(
  state: TemplateState,
  event: { type: 'upsert'; configMap: V1ConfigMap } | { type: 'delete' },
  now: Date,
): { state: TemplateState; effect: TemplateEffect } {
  if (event.type === 'delete') {
    return {
      state: { good: undefined, error: undefined, present: false },
      effect: { kind: 'removed', previousHash: state.good?.hash },
    };
  }
  const rv = event.configMap.metadata?.resourceVersion;
  const text = event.configMap.data?.[TEMPLATE_CONFIGMAP_KEY];
  const result =
    text === undefined
      ? { ok: false as const, error: `the ConfigMap has no key ${JSON.stringify(TEMPLATE_CONFIGMAP_KEY)}` }
      : parseTemplate(text);
  if (!result.ok) {
    return {
      state: {
        good: state.good,
        error: { message: result.error, resourceVersion: rv, at: now },
        present: true,
      },
      effect: { kind: 'invalid', message: result.error, keptHash: state.good?.hash },
    };
  }
  if (state.good?.hash === result.hash) {
    return {
      state: { good: { ...state.good, resourceVersion: rv }, error: undefined, present: true },
      effect: { kind: 'unchanged', hash: result.hash, recovered: state.error !== undefined },
    };
  }
  return {
    state: {
      good: { template: result.template, hash: result.hash, resourceVersion: rv, loadedAt: now },
      error: undefined,
      present: true,
    },
    effect: { kind: 'loaded', hash: result.hash, previousHash: state.good?.hash },
  };
}

/** Pure: what /readyz says about the template. */
export function templateReadiness(state: TemplateState, synced: boolean, where: string): Readiness {
  if (!synced) return { ok: false, message: `template: not loaded yet from ${where}` };
  if (state.error && state.good) {
    return {
      ok: true,
      message: `template: STALE, serving last good template ${state.good.hash}; ${where} is invalid: ${state.error.message}`,
    };
  }
  // Not being ready would not help: Pods are admitted unchanged (NoTemplate) whether or not this
  // replica receives them, exactly as with a missing ConfigMap, and an unready Deployment only
  // hides the cause. The Event, the log and this detail say what to fix.
  if (state.error) {
    return {
      ok: true,
      message: `template: none, ${where} is invalid and there is no last good template (${state.error.message}); pods are admitted unchanged`,
    };
  }
  if (!state.present)
    return { ok: true, message: `template: none (${where} not found); pods are admitted unchanged` };
  return { ok: true, message: `template: ok (${state.good?.hash ?? 'none'} from ${where})` };
}

export interface TemplateSourceOptions {
  informers: SharedInformerFactory;
  core: CoreV1Api;
  namespace: string;
  name: string;
  logger: Logger;
  metrics: WebhookMetrics;
  /** Records the InvalidTemplate Events; none: only log (e.g. without RBAC for events). */
  events?: EventRecorder | undefined;
  now?: () => Date;
}

export interface TemplateSource {
  current(): LoadedTemplate | undefined;
  /** A message while the ConfigMap is broken and the last good template is in force. */
  staleReason(): string | undefined;
  state(): TemplateState;
  readiness(): Readiness;
  readonly synced: boolean;
  waitForSync(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

export function eventNameFor(configMap: V1ConfigMap): string {
  const uid = (configMap.metadata?.uid ?? 'nouid').slice(0, 8);
  const rv = configMap.metadata?.resourceVersion ?? '0';
  return `${configMap.metadata?.name ?? 'configmap'}.invalid-template.${uid}.${rv}`.slice(0, 253);
}

type TemplateEvent = { type: 'upsert'; configMap: V1ConfigMap } | { type: 'delete' };

/** The InvalidTemplate Warning on the ConfigMap, one per broken version (see the top). */
function recordInvalidTemplate(
  opts: TemplateSourceOptions,
  configMap: V1ConfigMap,
  message: string,
  kept: string | undefined,
): void {
  // Fire and forget: the recorder never throws and writes in the background.
  void opts.events?.record(
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: opts.name,
        namespace: opts.namespace,
        uid: configMap.metadata?.uid,
        resourceVersion: configMap.metadata?.resourceVersion,
      },
    },
    {
      type: 'Warning',
      reason: 'InvalidTemplate',
      message: `key ${TEMPLATE_CONFIGMAP_KEY}: ${message}; ${kept ? `still injecting the last good template ${kept}` : 'no template in force, pods are admitted without the sidecar'}`,
    },
    { name: eventNameFor(configMap) },
  );
}

/** What a state change is worth: metrics, a log line, and for a broken template an Event. */
function reportEffect(
  opts: TemplateSourceOptions,
  log: Logger,
  event: TemplateEvent,
  effect: TemplateEffect,
): void {
  switch (effect.kind) {
    case 'loaded':
      opts.metrics.templateReloads.inc();
      log.info({ hash: effect.hash, previousHash: effect.previousHash }, 'sidecar template loaded');
      break;
    case 'unchanged':
      if (effect.recovered) log.info({ hash: effect.hash }, 'sidecar template valid again');
      break;
    case 'invalid':
      opts.metrics.templateErrors.inc();
      log.error(
        { error: effect.message, keptHash: effect.keptHash },
        'invalid sidecar template; keeping the last good one',
      );
      if (event.type === 'upsert')
        recordInvalidTemplate(opts, event.configMap, effect.message, effect.keptHash);
      break;
    case 'removed':
      log.warn(
        { previousHash: effect.previousHash },
        'template ConfigMap deleted; pods will be admitted without the sidecar',
      );
      break;
  }
}

export function startTemplateSource(opts: TemplateSourceOptions): TemplateSource {
  const now = opts.now ?? (() => new Date());
  const where = `ConfigMap ${opts.namespace}/${opts.name} key ${TEMPLATE_CONFIGMAP_KEY}`;
  const log = opts.logger.child({ component: 'template', configMap: `${opts.namespace}/${opts.name}` });
  let state = INITIAL_TEMPLATE_STATE;
  const apply = (event: TemplateEvent): void => {
    const next = reduceTemplate(state, event, now());
    state = next.state;
    opts.metrics.templateStale.set(state.error && state.good ? 1 : 0);
    reportEffect(opts, log, event, next.effect);
  };
  const fieldSelector = `metadata.name=${opts.name}`;
  // The informer reports adds and updates for what it lists; a ConfigMap deleted while the
  // watch was down shows up as a delete from its diff.
  const informer: ResilientInformer<V1ConfigMap> = sharedCache<V1ConfigMap>(
    opts.informers,
    {
      name: 'webhook-template',
      path: `/api/v1/namespaces/${encodeURIComponent(opts.namespace)}/configmaps`,
      fieldSelector,
      list: () => opts.core.listNamespacedConfigMap({ namespace: opts.namespace, fieldSelector }),
    },
    {
      onUpsert: (cm) => apply({ type: 'upsert', configMap: cm }),
      onDelete: () => apply({ type: 'delete' }),
    },
  );
  return {
    current: () => (state.good ? { template: state.good.template, hash: state.good.hash } : undefined),
    staleReason: () =>
      state.error && state.good ? `${where} is invalid (${state.error.message})` : undefined,
    state: () => state,
    readiness: () => templateReadiness(state, informer.synced, where),
    get synced() {
      return informer.synced;
    },
    waitForSync: (ms) => informer.waitForSync(ms),
    stop: () => informer.stop(),
  };
}
