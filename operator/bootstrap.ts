// Copies the Envoy bootstrap ConfigMap (default `envoy` in netmesh's namespace) into every
// namespace labelled netmesh.io/injection=enabled. The default sidecar template mounts that
// ConfigMap, and a ConfigMap volume resolves in the Pod's own namespace: without a copy there,
// an injected Pod would wait in ContainerCreating. Runs on the leader beside the Network
// controller, writes by server-side apply (field manager netmesh-operator), and follows edits
// of the source and newly labelled namespaces through informers.
import * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { Informer } from '../runtime/informer.ts';
import { PrometheusQueueMetricsProvider, RateLimitingQueue } from '../runtime/queue/index.ts';
import { FIELD_MANAGER, MANAGED_BY_LABEL } from './model.ts';

export const INJECTION_SELECTOR = 'netmesh.io/injection=enabled';
export const BOOTSTRAP_COPY_LABEL = 'netmesh.io/bootstrap-copy';

export interface BootstrapCopierOptions {
  kc: k8s.KubeConfig;
  log: Logger;
  registry: Registry;
  /** Namespace holding the source ConfigMap (netmesh's own). */
  namespace: string;
  /** Name of the source ConfigMap, and of each copy. */
  name: string;
  /** Re-apply every copy this often, repairing copies edited or deleted by hand. */
  resyncMs?: number;
}

/** The copy for `namespace`: the source's data under our labels, as a server-side-apply body. */
export function bootstrapCopy(
  source: k8s.V1ConfigMap,
  namespace: string,
): k8s.V1ConfigMap & k8s.KubernetesObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: source.metadata!.name!,
      namespace,
      labels: { [MANAGED_BY_LABEL]: FIELD_MANAGER, [BOOTSTRAP_COPY_LABEL]: 'true' },
      annotations: { 'netmesh.io/copied-from': `${source.metadata?.namespace}/${source.metadata?.name}` },
    },
    data: { ...(source.data ?? {}) },
  };
}

export class BootstrapCopier {
  readonly #opts: Required<BootstrapCopierOptions>;
  readonly #namespaces: Informer<k8s.V1Namespace>;
  readonly #source: Informer<k8s.V1ConfigMap>;
  readonly #queue: RateLimitingQueue<string>;
  readonly #objects: k8s.KubernetesObjectApi;
  #loop: Promise<void> | undefined;
  #resync: NodeJS.Timeout | undefined;

  constructor(opts: BootstrapCopierOptions) {
    this.#opts = { resyncMs: 10 * 60_000, ...opts };
    const { kc, log, registry, namespace, name } = opts;
    const core = kc.makeApiClient(k8s.CoreV1Api);
    this.#objects = k8s.KubernetesObjectApi.makeApiClient(kc);
    this.#queue = new RateLimitingQueue<string>({
      name: 'envoy-bootstrap',
      metrics: new PrometheusQueueMetricsProvider(registry),
    });
    this.#namespaces = new Informer<k8s.V1Namespace>({
      kc,
      name: 'injected-namespaces',
      path: '/api/v1/namespaces',
      labelSelector: INJECTION_SELECTOR,
      list: () => core.listNamespace({ labelSelector: INJECTION_SELECTOR }),
      log,
      registry,
    });
    this.#source = new Informer<k8s.V1ConfigMap>({
      kc,
      name: 'envoy-bootstrap-source',
      path: `/api/v1/namespaces/${namespace}/configmaps`,
      fieldSelector: `metadata.name=${name}`,
      list: () => core.listNamespacedConfigMap({ namespace, fieldSelector: `metadata.name=${name}` }),
      log,
      registry,
    });
    for (const ev of ['add', 'update'] as const) {
      this.#namespaces.on(ev, (ns) => {
        if (!ns.metadata?.deletionTimestamp) this.#enqueue(ns.metadata?.name);
      });
      this.#source.on(ev, () => this.#enqueueAll());
    }
  }

  #enqueue(ns: string | undefined): void {
    if (ns && ns !== this.#opts.namespace) this.#queue.add(ns);
  }

  #enqueueAll(): void {
    for (const ns of this.#namespaces.list())
      if (!ns.metadata?.deletionTimestamp) this.#enqueue(ns.metadata?.name);
  }

  async start(): Promise<void> {
    this.#namespaces.start();
    this.#source.start();
    await Promise.all([this.#namespaces.waitForSync(), this.#source.waitForSync()]);
    this.#enqueueAll();
    this.#resync = setInterval(() => this.#enqueueAll(), this.#opts.resyncMs);
    this.#resync.unref();
    this.#loop = this.#work();
  }

  async stop(): Promise<void> {
    if (this.#resync) clearInterval(this.#resync);
    this.#queue.shutDown();
    await this.#loop;
    await Promise.all([this.#namespaces.stop(), this.#source.stop()]);
  }

  async #work(): Promise<void> {
    for (;;) {
      const { item: ns, shutdown } = await this.#queue.get();
      if (shutdown) return;
      const log = this.#opts.log.child({ key: `${ns}/${this.#opts.name}` });
      try {
        const source = this.#source.get(this.#opts.name, this.#opts.namespace);
        if (!source) {
          log.warn(
            { source: `${this.#opts.namespace}/${this.#opts.name}` },
            'no Envoy bootstrap ConfigMap to copy',
          );
        } else if (this.#queue.shuttingDown()) {
          // stopping: leave it to the next leader
        } else {
          await this.#objects.patch(
            bootstrapCopy(source, ns),
            undefined,
            undefined,
            FIELD_MANAGER,
            true,
            k8s.PatchStrategy.ServerSideApply,
          );
          log.debug('Envoy bootstrap copied');
        }
        this.#queue.forget(ns);
      } catch (err) {
        const code = (err as { code?: number }).code;
        const terminating = this.#namespaces.get(ns)?.metadata?.deletionTimestamp !== undefined;
        if (code === 404 || terminating || !this.#namespaces.get(ns)) {
          this.#queue.forget(ns); // the namespace is gone or going: nothing to copy into
        } else {
          log.warn(
            { err: (err as Error).message.split('\n')[0], code },
            'could not copy the Envoy bootstrap; retrying',
          );
          this.#queue.addRateLimited(ns);
        }
      } finally {
        this.#queue.done(ns);
      }
    }
  }
}
