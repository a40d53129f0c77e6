// `netmesh webhook`: the sidecar-injecting admission webhook. Flags and their mapping to
// startWebhook options are exported so `netmesh run` can offer the same ones.

import { type Component, runProcess } from '../../runtime/lifecycle.ts';
import { createLogger } from '../../runtime/logger.ts';
import { DEFAULT_SERVICE_NAME, DEFAULT_TLS_SECRET_NAME } from '../../webhook/certs.ts';
import { TEMPLATE_CONFIGMAP_NAME } from '../../webhook/core/contract.ts';
import { type StartWebhookOptions, startWebhook, type WebhookHandle } from '../../webhook/start.ts';
import { parseLabelList } from '../../webhook/template-input.ts';
import {
  DEFAULT_WEBHOOK_CONFIG_NAME,
  type FailurePolicy,
  type ReinvocationPolicy,
} from '../../webhook/webhook-config.ts';
import { clusterLogFields, connect } from '../cluster.ts';
import {
  durationFlag,
  FlagError,
  type FlagSpec,
  healthListenFlag,
  intFlag,
  kubeFlags,
  logLevelFlag,
  namespaceFlag,
  netmeshNamespaceFlag,
  parseFlags,
  refuseWorkloadNamespace,
} from '../flags.ts';
import { parseListen } from './common.ts';

export const SUMMARY = [
  'Serve the Envoy sidecar injector: a mutating admission webhook (HTTPS, POST /mutate) that adds the',
  'containers and volumes of the envoy-initializer ConfigMap to new Pods of namespaces labelled',
  'netmesh.io/injection=enabled and of Pods labelled netmesh.io/inject=true. Health and metrics are served',
  'on --health-listen (/healthz, /readyz, /metrics).',
  '',
  'Certificates are self-managed by default: a CA and serving certificate in the Secret --tls-secret,',
  'shared by all replicas, rotated before expiry, with the caBundle of --webhook-config-name kept in step.',
  'With --cert-dir the certificate comes from files (cert-manager) and the caBundle is left alone.',
  '',
  'Local runs and tests: --register-url https://127.0.0.1:<port>/mutate registers the webhook',
  'configuration itself (server-side apply, labelled netmesh.io/registered-by=netmesh-webhook) and',
  'removes it on SIGINT/SIGTERM. It refuses a configuration of that name it did not register (e.g. the',
  "Helm chart's): choose another --webhook-config-name. The apiserver calls that URL, so it must be",
  'reachable from the apiserver: a loopback address only works with an apiserver on this host.',
  '',
  'On SIGTERM the webhook turns unready at once, keeps serving for --shutdown-delay so that endpoints',
  'and load balancers stop sending it requests, then closes.',
].join('\n');

