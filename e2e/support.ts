// Shared helpers for the integration suites: one cluster per test file (the shared control
// plane of the run when there is one), polling with a deadline, and throwaway namespaces.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { acquireCluster, type TestCluster } from '../cluster/target.ts';

export interface ClusterHandle {
  cluster: TestCluster;
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  custom: k8s.CustomObjectsApi;
  objects: k8s.KubernetesObjectApi;
}

/** Registers before/after hooks in the calling test file; the handle is filled in `before`. */
export function useCluster(): ClusterHandle {
  const handle = {} as ClusterHandle;
  before(async () => {
    const cluster = await acquireCluster({ log: (s) => console.log(`# ${s}`) });
    handle.cluster = cluster;
    handle.kc = cluster.kc;
    handle.core = cluster.kc.makeApiClient(k8s.CoreV1Api);
    handle.apps = cluster.kc.makeApiClient(k8s.AppsV1Api);
    handle.custom = cluster.kc.makeApiClient(k8s.CustomObjectsApi);
    handle.objects = k8s.KubernetesObjectApi.makeApiClient(cluster.kc);
  });
  after(async () => {
    await handle.cluster?.stop();
  });
  return handle;
}

export async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  { timeoutMs = 30_000, intervalMs = 200 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? `: last error ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export function isNotFound(err: unknown): boolean {
  return (err as { code?: number })?.code === 404;
}

/** True when `read` fails with 404 (the object is gone), false while it still succeeds. */
export async function gone(read: () => Promise<unknown>): Promise<boolean> {
  try {
    await read();
    return false;
  } catch (err) {
    if (isNotFound(err)) return true;
    throw err;
  }
}

let counter = 0;
/** Creates a namespace with a unique name and waits for its default ServiceAccount. */
export async function createNamespace(
  h: ClusterHandle,
  prefix: string,
  labels: Record<string, string> = {},
): Promise<string> {
  const name = `${prefix}-${process.pid}-${++counter}-${Math.random().toString(36).slice(2, 6)}`;
  await h.core.createNamespace({ body: { metadata: { name, labels } } });
  // The ServiceAccount admission plugin rejects Pods until the serviceaccount controller has
  // created `default`; real clusters have the same race right after namespace creation.
  await eventually(`default ServiceAccount in ${name}`, async () =>
    h.core.readNamespacedServiceAccount({ name: 'default', namespace: name }).then(() => true),
  );
  return name;
}

export async function deleteNamespace(h: ClusterHandle, name: string): Promise<void> {
  // Pods on the node would get their full grace period (30 s for a shell that ignores SIGTERM,
  // like the course Pod's): tests end them at once.
  await h.core.deleteCollectionNamespacedPod({ namespace: name, gracePeriodSeconds: 0 }).catch(() => {});
  await h.core.deleteNamespace({ name }).catch((err) => {
    if (!isNotFound(err)) throw err;
  });
}

/**
 * A busybox Deployment labelled app=<name> that sleeps; kube-controller-manager makes its
 * Pods and, on a cluster with a node, they really run.
 */
export async function createDeployment(
  h: ClusterHandle,
  namespace: string,
  name: string,
  replicas = 2,
): Promise<void> {
  await h.apps.createNamespacedDeployment({
    namespace,
    body: {
      metadata: { name },
      spec: {
        replicas,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          // `sleep` as PID 1 ignores SIGTERM: without a short grace period every deletion on
          // the real node waits the default 30 s for the kubelet's SIGKILL.
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [{ name, image: 'busybox', command: ['sleep', '3600'] }],
          },
        },
      },
    },
  });
}

const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));
const netmeshBin = resolve(repoRoot, 'bin', 'netmesh.js');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `netmesh` with no cluster but the one on its command line: the variables that would otherwise
 * point it at one (a kubeconfig, netmesh's own, in-cluster discovery) removed.
 */
export const runNetmeshIsolated = (args: string[]): Promise<CliRun> =>
  runNetmesh(args, {
    unset: ['KUBECONFIG', 'NETMESH_KUBECONFIG', 'NETMESH_NAMESPACE', 'KUBERNETES_SERVICE_HOST'],
  });

/**
 * The netmesh CLI as a user runs it: a separate process from the repository's root, with
 * `input` on stdin, `env` added and the variables in `unset` removed (by default KUBECONFIG, so
 * only the kubeconfig on the command line counts). Resolves on 'close', not 'exit': Node may
 * emit 'exit' before the last output has come through the pipes.
 */
export function runNetmesh(
  args: string[],
  {
    input = '',
    env = {},
    unset = ['KUBECONFIG'],
  }: { input?: string; env?: NodeJS.ProcessEnv; unset?: string[] } = {},
): Promise<CliRun> {
  return new Promise((done, reject) => {
    const childEnv = { ...process.env, ...env };
    for (const k of unset) delete childEnv[k];
    const child = spawn(process.execPath, [netmeshBin, ...args], {
      cwd: repoRoot,
      env: childEnv,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => done({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(input);
  });
}
