// A real worker node beside the local control plane: containerd (with runc and the CNI bridge
// and host-local plugins from the distribution), the kubelet and kube-proxy built from the same
// Kubernetes modules as the apiserver, node credentials issued by the cluster's CA (the Node
// authorizer and NodeRestriction apply to it), and the images built on this machine imported
// into containerd and served by a loopback registry. Two phases, because the apiserver must
// listen on the node's bridge address before the node can reach it:
//   prepareNodeHost  the host side: packages, the bridge, a route, cgroups (before the apiserver)
//   startNode        the daemons (after the apiserver is ready)
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { UserFacingError } from '../../lib/errors.ts';
import { buildKubeconfig } from '../../lib/kubeconfig.ts';
import { type CertificateAuthority, issueCertificate } from '../../lib/pki.ts';
import type { ClusterBinaries } from '../build.ts';
import {
  CNI_BIN_DIR,
  ensureNodePackages,
  nodeUnsupportedReason,
  readSysctl,
  run,
  writeSysctl,
} from '../host.ts';
import { PAUSE_IMAGE } from '../images.ts';
import { type OwnedProcess, ownNodeState, spawnOwned } from '../processes.ts';
import {
  CGROUP_ROOT,
  cniConfig,
  containerdConfig,
  kubeletConfig,
  kubeProxyConfig,
  NODE_NETWORK,
  type NodePaths,
  nodePaths,
  REDIRECTED_REGISTRIES,
  registryHostsToml,
} from './config.ts';
import {
  cgroupMounts,
  FIXED_DIRS,
  isAlive,
  NETNS_DIRS,
  type NodeState,
  readNodeState,
  teardownNodeSync,
} from './teardown.ts';

const execFileAsync = promisify(execFile);

/** Sysctls the node (the bridge plugin, kube-proxy) may change; restored on teardown. */
const TOUCHED_SYSCTLS = [
  'net.ipv4.ip_forward',
  'net.bridge.bridge-nf-call-iptables',
  'net.ipv4.conf.all.route_localnet',
];

export interface NodeHost {
  paths: NodePaths;
  state: NodeState;
  save(): void;
  teardown(): string[];
}

function foreignKubeDaemons(): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      if (comm === 'kubelet' || comm === 'kube-proxy') found.push(`${comm} (pid ${pid})`);
    } catch {
      // exited
    }
  }
  return found;
}

/** Creates the node's cgroup parent in every hierarchy (the kubelet requires it to exist). */
function createCgroupRoot(): void {
  for (const mp of cgroupMounts()) {
    const dir = join(mp, CGROUP_ROOT);
    mkdirSync(dir, { recursive: true });
    // A v1 cpuset starts empty and admits no task until it has CPUs and memory nodes.
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      const parent = join(mp, f);
      if (existsSync(parent) && existsSync(join(dir, f))) {
        const v = readFileSync(parent, 'utf8').trim();
        if (v && !readFileSync(join(dir, f), 'utf8').trim()) writeFileSync(join(dir, f), v);
      }
    }
  }
}

/**
 * Claims the machine for one node, cleans up after a node whose owner died, installs missing
 * packages, and creates the bridge (its address is the node IP), the Service-range route and
 * the node's cgroup parent. Everything it changes is recorded first, so teardown can undo it.
 */
