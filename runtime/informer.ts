/**
 * A shared-informer shell over client-node's ListWatch that keeps running. What client-node
 * 2.0.1's ListWatch/Watch do on their own, and what this adds:
 *
 * - Any list or watch failure other than 410 Gone and Watch's own inactivity timeout makes
 *   ListWatch fire `error` and return: the cache silently stops updating. Here every such error
 *   restarts it after a capped exponential backoff with jitter (1 s doubling to 30 s; reset
 *   once a watch connects).
 * - 410 Gone (HTTP status, or an ERROR event with code 410) is handled by ListWatch itself: it
 *   drops its resourceVersion and re-lists. Nothing to add.
 * - Watch never asks for bookmarks or a server-side timeout, and aborts a watch after 30 s
 *   without bytes, which is shorter than the apiserver's 1-minute bookmark interval, so a quiet
 *   watch never receives a bookmark and its resourceVersion ages out of the watch cache. Every
 *   watch request here carries allowWatchBookmarks=true and timeoutSeconds in [300, 600) (like
 *   client-go), and the inactivity timeout is raised above the bookmark interval.
 * - A watchdog force-restarts the informer after `staleAfterMs` without any sign of life
 *   (watch events including BOOKMARK and ERROR, list/watch (re)connects).
 * - ListWatch.stop() aborts only a watch that has already connected; a watch still connecting,
 *   a list in flight or a reconnect delay carries on and opens a watch later, and its abort
 *   comes back as an `error` event. Each start here therefore builds a fresh ListWatch (a
 *   "generation") whose list, delay and watch hooks go quiet once it is closed, so nothing of
 *   an old generation can reach the cache or the handlers.
 * - Handlers run inside ListWatch (and inside Watch's JSON-parse try/catch, where a throw
 *   would be swallowed and skip the resourceVersion bookkeeping): they are isolated here, and
 *   their errors and rejections are logged.
 *
 * The informer keeps its own cache (name/namespace -> object), which is what get()/list()
 * read; cached objects carry no metadata.managedFields (memory: see #upsert). Because a new generation re-lists into an empty ListWatch, this cache is also what
 * turns that list into the right events: objects that reappear unchanged (same
 * resourceVersion) produce nothing, changed ones an update, and ones missing from the list a
 * delete (so deletes that happened while stopped or disconnected are observed). It is also how
 * update handlers get the previous object, which ListWatch does not provide.
 */
import type {
  KubeConfig,
  KubernetesListObject,
  KubernetesObject,
  ListWatchOptions,
} from '@kubernetes/client-node';
import { ListWatch, Watch } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { describeKubeError } from '../lib/kube-errors.ts';
import { type BackoffOptions, backoffDelayMs, watchTimeoutSeconds } from './backoff.ts';
import { registerOnce } from './metrics.ts';
import { type Clock, realClock, type TimerHandle } from './queue/index.ts';

export type InformerEvent = 'add' | 'update' | 'delete';

/**
 * `obj` is the object the event is about: the new state for add/update, the last state for
 * delete (the object from the DELETED watch event, or the last cached state when the delete
 * was inferred from a re-list). `oldObj` is set for update only: the previously cached state.
 * The new object comes first, as in client-node, so a one-argument handler works for every
 * event. Handlers may be async; throws and rejections are logged and otherwise ignored.
 */
export type InformerHandler<T> = (obj: T, oldObj?: T) => unknown;

/** The raw watch call; client-node's Watch by default. A seam for unit tests. */
export type WatchTransport = Pick<Watch, 'watch'>;

export interface InformerOptions<T extends KubernetesObject> {
  kc: KubeConfig;
  /** Collection path, e.g. '/apis/netmesh.io/v1/networks' or '/api/v1/namespaces/x/configmaps'. */
  path: string;
  /** Lists the collection. Must apply the same label/field selectors as given here. */
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  fieldSelector?: string;
  log: Logger;
  /** For logs and the `informer` metric label. */
  name: string;
  /** Where to register the netmesh_informer_* metrics; none when absent. */
  registry?: Registry;
  /** Force a restart after this long without any activity. Default 5 min. */
  staleAfterMs?: number;
  /** Restart backoff after errors. Default 1 s doubling to 30 s, 20 % jitter. */
  backoff?: BackoffOptions;
  /**
   * Client-side abort of a watch that sends nothing (no events, no bookmarks) for this long.
   * Default 2 min: above the apiserver's 1-minute bookmark interval. Only applies to the
   * default transport.
   */
  watchInactivityTimeoutMs?: number;
  clock?: Clock;
  random?: () => number;
  watch?: WatchTransport;
}

