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
import {
  type AdmissionRequest,
  type AdmitResult,
  admit,
  isPodCreate,
  type LoadedTemplate,
} from './admission.ts';
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
import {
  type NamespaceLabelSource,
  type NamespaceLabels,
  namespaceLabelsForPod,
  startNamespaceLabelSource,
} from './namespaces.ts';
import {
  applyWebhookConfiguration,
  assertRegistrable,
  deleteWebhookConfiguration,
  detectMatchConditionsSupport,
  LOCAL_REGISTRATION_LABELS,
} from './registration.ts';
import { type AdmissionServer, type ReviewFn, startAdmissionServer } from './server.ts';
import { type Readiness, startTemplateSource, type TemplateSource } from './template-source.ts';
import {
  buildMutatingWebhookConfiguration,
  DEFAULT_WEBHOOK_CONFIG_NAME,
  type FailurePolicy,
  type ReinvocationPolicy,
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
  /** With healthListen false: where the process serves health instead, for the start log line. */
  healthUrl?: string;
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
  /** reinvocationPolicy of the registered configuration (default Never, as the chart). */
  reinvocationPolicy?: ReinvocationPolicy;
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

/** What every step of startWebhook shares: the options resolved, the clients, the cleanups. */
interface Setup {
  opts: StartWebhookOptions;
  logger: Logger;
  metrics: WebhookMetrics;
  kc: KubeConfig;
  core: CoreV1Api;
  admissionApi: AdmissionregistrationV1Api;
  listen: { host: string; port: number };
  healthListen: { host: string; port: number } | undefined;
  configName: string;
  shutdownDelayMs: number;
  /** Run backwards on stop or on a failed start. */
  cleanups: (() => Promise<void>)[];
}

interface Caches {
  templates: TemplateSource;
  namespaces: NamespaceLabelSource;
  events: EventRecorder | undefined;
  /** Set when injection Events are recorded: waits for the queued ones. */
  flushEvents?: () => Promise<void>;
}

/**
 * Certificates, caches, listeners, then (local runs) the registration that makes the apiserver
 * call us; each step undone backwards if a later one fails.
 */
export async function startWebhook(opts: StartWebhookOptions): Promise<WebhookHandle> {
  const setup = resolveSetup(opts);
  const cleanup = async (): Promise<void> => {
    for (const fn of setup.cleanups.splice(0).reverse()) await fn().catch(() => {});
  };
  let registration: Registration | undefined;
  try {
    // Before anything else touches a configuration of that name (the certificate source patches
    // its caBundle): refuse one that is not a local registration of ours.
    if (opts.registerUrl) await assertRegistrable(setup.admissionApi, setup.configName);
    const certs = await startCertificates(setup);
    const caches = await startCaches(setup);
    const server = await startListener(setup, certs, caches);
    let stopping = false;
    const readiness = readinessOf(setup, certs, caches, server, () => stopping);
    const health = await startOwnHealthServer(setup, readiness);
    registration = await registerLocally(setup, certs);
    logStarted(setup, server, health);
    return webhookHandle(setup, { certs, caches, server, health, registration, readiness }, async () => {
      stopping = true;
      setup.logger.info({ shutdownDelayMs: setup.shutdownDelayMs }, 'webhook stopping: not ready');
      await registration
        ?.unregister?.()
        .catch((err: Error) =>
          setup.logger.warn({ err: err.message }, 'could not remove the webhook configuration'),
        );
      if (setup.shutdownDelayMs > 0) await sleep(setup.shutdownDelayMs);
      await cleanup();
      setup.logger.info('webhook stopped');
    });
  } catch (err) {
    await registration?.unregister?.().catch(() => {});
    await cleanup();
    throw err;
  }
}

/** Options checked and defaulted, clients made; nothing started. */
function resolveSetup(opts: StartWebhookOptions): Setup {
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
  const metrics = opts.metrics ?? createWebhookMetrics(opts.registry);
  const kc = resolveKubeConfig(opts.kubeconfig);
  return {
    opts,
    logger: opts.logger ?? createLogger('netmesh-webhook'),
    metrics,
    kc,
    core: kc.makeApiClient(CoreV1Api),
    admissionApi: kc.makeApiClient(AdmissionregistrationV1Api),
    listen: parseListen(opts.listen ?? '0.0.0.0:9443'),
    healthListen:
      opts.healthListen === false
        ? undefined
        : parseListen(opts.healthListen ?? '0.0.0.0:8081', 'health-listen'),
    configName: opts.webhookConfigName ?? DEFAULT_WEBHOOK_CONFIG_NAME,
    shutdownDelayMs,
    cleanups: [],
  };
}

/** The serving certificate: from --cert-dir (cert-manager) or the self-managed Secret. */
async function startCertificates(setup: Setup): Promise<CertSource> {
  const { opts, logger, metrics } = setup;
  const certs: CertSource = opts.certDir
    ? new DirCertSource({
        dir: opts.certDir,
        logger,
        ...(opts.certDirPollMs ? { pollMs: opts.certDirPollMs } : {}),
      })
    : secretCertSource(setup);
  const serving = await certs.start().catch((err: unknown) => {
    throw certificateError(opts, err);
  });
  setup.cleanups.push(() => certs.stop());
  metrics.certificateExpiry.set(serving.notAfter.getTime() / 1000);
  return certs;
}

function secretCertSource(setup: Setup): SecretCertSource {
  const { opts, listen } = setup;
  const loopback = ['127.0.0.1', '::1', 'localhost'].includes(listen.host);
  const registerHost = opts.registerUrl ? urlHost(opts.registerUrl) : undefined;
  const extra = registerHost && !['127.0.0.1', 'localhost'].includes(registerHost) ? registerHost : undefined;
  return new SecretCertSource({
    core: setup.core,
    admission: setup.admissionApi,
    namespace: opts.namespace,
    secretName: opts.tlsSecret ?? DEFAULT_TLS_SECRET_NAME,
    webhookConfigName: setup.configName,
    names: servingNames({
      serviceName: opts.serviceName ?? DEFAULT_SERVICE_NAME,
      namespace: opts.namespace,
      local: loopback || opts.registerUrl !== undefined,
      extraDnsNames: extra && isIP(extra) === 0 ? [extra] : [],
      extraIpAddresses: extra && isIP(extra) !== 0 ? [extra] : [],
    }),
    timings: rotationTimings(opts.certValidityMs ?? DEFAULT_CERT_VALIDITY_MS, opts.certTimings ?? {}),
    logger: setup.logger,
  });
}

function certificateError(opts: StartWebhookOptions, err: unknown): UserFacingError {
  if (err instanceof SecretForbiddenError) {
    return new UserFacingError(`cannot set up the serving certificate: ${err.problem}`, err.hint);
  }
  const e = err as { code?: number; message?: string; body?: unknown };
  const where = opts.certDir
    ? `from ${opts.certDir}`
    : `in Secret ${opts.namespace}/${opts.tlsSecret ?? DEFAULT_TLS_SECRET_NAME}`;
  return new UserFacingError(
    `cannot set up the serving certificate ${where}: ${e.code ? `HTTP ${e.code} ` : ''}${(e.message ?? String(err)).split('\n')[0]}`,
    opts.certDir
      ? 'check that tls.crt and tls.key are mounted there'
      : 'check that the namespace exists and the webhook may get/create/patch that Secret',
  );
}

/**
 * The template and namespace caches on the shared informers, waited for (within syncTimeoutMs)
 * so that the first Pod is not admitted with NoTemplate just because the cache was empty.
 */
async function startCaches(setup: Setup): Promise<Caches> {
  const { opts, kc, core, logger, metrics } = setup;
  let informers = opts.informers;
  if (!informers) {
    const own = new SharedInformerFactory({ kc, log: logger, registry: metrics.registry });
    setup.cleanups.push(() => own.stop());
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
    namespace: opts.templateNamespace ?? opts.namespace,
    name: opts.templateConfigMap ?? TEMPLATE_CONFIGMAP_NAME,
    logger,
    metrics,
    events,
  });
  setup.cleanups.push(() => templates.stop());
  const namespaces = startNamespaceLabelSource({ informers, core, logger });
  setup.cleanups.push(() => namespaces.stop());
  const syncTimeout = opts.syncTimeoutMs ?? 30_000;
  await Promise.all([
    templates
      .waitForSync(syncTimeout)
      .catch((err: Error) => logger.warn({ err: err.message }, 'starting without a template')),
    namespaces
      .waitForSync(syncTimeout)
      .catch((err: Error) => logger.warn({ err: err.message }, 'starting with an empty namespace cache')),
  ]);
  return { templates, namespaces, events };
}

