/**
 * The webhook's caches (template ConfigMap, namespaces) on the process's shared informers
 * (runtime/informer-factory.ts): the namespaces informer is the same one the Envoy bootstrap
 * copier reads. This adapter only adds a sync wait with a deadline and the handler wiring the
 * webhook needs; stop() unsubscribes, the factory stops the informer.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { InformerSpec, SharedInformerFactory } from '../runtime/informer-factory.ts';

export interface CacheHandlers<T extends KubernetesObject> {
  onUpsert?: (obj: T) => void;
  onDelete?: (obj: T) => void;
}

export interface ResilientInformer<T extends KubernetesObject> {
  get(name: string, namespace?: string): T | undefined;
  list(): readonly T[];
  readonly synced: boolean;
  /** Resolves once the first list is in the cache (handlers have run), or rejects after timeoutMs. */
  waitForSync(timeoutMs: number): Promise<void>;
  /** Unsubscribes the handlers (the shared informer keeps running for the others). */
  stop(): Promise<void>;
}

/** Subscribes to the shared informer of `spec` and starts it if nobody has yet. */
export function sharedCache<T extends KubernetesObject>(
  factory: SharedInformerFactory,
  spec: InformerSpec<T>,
  handlers: CacheHandlers<T> = {},
): ResilientInformer<T> {
  const informer = factory.informerFor<T>(spec);
  const unsubscribe: (() => void)[] = [];
  if (handlers.onUpsert) {
    const upsert = handlers.onUpsert;
    unsubscribe.push(informer.on('add', (obj) => upsert(obj)));
    unsubscribe.push(informer.on('update', (obj) => upsert(obj)));
    // Already synced (another consumer started it): replay the cache, as client-go does for a
    // handler added to a running informer.
    for (const obj of informer.list()) upsert(obj);
  }
  if (handlers.onDelete) {
    const remove = handlers.onDelete;
    unsubscribe.push(informer.on('delete', (obj) => remove(obj)));
  }
  factory.start();
  return {
    get: (name, namespace) => informer.get(name, namespace),
    list: () => informer.list(),
    get synced() {
      return informer.hasSynced();
    },
    async waitForSync(timeoutMs: number): Promise<void> {
      const signal = AbortSignal.timeout(timeoutMs);
      await informer.waitForSync(signal).catch(() => {
        throw new Error(`${spec.name}: not synced after ${timeoutMs} ms`);
      });
    },
    async stop(): Promise<void> {
      for (const u of unsubscribe.splice(0)) u();
    },
  };
}
