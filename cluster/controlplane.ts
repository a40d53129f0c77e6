// The local Kubernetes cluster: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler built from the official modules (see build.ts), certificates generated here,
// and by default one real worker node (node/start.ts) running the images built on this
// machine. Without the node (NETMESH_NODE=0, or no root) the control plane listens on loopback;
// with it, on the node's bridge address, so Pods reach it through the `kubernetes` Service.
// Control-plane state lives in a temp dir removed on stop, exit or signal.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { buildProductImage, type ProductImage } from '../deploy/image/build.ts';
import { UserFacingError } from '../lib/errors.ts';
import { buildKubeconfig } from '../lib/kubeconfig.ts';
import { createCertificateAuthority, generateRsaKeyPair, issueCertificate } from '../lib/pki.ts';
import { type ClusterBinaries, ensureClusterBinaries, KUBERNETES_VERSION } from './build.ts';
import { ensureNodeImages, type LocalImage, PAUSE_IMAGE } from './images.ts';
import { NODE_NETWORK } from './node/config.ts';
import {
  type LocalNode,
  type NodeHost,
  type NodeRuntime,
  prepareNodeHost,
  startNode,
  startRuntime,
} from './node/start.ts';
import {
  type OwnedProcess,
  ownDirectory,
  releaseDirectory,
  releaseNodeState,
  spawnOwned,
} from './processes.ts';
import { type LocalRegistry, startLocalRegistry } from './registry.ts';

export type ComponentName = 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler';

export interface LocalCluster {
  /** The apiserver's URL as this machine reaches it. */
  server: string;
  /** etcd's client URL (loopback, plain HTTP), e.g. for compaction in fault tests. */
  etcdUrl: string;
  /**
   * Kills a control-plane component outright (SIGKILL) and starts it again with the same flags:
   * same ports, same etcd data, as a crashed component under a supervisor. Resolves once it is
   * back (the apiserver ready, etcd healthy).
   */
  restartComponent(name: ComponentName, opts?: { downMs?: number }): Promise<void>;
  /** The apiserver's /metrics as its admin sees them. */
  metrics(): Promise<string>;
  kubeconfig: string;
  kubeconfigPath: string;
  caPem: string;
  /** Directory holding certificates, etcd data and component logs. */
  dir: string;
  version: string;
  processes: OwnedProcess[];
  /** The worker node, when the cluster has one. */
  node?: LocalNode;
  /** The product image (deploy/Dockerfile) imported into the node, when there is one. */
  productImage?: ProductImage;
  /** The loopback registry serving every image built here, when there is a node. */
  registry?: LocalRegistry;
  stop(): Promise<void>;
}

export interface StartOptions {
  log?: (line: string) => void;
  /** Also write the admin kubeconfig here (e.g. .netmesh/kubeconfig). */
  kubeconfigOut?: string;
  /** Start a worker node (default true; the caller checks nodeUnsupportedReason first). */
  node?: boolean;
}

/**
 * Controllers the tests rely on: owner references cascade, namespaces delete, workloads create
 * Pods; with a node, its lifecycle (the not-ready taint lifts), Service endpoints, PDB status.
 */
const CONTROLLERS = [
  'node-lifecycle-controller',
  'endpoints-controller',
  'endpointslice-controller',
  'disruption-controller',
  'pod-garbage-collector-controller',
  'ttl-after-finished-controller',
  'garbage-collector-controller',
  'namespace-controller',
  'serviceaccount-controller',
  'serviceaccount-token-controller',
  'root-ca-certificate-publisher-controller',
  'deployment-controller',
  'replicaset-controller',
  'statefulset-controller',
  'daemonset-controller',
  'job-controller',
  'cronjob-controller',
];

const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    userGroups: ["system:nodes"]
  - level: None
    namespaces: ["kube-node-lease"]
  - level: Metadata
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
  # Who watches namespaces: tests count a process's watches (one shared informer per process).
  - level: Metadata
    verbs: ["watch"]
    resources: [{ group: "", resources: ["namespaces"] }]
  - level: None
