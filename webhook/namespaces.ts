/**
 * Namespace labels for selection, from an informer cache of all namespaces; a miss (a
 * namespace created a moment ago, the watch not caught up) falls back to one GET with a short
 * deadline, so the answer stays inside the webhook's timeoutSeconds.
 *
 * A hit can be stale too: a namespace labelled netmesh.io/injection=enabled a moment ago is
 * already selected by the apiserver (its namespaceSelector reads live labels) while the cache
 * still has the old labels. So when the cached labels alone would turn a Pod away as
 * NamespaceNotEnabled, the labels are read once more with a GET before deciding. Pods that opt
 * in or out by themselves, or are excluded for other reasons, never cost that GET, and with a
 * current cache the apiserver does not send the others, so the GET is rare.
 */
import type { CoreV1Api, V1Namespace, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { InformerSpec, SharedInformerFactory } from '../runtime/informer-factory.ts';
import { NAMESPACE_INJECTION_ENABLED, NAMESPACE_INJECTION_LABEL } from './core/contract.ts';
import { decideSelection } from './core/selection.ts';
import { isPlainObject } from './core/template.ts';
import { type ResilientInformer, sharedCache } from './informer.ts';

export interface NamespaceLabels {
  labels: Record<string, string> | undefined;
  source: 'cache' | 'api' | 'unavailable';
  error?: string;
}

export interface NamespaceLabelSource {
  /** From the cache only, synchronously; undefined on a miss. */
  cached(namespace: string): NamespaceLabels | undefined;
  /** From the cache; a GET on a miss. */
  labels(namespace: string): Promise<NamespaceLabels>;
  /** Always a GET, bypassing the cache. */
  fresh(namespace: string): Promise<NamespaceLabels>;
  readonly synced: boolean;
  waitForSync(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

export interface NamespaceLabelSourceOptions {
  informers: SharedInformerFactory;
  core: CoreV1Api;
  logger: Logger;
  /** Deadline of the fallback GET (default 2 s). */
  getTimeoutMs?: number;
}

/** What the label source reads from: a cache and a live GET (a seam for unit tests). */
export interface NamespaceReaders {
  cache: Pick<ResilientInformer<V1Namespace>, 'get' | 'synced' | 'waitForSync' | 'stop'>;
  read(name: string): Promise<V1Namespace>;
  logger: Logger;
  getTimeoutMs?: number;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function namespaceLabelSource(readers: NamespaceReaders): NamespaceLabelSource {
  const log = readers.logger;
  const { cache } = readers;
  const getTimeoutMs = readers.getTimeoutMs ?? 2000;
  const fresh = async (namespace: string): Promise<NamespaceLabels> => {
    try {
      const ns = await withTimeout(readers.read(namespace), getTimeoutMs, `GET namespace ${namespace}`);
      return { labels: ns.metadata?.labels ?? {}, source: 'api' };
    } catch (err) {
      const message =
        (err as { code?: number }).code === 404 ? 'namespace not found' : (err as Error).message;
      log.warn({ namespace, err: message }, 'namespace labels unavailable');
      return { labels: undefined, source: 'unavailable', error: message };
    }
  };
  const cached = (namespace: string): NamespaceLabels | undefined => {
    const ns = cache.get(namespace);
    return ns ? { labels: ns.metadata?.labels ?? {}, source: 'cache' } : undefined;
  };
  return {
    cached,
    async labels(namespace: string): Promise<NamespaceLabels> {
      return cached(namespace) ?? fresh(namespace);
    },
    fresh,
    get synced() {
      return cache.synced;
    },
    waitForSync: (ms) => cache.waitForSync(ms),
    stop: () => cache.stop(),
  };
}

/**
 * Every namespace, unfiltered: the one namespaces informer of the process (the webhook needs
 * the labels of any namespace, the bootstrap copier filters the labelled ones from it).
 */
export function namespacesInformerSpec(core: CoreV1Api): InformerSpec<V1Namespace> {
  return { name: 'namespaces', path: '/api/v1/namespaces', list: () => core.listNamespace() };
}

export function startNamespaceLabelSource(opts: NamespaceLabelSourceOptions): NamespaceLabelSource {
  const logger = opts.logger.child({ component: 'namespaces' });
  const informer = sharedCache(opts.informers, namespacesInformerSpec(opts.core));
  return namespaceLabelSource({
    cache: informer,
    read: (name) => opts.core.readNamespace({ name }),
    logger,
    ...(opts.getTimeoutMs !== undefined ? { getTimeoutMs: opts.getTimeoutMs } : {}),
  });
}

/** Pure: whether cached labels would turn this Pod away only because of the namespace's labels. */
export function needsFreshLabels(input: {
  pod: unknown;
  namespace: string;
  labels: NamespaceLabels;
  webhookNamespace: string;
}): boolean {
  if (input.labels.source !== 'cache' || !isPlainObject(input.pod)) return false;
  // An enabled namespace is never the reason a Pod is turned away: the common case, decided
  // without a second selection (admission runs one anyway).
  if (input.labels.labels?.[NAMESPACE_INJECTION_LABEL] === NAMESPACE_INJECTION_ENABLED) return false;
  return (
    decideSelection({
      pod: input.pod as V1Pod,
      namespace: input.namespace,
      namespaceLabels: input.labels.labels,
      webhookNamespace: input.webhookNamespace,
    }).reason === 'NamespaceNotEnabled'
  );
}

/**
 * The labels to decide a Pod with: the cached ones, or a fresh read when the cache would say
 * NamespaceNotEnabled (see the top of this file). A failed re-read keeps the cached labels.
 * Answered synchronously when the cache settles it, which is nearly always: every Pod creation
 * in an injected namespace comes through here, and a promise per request is measurable.
 */
export function namespaceLabelsForPod(
  source: Pick<NamespaceLabelSource, 'cached' | 'labels' | 'fresh'>,
  input: { pod: unknown; namespace: string; webhookNamespace: string },
): NamespaceLabels | Promise<NamespaceLabels> {
  const hit = source.cached(input.namespace);
  if (hit !== undefined && !needsFreshLabels({ ...input, labels: hit })) return hit;
  return (async () => {
    const labels = hit ?? (await source.labels(input.namespace));
    if (!needsFreshLabels({ ...input, labels })) return labels;
    const fresh = await source.fresh(input.namespace);
    return fresh.labels === undefined ? labels : fresh;
  })();
}
