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
import { ensureClusterBinaries, KUBERNETES_VERSION } from './build.ts';
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

export async function startLocalCluster(opts: StartOptions = {}): Promise<LocalCluster> {
  const log = opts.log ?? ((s: string) => console.error(s));
  const bins = await ensureClusterBinaries(log);
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'netmesh-cp-'));
  ownDirectory(dir);
  const processes: OwnedProcess[] = [];
  let nodeHost: NodeHost | undefined;
  let runtime: Promise<{ runtime: NodeRuntime; productImage: ProductImage }> | undefined;
  let node: LocalNode | undefined;
  let registry: LocalRegistry | undefined;
  const specs = new Map<ComponentName, { bin: string; args: string[] }>();
  let apiserverReady: () => Promise<boolean> = async () => false;
  let etcdUrl = '';
  const restartComponent = async (name: ComponentName, opts: { downMs?: number } = {}): Promise<void> => {
    const spec = specs.get(name);
    const i = processes.findIndex((p) => p.name === name);
    if (!spec || i < 0) throw new Error(`no component ${name}`);
    const old = processes[i]!;
    old.child.kill('SIGKILL');
    await old.exited;
    if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
    const next = spawnOwned(name, spec.bin, spec.args, { logDir: dir, stateDir: dir });
    processes[i] = next;
    if (name === 'kube-apiserver') await waitFor(name, next, 90_000, apiserverReady);
    else if (name === 'etcd') await waitFor(name, next, 30_000, () => httpOk(`${etcdUrl}/health`));
  };
  const stop = async (): Promise<void> => {
    // The node before the control plane: its teardown removes Pods through containerd.
    await runtime?.catch(() => {});
    if (node) await node.stop();
    else nodeHost?.teardown();
    releaseNodeState();
    // A throwaway control plane needs no graceful shutdown: its etcd data goes with it.
    await Promise.all([...processes, ...(registry ? [registry.process] : [])].map((p) => p.stop(1000)));
    releaseDirectory(dir);
  };

  try {
    // With a node, the apiserver listens on the bridge address (created here), which the
    // kubelet, kube-proxy and Pods reach; without one, on loopback.
    if (opts.node !== false) nodeHost = prepareNodeHost(bins, log);
    const host = nodeHost ? NODE_NETWORK.nodeIp : '127.0.0.1';
    // The node's container runtime needs no apiserver: images, registry and containerd start
    // while the control plane does.
    if (nodeHost) {
      const h = nodeHost;
      runtime = (async () => {
        const [nodeImages, product] = await Promise.all([
          ensureNodeImages(bins),
          buildProductImage({ log: (s) => log(`  ${s}`) }),
        ]);
        const images: LocalImage[] = [...nodeImages, product];
        registry = await startLocalRegistry(images, dir);
        // Imported: what must be there without a pull (the sandbox image; netmesh, which the
        // chart may run with pullPolicy Never). The rest is pulled from the registry on use.
        const pause = nodeImages.find((i) => i.reference === PAUSE_IMAGE)!;
        const rt = await startRuntime(h, {
          imageArchives: [pause.archive, product.archive],
          registryHost: registry.host,
          log,
        });
        return { runtime: rt, productImage: product };
      })();
      // Awaited once the control plane is up; a control-plane failure must not leave it unhandled.
      runtime.catch(() => {});
    }
    const pki = join(dir, 'pki');
    mkdirSync(pki);
    const file = (name: string, content: string): string => {
      const p = join(pki, name);
      writeFileSync(p, content, { mode: 0o600 });
      return p;
    };
    const ca = createCertificateAuthority('netmesh-test-ca');
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
    const client = (commonName: string, organizations: string[] = []) =>
      issueCertificate(ca, { commonName, organizations, usage: 'client' });
    const admin = client('netmesh-admin', ['system:masters']);
    const kubeletClient = client('kube-apiserver-kubelet-client', ['system:masters']);
    const sa = generateRsaKeyPair();
    const caFile = file('ca.crt', ca.certPem);
    const saKey = file('sa.key', sa.privateKeyPem);

    const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const server = `https://${host}:${apiPort}`;
    const kubeconfigOf = (cert: { certPem: string; keyPem: string }, name: string): string =>
      buildKubeconfig({
        server,
        caPem: ca.certPem,
        user: { clientCertPem: cert.certPem, clientKeyPem: cert.keyPem },
        userName: name,
      });
    const kubeconfig = kubeconfigOf(admin, 'netmesh-admin');
    const kubeconfigPath = join(dir, 'admin.kubeconfig');
    writeFileSync(kubeconfigPath, kubeconfig, { mode: 0o600 });
    const spawnOpts = { logDir: dir, stateDir: dir };
    const launch = (name: ComponentName, bin: string, args: string[]): OwnedProcess => {
      specs.set(name, { bin, args });
      const p = spawnOwned(name, bin, args, spawnOpts);
      processes.push(p);
      return p;
    };
    // Every successful or failed write, with the apiserver's own timestamps, beside the admin
    // kubeconfig: tests that must prove what did (not) reach the apiserver read it
    // (e2e/operator-support.ts auditLog). Kubelet and node-lease chatter is left out.
    const auditPolicy = join(dir, 'audit-policy.yaml');
    writeFileSync(auditPolicy, AUDIT_POLICY);
    const tls = { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem };
    apiserverReady = async () => {
      const res = await httpsGet(`${server}/readyz`, tls);
      return res.status === 200 && res.body.trim() === 'ok';
    };
    etcdUrl = `http://127.0.0.1:${etcdPort}`;

    const etcd = launch('etcd', bins.etcd, [
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await waitFor('etcd', etcd, 30_000, () => httpOk(`http://127.0.0.1:${etcdPort}/health`));

    const apiserver = launch('kube-apiserver', bins.kubeApiserver, [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      `--bind-address=${host}`,
      `--advertise-address=${host}`,
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${file('apiserver.crt', serving.certPem)}`,
      `--tls-private-key-file=${file('apiserver.key', serving.keyPem)}`,
      `--client-ca-file=${caFile}`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      `--service-account-key-file=${file('sa.pub', sa.publicKeyPem)}`,
      `--service-account-signing-key-file=${saKey}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-cluster-ip-range=${NODE_NETWORK.serviceCidr}`,
      // Webhooks and aggregated APIs are called on their endpoints' Pod IPs (on the bridge):
      // nothing routes a ClusterIP from the apiserver's host network namespace.
      '--enable-aggregator-routing=true',
      `--kubelet-client-certificate=${file('kubelet-client.crt', kubeletClient.certPem)}`,
      `--kubelet-client-key=${file('kubelet-client.key', kubeletClient.keyPem)}`,
      `--kubelet-certificate-authority=${caFile}`,
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
    await waitFor('kube-apiserver', apiserver, 90_000, apiserverReady);

    const kcmKubeconfig = join(dir, 'kcm.kubeconfig');
    writeFileSync(kcmKubeconfig, kubeconfigOf(client('system:kube-controller-manager'), 'kcm'), {
      mode: 0o600,
    });
    const kcm = launch('kube-controller-manager', bins.kubeControllerManager, [
      `--kubeconfig=${kcmKubeconfig}`,
      '--secure-port=0',
      '--leader-elect=false',
      `--controllers=${CONTROLLERS.join(',')}`,
      `--service-account-private-key-file=${saKey}`,
      `--root-ca-file=${caFile}`,
      // Each controller under its own ServiceAccount and RBAC role, as in a real cluster.
      '--use-service-account-credentials=true',
      '--concurrent-gc-syncs=5',
      '--v=1',
    ]);
    const schedulerKubeconfig = join(dir, 'scheduler.kubeconfig');
    writeFileSync(schedulerKubeconfig, kubeconfigOf(client('system:kube-scheduler'), 'scheduler'), {
      mode: 0o600,
    });
    launch('kube-scheduler', bins.kubeScheduler, [
      `--kubeconfig=${schedulerKubeconfig}`,
      `--authentication-kubeconfig=${schedulerKubeconfig}`,
      `--authorization-kubeconfig=${schedulerKubeconfig}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${await freePort()}`,
      '--leader-elect=false',
      '--v=1',
    ]);
    // The serviceaccount controller creating `default/default` shows kcm is up and acting.
    await waitFor('kube-controller-manager', kcm, 60_000, async () => {
      const res = await httpsGet(`${server}/api/v1/namespaces/default/serviceaccounts/default`, tls);
      return res.status === 200;
    });
    log(
      `control plane ${KUBERNETES_VERSION} ready at ${server} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );

    let productImage: ProductImage | undefined;
    if (nodeHost && runtime) {
      const rt = await runtime;
      productImage = rt.productImage;
      const adminKc = new k8s.KubeConfig();
      adminKc.loadFromString(kubeconfig);
      node = await startNode(nodeHost, rt.runtime, { bins, ca, server, admin: adminKc, freePort, log });
    }
    if (opts.kubeconfigOut) writeFileSync(opts.kubeconfigOut, kubeconfig, { mode: 0o600 });
    log(
      `cluster ready in ${((Date.now() - started) / 1000).toFixed(1)} s${node ? ` (node ${node.name}, image ${productImage?.reference})` : ' (no node)'}`,
    );
    return {
      server,
      kubeconfig,
      kubeconfigPath,
      caPem: ca.certPem,
      dir,
      version: KUBERNETES_VERSION,
      processes: [...processes, ...(node?.processes ?? [])],
      etcdUrl,
      restartComponent,
      metrics: async () => (await httpsGet(`${server}/metrics`, tls)).body,
      ...(node ? { node } : {}),
      ...(productImage ? { productImage } : {}),
      ...(registry ? { registry } : {}),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