export const webhookFlags = {
  ...kubeFlags,
  ...netmeshNamespaceFlag,
  listen: {
    type: 'string',
    description: 'host:port of the HTTPS admission listener',
    env: 'NETMESH_LISTEN',
    default: '0.0.0.0:9443',
  },
  ...healthListenFlag,
  'register-url': {
    type: 'string',
    description:
      'register a MutatingWebhookConfiguration calling this https URL (local runs); the apiserver must reach it, so 127.0.0.1 only works with an apiserver on this host',
    env: 'NETMESH_REGISTER_URL',
  },
  'webhook-config-name': {
    type: 'string',
    description: 'MutatingWebhookConfiguration to register / keep the caBundle of',
    env: 'NETMESH_WEBHOOK_CONFIG_NAME',
    default: DEFAULT_WEBHOOK_CONFIG_NAME,
  },
  'failure-policy': {
    type: 'string',
    description: 'failurePolicy of the registered webhooks: Ignore (as the chart) or Fail',
    env: 'NETMESH_FAILURE_POLICY',
    default: 'Ignore',
    values: ['Ignore', 'Fail'],
  },
  'reinvocation-policy': {
    type: 'string',
    description: 'reinvocationPolicy of the registered webhooks: Never (as the chart) or IfNeeded',
    env: 'NETMESH_REINVOCATION_POLICY',
    default: 'Never',
    values: ['Never', 'IfNeeded'],
  },
  'timeout-seconds': {
    type: 'string',
    description: 'timeoutSeconds of the registered webhooks (1-30)',
    env: 'NETMESH_TIMEOUT_SECONDS',
    default: '10',
  },
  'namespace-selector': {
    type: 'string',
    description: 'k=v,... extra namespace labels the registered webhooks require (scoping, canaries)',
    env: 'NETMESH_NAMESPACE_SELECTOR',
  },
  'template-configmap': {
    type: 'string',
    description: 'ConfigMap holding the sidecar template (key config)',
    env: 'NETMESH_TEMPLATE_CONFIGMAP',
    default: TEMPLATE_CONFIGMAP_NAME,
  },
  'template-namespace': {
    type: 'string',
    description: 'namespace of the template ConfigMap (default: --netmesh-namespace)',
    env: 'NETMESH_TEMPLATE_NAMESPACE',
  },
  'service-name': {
    type: 'string',
    description: 'Service in front of the webhook (serving certificate SANs)',
    env: 'NETMESH_SERVICE_NAME',
    default: DEFAULT_SERVICE_NAME,
  },
  'tls-secret': {
    type: 'string',
    description: 'Secret holding the self-managed CA and serving certificate',
    env: 'NETMESH_TLS_SECRET',
    default: DEFAULT_TLS_SECRET_NAME,
  },
  'cert-dir': {
    type: 'string',
    complete: 'dir',
    description: 'serve tls.crt/tls.key from this directory (cert-manager); reloaded on change',
    env: 'NETMESH_CERT_DIR',
  },
  'cert-validity': {
    type: 'string',
    description: 'validity of self-managed certificates (rotated with a third left), e.g. 8760h or 10m',
    env: 'NETMESH_CERT_VALIDITY',
    default: '8760h',
  },
  'max-body-bytes': {
    type: 'string',
    description: 'largest admission request accepted (413 above)',
    env: 'NETMESH_MAX_BODY_BYTES',
    default: String(10 * 1024 * 1024),
  },
  'shutdown-delay': {
    type: 'string',
    description:
      'on SIGTERM, keep serving this long while unready before closing, so endpoints stop sending requests first (e.g. 5s, 0 to close at once)',
    env: 'NETMESH_SHUTDOWN_DELAY',
    default: '5s',
  },
  ...logLevelFlag,
} satisfies Record<string, FlagSpec>;

const MAX_SHUTDOWN_DELAY_MS = 15_000;

type WebhookFlagValues = { [K in keyof typeof webhookFlags]: string | undefined };

export const flags = webhookFlags;