export const DEFAULT_STALE_AFTER_MS = 5 * 60_000;
export const DEFAULT_WATCH_INACTIVITY_TIMEOUT_MS = 2 * 60_000;

interface Generation<T extends KubernetesObject> {
  readonly id: number;
  closed: boolean;
  /** The initial list of this generation has been applied (its first watch is starting). */
  listed: boolean;
  /** Keys seen during the initial list, to infer deletes. */
  readonly seen: Set<string>;
  readonly delays: Set<TimerHandle>;
  watch: GenerationWatch | undefined;
  lw: ListWatch<T> | undefined;
}

interface WatchHooks {
  closed(): boolean;
  /** ListWatch is about to watch: its list (if any) has been applied. */
  watchStarting(): void;
  connected(): void;
  event(phase: string): void;
}

const never = <V>(): Promise<V> => new Promise<V>(() => {});

/**
 * What ListWatch is given as its Watch. ListWatch's constructor wants the Watch class (it has
 * private members, so TypeScript compares it nominally), hence the subclass; the actual request
 * goes through the transport.
 */
class GenerationWatch extends Watch {
  readonly #transport: WatchTransport;
  readonly #hooks: WatchHooks;
  readonly #random: () => number;
  readonly #active = new Set<AbortController>();

  constructor(kc: KubeConfig, transport: WatchTransport, hooks: WatchHooks, random: () => number) {
    super(kc);
    this.#transport = transport;
    this.#hooks = hooks;
    this.#random = random;
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    // biome-ignore lint/suspicious/noExplicitAny: the signature of Watch.watch
    callback: (phase: string, apiObj: any, watchObj?: any) => void,
    // biome-ignore lint/suspicious/noExplicitAny: the signature of Watch.watch
    done: (err: any) => void,
  ): Promise<AbortController> {
    const hooks = this.#hooks;
    if (hooks.closed()) return abortedController();
    hooks.watchStarting();
    const params = {
      ...queryParams,
      allowWatchBookmarks: true,
      timeoutSeconds: watchTimeoutSeconds(this.#random),
    };
    let finished = false;
    let controller: AbortController | undefined;
    const onDone = (err: unknown): void => {
      if (finished) return;
      finished = true;
      if (controller) this.#active.delete(controller);
      // A closed generation's watch ends with an AbortError; ListWatch would report it as an
      // error (and, if it had not been stopped yet, reconnect).
      if (hooks.closed()) return;
      done(err);
    };
    const onEvent = (phase: string, obj: unknown, raw: unknown): void => {
      if (finished || hooks.closed()) return;
      hooks.event(phase);
      callback(phase, obj, raw);
    };
    try {
      controller = await this.#transport.watch(path, params, onEvent, onDone);
    } catch (err) {
      // Watch.watch throws (instead of calling done) when authentication or the cluster lookup
      // fails before the request; ListWatch would turn that into an unhandled rejection.
      onDone(err);
      return abortedController();
    }
    if (finished) return controller;
    if (hooks.closed()) {
      // Closed while connecting: nobody else will ever abort this one.
      finished = true;
      controller.abort();
      return controller;
    }
    this.#active.add(controller);
    hooks.connected();
    return controller;
  }

  abortAll(): void {
    for (const c of this.#active) c.abort();
    this.#active.clear();
  }
}

function abortedController(): AbortController {
  const c = new AbortController();
  c.abort();
  return c;
}

function keyOf(obj: KubernetesObject): { ns: string; name: string } {
  return { ns: obj.metadata?.namespace ?? '', name: obj.metadata?.name ?? '' };
}

function sameVersion(a: KubernetesObject, b: KubernetesObject): boolean {
  const rv = a.metadata?.resourceVersion;
  return rv !== undefined && rv !== null && rv === b.metadata?.resourceVersion;
}

// One set of metric objects per registry, shared by every informer registered in it (prom-client
// refuses a second metric with the same name).
interface InformerMetrics {
  restarts: Counter<'informer'>;
  synced: Gauge<'informer'>;
  live: Set<{ readonly name: string; timeSinceLastEventMs(): number }>;
}
const metricsByRegistry = new WeakMap<Registry, InformerMetrics>();

function informerMetrics(registry: Registry): InformerMetrics {
  const existing = metricsByRegistry.get(registry);
  if (existing) return existing;
  const live = new Set<{ readonly name: string; timeSinceLastEventMs(): number }>();
  registerOnce(registry, 'netmesh_informer_last_event_age_seconds', Gauge, () => {
    const age: Gauge<'informer'> = new Gauge({
      name: 'netmesh_informer_last_event_age_seconds',
      help: 'Seconds since the informer last saw a watch event (bookmarks included) or (re)connected.',
      labelNames: ['informer'],
      registers: [registry],
      collect() {
        age.reset();
        for (const inf of live) age.set({ informer: inf.name }, inf.timeSinceLastEventMs() / 1000);
      },
    });
    return age;
  });
  const metrics: InformerMetrics = {
    restarts: registerOnce<Counter<'informer'>>(
      registry,
      'netmesh_informer_restarts_total',
      Counter,
      () =>
        new Counter({
          name: 'netmesh_informer_restarts_total',
          help: 'Informer restarts after list/watch errors or a stale watch.',
          labelNames: ['informer'],
          registers: [registry],
        }),
    ),
    synced: registerOnce<Gauge<'informer'>>(
      registry,
      'netmesh_informer_synced',
      Gauge,
      () =>
        new Gauge({
          name: 'netmesh_informer_synced',
          help: '1 once the informer has completed its first list.',
          labelNames: ['informer'],
          registers: [registry],
        }),
    ),
    live,
  };
  metricsByRegistry.set(registry, metrics);
  return metrics;
}

interface SyncWaiter {
  resolve: () => void;
  cleanup: () => void;
}

export class Informer<T extends KubernetesObject> {
  readonly name: string;
  readonly #opts: InformerOptions<T>;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #transport: WatchTransport;
  readonly #staleAfterMs: number;
  readonly #metrics: InformerMetrics | undefined;
  readonly #objects = new Map<string, Map<string, T>>();
  readonly #handlers: Record<InformerEvent, Set<InformerHandler<T>>> = {
    add: new Set(),
    update: new Set(),
    delete: new Set(),
  };
  readonly #syncWaiters = new Set<SyncWaiter>();
  #gen: Generation<T> | undefined;
  #genCounter = 0;
  #started = false;
  #synced = false;
  #restarts = 0;
  #failures = 0;
  /** The last list/watch failure since the last successful (re)connect, for diagnostics. */
  #lastError: string | undefined;
  #lastActivity: number;
  #restartTimer: TimerHandle | undefined;
  #watchdogTimer: TimerHandle | undefined;

  constructor(opts: InformerOptions<T>) {
    this.#opts = opts;
    this.name = opts.name;
    this.#log = opts.log.child({ informer: opts.name });
    this.#clock = opts.clock ?? realClock;
    this.#random = opts.random ?? Math.random;
    this.#staleAfterMs = opts.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
    this.#transport = opts.watch ?? defaultTransport(opts.kc, opts.watchInactivityTimeoutMs, this.#log);
    this.#lastActivity = this.#clock.now();
    if (opts.registry) {
      this.#metrics = informerMetrics(opts.registry);
      this.#metrics.restarts.inc({ informer: this.name }, 0);
      this.#metrics.synced.set({ informer: this.name }, 0);
    }
  }

  /** Restarts after errors or a stale watch (not counting start() calls). */
  get restarts(): number {
    return this.#restarts;
  }

  /** Subscribes a handler; returns its unsubscribe function. */
  on(event: InformerEvent, handler: InformerHandler<T>): () => void {
    const set = this.#handlers[event];
    if (!set) throw new Error(`unknown informer event ${String(event)}`);
    set.add(handler);
    return () => {
      set.delete(handler);
    };
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#objects.get(namespace ?? '')?.get(name);
  }

  list(namespace?: string): T[] {
    if (namespace !== undefined) return [...(this.#objects.get(namespace)?.values() ?? [])];
    const all: T[] = [];
    for (const m of this.#objects.values()) all.push(...m.values());
    return all;
  }

  /** True once the first list has been applied to the cache; stays true across restarts. */
  hasSynced(): boolean {
    return this.#synced;
  }

  /**
   * Why the informer is not listing/watching right now: the apiserver's answer to its last
   * failed list or watch (e.g. 404 for a missing CRD, 403 for missing RBAC), until a watch
   * connects again.
   */
  lastError(): string | undefined {
    return this.#lastError;
  }

  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.#synced) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#syncWaiters.delete(waiter);
        reject(signal?.reason);
      };
      const waiter: SyncWaiter = {
        resolve,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#syncWaiters.add(waiter);
    });
  }

  /**
   * Milliseconds since the last sign of life: a watch event (BOOKMARK and ERROR included), a
   * watch connecting, or ListWatch (re)connecting. Counted from start() before any of those.
   */
  timeSinceLastEventMs(): number {
    return this.#clock.now() - this.#lastActivity;
  }

  /** Starts listing and watching; returns at once (see waitForSync). No-op when running. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#failures = 0;
    this.#touch();
    this.#metrics?.live.add(this);
    this.#log.debug({ path: this.#opts.path }, 'informer starting');
    this.#openGeneration();
    this.#armWatchdog();
  }

  /** Stops: aborts the watch, clears every timer. The cache keeps its contents. */
  stop(): Promise<void> {
    if (!this.#started) return Promise.resolve();
    this.#started = false;
    this.#clearTimer('restart');
    this.#clearTimer('watchdog');
    this.#closeGeneration();
    this.#metrics?.live.delete(this);
    this.#log.debug('informer stopped');
    return Promise.resolve();
  }

  #openGeneration(): void {
    const gen: Generation<T> = {
      id: ++this.#genCounter,
      closed: false,
      listed: false,
      seen: new Set(),
      delays: new Set(),
      watch: undefined,
      lw: undefined,
    };
    const current = (): boolean => !gen.closed && this.#gen === gen;
    gen.watch = new GenerationWatch(
      this.#opts.kc,
      this.#transport,
      {
        closed: () => !current(),
        watchStarting: () => this.#guard('watch start', () => this.#initialListApplied(gen)),
        connected: () => this.#guard('connect', () => this.#onWatchConnected()),
        event: () => this.#touch(),
      },
      this.#random,
    );
    const list = (): Promise<KubernetesListObject<T>> =>
      Promise.resolve()
        .then(() => this.#opts.list())
        .then(
          (l) => (current() ? l : never()),
          (err: unknown) => (current() ? Promise.reject(err) : never()),
        );
    const lwOptions: ListWatchOptions = {
      // ListWatch's own reconnect delay (it backs off when watches close without events). A
      // closed generation's delay never resolves, so it cannot open a watch afterwards.
      delayFn: (ms) =>
        new Promise<void>((resolve) => {
          const h = this.#clock.setTimeout(() => {
            gen.delays.delete(h);
            if (current()) resolve();
          }, ms);
          gen.delays.add(h);
        }),
    };
    const lw = new ListWatch<T>(
      this.#opts.path,
      gen.watch,
      list,
      false,
      this.#opts.labelSelector,
      this.#opts.fieldSelector,
      lwOptions,
    );
    gen.lw = lw;
    lw.on('add', (o) => this.#guard('add', () => current() && this.#upsert(gen, o)));
    lw.on('update', (o) => this.#guard('update', () => current() && this.#upsert(gen, o)));
    lw.on('delete', (o) => this.#guard('delete', () => current() && this.#remove(o)));
    lw.on('connect', () => this.#guard('connect', () => current() && this.#touch()));
    lw.on('error', (err) => this.#guard('error', () => current() && this.#onError(gen, err)));
    this.#gen = gen;
    lw.start().catch((err: unknown) => this.#guard('error', () => current() && this.#onError(gen, err)));
  }

  #closeGeneration(): void {
    const gen = this.#gen;
    if (!gen) return;
    this.#gen = undefined;
    gen.closed = true;
    for (const h of gen.delays) this.#clock.clearTimeout(h);
    gen.delays.clear();
    gen.watch?.abortAll();
    gen.lw?.stop().catch(() => {});
  }

  #initialListApplied(gen: Generation<T>): void {
    if (gen.listed || gen.closed || this.#gen !== gen) return;
    gen.listed = true;
    // Whatever the cache holds that this generation's list did not contain was deleted while
    // we were not watching.
    for (const [ns, byName] of this.#objects) {
      for (const [name, obj] of byName) {
        if (gen.seen.has(`${ns}/${name}`)) continue;
        byName.delete(name);
        this.#emit('delete', obj);
      }
      if (byName.size === 0) this.#objects.delete(ns);
    }
    gen.seen.clear();
    if (!this.#synced) {
      this.#synced = true;
      this.#metrics?.synced.set({ informer: this.name }, 1);
      this.#log.info({ objects: this.list().length }, 'informer synced');
      for (const w of this.#syncWaiters) {
        w.cleanup();
        w.resolve();
      }
      this.#syncWaiters.clear();
    }
  }

  #upsert(gen: Generation<T>, obj: T): void {
    // Nothing in netmesh reads managedFields, and they are a large part of every cached object
    // (one entry per field manager, each a tree of nested objects): drop them, as client-go's
    // TransformStripManagedFields does. In place, because ListWatch's own cache holds this
    // same object.
    if (obj.metadata?.managedFields) delete obj.metadata.managedFields;
    const { ns, name } = keyOf(obj);
    if (!gen.listed) gen.seen.add(`${ns}/${name}`);
    let byName = this.#objects.get(ns);
    if (!byName) {
      byName = new Map();
      this.#objects.set(ns, byName);
    }
    const old = byName.get(name);
    byName.set(name, obj);
    if (!old) this.#emit('add', obj);
    else if (!sameVersion(old, obj)) this.#emit('update', obj, old);
  }

  #remove(obj: T): void {
    const { ns, name } = keyOf(obj);
    const byName = this.#objects.get(ns);
    if (!byName?.has(name)) return;
    byName.delete(name);
    if (byName.size === 0) this.#objects.delete(ns);
    this.#emit('delete', obj);
  }

  #emit(event: InformerEvent, obj: T, oldObj?: T): void {
    for (const h of [...this.#handlers[event]]) {
      try {
        const r = event === 'update' ? h(obj, oldObj) : h(obj);
        if (r && typeof (r as Promise<unknown>).then === 'function') {
          (r as Promise<unknown>).then(undefined, (err: unknown) => this.#handlerFailed(event, obj, err));
        }
      } catch (err) {
        this.#handlerFailed(event, obj, err);
      }
    }
  }

  #handlerFailed(event: InformerEvent, obj: T, err: unknown): void {
    const { ns, name } = keyOf(obj);
    this.#log.error({ err, event, key: ns ? `${ns}/${name}` : name }, 'informer handler failed');
  }

  /** Runs informer bookkeeping called from inside ListWatch/Watch, which must never throw. */
  #guard(what: string, fn: () => unknown): void {
    try {
      fn();
    } catch (err) {
      this.#log.error({ err, what }, 'informer internal error');
    }
  }

  #touch(): void {
    this.#lastActivity = this.#clock.now();
  }

  #onWatchConnected(): void {
    this.#touch();
    this.#lastError = undefined;
    if (this.#failures > 0) this.#log.info({ failures: this.#failures }, 'informer watch re-established');
    this.#failures = 0;
  }

  #onError(gen: Generation<T>, err: unknown): void {
    // ListWatch has given up on this generation; close it so nothing of it lingers.
    if (this.#gen === gen) this.#closeGeneration();
    if (!this.#started || this.#restartTimer) return;
    const delay = backoffDelayMs(this.#failures, this.#opts.backoff, this.#random);
    this.#failures++;
    this.#lastError = summarize(err);
    this.#log.warn(
      { err, failures: this.#failures, retryInMs: Math.round(delay) },
      'informer list/watch failed; restarting after backoff',
    );
    this.#restartTimer = this.#clock.setTimeout(() => {
      this.#restartTimer = undefined;
      this.#restart('error');
    }, delay);
  }

  #restart(reason: 'error' | 'stale'): void {
    if (!this.#started) return;
    this.#restarts++;
    this.#metrics?.restarts.inc({ informer: this.name });
    this.#log.info({ reason, restarts: this.#restarts }, 'informer restarting');
    this.#closeGeneration();
    this.#touch();
    this.#openGeneration();
  }

  #armWatchdog(): void {
    this.#clearTimer('watchdog');
    if (!this.#started) return;
    const due = Math.max(0, this.#lastActivity + this.#staleAfterMs - this.#clock.now());
    this.#watchdogTimer = this.#clock.setTimeout(() => {
      this.#watchdogTimer = undefined;
      this.#guard('watchdog', () => this.#watchdog());
      this.#armWatchdog();
    }, due);
  }