/** The decision for one review, from the caches; synchronous on a namespace cache hit. */
function reviewFrom(setup: Setup, { templates, namespaces }: Caches): ReviewFn {
  const webhookNamespace = setup.opts.namespace;
  return (request: AdmissionRequest) => {
    const base = { template: templates.current(), templateStale: templates.staleReason(), webhookNamespace };
    if (!isPodCreate(request) || typeof request.namespace !== 'string') {
      return admit(request, { ...base, namespaceLabels: undefined });
    }
    const withLabels = (ns: NamespaceLabels) =>
      admit(request, { ...base, namespaceLabels: ns.labels, namespaceLabelsError: ns.error });
    const ns = namespaceLabelsForPod(namespaces, {
      pod: request.object,
      namespace: request.namespace,
      webhookNamespace,
    });
    // A cache hit decides synchronously; a GET (miss or stale cache) makes it asynchronous.
    return ns instanceof Promise ? ns.then(withLabels) : withLabels(ns);
  };
}

/**
 * The decision, then its Event queued in a microtask: after the server has written the answer
 * (synchronously, or in its own reaction to the same promise, registered after this one).
 */
function withInjectionEvents(setup: Setup, caches: Caches, decide: ReviewFn): ReviewFn {
  if (!caches.events) return decide;
  const injectionEvents = new InjectionEvents({
    recorder: caches.events,
    apps: setup.kc.makeApiClient(AppsV1Api),
    log: setup.logger,
  });
  setup.cleanups.push(() => injectionEvents.stop());
  caches.flushEvents = () => injectionEvents.flush();
  return (request: AdmissionRequest) => {
    const result = decide(request);
    const hash = caches.templates.current()?.hash;
    const noteLater = (r: AdmitResult): void => queueMicrotask(() => injectionEvents.note(request, r, hash));
    if (result instanceof Promise) result.then(noteLater, () => {});
    else noteLater(result);
    return result;
  };
}

