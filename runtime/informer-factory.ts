/**
 * One informer per resource and selector per process, as client-go's SharedInformerFactory:
 * whoever needs namespaces (the webhook's selection, the Envoy bootstrap copier) asks the
 * factory and gets the same Informer, so the apiserver sees one list and one watch, and every
 * consumer reads the same cache. The factory starts what it created (start() starts whatever is
 * not running yet, so a consumer that registers later, e.g. on becoming leader, calls it again),
 * stops everything once at the end of the process, and is the one place that says which caches
 * are synced (readiness()).
 *
 * Consumers subscribe with informer.on() and unsubscribe when they stop; they never stop a
 * shared informer (the type handed out has no stop()), since others may still read it.
 */
import type { KubeConfig, KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { BackoffOptions } from './backoff.ts';
import { Informer, type WatchTransport, waitForCacheSync } from './informer.ts';
import type { Clock } from './queue/index.ts';

/** What an informer is: a collection path and the selectors applied to it. */
export interface InformerSpec<T extends KubernetesObject> {
  /** Collection path, e.g. '/api/v1/namespaces'. */
  path: string;
  /** Lists the collection with the same selectors. */
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  fieldSelector?: string;
  /** For logs and the `informer` metric label; the first consumer's name is kept. */
  name: string;
}

/** A shared informer as consumers see it: read, subscribe, wait; only the factory stops it. */
export type SharedInformer<T extends KubernetesObject> = Pick<
  Informer<T>,
  'name' | 'on' | 'get' | 'list' | 'hasSynced' | 'waitForSync' | 'lastError' | 'timeSinceLastEventMs'
>;

export interface SharedInformerFactoryOptions {
  kc: KubeConfig;
  log: Logger;
  /** Where the netmesh_informer_* metrics go; none when absent. */
  registry?: Registry | undefined;
  staleAfterMs?: number;
  backoff?: BackoffOptions;
  clock?: Clock;
  random?: () => number;
  /** The raw watch call (a seam for unit tests). */
  watch?: WatchTransport;
}

export interface InformerSyncState {
  name: string;
  synced: boolean;
  /** The apiserver's last answer to a failed list or watch, while it is not watching. */
  lastError: string | undefined;
}

/** The key of an informer: two specs with the same key are one watch. */
export function informerKey(
  spec: Pick<InformerSpec<KubernetesObject>, 'path' | 'labelSelector' | 'fieldSelector'>,
): string {
  const q = new URLSearchParams();
  if (spec.labelSelector) q.set('labelSelector', spec.labelSelector);
  if (spec.fieldSelector) q.set('fieldSelector', spec.fieldSelector);
  const query = q.toString();
  return query ? `${spec.path}?${query}` : spec.path;
}

export class SharedInformerFactory {
  readonly #opts: SharedInformerFactoryOptions;
  readonly #informers = new Map<string, Informer<KubernetesObject>>();
  readonly #started = new Set<string>();
  #stopped = false;

  constructor(opts: SharedInformerFactoryOptions) {
    this.#opts = opts;
  }

  /** How many informers (watches) this process has. */
  get size(): number {
    return this.#informers.size;
  }

  /** The informer for this resource and selectors, created on first use (not started: see start()). */
  informerFor<T extends KubernetesObject>(spec: InformerSpec<T>): SharedInformer<T> {
    if (this.#stopped) throw new Error(`informer factory stopped; cannot watch ${informerKey(spec)}`);
    const key = informerKey(spec);
    const existing = this.#informers.get(key);
    if (existing) return existing as unknown as Informer<T>;
    const o = this.#opts;
    const informer = new Informer<T>({
      kc: o.kc,
      path: spec.path,
      list: spec.list,
      ...(spec.labelSelector ? { labelSelector: spec.labelSelector } : {}),
      ...(spec.fieldSelector ? { fieldSelector: spec.fieldSelector } : {}),
      log: o.log,
      name: spec.name,
      ...(o.registry ? { registry: o.registry } : {}),
      ...(o.staleAfterMs !== undefined ? { staleAfterMs: o.staleAfterMs } : {}),
      ...(o.backoff ? { backoff: o.backoff } : {}),
      ...(o.clock ? { clock: o.clock } : {}),
      ...(o.random ? { random: o.random } : {}),
      ...(o.watch ? { watch: o.watch } : {}),
    });
    this.#informers.set(key, informer as unknown as Informer<KubernetesObject>);
    return informer;
  }

  /** Starts every informer not running yet; returns at once (see waitForCacheSync). */
  start(): void {
    if (this.#stopped) return;
    for (const [key, informer] of this.#informers) {
      if (this.#started.has(key)) continue;
      this.#started.add(key);
      informer.start();
    }
  }

  /**
   * Waits for these informers (default: all) to sync; reports once through onTimeout after
   * timeoutMs and keeps waiting (see runtime/informer.ts waitForCacheSync).
   */
  waitForCacheSync(
    opts: { signal: AbortSignal; timeoutMs: number; onTimeout: (reason: string) => void; clock?: Clock },
    informers: readonly SharedInformer<KubernetesObject>[] = [...this.#informers.values()],
  ): Promise<void> {
    return waitForCacheSync(informers, opts);
  }

  syncState(): InformerSyncState[] {
    return [...this.#informers.values()].map((i) => ({
      name: i.name,
      synced: i.hasSynced(),
      lastError: i.lastError(),
    }));
  }

  /**
   * For /readyz?verbose: which caches are synced. Informational (ok: true): whether a missing
   * cache makes a component unready is that component's call (the webhook serves without its
   * namespace cache, the operator's standby never needs its caches).
   */
  readiness(): { ok: boolean; detail: string } {
    const states = this.syncState();
    if (states.length === 0) return { ok: true, detail: 'no informers' };
    const detail = states
      .map((s) => `${s.name} ${s.synced ? 'synced' : `not synced${s.lastError ? ` (${s.lastError})` : ''}`}`)
      .join(', ');
    return { ok: true, detail };
  }

  /** Stops every informer, once; later informerFor() calls throw. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await Promise.all([...this.#informers.values()].map((i) => i.stop()));
  }
}