export function prepareNodeHost(bins: ClusterBinaries, log: (s: string) => void): NodeHost {
  const unsupported = nodeUnsupportedReason();
  if (unsupported) throw new UserFacingError(unsupported);
  const paths = nodePaths();
  const previous = readNodeState(paths.stateFile);
  if (previous && previous.owner !== process.pid && isAlive(previous.owner)) {
    throw new UserFacingError(
      `a local node is already running on this machine (owned by pid ${previous.owner})`,
      'stop it with npm run cluster:down, or point the tests at it with NETMESH_E2E_KUBECONFIG=.netmesh/kubeconfig',
    );
  }
  if (previous) {
    log('removing what a local node left behind when its owner died');
    teardownNodeSync(previous);
  }
  const foreign = foreignKubeDaemons();
  if (foreign.length) {
    throw new UserFacingError(
      `this machine already runs ${foreign.join(', ')}; the local node needs the machine to itself`,
      'run the suites against that cluster with NETMESH_E2E_KUBECONFIG, or set NETMESH_NODE=0',
    );
  }
  try {
    ensureNodePackages(log);
  } catch (err) {
    throw new UserFacingError(
      (err as Error).message,
      'or set NETMESH_NODE=0 for a control plane without a node',
    );
  }
  for (const d of [paths.root, paths.run, paths.pki, paths.logs])
    mkdirSync(d, { recursive: true, mode: 0o700 });
  const state: NodeState = {
    owner: process.pid,
    pgids: {},
    bins: { nodeCleanup: bins.nodeCleanup, kubeProxy: bins.kubeProxy },
    paths,
    sysctls: Object.fromEntries(
      TOUCHED_SYSCTLS.flatMap((s) => {
        const v = readSysctl(s);
        return v === undefined ? [] : [[s, v]];
      }),
    ),
    preexisting: {
      netns: NETNS_DIRS.flatMap((d) => (existsSync(d) ? readdirSync(d) : [])),
      netnsDir: existsSync(NETNS_DIRS[0]!),
      varLibCni: existsSync('/var/lib/cni'),
      varLogContainers: existsSync('/var/log/containers'),
      fixedDirs: FIXED_DIRS.filter((d) => existsSync(d)),
    },
  };
  const save = (): void => writeFileSync(paths.stateFile, JSON.stringify(state, null, 2), { mode: 0o600 });
  save();
  ownNodeState(paths.stateFile);
  const n = NODE_NETWORK;
  run('ip', ['link', 'add', n.bridge, 'type', 'bridge']);
  run('ip', ['addr', 'add', `${n.nodeIp}/${n.bridgePrefix}`, 'dev', n.bridge]);
  run('ip', ['link', 'set', n.bridge, 'up']);
  // Service addresses exist only as kube-proxy's DNAT rules; a packet that matches none is
  // dropped here instead of following the default route off the machine.
  run('ip', ['route', 'add', 'blackhole', n.serviceCidr]);
  // Pod-to-Service traffic is forwarded between bridge ports after DNAT.
  writeSysctl('net.ipv4.ip_forward', '1');
  createCgroupRoot();
  return { paths, state, save, teardown: () => teardownNodeSync(state) };
}

export interface LocalNode {
  name: string;
  ip: string;
  processes: OwnedProcess[];
  /** Imports (or re-imports) image archives into the node's containerd. */
  importImages(archives: string[]): Promise<void>;
  /** Adds another tag for an image already imported. */
  tagImage(source: string, target: string): Promise<void>;
  stop(): Promise<void>;
}

/** containerd running with the node's images: the part of the node that needs no apiserver. */
export interface NodeRuntime {
  processes: OwnedProcess[];
  importImages(archives: string[]): Promise<void>;
  tagImage(source: string, target: string): Promise<void>;
}

export interface StartRuntimeOptions {
  /** OCI archives that must be present without a pull (the sandbox image, netmesh). */
  imageArchives: string[];
  /** `127.0.0.1:<port>` of the loopback registry serving every image built here. */
  registryHost: string;
  log: (s: string) => void;
}

export interface StartNodeOptions {
  bins: ClusterBinaries;
  ca: CertificateAuthority;
  /** The apiserver as the node reaches it (on the bridge address). */
  server: string;
  /** Admin access, to wait for the Node to be Ready. */
  admin: k8s.KubeConfig;
  freePort: () => Promise<number>;
  log: (s: string) => void;
}

