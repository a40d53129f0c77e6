// One entry point for everything that needs a Kubernetes API (test suites, `npm start`,
// benchmarks). Target selection, most explicit first:
//   NETMESH_E2E_KUBECONFIG=<path>  an existing cluster (kind, a real one); never the user's
//                                  current context by accident
//   NETMESH_E2E_CLUSTER=k3s        k3s through testcontainers, where a Docker engine is reachable
//   (default)                      the local control plane built from the official Go modules
// The test runner starts one local control plane for the whole run and hands it to every test
// file through NETMESH_SHARED_KUBECONFIG, so each file does not pay for its own.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { UserFacingError } from '../lib/errors.ts';
import { startLocalControlPlane } from './controlplane/local.ts';

export type ClusterKind = 'local' | 'kubeconfig' | 'k3s';

export interface TestCluster {
  kind: ClusterKind;
  /** True when this process started the cluster (and stop() tears it down). */
  owned: boolean;
  description: string;
  kubeconfig: string;
  kubeconfigPath: string;
  kc: KubeConfig;
  stop(): Promise<void>;
}

function fromKubeconfigFile(path: string, kind: ClusterKind, description: string): TestCluster {
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
  opts: { log?: (s: string) => void; kubeconfigOut?: string; forceOwn?: boolean } = {},
): Promise<TestCluster> {
  const log = opts.log ?? ((s: string) => console.error(s));
  const shared = process.env['NETMESH_SHARED_KUBECONFIG'];
  if (shared && !opts.forceOwn)
    return fromKubeconfigFile(shared, 'local', 'shared control plane of this test run');
  const explicit = process.env['NETMESH_E2E_KUBECONFIG'];
  if (explicit) return fromKubeconfigFile(explicit, 'kubeconfig', `existing cluster (${explicit})`);
  if (process.env['NETMESH_E2E_CLUSTER'] === 'k3s') return startK3s(log);
  if (process.env['NETMESH_E2E_CLUSTER'] && process.env['NETMESH_E2E_CLUSTER'] !== 'local') {
    throw new UserFacingError(
      `unknown NETMESH_E2E_CLUSTER=${process.env['NETMESH_E2E_CLUSTER']}`,
      'use "local" (default) or "k3s", or set NETMESH_E2E_KUBECONFIG for an existing cluster',
    );
  }
  const cp = await startLocalControlPlane({
    log,
    ...(opts.kubeconfigOut ? { kubeconfigOut: opts.kubeconfigOut } : {}),
  });
  const kc = new KubeConfig();
  kc.loadFromString(cp.kubeconfig);
  return {
    kind: 'local',
    owned: true,
    description: `local control plane ${cp.version} at ${cp.server}`,
    kubeconfig: cp.kubeconfig,
    kubeconfigPath: cp.kubeconfigPath,
    kc,
    stop: () => cp.stop(),
  };
}
