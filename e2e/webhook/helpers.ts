// Shared pieces of the webhook integration suites: a free port, the course's manifests, a
// webhook scoped to this test file's namespaces, and a probe that waits until the apiserver
// actually calls it.
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import type { KubeConfig, V1ConfigMap, V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import { courseConfigMap as exampleConfigMap, coursePod as examplePod } from '../../examples/course.ts';
import { STATUS_ANNOTATION } from '../../webhook/core/contract.ts';
import { type StartWebhookOptions, startWebhook, type WebhookHandle } from '../../webhook/start.ts';
import { type ClusterHandle, createNamespace, eventually } from '../support.ts';

/** The course's Pod (examples/seed-myapp-pod.yaml). */
export async function coursePod(): Promise<V1Pod> {
  return examplePod();
}

/** The course's template ConfigMap (examples/seed-envoy-initializer-configmap.yaml). */
export async function courseConfigMap(): Promise<V1ConfigMap> {
  return exampleConfigMap();
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

export function testId(): string {
  return `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Label every namespace of one test file carries; the registered webhook only sees those. */
export const SCOPE_LABEL = 'netmesh-e2e/webhook-scope';

export interface ScopedWebhook {
  webhook: WebhookHandle;
  /** The webhook's own namespace (Secret, template ConfigMap). */
  systemNamespace: string;
  configName: string;
  scope: string;
  port: number;
  /** Creates a namespace in this test file's scope. */
  namespace(prefix: string, labels?: Record<string, string>): Promise<string>;
}

export const ENABLED = { 'netmesh.io/injection': 'enabled' };

export async function startScopedWebhook(
  h: ClusterHandle,
  opts: Partial<StartWebhookOptions> & {
    systemNamespace?: string;
    port?: number;
    withTemplate?: boolean;
  } = {},
): Promise<ScopedWebhook> {
  const scope = testId();
  const systemNamespace =
    opts.systemNamespace ?? (await createNamespace(h, 'wh-sys', { [SCOPE_LABEL]: scope }));
  if (opts.withTemplate !== false) {
    const cm = await courseConfigMap();
    await h.core
      .createNamespacedConfigMap({
        namespace: systemNamespace,
        body: { metadata: { name: 'envoy-initializer' }, data: cm.data },
      })
      .catch((err: { code?: number }) => {
        if (err.code !== 409) throw err;
      });
  }
  const port = opts.port ?? (await freePort());
  const configName = opts.webhookConfigName ?? `wh-e2e-${scope}`;
  const webhook = await startWebhook({
    kubeconfig: h.kc,
    namespace: systemNamespace,
    listen: `127.0.0.1:${port}`,
    healthListen: '127.0.0.1:0',
    registerUrl: `https://127.0.0.1:${port}/mutate`,
    webhookConfigName: configName,
    failurePolicy: 'Fail',
    timeoutSeconds: 10,
    extraNamespaceSelector: [{ key: SCOPE_LABEL, operator: 'In', values: [scope] }],
    logger: pino({ level: process.env['NETMESH_E2E_LOG_LEVEL'] ?? 'warn' }),
    ...opts,
  });
  return {
    webhook,
    systemNamespace,
    configName,
    scope,
    port,
    namespace: (prefix, labels = {}) => createNamespace(h, prefix, { ...labels, [SCOPE_LABEL]: scope }),
  };
}

export function isInjected(pod: V1Pod): boolean {
  return pod.metadata?.annotations?.[STATUS_ANNOTATION] !== undefined;
}

export function probePod(): V1Pod {
  return {
    metadata: { generateName: 'probe-' },
    spec: { containers: [{ name: 'app', image: 'busybox' }] },
  };
}

/** Waits until a dry-run Pod in `namespace` (an enabled one) comes back injected. */
export async function waitUntilInjecting(
  h: ClusterHandle,
  namespace: string,
  timeoutMs = 30_000,
): Promise<void> {
  await eventually(
    `the apiserver to call the webhook for ${namespace}`,
    async () => isInjected(await h.core.createNamespacedPod({ namespace, body: probePod(), dryRun: 'All' })),
    { timeoutMs, intervalMs: 250 },
  );
}

/** POSTs a Pod over plain HTTPS to read the Warning headers kubectl would print. */
export async function createPodWithWarnings(
  kc: KubeConfig,
  namespace: string,
  pod: V1Pod,
  dryRun = false,
): Promise<{ status: number; pod: V1Pod; warnings: string[]; text: string }> {
  const cluster = kc.getCurrentCluster()!;
  const user = kc.getCurrentUser()!;
  const decode = (data: string | undefined, file: string | undefined): string | undefined =>
    data !== undefined
      ? Buffer.from(data, 'base64').toString('utf8')
      : file
        ? readFileSync(file, 'utf8')
        : undefined;
  const url = new URL(`${cluster.server}/api/v1/namespaces/${namespace}/pods${dryRun ? '?dryRun=All' : ''}`);
  const body = JSON.stringify(pod);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
  };
  if (user.token) headers['authorization'] = `Bearer ${user.token}`;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        method: 'POST',
        hostname: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        headers,
        ca: decode(cluster.caData, cluster.caFile),
        cert: decode(user.certData, user.certFile),
        key: decode(user.keyData, user.keyFile),
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const raw = res.headers['warning'];
          const list = (Array.isArray(raw) ? raw : raw ? [raw] : []).flatMap((w) => w.split(/,\s*(?=299 )/));
          const warnings = list.map((w) =>
            w
              .replace(/^299 - "/, '')
              .replace(/"$/, '')
              .replace(/\\"/g, '"'),
          );
          resolve({ status: res.statusCode ?? 0, pod: JSON.parse(text) as V1Pod, warnings, text });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
