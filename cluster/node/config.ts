// The local node's configuration files, as pure functions of its layout: containerd, the CNI
// network, the kubelet and kube-proxy. Everything lives under two roots that belong to netmesh
// alone (NODE_ROOT for state that outlives a process, NODE_RUN for sockets and runtime state),
// so tearing the node down means removing those and the few host objects listed in teardown.ts.
import { join } from 'node:path';
import { stringify } from 'yaml';

export const NODE_ROOT = '/var/lib/netmesh-node';
export const NODE_RUN = '/run/netmesh-node';

/** Addresses of the node. The bridge address is the node IP: the kubelet refuses a loopback one. */
export const NODE_NETWORK = {
  nodeName: 'netmesh-node',
  bridge: 'netmesh0',
  podCidr: '10.244.0.0/24',
  nodeIp: '10.244.0.1',
  bridgePrefix: 24,
  serviceCidr: '10.0.0.0/24',
  /** The `kubernetes` Service's ClusterIP (first address of the Service range). */
  kubernetesServiceIp: '10.0.0.1',
  cniNetworkName: 'netmesh-node',
} as const;

/** The kubelet's cgroup parent (v1 and v2): everything the node runs lives below it. */
export const CGROUP_ROOT = 'netmesh-node';

export interface NodePaths {
  root: string;
  run: string;
  containerdRoot: string;
  containerdState: string;
  containerdSocket: string;
  containerdConfig: string;
  registryHostsDir: string;
  runcRoot: string;
  cniConfDir: string;
  cniIpamDir: string;
  kubeletRoot: string;
  kubeletConfig: string;
  podLogsDir: string;
  resolvConf: string;
  kubeProxyConfig: string;
  pki: string;
  logs: string;
  stateFile: string;
}

export function nodePaths(root = NODE_ROOT, run = NODE_RUN): NodePaths {
  return {
    root,
    run,
    containerdRoot: join(root, 'containerd'),
    containerdState: join(run, 'containerd'),
    containerdSocket: join(run, 'containerd.sock'),
    containerdConfig: join(root, 'containerd.toml'),
    registryHostsDir: join(root, 'registry-hosts'),
    runcRoot: join(run, 'runc'),
    cniConfDir: join(root, 'cni', 'net.d'),
    cniIpamDir: join(root, 'cni', 'ipam'),
    kubeletRoot: join(root, 'kubelet'),
    kubeletConfig: join(root, 'kubelet.yaml'),
    podLogsDir: join(root, 'pod-logs'),
    resolvConf: join(root, 'resolv.conf'),
    kubeProxyConfig: join(root, 'kube-proxy.yaml'),
    pki: join(root, 'pki'),
    logs: join(root, 'logs'),
    stateFile: join(run, 'state.json'),
  };
}

const toml = (s: string): string => JSON.stringify(s);

/**
 * containerd 1.6, CRI only. `restrict_oom_score_adj`: the VM's root lacks CAP_SYS_RESOURCE, so
 * runc could not apply the kubelet's negative oom_score_adj and every sandbox would fail.
 */
export function containerdConfig(p: NodePaths, opts: { sandboxImage: string; cniBinDir: string }): string {
  return `version = 2
root = ${toml(p.containerdRoot)}
state = ${toml(p.containerdState)}
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing"]

[grpc]
  address = ${toml(p.containerdSocket)}

[debug]
  level = "warn"

[plugins."io.containerd.internal.v1.opt"]
  path = ${toml(join(p.containerdRoot, 'opt'))}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${toml(opts.sandboxImage)}
  restrict_oom_score_adj = true
  enable_selinux = false
  # The stream server serves kubectl exec/attach/port-forward for the kubelet: loopback only.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = ${toml(p.runcRoot)}

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ${toml(opts.cniBinDir)}
    conf_dir = ${toml(p.cniConfDir)}
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ${toml(p.registryHostsDir)}
`;
}

