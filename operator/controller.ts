// The Network controller: informers feed an overlap index and a rate-limited work queue of
// `namespace/name` keys; workers reconcile one key at a time against the informer caches and
// write only by PATCH (merge patch for finalizers and status, server-side apply for the CNI
// object). The decisions themselves live in model.ts and network/.
import * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
import { statusCode as httpCode, statusMessage, statusReason } from '../lib/kube-errors.ts';
import { EventRecorder } from '../runtime/events.ts';
import { CacheSyncReport, Informer, waitForCacheSync } from '../runtime/informer.ts';
import { registerOnce } from '../runtime/metrics.ts';
import {
  type DefaultControllerRateLimiterOptions,
  defaultControllerRateLimiter,
  PrometheusQueueMetricsProvider,
  RateLimitingQueue,
} from '../runtime/queue/index.ts';
import { deadline, requestOptions } from '../runtime/request.ts';
import {
  API_VERSION,
  configMapName,
  conflictMessage,
  controlledBy,
  desiredMaterialization,
  desiredStatus,
  FIELD_MANAGER,
  FINALIZER,
  foreignHolder,
  GROUP,
  hasFinalizer,
  KIND,
  keyOf,
  MANAGED_BY_LABEL,
  type MaterializedRef,
  type MaterializeMode,
  materializationUpToDate,
  NAD_GROUP,
  NAD_PLURAL,
  type Network,
  type NetworkAttachmentDefinition,
  type Outcome,
  overlapMessage,
  PLURAL,
  reindexNetwork,
  sameStatus,
  splitKey,
  transitionEvent,
  VERSION,
} from './model.ts';
import { validateNetworkSpec } from './network/cidr.ts';
import { OverlapIndex } from './network/overlap-index.ts';
import { configMapClient, nadClient, type ObjectClient, type Owned } from './objects.ts';

export interface NetworkControllerOptions {
  kc: k8s.KubeConfig;
  log: Logger;
  registry: Registry;
  /** Identity of this replica, reported on Events. */
  identity: string;
  workers?: number;
  rateLimiter?: DefaultControllerRateLimiterOptions;
  /** How often to re-check whether Multus (NetworkAttachmentDefinition) is installed. */
  multusProbeIntervalMs?: number;
  /** How often a Network in Conflict looks again whether the name it needs is free. */
  conflictRecheckMs?: number;
  /** Timeout of every request a reconcile makes. */
  requestTimeoutMs?: number;
  /**
   * How long start() waits for the informer caches before reporting why they are not synced
   * (readiness, an error log, onCacheSyncTimeout); it keeps waiting afterwards.
   */
  cacheSyncTimeoutMs?: number;
  /** Called once when the caches did not sync within cacheSyncTimeoutMs, with the reason. */
  onCacheSyncTimeout?: (reason: string) => void;
}

export interface ReconcileResult {
  /** Look at the key again after this long (it is not an error: no backoff). */
  requeueAfterMs?: number;
}

/** What #materialize did: the object's reference, and who holds its name if not us. */
interface Materialized {
  ref: MaterializedRef;
  conflict?: string;
}

function otherMode(mode: MaterializeMode): MaterializeMode {
  return mode === 'ConfigMap' ? 'NetworkAttachmentDefinition' : 'ConfigMap';
}