async function waitUntil(
  what: string,
  ms: number,
  probe: () => Promise<boolean>,
  logFile?: string,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) {
      const tail =
        logFile && existsSync(logFile)
          ? readFileSync(logFile, 'utf8').trim().split('\n').slice(-15).join('\n')
          : '';
      throw new UserFacingError(
        `${what} within ${ms / 1000} s`,
        tail ? `log ${logFile}:\n${tail}` : undefined,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function writeFile(path: string, content: string): string {
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

/**
 * Starts containerd with the node's CNI and registry configuration and imports the images that
 * must be present without a pull. Needs no apiserver, so it runs while the control plane starts.
 */
export async function startRuntime(host: NodeHost, opts: StartRuntimeOptions): Promise<NodeRuntime> {
  const { paths, state, save } = host;
  mkdirSync(paths.cniConfDir, { recursive: true });
  writeFile(join(paths.cniConfDir, '10-netmesh-node.conflist'), cniConfig(paths));
  for (const r of REDIRECTED_REGISTRIES) {
    mkdirSync(join(paths.registryHostsDir, r), { recursive: true });
    writeFile(join(paths.registryHostsDir, r, 'hosts.toml'), registryHostsToml(opts.registryHost));
  }
  // Pods resolve through their own loopback, where nothing answers: a name lookup fails at
  // once instead of reaching the machine's resolver. (An empty file would not do: containerd
  // copies the host's resolv.conf into a sandbox whose DNS config is empty.)
  writeFile(paths.resolvConf, 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
  writeFile(
    paths.containerdConfig,
    containerdConfig(paths, { sandboxImage: PAUSE_IMAGE, cniBinDir: CNI_BIN_DIR }),
  );
  const ctr = (args: string[]): Promise<unknown> =>
    execFileAsync('ctr', ['--address', paths.containerdSocket, '--namespace', 'k8s.io', ...args], {
      timeout: 120_000,
      maxBuffer: 16 << 20,
    });
  // One import per archive, concurrently: containerd unpacks layers in parallel.
  const importImages = async (archives: string[]): Promise<void> => {
    await Promise.all(archives.map((a) => ctr(['images', 'import', a])));
  };
  const started = Date.now();
  const containerd = spawnOwned('containerd', 'containerd', ['--config', paths.containerdConfig], {
    logDir: paths.logs,
    stateDir: paths.run,
  });
  state.pgids.containerd = containerd.child.pid;
  save();
  await waitUntil(
    'containerd did not start',
    20_000,
    async () => {
      await ctr(['version']);
      return true;
    },
    containerd.logFile,
  );
  await importImages(opts.imageArchives);
  opts.log(
    `  containerd up, ${opts.imageArchives.length} images imported (${((Date.now() - started) / 1000).toFixed(1)} s)`,
  );
  return {
    processes: [containerd],
    importImages,
    tagImage: async (source, target) => {
      await ctr(['images', 'tag', '--force', source, target]);
    },
  };
}

/**
 * The node's credentials, issued by the cluster's CA: the kubelet is system:node:<name> (Node
 * authorizer, NodeRestriction) with its own serving certificate for the node IP; kube-proxy is
 * system:kube-proxy (bound to system:node-proxier by the default policy).
 */
function nodeCredentials(paths: NodePaths, ca: CertificateAuthority, server: string) {
  const n = NODE_NETWORK;
  const kubeconfigFor = (cn: string, orgs: string[], file: string): string => {
    const cert = issueCertificate(ca, { commonName: cn, organizations: orgs, usage: 'client' });
    const text = buildKubeconfig({
      server,
      caPem: ca.certPem,
      user: { clientCertPem: cert.certPem, clientKeyPem: cert.keyPem },
      userName: cn,
    });
    return writeFile(join(paths.pki, file), text);
  };
  const serving = issueCertificate(ca, {
    commonName: n.nodeName,
    usage: 'server',
    ipAddresses: [n.nodeIp],
    dnsNames: [n.nodeName],
  });
  return {
    kubelet: kubeconfigFor(`system:node:${n.nodeName}`, ['system:nodes'], 'kubelet.kubeconfig'),
    kubeProxy: kubeconfigFor('system:kube-proxy', [], 'kube-proxy.kubeconfig'),
    caFile: writeFile(join(paths.pki, 'ca.crt'), ca.certPem),
    certFile: writeFile(join(paths.pki, 'kubelet.crt'), serving.certPem),
    keyFile: writeFile(join(paths.pki, 'kubelet.key'), serving.keyPem),
  };
}

type Credentials = ReturnType<typeof nodeCredentials>;

async function spawnKubelet(
  host: NodeHost,
  opts: StartNodeOptions,
  creds: Credentials,
): Promise<OwnedProcess> {
  const { paths } = host;
  const n = NODE_NETWORK;
  const config = kubeletConfig(paths, {
    caFile: creds.caFile,
    certFile: creds.certFile,
    keyFile: creds.keyFile,
    port: await opts.freePort(),
    healthzPort: await opts.freePort(),
  });
  writeFile(paths.kubeletConfig, config);
  const kubelet = spawnOwned(
    'kubelet',
    opts.bins.kubelet,
    [
      `--config=${paths.kubeletConfig}`,
      `--kubeconfig=${creds.kubelet}`,
      `--root-dir=${paths.kubeletRoot}`,
      `--cert-dir=${join(paths.kubeletRoot, 'pki')}`,
      `--hostname-override=${n.nodeName}`,
      `--node-ip=${n.nodeIp}`,
      '--v=1',
    ],
    { logDir: paths.logs, stateDir: paths.run },
  );
  host.state.pgids.kubelet = kubelet.child.pid;
  host.save();
  return kubelet;
}

async function spawnKubeProxy(
  host: NodeHost,
  opts: StartNodeOptions,
  creds: Credentials,
): Promise<OwnedProcess> {
  const { paths } = host;
  const config = kubeProxyConfig({
    kubeconfig: creds.kubeProxy,
    healthzPort: await opts.freePort(),
    metricsPort: await opts.freePort(),
  });
  writeFile(paths.kubeProxyConfig, config);
  const proxy = spawnOwned(
    'kube-proxy',
    opts.bins.kubeProxy,
    [`--config=${paths.kubeProxyConfig}`, '--v=1'],
    {
      logDir: paths.logs,
      stateDir: paths.run,
    },
  );
  host.state.pgids.kubeProxy = proxy.child.pid;
  host.save();
  return proxy;
}

/** Ready, the not-ready taint lifted (so Pods schedule), and the `kubernetes` Service routed. */
async function waitNodeUsable(
  admin: k8s.KubeConfig,
  kubelet: OwnedProcess,
  proxy: OwnedProcess,
): Promise<void> {
  const n = NODE_NETWORK;
  const core = admin.makeApiClient(k8s.CoreV1Api);
  const nodeReady = async (): Promise<boolean> => {
    if (kubelet.child.exitCode !== null) throw new Error('kubelet exited');
    const node = await core.readNode({ name: n.nodeName });
    const ready = node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    const tainted = node.spec?.taints?.some((t) => t.key === 'node.kubernetes.io/not-ready');
    return !!ready && !tainted;
  };
  await waitUntil(`node ${n.nodeName} did not become Ready`, 60_000, nodeReady, kubelet.logFile);
  const serviceRouted = async (): Promise<boolean> => {
    if (proxy.child.exitCode !== null) throw new Error('kube-proxy exited');
    const { stdout } = await execFileAsync('iptables', ['-w', '5', '-t', 'nat', '-S', 'KUBE-SERVICES']);
    return stdout.includes(`${n.kubernetesServiceIp}/32`);
  };
  await waitUntil('kube-proxy did not program the kubernetes Service', 30_000, serviceRouted, proxy.logFile);
}

/** The kubelet and kube-proxy, once the apiserver is ready; resolves when the Node is usable. */
export async function startNode(
  host: NodeHost,
  runtime: NodeRuntime,
  opts: StartNodeOptions,
): Promise<LocalNode> {
  const n = NODE_NETWORK;
  const started = Date.now();
  const creds = nodeCredentials(host.paths, opts.ca, opts.server);
  const kubelet = await spawnKubelet(host, opts, creds);
  const proxy = await spawnKubeProxy(host, opts, creds);
  await waitNodeUsable(opts.admin, kubelet, proxy);
  opts.log(`  node ${n.nodeName} Ready at ${n.nodeIp} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  return {
    name: n.nodeName,
    ip: n.nodeIp,
    processes: [...runtime.processes, kubelet, proxy],
    importImages: runtime.importImages,
    tagImage: runtime.tagImage,
    stop: async () => {
      for (const note of host.teardown()) opts.log(`  node teardown: ${note}`);
    },
  };
}
