// A real Kubernetes control plane on loopback: etcd, kube-apiserver and
// kube-controller-manager built from the official modules (see build.ts), certificates
// generated here, everything in a temp dir that is removed on stop, exit or signal.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserFacingError } from '../../lib/errors.ts';
import { buildKubeconfig } from '../../lib/kubeconfig.ts';
import { createCertificateAuthority, generateRsaKeyPair, issueCertificate } from '../../lib/pki.ts';
import { ensureControlPlaneBinaries, KUBERNETES_VERSION } from './build.ts';
import { type OwnedProcess, ownDirectory, releaseDirectory, spawnOwned } from './processes.ts';

export interface LocalControlPlane {
  server: string;
  kubeconfig: string;
  kubeconfigPath: string;
  caPem: string;
  /** Directory holding certificates, etcd data and component logs. */
  dir: string;
  version: string;
  processes: OwnedProcess[];
  stop(): Promise<void>;
}

export interface StartOptions {
  log?: (line: string) => void;
  /** Also write the admin kubeconfig here (e.g. .netmesh/kubeconfig). */
  kubeconfigOut?: string;
}

/** Controllers the tests rely on: owner references cascade, namespaces delete, workloads create Pods. */
const CONTROLLERS = [
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

export async function startLocalControlPlane(opts: StartOptions = {}): Promise<LocalControlPlane> {
  const log = opts.log ?? ((s: string) => console.error(s));
  const bins = await ensureControlPlaneBinaries(log);
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'netmesh-cp-'));
  ownDirectory(dir);
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
    ipAddresses: ['127.0.0.1', '10.0.0.1'],
    dnsNames: [
      'localhost',
      'kubernetes',
      'kubernetes.default',
      'kubernetes.default.svc',
      'kubernetes.default.svc.cluster.local',
    ],
  });
  const admin = issueCertificate(ca, {
    commonName: 'netmesh-admin',
    organizations: ['system:masters'],
    usage: 'client',
  });
  const sa = generateRsaKeyPair();
  const caFile = file('ca.crt', ca.certPem);
  const servingCert = file('apiserver.crt', serving.certPem);
  const servingKey = file('apiserver.key', serving.keyPem);
  const saPub = file('sa.pub', sa.publicKeyPem);
  const saKey = file('sa.key', sa.privateKeyPem);

  const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const server = `https://127.0.0.1:${apiPort}`;
  const kubeconfig = buildKubeconfig({
    server,
    caPem: ca.certPem,
    user: { clientCertPem: admin.certPem, clientKeyPem: admin.keyPem },
  });
  const kubeconfigPath = join(dir, 'admin.kubeconfig');
  writeFileSync(kubeconfigPath, kubeconfig, { mode: 0o600 });
  const spawnOpts = { logDir: dir, stateDir: dir };
  const processes: OwnedProcess[] = [];

  const stop = async (): Promise<void> => {
    for (const p of [...processes].reverse()) await p.stop();
    releaseDirectory(dir);
  };

  try {
    const etcd = spawnOwned(
      'etcd',
      bins.etcd,
      [
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
        `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
        '--unsafe-no-fsync',
        '--log-level=warn',
      ],
      spawnOpts,
    );
    processes.push(etcd);
    await waitFor('etcd', etcd, 30_000, () => httpOk(`http://127.0.0.1:${etcdPort}/health`));

    const apiserver = spawnOwned(
      'kube-apiserver',
      bins.kubeApiserver,
      [
        `--etcd-servers=http://127.0.0.1:${etcdPort}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${apiPort}`,
        `--cert-dir=${join(dir, 'apiserver-certs')}`,
        `--tls-cert-file=${servingCert}`,
        `--tls-private-key-file=${servingKey}`,
        `--client-ca-file=${caFile}`,
        '--authorization-mode=RBAC',
        `--service-account-key-file=${saPub}`,
        `--service-account-signing-key-file=${saKey}`,
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        '--service-cluster-ip-range=10.0.0.0/24',
        '--allow-privileged=true',
        '--profiling=false',
        '--v=1',
      ],
      spawnOpts,
    );
    processes.push(apiserver);
    const tls = { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem };
    await waitFor('kube-apiserver', apiserver, 90_000, async () => {
      const res = await httpsGet(`${server}/readyz`, tls);
      return res.status === 200 && res.body.trim() === 'ok';
    });

    const kcm = spawnOwned(
      'kube-controller-manager',
      bins.kubeControllerManager,
      [
        `--kubeconfig=${kubeconfigPath}`,
        '--secure-port=0',
        '--leader-elect=false',
        `--controllers=${CONTROLLERS.join(',')}`,
        `--service-account-private-key-file=${saKey}`,
        `--root-ca-file=${caFile}`,
        '--use-service-account-credentials=false',
        '--concurrent-gc-syncs=5',
        '--v=1',
      ],
      spawnOpts,
    );
    processes.push(kcm);
    // The serviceaccount controller creating `default/default` shows kcm is up and acting.
    await waitFor('kube-controller-manager', kcm, 60_000, async () => {
      const res = await httpsGet(`${server}/api/v1/namespaces/default/serviceaccounts/default`, tls);
      return res.status === 200;
    });
  } catch (err) {
    await stop();
    throw err;
  }

  if (opts.kubeconfigOut) writeFileSync(opts.kubeconfigOut, kubeconfig, { mode: 0o600 });
  log(
    `control plane ${KUBERNETES_VERSION} ready at ${server} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  return {
    server,
    kubeconfig,
    kubeconfigPath,
    caPem: ca.certPem,
    dir,
    version: KUBERNETES_VERSION,
    processes,
    stop,
  };
}