`;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function waitFor(
  what: string,
  proc: OwnedProcess,
  timeoutMs: number,
  probe: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void proc.exited.then(() => {
    exited = true;
  });
  for (;;) {
    if (exited) {
      const log = tail(proc.logFile);
      const clash = /address already in use/i.test(log);
      throw new UserFacingError(
        `${what} exited during startup${clash ? ' because a port was already in use' : ''}`,
        clash
          ? 'another process took the port; run again (ports are picked fresh each time) or stop the other control plane with npm run cluster:down'
          : `its log (${proc.logFile}) ends with:\n${log}`,
      );
    }
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new UserFacingError(
        `${what} did not become ready within ${timeoutMs / 1000} s`,
        `log ${proc.logFile}:\n${tail(proc.logFile)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

function httpOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

export function httpsGet(
  url: string,
  tls: { ca: string; cert?: string; key?: string },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ...tls, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** The cluster's certificates, as files in `dir/pki`, and kubeconfigs built from them. */
function clusterPki(dir: string, server: string) {
  const pki = join(dir, 'pki');
  mkdirSync(pki);
  const file = (name: string, content: string): string => {
    const p = join(pki, name);
    writeFileSync(p, content, { mode: 0o600 });
    return p;
  };
  const ca = createCertificateAuthority('netmesh-test-ca');
  const client = (commonName: string, organizations: string[] = []) =>
    issueCertificate(ca, { commonName, organizations, usage: 'client' });
  const serving = issueCertificate(ca, {
    commonName: 'kube-apiserver',
    usage: 'server',
    ipAddresses: ['127.0.0.1', NODE_NETWORK.nodeIp, NODE_NETWORK.kubernetesServiceIp],
    dnsNames: [
      'localhost',
      'kubernetes',
      'kubernetes.default',
      'kubernetes.default.svc',
      'kubernetes.default.svc.cluster.local',
    ],
  });
  const admin = client('netmesh-admin', ['system:masters']);
  const kubeletClient = client('kube-apiserver-kubelet-client', ['system:masters']);
  const sa = generateRsaKeyPair();
  const kubeconfigOf = (cert: { certPem: string; keyPem: string }, name: string): string =>
    buildKubeconfig({
      server,
      caPem: ca.certPem,
      user: { clientCertPem: cert.certPem, clientKeyPem: cert.keyPem },
      userName: name,
    });
  /** A kubeconfig file for a component identity (CN = user name). */
  const identity = (name: string, file: string): string => {
    const path = join(dir, file);
    writeFileSync(path, kubeconfigOf(client(name), name), { mode: 0o600 });
    return path;
  };
  return {
    ca,
    caFile: file('ca.crt', ca.certPem),
    servingCert: file('apiserver.crt', serving.certPem),
    servingKey: file('apiserver.key', serving.keyPem),
    saPub: file('sa.pub', sa.publicKeyPem),
    saKey: file('sa.key', sa.privateKeyPem),
    kubeletClientCert: file('kubelet-client.crt', kubeletClient.certPem),
    kubeletClientKey: file('kubelet-client.key', kubeletClient.keyPem),
    adminKubeconfig: kubeconfigOf(admin, 'netmesh-admin'),
    adminTls: { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem },
    identity,
  };
}

/**
 * etcd, kube-apiserver, kube-controller-manager and kube-scheduler in one temp dir, each in its
 * own process group; components can be killed and restarted with the same flags.
 */
class ControlPlane {
  readonly dir = mkdtempSync(join(tmpdir(), 'netmesh-cp-'));
  readonly processes: OwnedProcess[] = [];
  readonly #specs = new Map<ComponentName, { bin: string; args: string[] }>();
  readonly #bins: ClusterBinaries;
  readonly #host: string;
  server = '';
  etcdUrl = '';
  pki!: ReturnType<typeof clusterPki>;

  constructor(bins: ClusterBinaries, host: string) {
    this.#bins = bins;
    this.#host = host;
    ownDirectory(this.dir);
  }

  #launch(name: ComponentName, bin: string, args: string[]): OwnedProcess {
    this.#specs.set(name, { bin, args });
    const p = spawnOwned(name, bin, args, { logDir: this.dir, stateDir: this.dir });
    this.processes.push(p);
    return p;
  }

  apiserverReady = async (): Promise<boolean> => {
    const res = await httpsGet(`${this.server}/readyz`, this.pki.adminTls);
    return res.status === 200 && res.body.trim() === 'ok';
  };

  async start(): Promise<void> {
    const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    this.server = `https://${this.#host}:${apiPort}`;
    this.etcdUrl = `http://127.0.0.1:${etcdPort}`;
    this.pki = clusterPki(this.dir, this.server);
    await this.#startEtcd(peerPort);
    await this.#startApiserver(apiPort);
    await this.#startControllers();
  }

  async #startEtcd(peerPort: number): Promise<void> {
    const peer = `http://127.0.0.1:${peerPort}`;
    const etcd = this.#launch('etcd', this.#bins.etcd, [
      `--data-dir=${join(this.dir, 'etcd')}`,
      `--listen-client-urls=${this.etcdUrl}`,
      `--advertise-client-urls=${this.etcdUrl}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=default=${peer}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await waitFor('etcd', etcd, 30_000, () => httpOk(`${this.etcdUrl}/health`));
  }

  async #startApiserver(port: number): Promise<void> {
    const { pki, dir } = this;
    // Every write, with the apiserver's own timestamps, beside the admin kubeconfig: tests that
    // must prove what did (not) reach the apiserver read it (e2e/operator-support.ts auditLog).
    const auditPolicy = join(dir, 'audit-policy.yaml');
    writeFileSync(auditPolicy, AUDIT_POLICY);
    const apiserver = this.#launch('kube-apiserver', this.#bins.kubeApiserver, [
      `--etcd-servers=${this.etcdUrl}`,
      `--bind-address=${this.#host}`,
      `--advertise-address=${this.#host}`,
      `--secure-port=${port}`,
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${pki.servingCert}`,
      `--tls-private-key-file=${pki.servingKey}`,
      `--client-ca-file=${pki.caFile}`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      `--service-account-key-file=${pki.saPub}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-cluster-ip-range=${NODE_NETWORK.serviceCidr}`,
      // Webhooks and aggregated APIs are called on their endpoints' Pod IPs (on the bridge):
      // nothing routes a ClusterIP from the apiserver's host network namespace.
      '--enable-aggregator-routing=true',
      `--kubelet-client-certificate=${pki.kubeletClientCert}`,
      `--kubelet-client-key=${pki.kubeletClientKey}`,
      `--kubelet-certificate-authority=${pki.caFile}`,
      // logs/exec reach the kubelet on its node IP, never through name resolution.
      '--kubelet-preferred-address-types=InternalIP',
      '--allow-privileged=true',
      '--profiling=false',
      `--audit-policy-file=${auditPolicy}`,
      `--audit-log-path=${join(dir, 'audit.log')}`,
      '--audit-log-maxsize=200',
      '--audit-log-maxbackup=1',
      '--v=1',
    ]);
    await waitFor('kube-apiserver', apiserver, 90_000, this.apiserverReady);
  }

  async #startControllers(): Promise<void> {
    const { pki } = this;
    const kcm = this.#launch('kube-controller-manager', this.#bins.kubeControllerManager, [
      `--kubeconfig=${pki.identity('system:kube-controller-manager', 'kcm.kubeconfig')}`,
      '--secure-port=0',
      '--leader-elect=false',
      `--controllers=${CONTROLLERS.join(',')}`,
      `--service-account-private-key-file=${pki.saKey}`,
      `--root-ca-file=${pki.caFile}`,
      // Each controller under its own ServiceAccount and RBAC role, as in a real cluster.
      '--use-service-account-credentials=true',
      '--concurrent-gc-syncs=5',
      '--v=1',
    ]);
    const scheduler = pki.identity('system:kube-scheduler', 'scheduler.kubeconfig');
    this.#launch('kube-scheduler', this.#bins.kubeScheduler, [
      `--kubeconfig=${scheduler}`,
      `--authentication-kubeconfig=${scheduler}`,
      `--authorization-kubeconfig=${scheduler}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${await freePort()}`,
      '--leader-elect=false',
      '--v=1',
    ]);
    // The serviceaccount controller creating `default/default` shows kcm is up and acting.
    await waitFor('kube-controller-manager', kcm, 60_000, async () => {
      const res = await httpsGet(
        `${this.server}/api/v1/namespaces/default/serviceaccounts/default`,
        pki.adminTls,
      );
      return res.status === 200;
    });
  }

  async restart(name: ComponentName, opts: { downMs?: number } = {}): Promise<void> {
    const spec = this.#specs.get(name);
    const i = this.processes.findIndex((p) => p.name === name);
    if (!spec || i < 0) throw new Error(`no component ${name}`);
    const old = this.processes[i]!;
    old.child.kill('SIGKILL');
    await old.exited;
    if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
    const next = spawnOwned(name, spec.bin, spec.args, { logDir: this.dir, stateDir: this.dir });
    this.processes[i] = next;
    if (name === 'kube-apiserver') await waitFor(name, next, 90_000, this.apiserverReady);
    else if (name === 'etcd') await waitFor(name, next, 30_000, () => httpOk(`${this.etcdUrl}/health`));
  }

  /** A throwaway control plane needs no graceful shutdown: its etcd data goes with it. */
  async stop(extra: OwnedProcess[] = []): Promise<void> {
    await Promise.all([...this.processes, ...extra].map((p) => p.stop(1000)));
    releaseDirectory(this.dir);
  }
}

interface NodeRuntimeStarted {
  runtime: NodeRuntime;
  productImage: ProductImage;
  registry: LocalRegistry;
}

/**
 * The node's container runtime needs no apiserver: its images (built or reused), the loopback
 * registry and containerd start while the control plane does.
 */
async function startNodeRuntime(
  host: NodeHost,
  bins: ClusterBinaries,
  dir: string,
  log: (s: string) => void,
): Promise<NodeRuntimeStarted> {
  const [nodeImages, productImage] = await Promise.all([
    ensureNodeImages(bins),
    buildProductImage({ log: (s) => log(`  ${s}`) }),
  ]);
  const images: LocalImage[] = [...nodeImages, productImage];
  const registry = await startLocalRegistry(images, dir);
  // Imported: what must be there without a pull (the sandbox image; netmesh, which the chart
  // may run with pullPolicy Never). The rest is pulled from the registry on use.
  const pause = nodeImages.find((i) => i.reference === PAUSE_IMAGE)!;
  const runtime = await startRuntime(host, {
    imageArchives: [pause.archive, productImage.archive],
    registryHost: registry.host,
    log,
  });
  return { runtime, productImage, registry };
}

export async function startLocalCluster(opts: StartOptions = {}): Promise<LocalCluster> {
  const log = opts.log ?? ((s: string) => console.error(s));
  const bins = await ensureClusterBinaries(log);
  const started = Date.now();
  const seconds = (): string => ((Date.now() - started) / 1000).toFixed(1);
  // With a node, the apiserver listens on the bridge address (created here), which the
  // kubelet, kube-proxy and Pods reach; without one, on loopback.
  const nodeHost = opts.node !== false ? prepareNodeHost(bins, log) : undefined;
  const cp = new ControlPlane(bins, nodeHost ? NODE_NETWORK.nodeIp : '127.0.0.1');
  const runtime = nodeHost ? startNodeRuntime(nodeHost, bins, cp.dir, log) : undefined;
  runtime?.catch(() => {}); // awaited below; a control-plane failure must not leave it unhandled
  let node: LocalNode | undefined;
  let registry: LocalRegistry | undefined;
  const stop = async (): Promise<void> => {
    // The node before the control plane: its teardown removes Pods through containerd.
    registry = (await runtime?.catch(() => undefined))?.registry;
    if (node) await node.stop();
    else nodeHost?.teardown();
    releaseNodeState();
    await cp.stop(registry ? [registry.process] : []);
  };
  try {
    await cp.start();
    log(`control plane ${KUBERNETES_VERSION} ready at ${cp.server} in ${seconds()} s`);
    const rt = runtime ? await runtime : undefined;
    registry = rt?.registry;
    if (nodeHost && rt) {
      const admin = new k8s.KubeConfig();
      admin.loadFromString(cp.pki.adminKubeconfig);
      node = await startNode(nodeHost, rt.runtime, {
        bins,
        ca: cp.pki.ca,
        server: cp.server,
        admin,
        freePort,
        log,
      });
    }
    const kubeconfigPath = join(cp.dir, 'admin.kubeconfig');
    writeFileSync(kubeconfigPath, cp.pki.adminKubeconfig, { mode: 0o600 });
    if (opts.kubeconfigOut) writeFileSync(opts.kubeconfigOut, cp.pki.adminKubeconfig, { mode: 0o600 });
    log(
      `cluster ready in ${seconds()} s${node ? ` (node ${node.name}, image ${rt?.productImage.reference})` : ' (no node)'}`,
    );
    return {
      server: cp.server,
      etcdUrl: cp.etcdUrl,
      restartComponent: (name, o) => cp.restart(name, o),
      metrics: async () => (await httpsGet(`${cp.server}/metrics`, cp.pki.adminTls)).body,
      kubeconfig: cp.pki.adminKubeconfig,
      kubeconfigPath,
      caPem: cp.pki.ca.certPem,
      dir: cp.dir,
      version: KUBERNETES_VERSION,
      processes: [...cp.processes, ...(node?.processes ?? [])],
      ...(node ? { node } : {}),
      ...(rt ? { productImage: rt.productImage, registry: rt.registry } : {}),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
