// Installing the Helm chart into a test cluster: in-cluster (netmesh runs as the chart's
// Deployment on the node, from the image built here), or for a host run, where netmesh runs on
// this machine under the chart's identity: a kubeconfig carrying a real ServiceAccount token
// (TokenRequest, as `kubectl create token` does), so it has exactly the chart's RBAC.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { stringify as stringifyYaml } from 'yaml';
import { buildKubeconfig } from '../lib/kubeconfig.ts';
import { helm, helmAsync } from './tools.ts';

export const CHART_DIR = resolve(fileURLToPath(import.meta.url), '..', '..', 'charts', 'netmesh');

export interface ChartRelease {
  release: string;
  namespace: string;
  /** Full name of the release's objects (ServiceAccount, webhook configuration, Lease prefix). */
  fullname: string;
}

export function fullnameOf(release: string): string {
  return release.includes('netmesh') ? release : `${release}-netmesh`;
}

/**
 * `helm upgrade --install` with --set values and no --wait, for host runs: netmesh runs on
 * this machine (the apiserver calls it at webhook.localRunURL), so the chart's Deployment is
 * not rendered (runInCluster=false) unless `values` asks for it; on a cluster with a node it
 * would otherwise run beside the host process and compete for the same Lease.
 */
export function installChart(
  kubeconfigPath: string,
  release: string,
  namespace: string,
  values: Record<string, string | number | boolean> = {},
  extra: string[] = [],
): ChartRelease {
  const sets = Object.entries({ runInCluster: false, ...values }).flatMap(([k, v]) => [
    '--set',
    `${k}=${String(v)}`,
  ]);
  helm(kubeconfigPath, [
    'upgrade',
    '--install',
    release,
    CHART_DIR,
    '--namespace',
    namespace,
    '--create-namespace',
    ...sets,
    ...extra,
  ]);
  return { release, namespace, fullname: fullnameOf(release) };
}

/** True when a Helm release of that name exists in the namespace. */
export function releaseExists(kubeconfigPath: string, release: string, namespace: string): boolean {
  try {
    helm(kubeconfigPath, ['status', release, '--namespace', namespace]);
    return true;
  } catch {
    return false;
  }
}

export function uninstallChart(kubeconfigPath: string, release: string, namespace: string): void {
  helm(kubeconfigPath, ['uninstall', release, '--namespace', namespace, '--wait', '--timeout', '60s']);
}

/** A kubeconfig for `serviceAccount` in `namespace`, with a token from the TokenRequest API. */
export async function serviceAccountKubeconfig(
  kc: k8s.KubeConfig,
  namespace: string,
  serviceAccount: string,
  expirationSeconds = 3600,
): Promise<{ path: string; token: string; remove(): void }> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const res = await core.createNamespacedServiceAccountToken({
    name: serviceAccount,
    namespace,
    body: { spec: { audiences: [], expirationSeconds } },
  });
  const token = res.status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${serviceAccount} returned no token`);
  const cluster = kc.getCurrentCluster();
  if (!cluster?.caData) throw new Error('the admin kubeconfig has no embedded CA data');
  const text = buildKubeconfig({
    server: cluster.server,
    caPem: Buffer.from(cluster.caData, 'base64').toString('utf8'),
    user: { token },
    userName: `system:serviceaccount:${namespace}:${serviceAccount}`,
    namespace,
  });
  const dir = mkdtempSync(join(tmpdir(), 'netmesh-sa-'));
  const path = join(dir, 'kubeconfig');
  writeFileSync(path, text, { mode: 0o600 });
  // The token is a credential: callers remove it when done (and it expires on its own).
  const remove = (): void => rmSync(dir, { recursive: true, force: true });
  process.once('exit', remove);
  return { path, token, remove };
}

/**
 * Arguments of `netmesh run` on the host for a release installed with
 * webhook.localRunURL=https://127.0.0.1:<port>/mutate: the chart's names, in its namespace.
 */
export function hostRunArgs(r: ChartRelease, kubeconfigPath: string, port: number): string[] {
  return [
    ...['--kubeconfig', kubeconfigPath, '--netmesh-namespace', r.namespace, '--listen', `127.0.0.1:${port}`],
    ...[
      '--service-name',
      r.fullname,
      '--webhook-config-name',
      r.fullname,
      '--lease-name',
      `${r.fullname}-operator`,
    ],
    ...['--tls-secret', 'netmesh-webhook-tls', '--envoy-bootstrap-configmap', 'envoy'],
  ];
}

/** The sidecar template the in-cluster suites and the demo inject: the chart's default
 * template (a native sidecar) with the Envoy stand-in built on this machine (no registry is
 * reachable), started and Ready only once it has read the bootstrap from the mounted `envoy`
 * ConfigMap. */
export function standinTemplate(image: string): string {
  return `initContainers:
  - name: envoy
    image: ${image}
    restartPolicy: Always
    args: ["--config-path", "/etc/envoy/envoy.yaml", "--listen", ":15001", "--admin", ":15000"]
    ports:
      - name: envoy-proxy
        containerPort: 15001
        protocol: TCP
    resources:
      requests: {cpu: 10m, memory: 16Mi}
      limits: {cpu: 200m, memory: 64Mi}
    securityContext:
      runAsNonRoot: true
      runAsUser: 101
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
    startupProbe:
      httpGet: {path: /ready, port: 15000}
      periodSeconds: 1
      failureThreshold: 60
    readinessProbe:
      httpGet: {path: /ready, port: 15000}
      periodSeconds: 1
    volumeMounts:
      - name: envoy-conf
        mountPath: /etc/envoy
        readOnly: true
volumes:
  - name: envoy-conf
    configMap:
      name: envoy
`;
}

export interface InClusterInstall extends ChartRelease {
  /** Seconds from `helm upgrade --install` to every replica Ready. */
  readySeconds: number;
}

/**
 * Installs (or upgrades) the chart so that netmesh runs in the cluster as the chart's
 * Deployment, from `image` already on the nodes (pullPolicy Never: nothing is pulled), and
 * waits until the rollout is done.
 */
export async function installInCluster(
  kubeconfigPath: string,
  opts: {
    release: string;
    namespace: string;
    image: string;
    values?: Record<string, unknown>;
    timeoutSeconds?: number;
  },
): Promise<InClusterInstall> {
  const colon = opts.image.lastIndexOf(':');
  const values = {
    image: { repository: opts.image.slice(0, colon), tag: opts.image.slice(colon + 1), pullPolicy: 'Never' },
    ...opts.values,
  };
  const dir = mkdtempSync(join(tmpdir(), 'netmesh-values-'));
  const file = join(dir, 'values.yaml');
  writeFileSync(file, stringifyYaml(values));
  const started = Date.now();
  try {
    await helmAsync(kubeconfigPath, [
      'upgrade',
      '--install',
      opts.release,
      CHART_DIR,
      '--namespace',
      opts.namespace,
      '--create-namespace',
      '--values',
      file,
      '--wait',
      '--timeout',
      `${opts.timeoutSeconds ?? 180}s`,
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    release: opts.release,
    namespace: opts.namespace,
    fullname: fullnameOf(opts.release),
    readySeconds: (Date.now() - started) / 1000,
  };
}