  #watchdog(): void {
    if (!this.#started) return;
    const idle = this.timeSinceLastEventMs();
    // A pending backoff restart already owns recovery.
    if (idle < this.#staleAfterMs || this.#restartTimer) return;
    this.#log.warn({ idleMs: Math.round(idle) }, 'informer watch is stale; forcing a restart');
    this.#restart('stale');
  }

  #clearTimer(which: 'restart' | 'watchdog'): void {
    const h = which === 'restart' ? this.#restartTimer : this.#watchdogTimer;
    if (h) this.#clock.clearTimeout(h);
    if (which === 'restart') this.#restartTimer = undefined;
    else this.#watchdogTimer = undefined;
  }
}

/** "404 the server could not find the requested resource" (for readiness and Events). */
function summarize(err: unknown): string {
  const info = describeKubeError(err);
  return `${info.statusCode !== undefined ? `${info.statusCode} ` : ''}${info.message}`;
}

/**
 * A controller's account of a late cache sync: controller-runtime fails the start when the
 * caches do not sync in time; netmesh reports once (log, readiness, the caller's hook) and keeps
 * waiting, so a CRD or RBAC rule installed later heals without a restart (and `netmesh run`
 * keeps its webhook serving meanwhile). `problem` is what readiness says until the sync.
 */
