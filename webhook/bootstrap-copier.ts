// Copies the Envoy bootstrap ConfigMap (default `envoy` in netmesh's namespace) into every
// namespace labelled netmesh.io/injection=enabled. The default sidecar template mounts that
// ConfigMap, and a ConfigMap volume resolves in the Pod's own namespace: without a copy there,
// an injected Pod would wait in ContainerCreating. It serves the injector, so it lives here;
// it runs on the operator's leader only (handed to startOperator as leader work: one writer at
// a time, fenced by the Lease) and reads through the process's shared informers: the namespaces
// informer is the webhook's own (one watch), filtered here by the injection label.
//
// Ownership: a copy is netmesh's only if it carries the label netmesh.io/bootstrap-copy=true
// and the annotation netmesh.io/copied-from=<namespace>/<name> of this source. netmesh creates
// a copy with a plain create (which fails rather than overwrite an object created in the
// meantime), repairs only its own copies (a replace conditional on the resourceVersion it
// judged ownership on), and never touches a ConfigMap of that name someone else made (Helm's
// envoyBootstrap.namespaces, a user's): it records a Warning Event on it instead. Copies are
// deleted (uid and resourceVersion preconditions) when no longer wanted: the namespace loses
// its label, or the source is deleted. With `owner` set (netmesh run: the webhook's
// MutatingWebhookConfiguration, cluster-scoped), every copy also carries an owner reference to
// it, so the garbage collector removes the copies when netmesh is uninstalled.
import * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { statusCode as httpCode, statusReason } from '../lib/kube-errors.ts';
import { FIELD_MANAGER, MANAGED_BY_LABEL } from '../lib/ownership.ts';
import { EventRecorder } from '../runtime/events.ts';
import { CacheSyncReport } from '../runtime/informer.ts';
import type { SharedInformer, SharedInformerFactory } from '../runtime/informer-factory.ts';
import { PrometheusQueueMetricsProvider, RateLimitingQueue } from '../runtime/queue/index.ts';
import { deadline, requestOptions } from '../runtime/request.ts';
import {
  BOOTSTRAP_COPY_LABEL,
  COPIED_FROM_ANNOTATION,
  NAMESPACE_INJECTION_ENABLED,
  NAMESPACE_INJECTION_LABEL,
} from './core/contract.ts';
import { namespacesInformerSpec } from './namespaces.ts';

/**
 * The cluster-scoped object whose deletion removes the copies (garbage collection): netmesh's
 * MutatingWebhookConfiguration, since the copies exist for the sidecars it injects.
 */
export interface CopyOwner {
  apiVersion: 'admissionregistration.k8s.io/v1';
  kind: 'MutatingWebhookConfiguration';
  name: string;
}

export interface BootstrapCopierOptions {
  kc: k8s.KubeConfig;
  log: Logger;
  registry: Registry;
  /** The process's shared informers (the namespaces informer is the webhook's). */
  informers: SharedInformerFactory;
  /** Namespace holding the source ConfigMap (netmesh's own). */
  namespace: string;
  /** Name of the source ConfigMap, and of each copy. */
  name: string;
  /** Owner of every copy; none: copies are removed only by the copier itself. */
  owner?: CopyOwner | undefined;
  /** Identity of this replica, reported on Events. */
  identity?: string;
  /** Re-apply every copy this often, repairing copies edited or deleted by hand. */
  resyncMs?: number;
  /** Per-request timeout. */
  requestTimeoutMs?: number;
  /** How long start() waits for its caches before reporting why (it keeps waiting). */
  cacheSyncTimeoutMs?: number;
  /** Called once when the caches did not sync within cacheSyncTimeoutMs, with the reason. */
  onCacheSyncTimeout?: (reason: string) => void;
}

type ResolvedOwner = CopyOwner & { uid: string };

