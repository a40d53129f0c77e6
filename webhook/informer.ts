/**
 * The webhook's caches (template ConfigMap, namespaces) on the shared runtime informer, which
 * keeps going after watch errors, asks for bookmarks and restarts a stale watch. This adapter
 * only adds a sync wait with a deadline and the handler wiring the webhook needs.
 */
import type { KubeConfig, KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { Informer } from '../runtime/informer.ts';

export interface InformerOptions<T extends KubernetesObject> {
  kc: KubeConfig;
  /** Watch path, e.g. /api/v1/namespaces. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  fieldSelector?: string;
  labelSelector?: string;
  logger: Logger;
  /** For logs and the informer metrics' label. */
  what: string;
  registry?: Registry | undefined;
  onUpsert?: (obj: T) => void;
  onDelete?: (obj: T) => void;
}

export interface ResilientInformer<T extends KubernetesObject> {
  get(name: string, namespace?: string): T | undefined;
  list(): readonly T[];
  readonly synced: boolean;
  /** Resolves once the first list is in the cache (handlers have run), or rejects after timeoutMs. */
  waitForSync(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

export function startInformer<T extends KubernetesObject>(opts: InformerOptions<T>): ResilientInformer<T> {
  const informer = new Informer<T>({
    kc: opts.kc,
    path: opts.path,
    list: opts.list,
    ...(opts.fieldSelector !== undefined ? { fieldSelector: opts.fieldSelector } : {}),
    ...(opts.labelSelector !== undefined ? { labelSelector: opts.labelSelector } : {}),
    log: opts.logger,
    name: opts.what,
    ...(opts.registry ? { registry: opts.registry } : {}),
  });
  if (opts.onUpsert) {
    const upsert = opts.onUpsert;
    informer.on('add', (obj) => upsert(obj));
    informer.on('update', (obj) => upsert(obj));
  }
  if (opts.onDelete) {
    const remove = opts.onDelete;
    informer.on('delete', (obj) => remove(obj));
  }
  informer.start();
  return {
    get: (name, namespace) => informer.get(name, namespace),
    list: () => informer.list(),
    get synced() {
      return informer.hasSynced();
    },
    async waitForSync(timeoutMs: number): Promise<void> {
      const signal = AbortSignal.timeout(timeoutMs);
      await informer.waitForSync(signal).catch(() => {
        throw new Error(`${opts.what}: not synced after ${timeoutMs} ms`);
      });
    },
    stop: () => informer.stop(),
  };
}