/** The HTTPS admission listener, switching certificates as they rotate. */
async function startListener(setup: Setup, certs: CertSource, caches: Caches): Promise<AdmissionServer> {
  const { opts, logger, metrics, listen } = setup;
  const server = await startAdmissionServer({
    review: withInjectionEvents(setup, caches, reviewFrom(setup, caches)),
    logger,
    metrics,
    tls: certs.current(),
    host: listen.host,
    port: listen.port,
    ...(opts.maxBodyBytes !== undefined ? { maxBodyBytes: opts.maxBodyBytes } : {}),
    ...(opts.requestTimeoutMs !== undefined ? { requestTimeoutMs: opts.requestTimeoutMs } : {}),
    ...(opts.headersTimeoutMs !== undefined ? { headersTimeoutMs: opts.headersTimeoutMs } : {}),
    maxRequestsPerSocket: opts.maxRequestsPerSocket ?? 1000,
  });
  setup.cleanups.push(() => server.close());
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
  return server;
}

/** Ready: serving, certificate valid, template loaded (or knowingly none); one line per check. */
function readinessOf(
  setup: Setup,
  certs: CertSource,
  { templates, namespaces }: Caches,
  server: AdmissionServer,
  stopping: () => boolean,
): () => Readiness {
  return () => {
    if (stopping()) return { ok: false, message: 'stopping' };
    const template = templates.readiness();
    const notAfter = certs.current().notAfter;
    const certOk = notAfter.getTime() > Date.now();
    const lines = [
      `webhook: serving https://${setup.listen.host}:${server.port}/mutate`,
      `certificate: ${certOk ? 'expires' : 'EXPIRED'} ${notAfter.toISOString()}`,
      template.message,
      `namespaces: ${namespaces.synced ? 'cache synced' : 'cache not synced (falling back to GET)'}`,
    ];
    return { ok: certOk && template.ok, message: lines.join('\n') };
  };
}