/** Registry hosts that resolve to the local registry instead of the Internet. */
export const REDIRECTED_REGISTRIES = [
  '_default',
  'docker.io',
  'localhost',
  'ghcr.io',
  'quay.io',
  'registry.k8s.io',
  'gcr.io',
  'mcr.microsoft.com',
  'public.ecr.aws',
] as const;

/**
 * hosts.toml for one registry host: `server` replaces the upstream (a mirror under [host]
 * would fall back to it), so pulls are answered by the local registry or fail locally.
 */
export function registryHostsToml(registryHost: string): string {
  return `server = "http://${registryHost}"

[host."http://${registryHost}"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
`;
}

/**
 * One bridge, host-local addresses from the node's Pod range, a route to the Service range
 * through the bridge (kube-proxy's DNAT rules live on the host), and no default route: a Pod
 * can reach the apiserver, Services and other Pods, and nothing off this machine.
 */
export function cniConfig(p: NodePaths): string {
  const n = NODE_NETWORK;
  return `${JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: n.cniNetworkName,
      plugins: [
        {
          type: 'bridge',
          bridge: n.bridge,
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            dataDir: p.cniIpamDir,
            ranges: [[{ subnet: n.podCidr, gateway: n.nodeIp }]],
            routes: [{ dst: n.serviceCidr }],
          },
        },
        { type: 'loopback' },
      ],
    },
    null,
    2,
  )}\n`;
}

export function kubeletConfig(
  p: NodePaths,
  opts: { caFile: string; certFile: string; keyFile: string; port: number; healthzPort: number },
): string {
  return stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: NODE_NETWORK.nodeIp,
    port: opts.port,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: opts.healthzPort,
    tlsCertFile: opts.certFile,
    tlsPrivateKeyFile: opts.keyFile,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: opts.caFile },
    },
    authorization: { mode: 'Webhook' },
    containerRuntimeEndpoint: `unix://${p.containerdSocket}`,
    cgroupDriver: 'cgroupfs',
    cgroupRoot: `/${CGROUP_ROOT}`,
    failCgroupV1: false,
    failSwapOn: false,
    podLogsDir: p.podLogsDir,
    // Pods get no nameserver of the machine's: nothing they resolve may leave it.
    resolvConf: p.resolvConf,
    clusterDomain: 'cluster.local',
    maxPods: 250,
    serializeImagePulls: false,
    // The node's images are built here and cannot be pulled again: never collect them, and
    // never evict for the disk use of a developer machine.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '0%', 'imagefs.available': '0%' },
    mergeDefaultEvictionSettings: false,
    shutdownGracePeriod: '0s',
    registerNode: true,
    // Status and configuration updates are faster than a production node's: tests wait on them.
    nodeStatusUpdateFrequency: '4s',
    syncFrequency: '10s',
    fileCheckFrequency: '10s',
    rotateCertificates: false,
    serverTLSBootstrap: false,
    staticPodPath: '',
    enableDebuggingHandlers: true,
    logging: { format: 'text' },
  });
}

export function kubeProxyConfig(opts: {
  kubeconfig: string;
  healthzPort: number;
  metricsPort: number;
}): string {
  return stringify({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig: opts.kubeconfig },
    hostnameOverride: NODE_NETWORK.nodeName,
    bindAddress: NODE_NETWORK.nodeIp,
    healthzBindAddress: `127.0.0.1:${opts.healthzPort}`,
    metricsBindAddress: `127.0.0.1:${opts.metricsPort}`,
    mode: 'iptables',
    clusterCIDR: NODE_NETWORK.podCidr,
    // NodePorts open only on the bridge, never on the machine's own interfaces.
    nodePortAddresses: [`${NODE_NETWORK.nodeIp}/32`],
    iptables: { masqueradeAll: true, localhostNodePorts: false, syncPeriod: '30s', minSyncPeriod: '0s' },
    // Leave the machine's conntrack settings as they are.
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
    logging: { format: 'text' },
  });
}
