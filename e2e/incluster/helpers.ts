// Shared pieces of the in-cluster suites: netmesh installed by its chart and running as the
// chart's Deployment on the cluster's node, from the image built on this machine. Each file
// installs its own release in its own namespace, scoped (webhook.extraNamespaceSelector) to
// namespaces carrying its scope label, so suites never inject each other's Pods.
import type * as k8s from '@kubernetes/client-node';
import {
  type InClusterInstall,
  installInCluster,
  standinTemplate,
  uninstallChart,
} from '../../cluster/chart.ts';
import { ENVOY_STANDIN_IMAGE } from '../../cluster/images.ts';
import { type ClusterHandle, createNamespace, eventually } from '../support.ts';

export const SCOPE_LABEL = 'netmesh-e2e/incluster-scope';
export const ENABLED = { 'netmesh.io/injection': 'enabled' };

/** The netmesh image the node runs; fails (never skips) with the reason when there is none. */
export function requireNode(h: ClusterHandle): string {
  if (h.cluster.noNodeReason) throw new Error(`the in-cluster suites need a node: ${h.cluster.noNodeReason}`);
  if (!h.cluster.image)
    throw new Error('the in-cluster suites need the netmesh image on the node (NETMESH_E2E_IMAGE)');
  return h.cluster.image;
}

export interface Release extends InClusterInstall {
  scope: string;
  /** The webhook's values as installed (for upgrades that keep them). */
  values: Record<string, unknown>;
  /** Creates an application namespace in this release's scope. */
  appNamespace(prefix: string, labels?: Record<string, string>): Promise<string>;
  uninstall(): void;
}

/** Installs netmesh in-cluster (the stand-in sidecar template) and waits for the rollout. */
export async function installRelease(
  h: ClusterHandle,
  opts: { release: string; values?: Record<string, unknown>; image?: string; scope?: string },
): Promise<Release> {
  const image = opts.image ?? requireNode(h);
  const scope = opts.scope ?? `${opts.release}-${Math.random().toString(36).slice(2, 7)}`;
  const namespace = `${opts.release}-system`;
  const values: Record<string, unknown> = {
    template: { config: standinTemplate(ENVOY_STANDIN_IMAGE) },
    ...opts.values,
    webhook: {
      failurePolicy: 'Fail',
      extraNamespaceSelector: [{ key: SCOPE_LABEL, operator: 'In', values: [scope] }],
      ...((opts.values?.['webhook'] as object | undefined) ?? {}),
    },
  };
  const installed = await installInCluster(h.cluster.kubeconfigPath, {
    release: opts.release,
    namespace,
    image,
    values,
  });
  return {
    ...installed,
    scope,
    values,
    appNamespace: (prefix, labels = {}) => createNamespace(h, prefix, { ...labels, [SCOPE_LABEL]: scope }),
    uninstall: () => uninstallChart(h.cluster.kubeconfigPath, opts.release, namespace),
  };
}

export function podReady(pod: k8s.V1Pod | undefined): boolean {
  return !!pod?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
}

/** Waits until the Pod is Running with every container ready, and returns it. */
export async function waitPodReady(
  h: ClusterHandle,
  namespace: string,
  name: string,
  timeoutMs = 60_000,
): Promise<k8s.V1Pod> {
  return eventually(
    `Pod ${namespace}/${name} Running with every container ready`,
    async () => {
      const pod = await h.core.readNamespacedPod({ namespace, name });
      const statuses = pod.status?.containerStatuses ?? [];
      return pod.status?.phase === 'Running' && statuses.length > 0 && statuses.every((s) => s.ready)
        ? pod
        : undefined;
    },
    { timeoutMs, intervalMs: 250 },
  );
}

/** The netmesh Pods of a release, oldest first; terminating ones only when asked. */
export async function netmeshPods(
  h: ClusterHandle,
  r: InClusterInstall,
  { terminating = false } = {},
): Promise<k8s.V1Pod[]> {
  const list = await h.core.listNamespacedPod({
    namespace: r.namespace,
    labelSelector: `app.kubernetes.io/name=netmesh,app.kubernetes.io/instance=${r.release}`,
  });
  return list.items
    .filter((p) => terminating || !p.metadata?.deletionTimestamp)
    .sort((a, b) =>
      String(a.metadata?.creationTimestamp).localeCompare(String(b.metadata?.creationTimestamp)),
    );
}

/**
 * The Pod named in the operator's leader Lease; undefined while the Lease is released (a replica
 * that shuts down writes an empty holder, as client-go's ReleaseOnCancel does).
 */
export async function leaderOf(h: ClusterHandle, r: InClusterInstall): Promise<string | undefined> {
  const { CoordinationV1Api } = await import('@kubernetes/client-node');
  const lease = await h.kc
    .makeApiClient(CoordinationV1Api)
    .readNamespacedLease({ namespace: r.namespace, name: `${r.fullname}-operator` });
  return lease.spec?.holderIdentity || undefined;
}

/**
 * The leader, once it is one of the release's live Pods. Right after a rollout the Lease can
 * still name the old replica (or nobody, once it released) until a new replica's next retry.
 */
export async function liveLeaderOf(h: ClusterHandle, r: InClusterInstall): Promise<string | undefined> {
  const [holder, pods] = await Promise.all([leaderOf(h, r), netmeshPods(h, r)]);
  return pods.some((p) => p.metadata?.name === holder) ? holder : undefined;
}
