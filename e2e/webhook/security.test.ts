// The admission port's security floor, against the real `netmesh webhook` process at debug
// log level: it refuses plaintext and TLS below 1.2, and neither the serving key nor the CA key
// ever appears in its logs; the CA key lives in its Secret and nowhere else the webhook writes.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import * as k8s from '@kubernetes/client-node';
import { type NetmeshProcess, startNetmesh } from '../../cluster/netmesh-process.ts';
import { createNamespace, deleteNamespace, eventually, useCluster } from '../support.ts';
import { courseConfigMap, ENABLED, freePort, SCOPE_LABEL, testId, waitUntilInjecting } from './helpers.ts';

function handshake(
  port: number,
  opts: { maxVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3' },
): Promise<string> {
  return new Promise((resolve) => {
    const s = tlsConnect(
      { host: '127.0.0.1', port, rejectUnauthorized: false, minVersion: 'TLSv1', ...opts },
      () => {
        const v = s.getProtocol() ?? 'unknown';
        s.end();
        resolve(v);
      },
    );
    s.on('error', (err) => resolve(`refused: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
  });
}

function plaintext(port: number): Promise<string> {
  return new Promise((resolve) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path: '/mutate', method: 'POST', timeout: 5000 },
      (res) => {
        res.resume();
        resolve(`HTTP ${res.statusCode}`);
      },
    );
    req.on('error', (err) => resolve(`refused: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end('{}');
  });
}

describe('webhook security floor', () => {
  const h = useCluster();
  const scope = testId();
  let sysNs: string;
  let appNs: string;
  let port: number;
  let netmesh: NetmeshProcess;
  const configName = `wh-sec-${scope}`;

  before(async () => {
    sysNs = await createNamespace(h, 'wh-sec-sys', { [SCOPE_LABEL]: scope });
    appNs = await createNamespace(h, 'wh-sec', { ...ENABLED, [SCOPE_LABEL]: scope });
    const cm = await courseConfigMap();
    await h.core.createNamespacedConfigMap({
      namespace: sysNs,
      body: { metadata: { name: 'envoy-initializer' }, data: cm.data },
    });
    port = await freePort();
    netmesh = await startNetmesh('webhook', [
      ...[
        '--kubeconfig',
        h.cluster.kubeconfigPath,
        '--netmesh-namespace',
        sysNs,
        '--listen',
        `127.0.0.1:${port}`,
      ],
      ...['--register-url', `https://127.0.0.1:${port}/mutate`, '--webhook-config-name', configName],
      ...['--namespace-selector', `${SCOPE_LABEL}=${scope}`],
    ]);
    await netmesh.waitReady(60_000);
    await waitUntilInjecting(h, appNs);
  });
  after(async () => {
    await netmesh?.stop();
    for (const ns of [appNs, sysNs]) if (ns) await deleteNamespace(h, ns);
  });

  test('TLS 1.3 and 1.2 are served; TLS 1.1 and 1.0 are refused', async () => {
    assert.equal(await handshake(port, {}), 'TLSv1.3');
    assert.equal(await handshake(port, { maxVersion: 'TLSv1.2' }), 'TLSv1.2');
    assert.match(await handshake(port, { maxVersion: 'TLSv1.1' }), /^refused/);
    assert.match(await handshake(port, { maxVersion: 'TLSv1' }), /^refused/);
  });

  test('plaintext HTTP on the admission port gets no answer from the handler', async () => {
    const res = await plaintext(port);
    assert.ok(!/^HTTP 2\d\d/.test(res), `plaintext must not be served: ${res}`);
  });

  test('no key material in the logs, even at debug level; the CA key only in its Secret', async () => {
    const secrets = await h.core.listNamespacedSecret({ namespace: sysNs });
    const tls = secrets.items.find((s) => Object.keys(s.data ?? {}).some((k) => k.includes('key')));
    assert.ok(tls, 'the TLS Secret holds the keys');
    const keys = Object.entries(tls.data ?? {})
      .filter(([k]) => k.endsWith('.key'))
      .map(([, v]) => Buffer.from(v, 'base64').toString('utf8'));
    assert.ok(keys.length >= 2, 'serving key and CA key');
    const logs = netmesh.logs();
    assert.ok(logs.length > 1000, 'the process logged at debug level');
    assert.doesNotMatch(logs, /PRIVATE KEY/);
    for (const key of keys) {
      const body = key.split('\n').filter((l) => l && !l.startsWith('-----'))[1] ?? '';
      assert.ok(body.length > 20);
      assert.ok(!logs.includes(body), 'no line of a private key in the logs');
    }
    // Nothing else the webhook writes carries a private key: its webhook configuration and
    // the ConfigMaps of its namespace.
    const admission = h.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
    const mwc = await eventually('the configuration', () =>
      admission.readMutatingWebhookConfiguration({ name: configName }),
    );
    for (const w of mwc.webhooks ?? []) {
      const bundle = Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString('utf8');
      assert.match(bundle, /BEGIN CERTIFICATE/);
      assert.doesNotMatch(bundle, /PRIVATE KEY/);
    }
    for (const cm of (await h.core.listNamespacedConfigMap({ namespace: sysNs })).items)
      assert.doesNotMatch(JSON.stringify(cm.data ?? {}), /PRIVATE KEY/, `ConfigMap ${cm.metadata?.name}`);
  });
});
