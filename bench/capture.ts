// `npm run bench:capture`: records the AdmissionReviews a real kube-apiserver sends a mutating
// webhook for the benchmark's three workloads (bench/fixtures/workloads.ts) and writes them to
// bench/fixtures/<name>.json. Run it again after changing a workload or the Kubernetes version.
//
// It uses the cluster the tests would (cluster/target.ts: NETMESH_E2E_KUBECONFIG, else a local
// control plane started here, without a node: set NETMESH_NODE=0 on shared machines), registers
// a webhook configuration built by the product's own builder but pointing at a capturing
// server on 127.0.0.1, creates the course's Pod, a Deployment (whose Pod kube-controller-manager
// creates, with its managedFields) and the large Pod in a namespace labelled for injection, and
// keeps the first non-dry-run review of each.
//
// The files are the reviews pretty-printed (so the formatter leaves them alone); the benchmark
// re-encodes them as the apiserver does (fixtures/encoding.ts), and the capture checks that this
// gives back the exact bytes that were sent.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { AdmissionregistrationV1Api, AppsV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { acquireCluster } from '../cluster/target.ts';
import { UserFacingError } from '../lib/errors.ts';
import { createCertificateAuthority, issueCertificate } from '../lib/pki.ts';
import { NAMESPACE_INJECTION_ENABLED, NAMESPACE_INJECTION_LABEL } from '../webhook/core/contract.ts';
import { detectMatchConditionsSupport } from '../webhook/registration.ts';
import { buildMutatingWebhookConfiguration } from '../webhook/webhook-config.ts';
import { encodeLikeApiserver } from './fixtures/encoding.ts';
import {
  BENCH_NAMESPACE,
  coursePodManifest,
  FIXTURE_NAMES,
  type FixtureName,
  largePod,
  typicalDeployment,
} from './fixtures/workloads.ts';

const CONFIG_NAME = 'netmesh-bench-capture';
const log = (s: string): void => console.log(s);

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Captured {
  raw: Buffer;
  review: { request: { dryRun?: boolean; object?: { metadata?: { name?: string; generateName?: string } } } };
}

/** Answers every review with allowed: true and keeps what it was sent. */
function startCapturingServer(tls: { certPem: string; keyPem: string }): Promise<{
  server: Server;
  port: number;
  captured: Captured[];
}> {
  const captured: Captured[] = [];
  const server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const review = JSON.parse(raw.toString('utf8')) as Captured['review'] & { request: { uid: string } };
      captured.push({ raw, review });
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response: { uid: review.request.uid, allowed: true },
        }),
      );
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, port: (server.address() as AddressInfo).port, captured }),
    );
  });
}

function podNameOf(c: Captured): string {
  const m = c.review.request.object?.metadata;
  return m?.name || m?.generateName || '';
}

async function ensureFreshNamespace(core: CoreV1Api): Promise<void> {
  const exists = await core.readNamespace({ name: BENCH_NAMESPACE }).then(
    () => true,
    () => false,
  );
  if (exists) {
    log(`deleting the previous namespace ${BENCH_NAMESPACE}`);
    await core.deleteNamespace({ name: BENCH_NAMESPACE });
    await until(
      `namespace ${BENCH_NAMESPACE} to go`,
      () =>
        core.readNamespace({ name: BENCH_NAMESPACE }).then(
          () => undefined,
          (err: { code?: number }) => (err.code === 404 ? true : undefined),
        ),
      120_000,
    );
  }
  await core.createNamespace({
    body: {
      metadata: {
        name: BENCH_NAMESPACE,
        labels: { [NAMESPACE_INJECTION_LABEL]: NAMESPACE_INJECTION_ENABLED },
      },
    },
  });
  // The ServiceAccount admission plugin refuses Pods until the controller created `default`.
  await until('the default ServiceAccount', () =>
    core.readNamespacedServiceAccount({ name: 'default', namespace: BENCH_NAMESPACE }).then(() => true),
  );
}