export function webhookOptionsFromFlags(v: WebhookFlagValues): StartWebhookOptions {
  const failurePolicy = v['failure-policy'] ?? 'Ignore';
  if (failurePolicy !== 'Fail' && failurePolicy !== 'Ignore') {
    throw new FlagError(`--failure-policy must be Fail or Ignore, got "${failurePolicy}"`);
  }
  const reinvocationPolicy = v['reinvocation-policy'] ?? 'Never';
  if (reinvocationPolicy !== 'Never' && reinvocationPolicy !== 'IfNeeded') {
    throw new FlagError(`--reinvocation-policy must be Never or IfNeeded, got "${reinvocationPolicy}"`);
  }
  const timeoutSeconds = intFlag('timeout-seconds', v['timeout-seconds'], 10);
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1 || timeoutSeconds > 30) {
    throw new FlagError(
      `--timeout-seconds must be a whole number from 1 to 30, got "${v['timeout-seconds']}"`,
    );
  }
  const certValidityMs = durationFlag('cert-validity', v['cert-validity'], 365 * 24 * 3600 * 1000);
  if (certValidityMs < 60_000) throw new FlagError('--cert-validity must be at least 1m');
  const shutdownDelayMs = durationFlag('shutdown-delay', v['shutdown-delay'], 5000);
  if (shutdownDelayMs > MAX_SHUTDOWN_DELAY_MS) {
    // The delay has to fit, with the rest of the shutdown, into runProcess's 25 s grace.
    throw new FlagError(
      `--shutdown-delay must be at most ${MAX_SHUTDOWN_DELAY_MS / 1000}s (the whole shutdown has 25s), got "${v['shutdown-delay']}"`,
    );
  }
  for (const flag of ['listen', 'health-listen'] as const) parseListen(v[flag] ?? '', flag);
  if (v['register-url'] !== undefined && v['cert-dir'] !== undefined) {
    throw new FlagError(
      '--register-url needs the self-managed CA for the caBundle; it cannot be combined with --cert-dir',
    );
  }
  const namespace = namespaceFlag('netmesh-namespace', v['netmesh-namespace']);
  const scope = v['namespace-selector'] !== undefined ? parseLabelList(v['namespace-selector']) : {};
  return {
    kubeconfig: v.kubeconfig,
    namespace,
    listen: v.listen!,
    healthListen: v['health-listen']!,
    registerUrl: v['register-url'],
    webhookConfigName: v['webhook-config-name'] ?? DEFAULT_WEBHOOK_CONFIG_NAME,
    failurePolicy: failurePolicy as FailurePolicy,
    reinvocationPolicy: reinvocationPolicy as ReinvocationPolicy,
    extraNamespaceSelector: Object.entries(scope).map(([key, value]) => ({
      key,
      operator: 'In',
      values: [value],
    })),
    timeoutSeconds,
    templateConfigMap: v['template-configmap'] ?? TEMPLATE_CONFIGMAP_NAME,
    templateNamespace: v['template-namespace'] ?? namespace,
    serviceName: v['service-name'] ?? DEFAULT_SERVICE_NAME,
    tlsSecret: v['tls-secret'] ?? DEFAULT_TLS_SECRET_NAME,
    certDir: v['cert-dir'],
    certValidityMs,
    maxBodyBytes: intFlag('max-body-bytes', v['max-body-bytes'], 10 * 1024 * 1024),
    shutdownDelayMs,
  };
}

export async function run(argv: string[]): Promise<number> {
  const { values, help } = parseFlags('webhook', SUMMARY, argv, webhookFlags, {
    refuse: refuseWorkloadNamespace('webhook'),
  });
  if (help) return 0;
  const options = webhookOptionsFromFlags(values);
  const logger = createLogger('netmesh-webhook', { level: values['log-level']! });
  const cluster = connect(values);
  logger.info(clusterLogFields(cluster), 'using cluster');
  const health = parseListen(values['health-listen']!);
  return runProcess(
    { log: logger, kc: cluster.kc, health, runningMessage: 'netmesh webhook running' },
    async (ctx) => {
      const webhook = await startWebhook({
        ...options,
        kubeconfig: cluster.kc,
        logger,
        // The process's health server, metrics registry and informers (runtime/lifecycle.ts).
        healthListen: false,
        healthUrl: `http://${health.host.includes(':') ? `[${health.host}]` : health.host}:${ctx.health.port}`,
        registry: ctx.registry,
        informers: ctx.informers,
      });
      return [webhookComponent(webhook)];
    },
  );
}

/** The webhook as a process component: its readiness on /readyz, its drain on SIGTERM. */
export function webhookComponent(webhook: WebhookHandle): Component {
  return {
    name: 'webhook',
    ready: () => {
      const r = webhook.readiness();
      return { ok: r.ok, detail: r.message.replace(/\n/g, '; ') };
    },
    stop: () => webhook.stop(),
  };
}
