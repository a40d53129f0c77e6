/**
 * `startWebhook`: the whole webhook in one call, for `netmesh webhook`, `netmesh run` and the
 * integration tests. Start order matters: certificates first (nothing to serve without them),
 * then the template and namespace caches (so the first Pod is not admitted with NoTemplate just
 * because the cache was empty), then the listeners, and only then, for local runs, the webhook
 * configuration that makes the apiserver call us. Stop runs it backwards: readiness fails at
 * once, a locally registered configuration is removed, and the listener keeps serving for
 * shutdownDelayMs so that endpoints (and load balancers) drop this replica before it closes;
 * requests the apiserver still sends meanwhile are answered normally.
 */
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1LabelSelectorRequirement } from '@kubernetes/client-node';
import { AdmissionregistrationV1Api, AppsV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { UserFacingError } from '../lib/errors.ts';
import { loadKubeConfig } from '../lib/kube.ts';
import { parseListen } from '../lib/listen.ts';
import { EventRecorder } from '../runtime/events.ts';
import { type HealthServer, startHealthServer } from '../runtime/health-server.ts';
import { SharedInformerFactory } from '../runtime/informer-factory.ts';
import { createLogger } from '../runtime/logger.ts';
import { type AdmissionRequest, admit, isPodCreate, type LoadedTemplate } from './admission.ts';
import {
  type CertSource,
  DirCertSource,
  SecretCertSource,
  SecretForbiddenError,
  type ServingCertificate,
} from './cert-source.ts';
import {
  DEFAULT_CERT_VALIDITY_MS,
  DEFAULT_SERVICE_NAME,
  DEFAULT_TLS_SECRET_NAME,
  type RotationTimings,
  rotationTimings,
  servingNames,
} from './certs.ts';
import { TEMPLATE_CONFIGMAP_NAME } from './core/contract.ts';
import { InjectionEvents } from './injection-events.ts';
import { createWebhookMetrics, type WebhookMetrics } from './metrics.ts';
import { type NamespaceLabels, namespaceLabelsForPod, startNamespaceLabelSource } from './namespaces.ts';
import {
  applyWebhookConfiguration,
  assertRegistrable,
  deleteWebhookConfiguration,
  detectMatchConditionsSupport,
  LOCAL_REGISTRATION_LABELS,
} from './registration.ts';
import { type AdmissionServer, type ReviewFn, startAdmissionServer } from './server.ts';
import type { Readiness } from './template-source.ts';
import { startTemplateSource } from './template-source.ts';
import {
  buildMutatingWebhookConfiguration,
  DEFAULT_WEBHOOK_CONFIG_NAME,
  type FailurePolicy,
} from './webhook-config.ts';

export interface StartWebhookOptions {
  /** A KubeConfig, a kubeconfig path, or undefined for the in-cluster ServiceAccount. */
  kubeconfig?: KubeConfig | string | undefined;
  /** The webhook's own namespace: holds the TLS Secret (and by default the template); never injected. */
  namespace: string;
  /** host:port of the HTTPS admission listener (default 0.0.0.0:9443; port 0 picks a free one). */
  listen?: string;
  /** host:port of the plain HTTP health/metrics listener (default 0.0.0.0:8081); false: none. */
  healthListen?: string | false;
  templateConfigMap?: string;
  templateNamespace?: string;
  serviceName?: string;
  tlsSecret?: string;
  /** cert-manager mode: serve tls.crt/tls.key from this directory, never patch the caBundle. */
  certDir?: string | undefined;
  certValidityMs?: number;
  certTimings?: Partial<Omit<RotationTimings, 'validityMs'>>;
  certDirPollMs?: number;
  /** The configuration whose caBundle is kept up to date (and registered with registerUrl). */
  webhookConfigName?: string;
  /** Local runs and tests: register a configuration pointing at this URL. */
  registerUrl?: string | undefined;
  /** failurePolicy of the registered configuration (default Ignore, as the chart). */
  failurePolicy?: FailurePolicy;
  timeoutSeconds?: number;
  /** Added to the namespaceSelector of every registered webhook (scoping, shared test clusters). */
  extraNamespaceSelector?: V1LabelSelectorRequirement[];
  /** Remove the registered configuration on stop (default true). */
  unregisterOnStop?: boolean;
  /**
   * On stop, how long to keep serving while not ready before closing the listener, so that
   * endpoints and load balancers stop sending traffic first (default 0: in-process use and
   * tests; `netmesh webhook` and `netmesh run` default to 5 s).
   */
  shutdownDelayMs?: number;
  logger?: Logger;
  /** Registry for the webhook's metrics (e.g. one shared with the operator in `netmesh run`). */
  registry?: Registry;
  metrics?: WebhookMetrics;
  maxBodyBytes?: number;
  requestTimeoutMs?: number;
  headersTimeoutMs?: number;
  /** Requests per connection before the client is asked to reconnect (default 1000; 0: never). */
  maxRequestsPerSocket?: number;
  /** How long to wait for the first template list before serving anyway (default 30 s). */
  syncTimeoutMs?: number;
  /**
   * Record Events (default true): InvalidTemplate on the template ConfigMap, Injected and
   * InjectionSkipped on the workload of each admitted Pod.
   */
  recordEvents?: boolean;
  /**
   * The process's shared informers (`netmesh run`: shared with the operator's bootstrap
   * copier, stopped by the process). Absent: the webhook has its own and stops it on stop.
   */
  informers?: SharedInformerFactory;
}

export interface WebhookHandle {
  host: string;
  port: number;
  /** https://host:port/mutate */
  url: string;
  healthPort: number | undefined;
  /** Name of the configuration registered by this process, if any. */
  registeredConfigName: string | undefined;
  metrics: WebhookMetrics;
  logger: Logger;
  caBundle(): string | undefined;
  servingCertificate(): ServingCertificate;
  template(): LoadedTemplate | undefined;
  readiness(): Readiness;
  /** Resolves once the Events of the decisions made so far are written (or given up on). */
  flushEvents(): Promise<void>;
  /** Rotates the self-managed CA and serving certificate now; resolves once the new one is served. */
  rotateNow(): Promise<void>;
  /** Not ready at once; unregisters, serves on for shutdownDelayMs, then closes everything. */
  stop(): Promise<void>;
}

/** A KubeConfig as given, or loaded like the operator does (explicit path, else in-cluster). */
export function resolveKubeConfig(source: KubeConfig | string | undefined): KubeConfig {
  return source instanceof KubeConfig ? source : loadKubeConfig(source);
}

function urlHost(url: string): string {
  try {
    return new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    throw new UserFacingError(
      `--register-url ${JSON.stringify(url)} is not a URL`,
      'e.g. https://127.0.0.1:9443/mutate',
    );
  }
}

export async function startWebhook(opts: StartWebhookOptions): Promise<WebhookHandle> {
  const logger = opts.logger ?? createLogger('netmesh-webhook');
  const metrics = opts.metrics ?? createWebhookMetrics(opts.registry);
  const kc = resolveKubeConfig(opts.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const admissionApi = kc.makeApiClient(AdmissionregistrationV1Api);
  const listen = parseListen(opts.listen ?? '0.0.0.0:9443');
  const healthListen =
    opts.healthListen === false
      ? undefined
      : parseListen(opts.healthListen ?? '0.0.0.0:8081', 'health-listen');
  const configName = opts.webhookConfigName ?? DEFAULT_WEBHOOK_CONFIG_NAME;
  const templateName = opts.templateConfigMap ?? TEMPLATE_CONFIGMAP_NAME;
  const templateNamespace = opts.templateNamespace ?? opts.namespace;
  const serviceName = opts.serviceName ?? DEFAULT_SERVICE_NAME;
  if (opts.registerUrl !== undefined && !opts.registerUrl.startsWith('https://')) {
    throw new UserFacingError(
      `--register-url must be an https:// URL, got ${JSON.stringify(opts.registerUrl)}`,
      'the apiserver only calls webhooks over TLS',
    );
  }

  const shutdownDelayMs = opts.shutdownDelayMs ?? 0;
  if (!Number.isFinite(shutdownDelayMs) || shutdownDelayMs < 0) {
    throw new UserFacingError(`shutdown delay must be 0 or more milliseconds, got ${shutdownDelayMs}`);
  }

  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
  };
  // Separate from cleanups: on stop it runs first, before the delay.
  let unregister: (() => Promise<void>) | undefined;

  try {
    // Before anything else touches a configuration of that name (the certificate source patches
    // its caBundle): refuse one that is not a local registration of ours.
    if (opts.registerUrl) await assertRegistrable(admissionApi, configName);

    // Certificates.
    let certs: CertSource;
    if (opts.certDir) {
      certs = new DirCertSource({
        dir: opts.certDir,
        logger,
        ...(opts.certDirPollMs ? { pollMs: opts.certDirPollMs } : {}),
      });
    } else {
      const loopback = ['127.0.0.1', '::1', 'localhost'].includes(listen.host);
      const registerHost = opts.registerUrl ? urlHost(opts.registerUrl) : undefined;
      const extra =
        registerHost && !['127.0.0.1', 'localhost'].includes(registerHost) ? registerHost : undefined;
      certs = new SecretCertSource({
        core,
        admission: admissionApi,
        namespace: opts.namespace,
        secretName: opts.tlsSecret ?? DEFAULT_TLS_SECRET_NAME,
        webhookConfigName: configName,
        names: servingNames({
          serviceName,
          namespace: opts.namespace,
          local: loopback || opts.registerUrl !== undefined,
          extraDnsNames: extra && isIP(extra) === 0 ? [extra] : [],
          extraIpAddresses: extra && isIP(extra) !== 0 ? [extra] : [],
        }),
        timings: rotationTimings(opts.certValidityMs ?? DEFAULT_CERT_VALIDITY_MS, opts.certTimings ?? {}),
        logger,
      });
    }
    const serving = await certs.start().catch((err: unknown) => {
      if (err instanceof SecretForbiddenError) {
        throw new UserFacingError(`cannot set up the serving certificate: ${err.problem}`, err.hint);
      }
      const e = err as { code?: number; message?: string; body?: unknown };
      const where = opts.certDir
        ? `from ${opts.certDir}`
        : `in Secret ${opts.namespace}/${opts.tlsSecret ?? DEFAULT_TLS_SECRET_NAME}`;
      throw new UserFacingError(
        `cannot set up the serving certificate ${where}: ${e.code ? `HTTP ${e.code} ` : ''}${(e.message ?? String(err)).split('\n')[0]}`,
        opts.certDir
          ? 'check that tls.crt and tls.key are mounted there'
          : 'check that the namespace exists and the webhook may get/create/patch that Secret',
      );
    });
    cleanups.push(() => certs.stop());
    metrics.certificateExpiry.set(serving.notAfter.getTime() / 1000);

    // Caches.
    let informers = opts.informers;
    if (!informers) {
      const own = new SharedInformerFactory({ kc, log: logger, registry: metrics.registry });
      cleanups.push(() => own.stop());
      informers = own;
    }
    // One recorder for every Event the webhook writes (aggregated, spam-filtered).
    const events =
      opts.recordEvents === false
        ? undefined
        : new EventRecorder({
            core,
            component: 'netmesh-webhook',
            instance: process.env['POD_NAME'] ?? hostname(),
            log: logger,
          });
    const templates = startTemplateSource({
      informers,
      core,
      namespace: templateNamespace,
      name: templateName,
      logger,
      metrics,
      events,
    });
    cleanups.push(() => templates.stop());
    const namespaces = startNamespaceLabelSource({ informers, core, logger });
    cleanups.push(() => namespaces.stop());
    const syncTimeout = opts.syncTimeoutMs ?? 30_000;
    await Promise.all([
      templates
        .waitForSync(syncTimeout)
        .catch((err: Error) => logger.warn({ err: err.message }, 'starting without a template')),
      namespaces
        .waitForSync(syncTimeout)
        .catch((err: Error) => logger.warn({ err: err.message }, 'starting with an empty namespace cache')),
    ]);

    // Listeners.
    const decide: ReviewFn = (request: AdmissionRequest) => {
      const base = {
        template: templates.current(),
        templateStale: templates.staleReason(),
        webhookNamespace: opts.namespace,
      };
      if (!isPodCreate(request) || typeof request.namespace !== 'string') {
        return admit(request, { ...base, namespaceLabels: undefined });
      }
      const withLabels = (ns: NamespaceLabels) =>
        admit(request, { ...base, namespaceLabels: ns.labels, namespaceLabelsError: ns.error });
      const ns = namespaceLabelsForPod(namespaces, {
        pod: request.object,
        namespace: request.namespace,
        webhookNamespace: opts.namespace,
      });
      // A cache hit decides synchronously; a GET (miss or stale cache) makes it asynchronous.
      return ns instanceof Promise ? ns.then(withLabels) : withLabels(ns);
    };
    const injectionEvents = events
      ? new InjectionEvents({ recorder: events, apps: kc.makeApiClient(AppsV1Api), log: logger })
      : undefined;
    if (injectionEvents) cleanups.push(() => injectionEvents.stop());
    // The decision, then its Event queued (never awaited: the answer does not wait for it).
    const review: ReviewFn = (request: AdmissionRequest) => {
      const result = decide(request);
      if (!injectionEvents) return result;
      const hash = templates.current()?.hash;
      if (result instanceof Promise) {
        return result.then((r) => {
          injectionEvents.note(request, r, hash);
          return r;
        });
      }
      injectionEvents.note(request, result, hash);
      return result;
    };
    const server: AdmissionServer = await startAdmissionServer({
      review,
      logger,
      metrics,
      tls: serving,
      host: listen.host,
      port: listen.port,
      ...(opts.maxBodyBytes !== undefined ? { maxBodyBytes: opts.maxBodyBytes } : {}),
      ...(opts.requestTimeoutMs !== undefined ? { requestTimeoutMs: opts.requestTimeoutMs } : {}),
      ...(opts.headersTimeoutMs !== undefined ? { headersTimeoutMs: opts.headersTimeoutMs } : {}),
      maxRequestsPerSocket: opts.maxRequestsPerSocket ?? 1000,
    });
    cleanups.push(() => server.close());
    certs.onChange((cert) => {
      try {
        server.setCertificate(cert);
        metrics.certificateExpiry.set(cert.notAfter.getTime() / 1000);
        logger.info({ notAfter: cert.notAfter.toISOString() }, 'serving the new certificate');
      } catch (err) {
        logger.error(
          { err: (err as Error).message },
          'could not switch to the new certificate; keeping the old one',
        );
      }
    });

    let stopping = false;
    const readiness = (): Readiness => {
      if (stopping) return { ok: false, message: 'stopping' };
      const template = templates.readiness();
      const notAfter = certs.current().notAfter;
      const certOk = notAfter.getTime() > Date.now();
      const lines = [
        `webhook: serving https://${listen.host}:${server.port}/mutate`,
        `certificate: ${certOk ? 'expires' : 'EXPIRED'} ${notAfter.toISOString()}`,
        template.message,
        `namespaces: ${namespaces.synced ? 'cache synced' : 'cache not synced (falling back to GET)'}`,
      ];
      return { ok: certOk && template.ok, message: lines.join('\n') };
    };
    let health: HealthServer | undefined;
    if (healthListen) {
      health = await startHealthServer({
        host: healthListen.host,
        port: healthListen.port,
        registry: metrics.registry,
        log: logger,
      });
      health.addReadinessCheck('webhook', () => {
        const r = readiness();
        return { ok: r.ok, detail: r.message.replace(/\n/g, '; ') };
      });
      const h = health;
      cleanups.push(() => h.close());
    }

    // Registration (local runs and tests).
    let registered: { name: string; uid: string | undefined } | undefined;
    if (opts.registerUrl) {
      const matchConditionsSupported = await detectMatchConditionsSupport(kc);
      const applied = await applyWebhookConfiguration(
        admissionApi,
        buildMutatingWebhookConfiguration({
          name: configName,
          namespace: opts.namespace,
          clientConfig: { url: opts.registerUrl },
          caBundle: certs.caBundle(),
          failurePolicy: opts.failurePolicy ?? 'Ignore',
          timeoutSeconds: opts.timeoutSeconds,
          matchConditionsSupported,
          extraNamespaceSelector: opts.extraNamespaceSelector,
          labels: { ...LOCAL_REGISTRATION_LABELS },
        }),
      );
      registered = { name: configName, uid: applied.metadata?.uid };
      logger.info(
        { webhookConfiguration: configName, url: opts.registerUrl, matchConditionsSupported },
        'webhook registered',
      );
      // A rotation may have changed the bundle between reading it and applying.
      await certs.sync().catch(() => {});
      if (opts.unregisterOnStop !== false) {
        const r = registered;
        unregister = async () => {
          await deleteWebhookConfiguration(admissionApi, r.name, r.uid);
          logger.info({ webhookConfiguration: r.name }, 'webhook configuration removed');
        };
      }
    }

    const url = `https://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${server.port}/mutate`;
    logger.info(
      { url, health: health ? `http://${healthListen!.host}:${health.port}` : undefined },
      'webhook started',
    );
    let stopped: Promise<void> | undefined;
    return {
      host: listen.host,
      port: server.port,
      url,
      healthPort: health?.port,
      registeredConfigName: registered?.name,
      metrics,
      logger,
      caBundle: () => certs.caBundle(),
      servingCertificate: () => certs.current(),
      template: () => templates.current(),
      readiness,
      rotateNow: () => certs.rotateNow(),
      flushEvents: async () => {
        await injectionEvents?.flush();
        await events?.flush();
      },
      stop() {
        stopped ??= (async () => {
          stopping = true;
          logger.info({ shutdownDelayMs }, 'webhook stopping: not ready');
          await unregister?.().catch((err: Error) =>
            logger.warn({ err: err.message }, 'could not remove the webhook configuration'),
          );
          if (shutdownDelayMs > 0) await sleep(shutdownDelayMs);
          await cleanup();
          logger.info('webhook stopped');
        })();
        return stopped;
      },
    };
  } catch (err) {
    await unregister?.().catch(() => {});
    await cleanup();
    throw err;
  }
}