export class CacheSyncReport {
  #problem: string | undefined;
  readonly #log: Logger;
  readonly #what: string;
  readonly #onTimeout: (reason: string) => void;

  constructor(log: Logger, what: string, onTimeout: (reason: string) => void) {
    this.#log = log;
    this.#what = what;
    this.#onTimeout = onTimeout;
  }

  get problem(): string | undefined {
    return this.#problem;
  }

  /** The onTimeout of waitForCacheSync. */
  readonly timedOut = (reason: string): void => {
    this.#problem = reason;
    this.#log.error({ reason }, `${this.#what} cache sync timed out; still waiting`);
    this.#onTimeout(reason);
  };

  /** After waitForCacheSync resolved: says so if it had been reported late. */
  synced(): void {
    if (this.#problem) this.#log.info(`${this.#what} caches synced after all`);
    this.#problem = undefined;
  }
}

/**
 * Waits until every informer has synced. Rejects when `signal` aborts (stop, leadership lost)
 * and otherwise never gives up: once `timeoutMs` has passed it calls `onTimeout` once with the
 * reason (which informers, and the apiserver's last answer to each), so that the caller can
 * report it (readiness, logs, an Event) while the informers keep retrying with backoff. A
 * missing CRD or RBAC rule therefore shows up at once but heals without a restart.
 */
export async function waitForCacheSync(
  informers: readonly Pick<Informer<KubernetesObject>, 'name' | 'hasSynced' | 'lastError' | 'waitForSync'>[],
  opts: { signal: AbortSignal; timeoutMs: number; onTimeout: (reason: string) => void; clock?: Clock },
): Promise<void> {
  const clock = opts.clock ?? realClock;
  const timer = clock.setTimeout(() => {
    const pending = informers.filter((i) => !i.hasSynced());
    if (pending.length === 0) return;
    const detail = pending
      .map((i) => `informer ${i.name}: ${i.lastError() ?? 'no answer from the apiserver yet'}`)
      .join('; ');
    opts.onTimeout(`cache sync timed out after ${formatSeconds(opts.timeoutMs)}: ${detail}`);
  }, opts.timeoutMs);
  try {
    await Promise.all(informers.map((i) => i.waitForSync(opts.signal)));
  } finally {
    clock.clearTimeout(timer);
  }
}

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}

function defaultTransport(kc: KubeConfig, inactivityTimeoutMs: number | undefined, log: Logger): Watch {
  const watch = new Watch(kc);
  // requestTimeoutMs is private in 2.0.1's typings (no constructor option). It is both the
  // connect timeout and the inactivity timeout; its default (30 s) is shorter than the
  // apiserver's bookmark interval.
  const w = watch as unknown as { requestTimeoutMs?: unknown };
  if (typeof w.requestTimeoutMs === 'number') {
    w.requestTimeoutMs = inactivityTimeoutMs ?? DEFAULT_WATCH_INACTIVITY_TIMEOUT_MS;
  } else {
    log.warn('client-node Watch has no requestTimeoutMs field; keeping its default watch timeout');
  }
  return watch;
}