/** startWebhook's own health port, when the process does not provide one (tests, in-process use). */
async function startOwnHealthServer(
  setup: Setup,
  readiness: () => Readiness,
): Promise<HealthServer | undefined> {
  if (!setup.healthListen) return undefined;
  const health = await startHealthServer({
    host: setup.healthListen.host,
    port: setup.healthListen.port,
    registry: setup.metrics.registry,
    log: setup.logger,
  });
  health.addReadinessCheck('webhook', () => {
    const r = readiness();
    return { ok: r.ok, detail: r.message.replace(/\n/g, '; ') };
  });
  setup.cleanups.push(() => health.close());
  return health;
}

interface Registration {
  name: string;
  /** Removes it on stop (unless unregisterOnStop is false). */
  unregister: (() => Promise<void>) | undefined;
}

/** Local runs and tests: the configuration pointing at registerUrl, applied by us. */
async function registerLocally(setup: Setup, certs: CertSource): Promise<Registration | undefined> {
  const { opts, admissionApi, configName, logger } = setup;
  if (!opts.registerUrl) return undefined;
  const matchConditionsSupported = await detectMatchConditionsSupport(setup.kc);
  const applied = await applyWebhookConfiguration(
    admissionApi,
    buildMutatingWebhookConfiguration({
      name: configName,
      namespace: opts.namespace,
      clientConfig: { url: opts.registerUrl },
      caBundle: certs.caBundle(),
      failurePolicy: opts.failurePolicy ?? 'Ignore',
      reinvocationPolicy: opts.reinvocationPolicy ?? 'Never',
      timeoutSeconds: opts.timeoutSeconds,
      matchConditionsSupported,
      extraNamespaceSelector: opts.extraNamespaceSelector,
      labels: { ...LOCAL_REGISTRATION_LABELS },
    }),
  );
  const uid = applied.metadata?.uid;
  logger.info(
    { webhookConfiguration: configName, url: opts.registerUrl, matchConditionsSupported },
    'webhook registered',
  );
  // A rotation may have changed the bundle between reading it and applying.
  await certs.sync().catch(() => {});
  return {
    name: configName,
    unregister:
      opts.unregisterOnStop === false
        ? undefined
        : async () => {
            await deleteWebhookConfiguration(admissionApi, configName, uid);
            logger.info({ webhookConfiguration: configName }, 'webhook configuration removed');
          },
  };
}

function mutateUrl(setup: Setup, server: AdmissionServer): string {
  const host = setup.listen.host;
  return `https://${host.includes(':') ? `[${host}]` : host}:${server.port}/mutate`;
}

function logStarted(setup: Setup, server: AdmissionServer, health: HealthServer | undefined): void {
  setup.logger.info(
    {
      url: mutateUrl(setup, server),
      health: health ? `http://${setup.healthListen!.host}:${health.port}` : setup.opts.healthUrl,
    },
    'webhook started',
  );
}

function webhookHandle(
  setup: Setup,
  parts: {
    certs: CertSource;
    caches: Caches;
    server: AdmissionServer;
    health: HealthServer | undefined;
    registration: Registration | undefined;
    readiness: () => Readiness;
  },
  stop: () => Promise<void>,
): WebhookHandle {
  const { certs, caches, server, health, registration, readiness } = parts;
  let stopped: Promise<void> | undefined;
  return {
    host: setup.listen.host,
    port: server.port,
    url: mutateUrl(setup, server),
    healthPort: health?.port,
    registeredConfigName: registration?.name,
    metrics: setup.metrics,
    logger: setup.logger,
    caBundle: () => certs.caBundle(),
    servingCertificate: () => certs.current(),
    template: () => caches.templates.current(),
    readiness,
    rotateNow: () => certs.rotateNow(),
    flushEvents: async () => {
      await caches.flushEvents?.();
      await caches.events?.flush();
    },
    stop() {
      stopped ??= stop();
      return stopped;
    },
  };
}
