// Certificate rotation under continuous Pod creation, with failurePolicy Fail so any request
// the apiserver could not make over TLS would show up as a rejected Pod. Two replicas share
// the Secret behind a TCP balancer (TLS passes through), like Pods behind a Service.
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { after, describe, test } from 'node:test';
import { AdmissionregistrationV1Api } from '@kubernetes/client-node';
import { pino } from 'pino';
import { splitPemBundle } from '../../lib/pki.ts';
import { bundleCerts, sameBundle } from '../../webhook/certs.ts';
import { startWebhook, type WebhookHandle } from '../../webhook/start.ts';
import { createNamespace, deleteNamespace, eventually, useCluster } from '../support.ts';
import {
  courseConfigMap,
  ENABLED,
  freePort,
  isInjected,
  probePod,
  SCOPE_LABEL,
  testId,
  waitUntilInjecting,
} from './helpers.ts';

interface Balancer {
  port: number;
  connections: number[];
  close(): Promise<void>;
}

async function startBalancer(backends: number[]): Promise<Balancer> {
  const connections = backends.map(() => 0);
  const sockets = new Set<Socket>();
  let next = 0;
  const server: Server = createServer((client) => {
    const i = next++ % backends.length;
    connections[i]!++;
    const upstream = tcpConnect(backends[i]!, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    connections,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

interface Load {
  stop(): Promise<{ total: number; failures: string[]; notInjected: number }>;
}

/**
 * Failures caused by this test's webhook. The webhook suites scope their configurations to
 * their own namespaces, but the Helm chart's configuration cannot be scoped (the chart has no
 * extra namespaceSelector) and selects every namespace labelled netmesh.io/injection=enabled:
 * e2e/chart.test.ts installs it with failurePolicy Fail, pointing at a Service without endpoints
 * or at a process that is starting or stopping. `npm test` runs one file at a time, so the two
 * never overlap there; two runs sharing one cluster (NETMESH_E2E_KUBECONFIG) do. A failure that
 * names another webhook's URL is therefore reported, not counted; one naming ours, or no URL at
 * all, is counted.
 */
function ours(failures: string[], hostPort: string, log: (s: string) => void): string[] {
  return failures.filter((f) => {
    const url = /Post \\?"https:\/\/([^/]+)\//.exec(f)?.[1];
    if (url === undefined || url === hostPort) return true;
    log(`ignored a failure from another webhook on the shared cluster: ${f.slice(0, 200)}`);
    return false;
  });
}

/** Dry-run Pod creates, `parallel` at a time, until stopped. */
function startLoad(h: ReturnType<typeof useCluster>, namespace: string, parallel = 3): Load {
  let running = true;
  let total = 0;
  let notInjected = 0;
  const failures: string[] = [];
  const worker = async (): Promise<void> => {
    while (running) {
      try {
        const pod = await h.core.createNamespacedPod({ namespace, body: probePod(), dryRun: 'All' });
        total++;
        if (!isInjected(pod)) notInjected++;
      } catch (err) {
        total++;
        const body = (err as { body?: unknown }).body;
        failures.push(typeof body === 'string' ? body.slice(0, 300) : String(err));
      }
    }
  };
  const workers = Array.from({ length: parallel }, () => worker());
  return {
    async stop() {
      running = false;
      await Promise.all(workers);
      return { total, failures, notInjected };
    },
  };
}

async function configBundle(admission: AdmissionregistrationV1Api, name: string): Promise<string[]> {
  const config = await admission.readMutatingWebhookConfiguration({ name });
  const bundles = (config.webhooks ?? []).map((w) =>
    Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString('utf8'),
  );
  for (const b of bundles) assert.ok(sameBundle(b, bundles[0]!), 'every webhook carries the same bundle');
  return bundleCerts(bundles[0] ?? '');
}

describe('certificate rotation', () => {
  const h = useCluster();
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const fn of cleanups.reverse()) await fn().catch(() => {});
  });

  async function setup(name: string) {
    const scope = testId();
    const sysNs = await createNamespace(h, 'wh-rot-sys', { [SCOPE_LABEL]: scope });
    cleanups.push(() => deleteNamespace(h, sysNs));
    const cm = await courseConfigMap();
    await h.core.createNamespacedConfigMap({
      namespace: sysNs,
      body: { metadata: { name: 'envoy-initializer' }, data: cm.data },
    });
    const appNs = await createNamespace(h, 'wh-rot', { ...ENABLED, [SCOPE_LABEL]: scope });
    cleanups.push(() => deleteNamespace(h, appNs));
    const base = {
      kubeconfig: h.kc,
      namespace: sysNs,
      healthListen: false as const,
      webhookConfigName: `wh-e2e-${name}-${scope}`,
      failurePolicy: 'Fail' as const,
      extraNamespaceSelector: [{ key: SCOPE_LABEL, operator: 'In', values: [scope] }],
      logger: pino({ level: process.env['NETMESH_E2E_LOG_LEVEL'] ?? 'warn' }),
      // Short-lived connections: every few requests a new TLS handshake sees the current cert.
      maxRequestsPerSocket: 3,
    };
    return { sysNs, appNs, base };
  }

  test('rotateNow with two replicas behind a balancer loses no request', async (t) => {
    const { appNs, base } = await setup('two');
    const [portA, portB] = [await freePort(), await freePort()];
    const lb = await startBalancer([portA, portB]);
    cleanups.push(() => lb.close());
    const timings = { resyncMs: 500, propagationMs: 1500, overlapMs: 5000 };
    // Both start at once: one creates the Secret, the other gets 409 and reads the winner's.
    const [a, b] = await Promise.all([
      startWebhook({
        ...base,
        listen: `127.0.0.1:${portA}`,
        registerUrl: `https://127.0.0.1:${lb.port}/mutate`,
        certValidityMs: 30 * 60_000,
        certTimings: timings,
      }),
      startWebhook({
        ...base,
        listen: `127.0.0.1:${portB}`,
        certValidityMs: 30 * 60_000,
        certTimings: timings,
      }),
    ]);
    cleanups.push(
      () => a.stop(),
      () => b.stop(),
    );
    assert.equal(a.caBundle(), b.caBundle(), 'replicas share one CA');
    assert.equal(a.servingCertificate().certPem, b.servingCertificate().certPem);
    await waitUntilInjecting(h, appNs);

    const admission = h.kc.makeApiClient(AdmissionregistrationV1Api);
    const oldCa = bundleCerts(a.caBundle()!)[0]!;
    const oldCert = a.servingCertificate().certPem;
    const load = startLoad(h, appNs);
    cleanups.push(async () => void (await load.stop()));
    await new Promise((r) => setTimeout(r, 1000));

    await a.rotateNow();
    assert.notEqual(a.servingCertificate().certPem, oldCert, 'A serves the new certificate');
    const during = await configBundle(admission, base.webhookConfigName);
    assert.equal(during.length, 2, 'old and new CA during the overlap');
    assert.ok(during.includes(oldCa));
    await eventually(
      'B to pick the new certificate up from the Secret',
      async () => b.servingCertificate().certPem === a.servingCertificate().certPem,
    );

    const final = await eventually(
      'the old CA to leave the bundle after the overlap',
      async () => {
        const certs = await configBundle(admission, base.webhookConfigName);
        return certs.length === 1 ? certs : undefined;
      },
      { timeoutMs: 20_000 },
    );
    assert.notEqual(final[0], oldCa);
    // The configuration is patched by whichever replica dropped the old CA first; A's own view
    // follows on its next resync.
    await eventually('A to drop the old CA too', async () => splitPemBundle(a.caBundle()!).length === 1, {
      timeoutMs: 10_000,
    });
    await new Promise((r) => setTimeout(r, 1000));
    const result = await load.stop();

    assert.deepEqual(
      ours(result.failures, `127.0.0.1:${lb.port}`, (m) => t.diagnostic(m)),
      [],
      'no Pod create failed during the rotation',
    );
    assert.equal(result.notInjected, 0);
    assert.ok(
      result.total - result.failures.length > 30,
      `enough traffic to mean something (${result.total} creates, ${result.failures.length} failed)`,
    );
    assert.ok(
      lb.connections.every((n) => n > 0),
      `both replicas served (${lb.connections.join('/')} connections)`,
    );
    const secret = await h.core.readNamespacedSecret({
      namespace: base.namespace,
      name: 'netmesh-webhook-tls',
    });
    assert.deepEqual(Object.keys(secret.data ?? {}).sort(), ['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
  });

  test('a forced early rotation asked of both replicas at once, under load: one rotation, zero failed admissions', async (t) => {
    const { appNs, base } = await setup('forced');
    const [portA, portB] = [await freePort(), await freePort()];
    const lb = await startBalancer([portA, portB]);
    cleanups.push(() => lb.close());
    const timings = { resyncMs: 500, propagationMs: 1500, overlapMs: 3000 };
    // A year of validity: nothing is due, the rotation happens only because it is asked for.
    const [a, b] = await Promise.all([
      startWebhook({
        ...base,
        listen: `127.0.0.1:${portA}`,
        registerUrl: `https://127.0.0.1:${lb.port}/mutate`,
        certTimings: timings,
      }),
      startWebhook({ ...base, listen: `127.0.0.1:${portB}`, certTimings: timings }),
    ]);
    cleanups.push(
      () => a.stop(),
      () => b.stop(),
    );
    await waitUntilInjecting(h, appNs);
    const caOf = async (): Promise<string> => {
      const secret = await h.core.readNamespacedSecret({
        namespace: base.namespace,
        name: 'netmesh-webhook-tls',
      });
      return Buffer.from(secret.data?.['ca.crt'] ?? '', 'base64').toString('utf8');
    };
    // Every CA the Secret ever holds as current, polled throughout.
    const cas = [await caOf()];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const ca = await caOf().catch(() => cas.at(-1)!);
        if (ca !== cas.at(-1)) cas.push(ca);
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const load = startLoad(h, appNs);
    cleanups.push(async () => void (await load.stop()));
    await new Promise((r) => setTimeout(r, 1000));
    const asked = Date.now();
    await Promise.all([a.rotateNow(), b.rotateNow()]);
    const rotatedMs = Date.now() - asked;
    await eventually('both replicas on the new certificate', async () => {
      return a.servingCertificate().certPem === b.servingCertificate().certPem && cas.length >= 2;
    });
    // Past the overlap window and a few resyncs: time for any leftover request to show.
    await new Promise((r) => setTimeout(r, timings.overlapMs + 6 * timings.resyncMs + 2000));
    watching = false;
    await watcher;
    const result = await load.stop();
    t.diagnostic(
      `forced rotation done in ${rotatedMs} ms; ${result.total} Pod creates, ${result.failures.length} failed; ${cas.length - 1} rotation(s)`,
    );
    console.log(
      `# forced early rotation (both replicas asked): ${rotatedMs} ms, ${result.total} dry-run Pod creates during it, ${result.failures.length} failed, ${result.notInjected} without sidecar, ${cas.length - 1} rotation(s)`,
    );
    assert.equal(cas.length, 2, 'one request (made twice) is one rotation, not one per replica');
    assert.deepEqual(
      ours(result.failures, `127.0.0.1:${lb.port}`, (m) => t.diagnostic(m)),
      [],
      'no Pod create failed during the rotation',
    );
    assert.equal(result.notInjected, 0);
    assert.ok(result.total > 30, `enough traffic to mean something (${result.total} creates)`);
    assert.equal(splitPemBundle(a.caBundle()!).length, 1, 'the old CA left the bundle');
  });

  test('a short validity rotates by itself, without losing requests', async (t) => {
    const { appNs, base } = await setup('short');
    const port = await freePort();
    // 40 s validity: rotation is due with a third (~13 s) left, i.e. ~27 s after start.
    const w: WebhookHandle = await startWebhook({
      ...base,
      listen: `127.0.0.1:${port}`,
      registerUrl: `https://127.0.0.1:${port}/mutate`,
      certValidityMs: 40_000,
    });
    cleanups.push(() => w.stop());
    await waitUntilInjecting(h, appNs);
    const first = w.servingCertificate();
    const load = startLoad(h, appNs, 2);
    cleanups.push(async () => void (await load.stop()));
    await eventually(
      'a new serving certificate',
      async () => w.servingCertificate().certPem !== first.certPem,
      {
        timeoutMs: 45_000,
        intervalMs: 500,
      },
    );
    assert.ok(first.notAfter.getTime() > Date.now(), 'rotated before the old certificate expired');
    const expiry = (await w.metrics.certificateExpiry.get()).values[0]?.value;
    assert.equal(expiry, w.servingCertificate().notAfter.getTime() / 1000);
    await new Promise((r) => setTimeout(r, 2000));
    const result = await load.stop();
    assert.deepEqual(
      ours(result.failures, `127.0.0.1:${port}`, (m) => t.diagnostic(m)),
      [],
    );
    assert.equal(result.notInjected, 0);
  });
});