async function capture(kc: KubeConfig): Promise<Record<FixtureName, Buffer>> {
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const admission = kc.makeApiClient(AdmissionregistrationV1Api);
  const ca = createCertificateAuthority('netmesh-bench-capture-ca');
  const serving = issueCertificate(ca, {
    commonName: '127.0.0.1',
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
  const { server, port, captured } = await startCapturingServer(serving);
  try {
    await ensureFreshNamespace(core);
    await admission.deleteMutatingWebhookConfiguration({ name: CONFIG_NAME }).catch(() => {});
    await admission.createMutatingWebhookConfiguration({
      body: buildMutatingWebhookConfiguration({
        name: CONFIG_NAME,
        namespace: `${BENCH_NAMESPACE}-system`,
        clientConfig: { url: `https://127.0.0.1:${port}/mutate` },
        caBundle: ca.certPem,
        failurePolicy: 'Fail',
        timeoutSeconds: 10,
        matchConditionsSupported: await detectMatchConditionsSupport(kc),
        extraNamespaceSelector: [
          { key: 'kubernetes.io/metadata.name', operator: 'In', values: [BENCH_NAMESPACE] },
        ],
      }),
    });
    try {
      // The apiserver loads new configurations asynchronously: probe with dry runs until called.
      await until('the apiserver to call the capturing webhook', async () => {
        await core.createNamespacedPod({
          namespace: BENCH_NAMESPACE,
          dryRun: 'All',
          body: {
            metadata: { generateName: 'probe-' },
            spec: { containers: [{ name: 'c', image: 'busybox' }] },
          },
        });
        return captured.some((c) => c.review.request.dryRun === true) ? true : undefined;
      });
      await core.createNamespacedPod({ namespace: BENCH_NAMESPACE, body: coursePodManifest() });
      await apps.createNamespacedDeployment({ namespace: BENCH_NAMESPACE, body: typicalDeployment() });
      await core.createNamespacedPod({ namespace: BENCH_NAMESPACE, body: largePod() });
      const find = (match: (name: string) => boolean) => () =>
        Promise.resolve(captured.find((c) => c.review.request.dryRun !== true && match(podNameOf(c)))?.raw);
      return {
        course: await until(
          'the course Pod',
          find((n) => n === coursePodManifest().metadata!.name),
        ),
        typical: await until(
          'the Deployment Pod',
          find((n) => n.startsWith('checkout-')),
        ),
        large: await until(
          'the large Pod',
          find((n) => n === largePod().metadata!.name),
        ),
      };
    } finally {
      await admission.deleteMutatingWebhookConfiguration({ name: CONFIG_NAME }).catch(() => {});
      await core.deleteNamespace({ name: BENCH_NAMESPACE }).catch(() => {});
    }
  } finally {
    server.close();
    server.closeAllConnections();
  }
}

try {
  const cluster = await acquireCluster({ node: false, log });
  try {
    log(`capturing from ${cluster.description}`);
    const bodies = await capture(cluster.kc);
    for (const name of FIXTURE_NAMES) {
      const raw = bodies[name];
      const review = JSON.parse(raw.toString('utf8'));
      const replayed = Buffer.from(encodeLikeApiserver(review), 'utf8');
      if (!replayed.equals(raw)) {
        throw new Error(
          `${name}: re-encoding the review gives ${replayed.length} bytes, not the ${raw.length} the apiserver sent; update fixtures/encoding.ts`,
        );
      }
      const path = fileURLToPath(new URL(`./fixtures/${name}.json`, import.meta.url));
      writeFileSync(path, `${JSON.stringify(review, null, 2)}\n`);
      // In the project's formatting, so `npm run lint` accepts the files as written.
      execFileSync('biome', ['format', '--write', path], { stdio: 'ignore' });
      log(`${name}: ${raw.length} bytes as sent by the apiserver -> ${path}`);
    }
  } finally {
    await cluster.stop();
  }
} catch (err) {
  console.error(err instanceof UserFacingError ? `error: ${err.oneLine()}` : err);
  process.exitCode = 1;
}