const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${FIELD_MANAGER}`;

export class NetworkController {
  readonly queue: RateLimitingQueue<string>;
  readonly index = new OverlapIndex();
  readonly networks: Informer<Network>;
  readonly configMaps: Informer<k8s.V1ConfigMap>;
  nads: Informer<NetworkAttachmentDefinition> | undefined;
  #mode: MaterializeMode = 'ConfigMap';
  #workersRunning = 0;
  #workerLoops: Promise<void>[] = [];
  #probeTimer: NodeJS.Timeout | undefined;
  #started = false;
  #stopping = false;
  /** Why the caches are not synced, once cacheSyncTimeoutMs has passed without them. */
  readonly #sync: CacheSyncReport;
  /**
   * The context of all work: aborted by stop() and by the signal given to start() (leadership
   * lost). Every request of a reconcile carries it (with a timeout), so nothing this replica
   * started can still reach the apiserver once another replica may lead.
   */
  readonly #context = new AbortController();
  readonly #opts: Required<Omit<NetworkControllerOptions, 'rateLimiter'>> & {
    rateLimiter: DefaultControllerRateLimiterOptions;
  };
  readonly #custom: k8s.CustomObjectsApi;
  readonly #clients: Record<MaterializeMode, ObjectClient>;
  readonly #apis: k8s.ApisApi;
  readonly #events: EventRecorder;
  readonly #metrics: { total: Counter<'result'>; errors: Counter; duration: Histogram };

  constructor(opts: NetworkControllerOptions) {
    this.#opts = {
      workers: 2,
      multusProbeIntervalMs: 30_000,
      conflictRecheckMs: 10_000,
      requestTimeoutMs: 10_000,
      cacheSyncTimeoutMs: 120_000,
      onCacheSyncTimeout: () => {},
      rateLimiter: {},
      ...opts,
    };
    const { kc, log, registry } = opts;
    this.#custom = kc.makeApiClient(k8s.CustomObjectsApi);
    this.#apis = kc.makeApiClient(k8s.ApisApi);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    this.#clients = {
      ConfigMap: configMapClient(core),
      NetworkAttachmentDefinition: nadClient(this.#custom),
    };
    this.#events = new EventRecorder({ core, component: FIELD_MANAGER, instance: opts.identity, log });
    this.queue = new RateLimitingQueue<string>({
      name: 'network',
      metrics: new PrometheusQueueMetricsProvider(registry),
      rateLimiter: defaultControllerRateLimiter<string>(this.#opts.rateLimiter),
    });
    this.#metrics = reconcileMetrics(registry);
    this.#sync = new CacheSyncReport(log, 'network controller', this.#opts.onCacheSyncTimeout);
    this.networks = this.#watchNetworks();
    this.configMaps = this.#watchCniConfigMaps(core);
  }

  /** The Networks informer: every change of a Network enqueues it (and its overlap partners). */
  #watchNetworks(): Informer<Network> {
    const { kc, log, registry } = this.#opts;
    const networks = new Informer<Network>({
      kc,
      name: 'networks',
      path: `/apis/${GROUP}/${VERSION}/${PLURAL}`,
      list: () =>
        this.#custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }) as Promise<
          k8s.KubernetesListObject<Network>
        >,
      log,
      registry,
    });
    networks.on('add', (n) => this.#onNetwork(n));
    networks.on('update', (n) => this.#onNetwork(n));
    networks.on('delete', (n) => this.#onNetworkDeleted(n));
    return networks;
  }

  /** The CNI ConfigMaps netmesh labelled: a change or deletion enqueues the owning Network. */
  #watchCniConfigMaps(core: k8s.CoreV1Api): Informer<k8s.V1ConfigMap> {
    const { kc, log, registry } = this.#opts;
    const configMaps = new Informer<k8s.V1ConfigMap>({
      kc,
      name: 'cni-configmaps',
      path: '/api/v1/configmaps',
      labelSelector: MANAGED_SELECTOR,
      list: () =>
        core.listConfigMapForAllNamespaces({ labelSelector: MANAGED_SELECTOR }) as Promise<
          k8s.KubernetesListObject<k8s.V1ConfigMap>
        >,
      log,
      registry,
    });
    for (const ev of ['add', 'update', 'delete'] as const) configMaps.on(ev, (o) => this.#onOwned(o));
    return configMaps;
  }

  get log(): Logger {
    return this.#opts.log;
  }

  /** true = caches synced and workers running (readiness of the leader); else why not. */
  ready(): true | string {
    if (this.#started && this.#workersRunning > 0) return true;
    if (this.#stopping) return 'stopping';
    return this.#sync.problem ?? 'waiting for the caches to sync';
  }

  mode(): MaterializeMode {
    return this.#mode;
  }

  /**
   * Starts informers, waits for their caches, then starts the workers. `signal` (leadership)
   * aborts all work when it fires, as stop() does.
   */
  async start(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) this.#context.abort(signal.reason);
    else signal?.addEventListener('abort', () => this.#context.abort(signal.reason), { once: true });
    await this.#probeMultus();
    this.networks.start();
    this.configMaps.start();
    const informers = [
      this.networks,
      this.configMaps,
      ...(this.nads ? [this.nads] : []),
    ] as Informer<k8s.KubernetesObject>[];
    await waitForCacheSync(informers, {
      signal: this.#context.signal,
      timeoutMs: this.#opts.cacheSyncTimeoutMs,
      onTimeout: this.#sync.timedOut,
    });
    this.#sync.synced();
    this.#probeTimer = setInterval(() => void this.#probeMultus(), this.#opts.multusProbeIntervalMs);
    this.#probeTimer.unref();
    this.#started = true;
    for (let i = 0; i < this.#opts.workers; i++) this.#workerLoops.push(this.#worker(i));
    this.log.info(
      { workers: this.#opts.workers, mode: this.#mode, networks: this.index.size },
      'network controller started',
    );
  }

  /**
   * Stops taking new work, cancels the requests in flight (a reconcile cut short is redone by
   * whoever leads next: reconciles are level-based), waits for the workers, then stops the
   * informers. Queued keys are dropped on purpose: the next leader lists every Network anyway,
   * and a bounded stop keeps the lease hand-over fast.
   */
  async stop(): Promise<void> {
    if (this.#probeTimer) clearInterval(this.#probeTimer);
    this.#stopping = true;
    this.#context.abort(new Error('network controller stopping'));
    this.queue.shutDown();
    await Promise.all(this.#workerLoops);
    await Promise.all([this.networks.stop(), this.configMaps.stop(), this.nads?.stop()]);
    this.#started = false;
  }

  // ---- event handlers: keep the overlap index current and enqueue keys, nothing else ----

  #onNetwork(net: Network): void {
    for (const k of reindexNetwork(this.index, keyOf(net), net)) this.queue.add(k);
  }

  #onNetworkDeleted(net: Network): void {
    for (const k of reindexNetwork(this.index, keyOf(net), undefined)) this.queue.add(k);
  }

  #onOwned(obj: k8s.KubernetesObject): void {
    const owner = obj.metadata?.ownerReferences?.find(
      (o) => o.controller && o.kind === KIND && o.apiVersion === API_VERSION,
    );
    if (owner && obj.metadata?.namespace) this.queue.add(`${obj.metadata.namespace}/${owner.name}`);
  }

  // ---- Multus detection ----

  async #probeMultus(): Promise<void> {
    let present = false;
    try {
      const groups = await this.#apis.getAPIVersions(requestOptions({ signal: this.#request() }));
      present = groups.groups.some((g) => g.name === NAD_GROUP && g.versions.some((v) => v.version === 'v1'));
    } catch (err) {
      if (!this.#context.signal.aborted)
        this.log.warn({ err }, 'API discovery failed; keeping the current materialization mode');
      return;
    }
    // A probe that was in flight when stop() ran must not start an informer nobody stops.
    if (this.#stopping) return;
    const mode: MaterializeMode = present ? 'NetworkAttachmentDefinition' : 'ConfigMap';
    if (present && !this.nads) {
      const nads = new Informer<NetworkAttachmentDefinition>({
        kc: this.#opts.kc,
        name: 'network-attachment-definitions',
        path: `/apis/${NAD_GROUP}/v1/${NAD_PLURAL}`,
        labelSelector: MANAGED_SELECTOR,
        list: () =>
          this.#custom.listClusterCustomObject({
            group: NAD_GROUP,
            version: 'v1',
            plural: NAD_PLURAL,
            labelSelector: MANAGED_SELECTOR,
          }) as Promise<k8s.KubernetesListObject<NetworkAttachmentDefinition>>,
        log: this.log,
        registry: this.#opts.registry,
      });
      for (const ev of ['add', 'update', 'delete'] as const) nads.on(ev, (o) => this.#onOwned(o));
      this.nads = nads;
      nads.start();
      // Bounded by stop(): a NAD informer that cannot sync (RBAC) must not pin this probe.
      if (this.#started) await nads.waitForSync(this.#context.signal).catch(() => {});
    }
    if (mode !== this.#mode) {
      this.log.info({ mode }, 'materialization mode changed');
      this.#mode = mode;
      if (this.#started) for (const n of this.networks.list()) this.queue.add(keyOf(n));
    }
  }

  // ---- workers ----

  async #worker(id: number): Promise<void> {
    this.#workersRunning++;
    try {
      for (;;) {
        const { item: key, shutdown } = await this.queue.get();
        if (shutdown) return;
        if (this.#stopping) {
          this.queue.done(key);
          return;
        }
        const log = this.log.child({ key, worker: id });
        const end = this.#metrics.duration.startTimer();
        try {
          const result = await this.reconcile(key, log);
          this.queue.forget(key);
          if (result.requeueAfterMs !== undefined) this.queue.addAfter(key, result.requeueAfterMs);
          this.#metrics.total.inc({ result: 'success' });
        } catch (err) {
          if (this.#context.signal.aborted) {
            // Leadership ended or stopping: the request was cancelled on purpose.
            log.debug({ err }, 'reconcile cancelled');
            this.#metrics.total.inc({ result: 'cancelled' });
          } else if (httpCode(err) === 409) {
            // Somebody wrote the object since our cache saw it. Retry through the rate
            // limiter, as controller-runtime does: the cache that produced the conflict may
            // stay stale for a while (watch down, informer in backoff), and an immediate
            // requeue would then hammer the apiserver at request speed.
            log.debug({ requeues: this.queue.numRequeues(key) }, 'conflict; requeued with backoff');
            this.#metrics.total.inc({ result: 'conflict' });
            this.queue.addRateLimited(key);
          } else {
            this.#metrics.total.inc({ result: 'error' });
            this.#metrics.errors.inc();
            log.error(
              { err, requeues: this.queue.numRequeues(key) },
              'reconcile failed; requeued with backoff',
            );
            this.queue.addRateLimited(key);
          }
        } finally {
          end();
          this.queue.done(key);
        }
      }
    } finally {
      this.#workersRunning--;
    }
  }

  /**
   * One pass of the control loop for one key. Throws to requeue with backoff; returns
   * requeueAfterMs to be looked at again later although nothing failed.
   */
  async reconcile(key: string, log: Logger = this.log.child({ key })): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    let net = this.networks.get(name, namespace);
    if (!net) {
      // Deleted: the garbage collector removes what it owned (owner references).
      log.debug('not found; nothing to do');
      return {};
    }
    if (hasFinalizer(net)) net = await this.#dropLegacyFinalizer(net, log);
    if (net.metadata?.deletionTimestamp) return {}; // another finalizer holds it; nothing of ours to do

    const outcome = await this.#decideAndMaterialize(key, net, log);
    await this.#writeStatus(net, outcome, log);
    // An object of somebody else's is not watched (the informers select netmesh's label), so
    // look again now and then: the Network becomes Ready by itself once the name is free.
    if (outcome.kind === 'Conflict') return { requeueAfterMs: this.#opts.conflictRecheckMs };
    return {};
  }

  /**
   * Migration: earlier versions added this finalizer. Owner references already make the
   * garbage collector delete the materialised objects; the finalizer only made deleting
   * a Network (and its namespace) hang whenever netmesh was not running.
   */
  async #dropLegacyFinalizer(net: Network, log: Logger): Promise<Network> {
    const patched = await this.#patchNetwork(net, {
      finalizers: (net.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER),
    });
    log.info('legacy finalizer removed');
    return patched;
  }

  /** Invalid or overlapping: nothing of ours may stay. Otherwise write the CNI object. */
  async #decideAndMaterialize(key: string, net: Network, log: Logger): Promise<Outcome> {
    const v = validateNetworkSpec(net.spec);
    if (!v.ok) {
      await this.#removeMaterialized(net, log);
      return { kind: 'Invalid', message: v.message };
    }
    const blocker = this.index.isBlocked(key) ? this.index.blockerFor(key) : undefined;
    if (blocker) {
      await this.#removeMaterialized(net, log);
      return { kind: 'Overlap', blocker, message: overlapMessage(blocker), validation: v };
    }
    const m = await this.#materializeOrReport(net, v, log);
    if (m.conflict === undefined) return { kind: 'Ready', ref: m.ref, validation: v };
    // Whatever we materialised before (e.g. in the other mode) goes; theirs stays.
    await this.#removeMaterialized(net, log);
    return { kind: 'Conflict', message: conflictMessage(m.ref, m.conflict), validation: v };
  }

  /**
   * #materialize, but when the apiserver refuses the object itself (invalid, e.g. a name too
   * long for "<name>-cni"; forbidden by RBAC or an admission policy) say so in the status, with
   * one Event, and retry with backoff (the rethrown error) rather than fail silently.
   */
  async #materializeOrReport(
    net: Network,
    v: Extract<ReturnType<typeof validateNetworkSpec>, { ok: true }>,
    log: Logger,
  ): Promise<Materialized> {
    try {
      return await this.#materialize(net, v, log);
    } catch (err) {
      const code = httpCode(err);
      if (this.#context.signal.aborted || (code !== 400 && code !== 403 && code !== 422)) throw err;
      const ref = desiredMaterialization(net, v, this.#mode).ref;
      const why = statusMessage(err) ?? (err instanceof Error ? err.message : String(err));
      await this.#writeStatus(
        net,
        {
          kind: 'MaterializeFailed',
          message: `the apiserver refused ${ref.kind} ${ref.namespace}/${ref.name} (${code}): ${why}`,
          validation: v,
        },
        log,
      );
      throw err;
    }
  }

  async #patchNetwork(net: Network, metadata: { finalizers: string[] }): Promise<Network> {
    const { namespace, name } = splitKey(keyOf(net));
    // resourceVersion makes the merge patch conditional: a stale cache gets 409, not a lost write.
    return (await this.#custom.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace,
        plural: PLURAL,
        name,
        body: { metadata: { ...metadata, resourceVersion: net.metadata?.resourceVersion } },
      },
      requestOptions({ signal: this.#request(), contentType: k8s.PatchStrategy.MergePatch }),
    )) as Network;
  }

  /**
   * Makes the object the CNI consumes match the Network, writing only objects that carry
   * netmesh's ownership mark (see foreignHolder). Returns `conflict` (who holds the name)
   * instead of writing when the name belongs to someone else.
   *
   * Nothing here can race a user creating the object: an absent object is created with POST,
   * which fails with AlreadyExists if anyone created it first (never overwrites); an existing
   * one is judged from what was read and then applied with that read's resourceVersion as a
   * precondition, so a change of hands in between gets 409 and a fresh decision.
   */
  async #materialize(
    net: Network,
    v: Extract<ReturnType<typeof validateNetworkSpec>, { ok: true }>,
    log: Logger,
  ): Promise<Materialized> {
    const mode = this.#mode;
    const { object, ref } = desiredMaterialization(net, v, mode);
    const client = this.#clients[mode];
    let live: Owned | undefined = this.#cached(mode, ref.name, ref.namespace);
    if (!live) {
      try {
        await client.create(object, this.#request());
        log.info({ kind: ref.kind, name: ref.name }, 'materialized object created');
        await this.#deleteOwned(net, otherMode(mode), log);
        return { ref };
      } catch (err) {
        if (httpCode(err) !== 409 || statusReason(err) !== 'AlreadyExists') throw err;
      }
      // The name is taken (our cache is behind, or someone else's object, which our
      // label-selected informers never see): judge the object itself.
      live = await client.get(ref.namespace, ref.name, this.#request());
      if (!live)
        throw new Error(`${ref.kind} ${ref.namespace}/${ref.name} vanished after AlreadyExists; retrying`);
    }
    const holder = foreignHolder(live, net);
    if (holder !== undefined) {
      log.warn(
        { kind: ref.kind, name: ref.name, holder },
        'object name held by someone else; not touching it',
      );
      return { ref, conflict: holder };
    }
    if (!materializationUpToDate(live, object)) {
      await client.apply(
        { ...object, metadata: { ...object.metadata, resourceVersion: live.metadata?.resourceVersion } },
        this.#request(),
      );
      log.info({ kind: ref.kind, name: ref.name }, 'materialized object repaired');
    }
    // A Network materialised in the other mode before (Multus installed or removed since).
    await this.#deleteOwned(net, otherMode(mode), log);
    return { ref };
  }

  /** The signal for one request: the controller's context, and a timeout. */
  #request(): AbortSignal {
    return deadline(this.#context.signal, this.#opts.requestTimeoutMs);
  }

  #cached(kind: MaterializeMode, name: string, namespace: string): Owned | undefined {
    return kind === 'ConfigMap' ? this.configMaps.get(name, namespace) : this.nads?.get(name, namespace);
  }

  async #removeMaterialized(net: Network, log: Logger): Promise<void> {
    await this.#deleteOwned(net, 'ConfigMap', log);
    await this.#deleteOwned(net, 'NetworkAttachmentDefinition', log);
  }

  async #deleteOwned(net: Network, kind: MaterializeMode, log: Logger): Promise<boolean> {
    const namespace = net.metadata!.namespace!;
    const name = kind === 'ConfigMap' ? configMapName(net.metadata!.name!) : net.metadata!.name!;
    const live = this.#cached(kind, name, namespace);
    if (!live || !controlledBy(live, net)) return false;
    // Preconditions: delete exactly the object the cache showed as ours. If it was replaced
    // (new UID) or changed hands since (new resourceVersion), the apiserver answers 409 and
    // the retry decides again on fresher data.
    await this.#clients[kind].delete(
      namespace,
      name,
      {
        ...(live.metadata?.uid ? { uid: live.metadata.uid } : {}),
        ...(live.metadata?.resourceVersion ? { resourceVersion: live.metadata.resourceVersion } : {}),
      },
      this.#request(),
    );
    log.info({ kind, name }, 'materialized object deleted');
    return true;
  }

  async #writeStatus(net: Network, outcome: Outcome, log: Logger): Promise<void> {
    const next = desiredStatus(net, outcome, new Date());
    if (sameStatus(net.status, next)) return;
    const { namespace, name } = splitKey(keyOf(net));
    // A merge patch only removes what it sets to null: clear the fields this outcome lacks
    // (an Overlap or Invalid Network has no materialized object, gateway or usable count).
    const body = { status: { gateway: null, usableAddresses: null, materialized: null, ...next } };
    await this.#custom.patchNamespacedCustomObjectStatus(
      { group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body },
      requestOptions({ signal: this.#request(), contentType: k8s.PatchStrategy.MergePatch }),
    );
    log.info({ phase: next.phase, reason: next.conditions?.[0]?.reason }, 'status updated');
    const event = transitionEvent(net.status, next);
    if (event) await this.#events.record(net, event, { signal: this.#request() });
  }
}

/** The reconcile metrics, registered once per registry (a second controller reuses them). */
function reconcileMetrics(registry: Registry): {
  total: Counter<'result'>;
  errors: Counter;
  duration: Histogram;
} {
  return {
    total: registerOnce<Counter<'result'>>(
      registry,
      'netmesh_reconcile_total',
      Counter,
      () =>
        new Counter({
          name: 'netmesh_reconcile_total',
          help: 'Network reconciles by result (success, error, conflict, cancelled).',
          labelNames: ['result'],
          registers: [registry],
        }),
    ),
    errors: registerOnce(
      registry,
      'netmesh_reconcile_errors_total',
      Counter,
      () =>
        new Counter({
          name: 'netmesh_reconcile_errors_total',
          help: 'Network reconciles that failed and were requeued with backoff.',
          registers: [registry],
        }),
    ),
    duration: registerOnce(
      registry,
      'netmesh_reconcile_duration_seconds',
      Histogram,
      () =>
        new Histogram({
          name: 'netmesh_reconcile_duration_seconds',
          help: 'Time to reconcile one Network.',
          buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
          registers: [registry],
        }),
    ),
  };
}
