// One entry point for everything that needs a Kubernetes API (test suites, `npm start`,
// benchmarks). Target selection, most explicit first:
//   NETMESH_E2E_KUBECONFIG=<path>  an existing cluster (kind, a real one); never the user's
//                                  current context by accident. NETMESH_E2E_IMAGE names the
//                                  netmesh image loaded into it (for the in-cluster suites)
//   NETMESH_E2E_CLUSTER=k3s        k3s through testcontainers, where a Docker engine is reachable
//   (default)                      the local cluster built from the official Go modules, with a
//                                  real node unless NETMESH_NODE=0 or the machine cannot run one
// The test runner starts one local cluster for the whole run and hands it to every test file
// through NETMESH_SHARED_KUBECONFIG (and NETMESH_SHARED_IMAGE, NETMESH_SHARED_NODE_REASON), so
// each file does not pay for its own.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { UserFacingError } from '../lib/errors.ts';
import { type LocalCluster, startLocalCluster } from './controlplane.ts';
import { nodeUnsupportedReason } from './host.ts';

export type ClusterKind = 'local' | 'kubeconfig' | 'k3s';

export interface TestCluster {
  kind: ClusterKind;
  /** True when this process started the cluster (and stop() tears it down). */
  owned: boolean;
  description: string;
  kubeconfig: string;
  kubeconfigPath: string;
  kc: KubeConfig;
  /** The netmesh image the cluster's node can run, when it has a node (in-cluster suites). */
  image?: string;
  /** Why the cluster has no node to run Pods on, or undefined when it has one. */
  noNodeReason?: string;
  /** The local cluster itself, when this process started it. */
  local?: LocalCluster;
  stop(): Promise<void>;
}

function fromKubeconfigFile(
  path: string,
  kind: ClusterKind,
  description: string,
  node: { image?: string | undefined; noNodeReason?: string | undefined } = {},
): TestCluster {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new UserFacingError(
      `cannot read kubeconfig ${path}`,
      'check the path given in NETMESH_E2E_KUBECONFIG',
    );
  }
  const kc = new KubeConfig();
  kc.loadFromString(text);
  return {
    kind,
    owned: false,
    description,
    kubeconfig: text,
    kubeconfigPath: path,
    kc,
    ...(node.image ? { image: node.image } : {}),
    ...(node.noNodeReason ? { noNodeReason: node.noNodeReason } : {}),
    stop: async () => {},
  };
}

/** Why the selected target cannot run here, or undefined when it can. Lets suites skip honestly. */
export async function unavailableReason(): Promise<string | undefined> {
  if (process.env['NETMESH_E2E_KUBECONFIG'] || process.env['NETMESH_SHARED_KUBECONFIG']) return undefined;
  if (process.env['NETMESH_E2E_CLUSTER'] === 'k3s') return dockerUnavailableReason();
  return undefined;
}

async function dockerUnavailableReason(): Promise<string | undefined> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return undefined;
  } catch (err) {
    return `NETMESH_E2E_CLUSTER=k3s needs a reachable Docker engine, and none was found (${(err as Error).message.split('\n')[0]})`;
  }
}

async function startK3s(log: (s: string) => void): Promise<TestCluster> {
  const reason = await dockerUnavailableReason();
  if (reason)
    throw new UserFacingError(
      reason,
      'start Docker, or use the local control plane (unset NETMESH_E2E_CLUSTER)',
    );
  const { K3sContainer } = await import('@testcontainers/k3s');
  log('starting k3s through testcontainers...');
  const container = await new K3sContainer(
    process.env['NETMESH_K3S_IMAGE'] ?? 'rancher/k3s:v1.34.4-k3s1',
  ).start();
  const kubeconfig = container.getKubeConfig();
  const dir = mkdtempSync(join(tmpdir(), 'netmesh-k3s-'));
  const kubeconfigPath = join(dir, 'kubeconfig');
  writeFileSync(kubeconfigPath, kubeconfig, { mode: 0o600 });
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig);
  return {
    kind: 'k3s',
    owned: true,
    description: 'k3s (testcontainers)',
    kubeconfig,
    kubeconfigPath,
    kc,
    stop: async () => {
      await container.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function acquireCluster(
  opts: { log?: (s: string) => void; kubeconfigOut?: string; forceOwn?: boolean; node?: boolean } = {},
): Promise<TestCluster> {
  const log = opts.log ?? ((s: string) => console.error(s));
  const shared = process.env['NETMESH_SHARED_KUBECONFIG'];
  if (shared && !opts.forceOwn)
    return fromKubeconfigFile(shared, 'local', 'shared cluster of this test run', {
      image: process.env['NETMESH_SHARED_IMAGE'],
      noNodeReason: process.env['NETMESH_SHARED_NODE_REASON'],
    });
  const explicit = process.env['NETMESH_E2E_KUBECONFIG'];
  if (explicit)
    return fromKubeconfigFile(explicit, 'kubeconfig', `existing cluster (${explicit})`, {
      image: process.env['NETMESH_E2E_IMAGE'],
      noNodeReason: process.env['NETMESH_E2E_IMAGE']
        ? undefined
        : 'NETMESH_E2E_IMAGE is not set: name the netmesh image loaded into the cluster (npm run image, then kind load image-archive)',
    });
  if (process.env['NETMESH_E2E_CLUSTER'] === 'k3s') return startK3s(log);
  if (process.env['NETMESH_E2E_CLUSTER'] && process.env['NETMESH_E2E_CLUSTER'] !== 'local') {
    throw new UserFacingError(
      `unknown NETMESH_E2E_CLUSTER=${process.env['NETMESH_E2E_CLUSTER']}`,
      'use "local" (default) or "k3s", or set NETMESH_E2E_KUBECONFIG for an existing cluster',
    );
  }
  const noNodeReason = opts.node === false ? 'started without a node' : nodeUnsupportedReason();
  const cp = await startLocalCluster({
    log,
    node: !noNodeReason,
    ...(opts.kubeconfigOut ? { kubeconfigOut: opts.kubeconfigOut } : {}),
  });
  const kc = new KubeConfig();
  kc.loadFromString(cp.kubeconfig);
  return {
    kind: 'local',
    owned: true,
    description: `local cluster ${cp.version} at ${cp.server}${cp.node ? ` with node ${cp.node.name}` : ''}`,
    kubeconfig: cp.kubeconfig,
    kubeconfigPath: cp.kubeconfigPath,
    kc,
    ...(cp.productImage ? { image: cp.productImage.reference } : {}),
    ...(noNodeReason ? { noNodeReason } : {}),
    local: cp,
    stop: () => cp.stop(),
  };
}