/** The copy for `namespace`: the source's data under our mark. */
export function bootstrapCopy(
  source: k8s.V1ConfigMap,
  namespace: string,
  owner?: ResolvedOwner,
): k8s.V1ConfigMap & k8s.KubernetesObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: source.metadata!.name!,
      namespace,
      labels: { [MANAGED_BY_LABEL]: FIELD_MANAGER, [BOOTSTRAP_COPY_LABEL]: 'true' },
      annotations: { [COPIED_FROM_ANNOTATION]: `${source.metadata?.namespace}/${source.metadata?.name}` },
      // No blockOwnerDeletion: it would need permission on the owner's finalizers, and
      // nothing needs the owner's deletion to wait for the copies.
      ...(owner
        ? {
            ownerReferences: [
              { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.name, uid: owner.uid },
            ],
          }
        : {}),
    },
    data: { ...(source.data ?? {}) },
  };
}

/** True when `cm` is netmesh's copy of `source` (`namespace/name`): our label and annotation. */
export function isOurCopy(cm: k8s.KubernetesObject, source: string): boolean {
  return (
    cm.metadata?.labels?.[BOOTSTRAP_COPY_LABEL] === 'true' &&
    cm.metadata?.annotations?.[COPIED_FROM_ANNOTATION] === source
  );
}

/**
 * True when the live copy is exactly what `desired` says (data, owners, our labels and
 * annotations); anything else is rewritten.
 */
export function copyUpToDate(live: k8s.V1ConfigMap, desired: k8s.V1ConfigMap): boolean {
  const uids = (refs: k8s.V1OwnerReference[] | undefined) =>
    (refs ?? [])
      .map((r) => r.uid)
      .sort()
      .join(',');
  // A stale owner (the webhook configuration was recreated) must go too, or the garbage
  // collector deletes the copy for it.
  if (uids(live.metadata?.ownerReferences) !== uids(desired.metadata?.ownerReferences)) return false;
  for (const [k, v] of Object.entries(desired.metadata?.labels ?? {}))
    if (live.metadata?.labels?.[k] !== v) return false;
  for (const [k, v] of Object.entries(desired.metadata?.annotations ?? {}))
    if (live.metadata?.annotations?.[k] !== v) return false;
  const liveData = live.data ?? {};
  const wantData = desired.data ?? {};
  const keys = new Set([...Object.keys(liveData), ...Object.keys(wantData)]);
  for (const k of keys) if (liveData[k] !== wantData[k]) return false;
  return true;
}

const OWNER_REFRESH_MS = 60_000;

/**
 * The copier as leader work for startOperator (operator/main.ts LeaderWork): built with the
 * replica's identity, its cache-sync problems reported through the operator (Event on the Lease).
 */
export function bootstrapCopierWork(
  opts: Omit<BootstrapCopierOptions, 'identity' | 'onCacheSyncTimeout'>,
): (ctx: { identity: string; onCacheSyncTimeout(reason: string): void }) => BootstrapCopier {
  return (ctx) =>
    new BootstrapCopier({
      ...opts,
      identity: ctx.identity,
      onCacheSyncTimeout: (reason) => ctx.onCacheSyncTimeout(`Envoy bootstrap copier: ${reason}`),
    });
}

interface CopierInformers {
  namespaces: SharedInformer<k8s.V1Namespace>;
  source: SharedInformer<k8s.V1ConfigMap>;
  copies: SharedInformer<k8s.V1ConfigMap>;
}

function isInjected(ns: k8s.V1Namespace): boolean {
  return ns.metadata?.labels?.[NAMESPACE_INJECTION_LABEL] === NAMESPACE_INJECTION_ENABLED;
}

export class BootstrapCopier {
  readonly #opts: Required<Omit<BootstrapCopierOptions, 'owner'>> & { owner: CopyOwner | undefined };
  readonly #cacheSync: CacheSyncReport;
  #running = false;
  readonly #source: string;
  /** Created on start (the leader's): a standby replica never watches the copies. */
  #informers: CopierInformers | undefined;
  readonly #unsubscribe: (() => void)[] = [];
  readonly #queue: RateLimitingQueue<string>;
  readonly #core: k8s.CoreV1Api;
  readonly #admission: k8s.AdmissionregistrationV1Api;
  readonly #events: EventRecorder;
  /** UIDs of foreign ConfigMaps already reported with an Event. */
  readonly #reported = new Set<string>();
  #owner: { value: ResolvedOwner | undefined; at: number } | undefined;
  #loop: Promise<void> | undefined;
  #resync: NodeJS.Timeout | undefined;
  /** Aborted by stop() and by the signal given to start() (leadership lost): see #signal. */
  readonly #context = new AbortController();

