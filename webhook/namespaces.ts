/**
 * Namespace labels for selection, from an informer cache of all namespaces; a miss (a
 * namespace created a moment ago, the watch not caught up) falls back to one GET with a short
 * deadline, so the answer stays inside the webhook's timeoutSeconds.
 */
import type { CoreV1Api, KubeConfig, V1Namespace } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { type ResilientInformer, startInformer } from './informer.ts';

export interface NamespaceLabels {
  labels: Record<string, string> | undefined;
  source: 'cache' | 'api' | 'unavailable';
  error?: string;
}

export interface NamespaceLabelSource {
  labels(namespace: string): Promise<NamespaceLabels>;
  readonly synced: boolean;
  waitForSync(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

export interface NamespaceLabelSourceOptions {
  kc: KubeConfig;
  core: CoreV1Api;
  logger: Logger;
  registry?: Registry;
  /** Deadline of the fallback GET (default 2 s). */
  getTimeoutMs?: number;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function startNamespaceLabelSource(opts: NamespaceLabelSourceOptions): NamespaceLabelSource {
  const log = opts.logger.child({ component: 'namespaces' });
  const informer: ResilientInformer<V1Namespace> = startInformer<V1Namespace>({
    kc: opts.kc,
    path: '/api/v1/namespaces',
    list: () => opts.core.listNamespace(),
    logger: log,
    what: 'webhook-namespaces',
    ...(opts.registry ? { registry: opts.registry } : {}),
  });
  const getTimeoutMs = opts.getTimeoutMs ?? 2000;
  return {
    async labels(namespace: string): Promise<NamespaceLabels> {
      const cached = informer.get(namespace);
      if (cached) return { labels: cached.metadata?.labels ?? {}, source: 'cache' };
      try {
        const ns = await withTimeout(
          opts.core.readNamespace({ name: namespace }),
          getTimeoutMs,
          `GET namespace ${namespace}`,
        );
        return { labels: ns.metadata?.labels ?? {}, source: 'api' };
      } catch (err) {
        const message =
          (err as { code?: number }).code === 404 ? 'namespace not found' : (err as Error).message;
        log.warn({ namespace, err: message }, 'namespace labels unavailable');
        return { labels: undefined, source: 'unavailable', error: message };
      }
    },
    get synced() {
      return informer.synced;
    },
    waitForSync: (ms) => informer.waitForSync(ms),
    stop: () => informer.stop(),
  };
}