  constructor(opts: BootstrapCopierOptions) {
    this.#opts = {
      resyncMs: 10 * 60_000,
      requestTimeoutMs: 10_000,
      cacheSyncTimeoutMs: 120_000,
      onCacheSyncTimeout: () => {},
      identity: FIELD_MANAGER,
      ...opts,
      owner: opts.owner,
    };
    const { kc, log, registry, namespace, name } = opts;
    this.#source = `${namespace}/${name}`;
    this.#cacheSync = new CacheSyncReport(log, 'Envoy bootstrap copier', this.#opts.onCacheSyncTimeout);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    this.#core = core;
    this.#admission = kc.makeApiClient(k8s.AdmissionregistrationV1Api);
    this.#events = new EventRecorder({ core, component: FIELD_MANAGER, instance: this.#opts.identity, log });
    this.#queue = new RateLimitingQueue<string>({
      name: 'envoy-bootstrap',
      metrics: new PrometheusQueueMetricsProvider(registry),
    });
  }

  get log(): Logger {
    return this.#opts.log;
  }

  /** true once copying; else why not. */
  ready(): true | string {
    if (this.#running) return true;
    return this.#cacheSync.problem
      ? `Envoy bootstrap copier: ${this.#cacheSync.problem}`
      : 'Envoy bootstrap copier starting';
  }

  #enqueue(ns: string | undefined): void {
    if (ns && ns !== this.#opts.namespace) this.#queue.add(ns);
  }

  #enqueueAll(): void {
    if (!this.#informers) return;
    for (const ns of this.#informers.namespaces.list()) if (isInjected(ns)) this.#enqueue(ns.metadata?.name);
    for (const cm of this.#informers.copies.list()) this.#enqueue(cm.metadata?.namespace);
  }

  /** The namespace if it is labelled for injection (the only ones that get a copy). */
  #labelled(name: string): k8s.V1Namespace | undefined {
    const ns = this.#informers?.namespaces.get(name);
    return ns && isInjected(ns) ? ns : undefined;
  }

  /** The three informers, from the shared factory, with this copier's handlers. */
  #watch(): CopierInformers {
    const { informers, namespace, name } = this.#opts;
    const core = this.#core;
    const copySelector = `${BOOTSTRAP_COPY_LABEL}=true`;
    const watched = {
      namespaces: informers.informerFor(namespacesInformerSpec(core)),
      source: informers.informerFor<k8s.V1ConfigMap>({
        name: 'envoy-bootstrap-source',
        path: `/api/v1/namespaces/${namespace}/configmaps`,
        fieldSelector: `metadata.name=${name}`,
        list: () => core.listNamespacedConfigMap({ namespace, fieldSelector: `metadata.name=${name}` }),
      }),
      // Our copies everywhere (label and name), so that unwanted ones can be found and removed.
      copies: informers.informerFor<k8s.V1ConfigMap>({
        name: 'envoy-bootstrap-copies',
        path: '/api/v1/configmaps',
        labelSelector: copySelector,
        fieldSelector: `metadata.name=${name}`,
        list: () =>
          core.listConfigMapForAllNamespaces({
            labelSelector: copySelector,
            fieldSelector: `metadata.name=${name}`,
          }),
      }),
    };
    // Every namespace is watched (the webhook needs them all): only those entering, in or
    // leaving the injection label matter here, as with a label-selected informer.
    const onNamespace = (ns: k8s.V1Namespace, old?: k8s.V1Namespace): void => {
      if (isInjected(ns) || (old && isInjected(old))) this.#enqueue(ns.metadata?.name);
    };
    for (const ev of ['add', 'update', 'delete'] as const) {
      this.#unsubscribe.push(
        watched.namespaces.on(ev, onNamespace),
        watched.copies.on(ev, (cm) => this.#enqueue(cm.metadata?.namespace)),
        watched.source.on(ev, () => this.#enqueueAll()),
      );
    }
    return watched;
  }

  /** `signal` (leadership) cancels every request when it fires, as stop() does. */
  async start(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) this.#context.abort(signal.reason);
    else signal?.addEventListener('abort', () => this.#context.abort(signal.reason), { once: true });
    const watched = this.#watch();
    this.#informers = watched;
    this.#opts.informers.start();
    await this.#opts.informers.waitForCacheSync(
      {
        signal: this.#context.signal,
        timeoutMs: this.#opts.cacheSyncTimeoutMs,
        onTimeout: this.#cacheSync.timedOut,
      },
      [watched.namespaces, watched.source, watched.copies] as SharedInformer<k8s.KubernetesObject>[],
    );
    this.#cacheSync.synced();
    this.#running = true;
    this.#enqueueAll();
    this.#resync = setInterval(() => this.#enqueueAll(), this.#opts.resyncMs);
    this.#resync.unref();
    this.#loop = this.#work();
  }

  async stop(): Promise<void> {
    if (this.#resync) clearInterval(this.#resync);
    this.#context.abort(new Error('bootstrap copier stopping'));
    this.#queue.shutDown();
    await this.#loop;
    // The informers are shared: the factory stops them with the process.
    for (const u of this.#unsubscribe.splice(0)) u();
  }

  async #work(): Promise<void> {
    for (;;) {
      const { item: ns, shutdown } = await this.#queue.get();
      if (shutdown) return;
      const log = this.log.child({ key: `${ns}/${this.#opts.name}` });
      try {
        const again = this.#queue.shuttingDown() ? undefined : await this.#sync(ns, log);
        this.#queue.forget(ns);
        if (again !== undefined) this.#queue.addAfter(ns, again);
      } catch (err) {
        if (this.#context.signal.aborted) {
          // leadership ended or stopping: the next leader does it
        } else if (httpCode(err) === 404 && !this.#labelled(ns)) {
          this.#queue.forget(ns); // the namespace is gone: nothing to copy into
        } else {
          log.warn({ err }, 'could not sync the Envoy bootstrap copy; retrying');
          this.#queue.addRateLimited(ns);
        }
      } finally {
        this.#queue.done(ns);
      }
    }
  }

  /**
   * One namespace: the copy exists and is current if wanted, is gone if not. Returns a delay
   * after which to look again although nothing failed.
   */
  async #sync(ns: string, log: Logger): Promise<number | undefined> {
    const name = this.#opts.name;
    const namespace = this.#labelled(ns);
    const source = this.#informers?.source.get(name, this.#opts.namespace);
    const cached = this.#informers?.copies.get(name, ns);
    if (namespace?.metadata?.deletionTimestamp) return undefined; // the namespace takes its objects with it
    if (!namespace || !source) {
      if (cached && isOurCopy(cached, this.#source)) {
        await this.#remove(cached, ns);
        log.info(
          { reason: namespace ? 'source deleted' : 'namespace no longer labelled' },
          'Envoy bootstrap copy removed',
        );
      } else if (!source && namespace) {
        log.warn({ source: this.#source }, 'no Envoy bootstrap ConfigMap to copy');
      }
      return undefined;
    }
    const owner = await this.#resolveOwner(log);
    // A copy owned by nothing would be garbage-collected at once: wait for the owner.
    if (this.#opts.owner && !owner) return OWNER_REFRESH_MS;
    const desired = bootstrapCopy(source, ns, owner);
    const live = cached ?? (await this.#createOrRead(desired, ns, log));
    if (!live) return undefined; // created
    if (!isOurCopy(live, this.#source)) {
      await this.#reportForeign(live, log);
      return undefined;
    }
    if (copyUpToDate(live, desired)) return undefined;
    await this.#repair(live, desired, ns);
    log.info('Envoy bootstrap copy updated');
    return undefined;
  }

  /** Deletes our copy, only as it was judged (uid and resourceVersion preconditions). */
  async #remove(copy: k8s.V1ConfigMap, ns: string): Promise<void> {
    const preconditions = { uid: copy.metadata!.uid!, resourceVersion: copy.metadata!.resourceVersion! };
    await this.#core
      .deleteNamespacedConfigMap(
        { namespace: ns, name: this.#opts.name, body: { preconditions } },
        requestOptions({ signal: this.#signal() }),
      )
      .catch((err: unknown) => {
        if (httpCode(err) !== 404) throw err;
      });
  }

  /** Creates the copy (undefined); if the name is taken meanwhile, the object that holds it. */
  async #createOrRead(
    desired: k8s.V1ConfigMap,
    ns: string,
    log: Logger,
  ): Promise<k8s.V1ConfigMap | undefined> {
    try {
      await this.#core.createNamespacedConfigMap(
        { namespace: ns, body: desired, fieldManager: FIELD_MANAGER },
        requestOptions({ signal: this.#signal() }),
      );
      log.info('Envoy bootstrap copied');
      return undefined;
    } catch (err) {
      if (httpCode(err) !== 409 || statusReason(err) !== 'AlreadyExists') throw err;
    }
    return this.#core.readNamespacedConfigMap(
      { namespace: ns, name: this.#opts.name },
      requestOptions({ signal: this.#signal() }),
    );
  }

  /**
   * A replace, not an apply: a copy is entirely derived from the source, so keys removed from
   * the source must go too, including those set by the create (owned by an Update entry that an
   * apply would never remove). Others' labels and annotations are kept, and the read's
   * resourceVersion makes the replace conditional on what ownership was judged on.
   */
  async #repair(live: k8s.V1ConfigMap, desired: k8s.V1ConfigMap, ns: string): Promise<void> {
    await this.#core.replaceNamespacedConfigMap(
      {
        namespace: ns,
        name: this.#opts.name,
        body: {
          ...live,
          metadata: {
            ...live.metadata,
            labels: { ...live.metadata?.labels, ...desired.metadata?.labels },
            annotations: { ...live.metadata?.annotations, ...desired.metadata?.annotations },
            ownerReferences: desired.metadata?.ownerReferences ?? [],
          },
          data: desired.data ?? {},
        },
        fieldManager: FIELD_MANAGER,
      },
      requestOptions({ signal: this.#signal() }),
    );
  }

  async #reportForeign(cm: k8s.V1ConfigMap, log: Logger): Promise<void> {
    const uid = cm.metadata?.uid ?? '';
    if (this.#reported.has(uid)) return;
    this.#reported.add(uid);
    const where = `${cm.metadata?.namespace}/${cm.metadata?.name}`;
    log.warn(
      { configMap: where },
      "a ConfigMap of that name exists and is not netmesh's copy; leaving it alone",
    );
    await this.#events.record(
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: cm.metadata ?? {} },
      {
        type: 'Warning',
        reason: 'Conflict',
        message: `ConfigMap ${where} exists and is not netmesh's copy of ${this.#source}; netmesh leaves it as it is, so injected sidecars in this namespace mount it as their Envoy bootstrap`,
      },
      { signal: this.#signal() },
    );
  }

  /** The owner with its current UID, re-read at most once a minute; undefined when absent. */
  async #resolveOwner(log: Logger): Promise<ResolvedOwner | undefined> {
    const owner = this.#opts.owner;
    if (!owner) return undefined;
    if (this.#owner && Date.now() - this.#owner.at < OWNER_REFRESH_MS) return this.#owner.value;
    let value: ResolvedOwner | undefined;
    try {
      const obj = await this.#admission.readMutatingWebhookConfiguration(
        { name: owner.name },
        requestOptions({ signal: this.#signal() }),
      );
      value = obj.metadata?.uid ? { ...owner, uid: obj.metadata.uid } : undefined;
    } catch (err) {
      if (httpCode(err) !== 404) throw err;
    }
    if (!value) log.warn({ owner }, 'the owner of the Envoy bootstrap copies does not exist; not copying');
    this.#owner = { value, at: Date.now() };
    return value;
  }

  /** The signal for one request: the copier's context (leadership), and a timeout. */
  #signal(): AbortSignal {
    return deadline(this.#context.signal, this.#opts.requestTimeoutMs);
  }
}
