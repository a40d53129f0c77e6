// The admission endpoint over real HTTPS on 127.0.0.1:0 with a throwaway CA; no cluster.
import assert from 'node:assert/strict';
import { Agent, request as httpsRequest } from 'node:https';
import { createConnection } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connect } from 'node:tls';
import type { V1Pod } from '@kubernetes/client-node';
import jsonpatch from 'fast-json-patch';
import { pino } from 'pino';
import { coursePod, courseTemplate } from '../examples/course.ts';
import { createCertificateAuthority, issueCertificate } from '../lib/pki.ts';
import { type AdmissionRequest, type AdmitContext, admit } from './admission.ts';
import { STATUS_ANNOTATION } from './core/contract.ts';
import { createWebhookMetrics } from './metrics.ts';
import { type AdmissionServer, isJsonBody, startAdmissionServer } from './server.ts';

const ca = createCertificateAuthority('test-ca');
const serving = issueCertificate(ca, {
  commonName: 'localhost',
  dnsNames: ['localhost'],
  ipAddresses: ['127.0.0.1'],
  usage: 'server',
});
const silent = pino({ level: 'silent' });

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: () => { apiVersion: string; kind: string; response: Record<string, unknown> };
}

function call(
  port: number,
  opts: {
    method?: string;
    path?: string;
    body?: string | Buffer;
    caPem?: string;
    headers?: Record<string, string>;
    agent?: Agent;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'POST',
        path: opts.path ?? '/mutate',
        ca: opts.caPem ?? ca.certPem,
        headers: { 'content-type': 'application/json', ...opts.headers },
        agent: opts.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
        });
      },
    );
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

let uidCounter = 0;
function review(object: unknown, extra: Partial<AdmissionRequest> = {}): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `uid-${++uidCounter}`,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'apps',
      operation: 'CREATE',
      object,
      dryRun: false,
      ...extra,
    },
  });
}

const NAMESPACES: Record<string, Record<string, string>> = {
  apps: { 'netmesh.io/injection': 'enabled' },
  plain: {},
};

describe('admission server', () => {
  let server: AdmissionServer;
  let context: () => Partial<AdmitContext> = () => ({});
  let throwIt: false | 'sync' | 'async' = false;
  const metrics = createWebhookMetrics();
  const { template, hash } = courseTemplate();

  before(async () => {
    server = await startAdmissionServer({
      host: '127.0.0.1',
      port: 0,
      tls: serving,
      logger: silent,
      metrics,
      maxBodyBytes: 64 * 1024,
      // Answers synchronously, as netmesh does from its caches; or fails either way.
      review: (request) => {
        if (throwIt === 'sync') throw new Error('boom');
        if (throwIt === 'async') return Promise.reject(new Error('boom'));
        return admit(request, {
          template: { template, hash },
          namespaceLabels: NAMESPACES[request.namespace ?? ''],
          webhookNamespace: 'netmesh-system',
          ...context(),
        });
      },
    });
  });
  after(async () => {
    await server.close();
  });

  test('a Pod in an enabled namespace gets a JSONPatch that applies cleanly', async () => {
    const pod = coursePod();
    const body = review(pod);
    const reply = await call(server.port, { body });
    assert.equal(reply.status, 200);
    const out = reply.json();
    assert.equal(out.apiVersion, 'admission.k8s.io/v1');
    assert.equal(out.kind, 'AdmissionReview');
    assert.equal(out.response['uid'], JSON.parse(body).request.uid);
    assert.equal(out.response['allowed'], true);
    assert.equal(out.response['patchType'], 'JSONPatch');
    const patch = JSON.parse(Buffer.from(String(out.response['patch']), 'base64').toString('utf8'));
    const patched = jsonpatch.applyPatch(structuredClone(pod), patch, true, false).newDocument as V1Pod;
    assert.deepEqual(
      patched.spec?.containers.map((c) => c.name),
      ['myapp-container', 'envoy'],
    );
    assert.deepEqual(
      patched.spec?.volumes?.map((v) => v.name),
      ['envoy-conf'],
    );
    assert.ok(patched.metadata?.annotations?.[STATUS_ANNOTATION]);
    assert.equal(patched.metadata?.labels?.['app'], 'myapp', 'user labels untouched');
  });

  test('the injected Pod reaching the webhook again (reinvocation) gets no patch and no warning', async () => {
    const pod = coursePod();
    const first = (await call(server.port, { body: review(pod) })).json();
    const patch = JSON.parse(Buffer.from(String(first.response['patch']), 'base64').toString('utf8'));
    const injected = jsonpatch.applyPatch(structuredClone(pod), patch, true, false).newDocument;
    const again = (await call(server.port, { body: review(injected) })).json();
    assert.equal(again.response['allowed'], true);
    assert.equal(again.response['patch'], undefined);
    assert.equal(again.response['warnings'], undefined);
  });

  test('dryRun requests are answered the same way', async () => {
    const out = (await call(server.port, { body: review(coursePod(), { dryRun: true }) })).json();
    assert.equal(out.response['patchType'], 'JSONPatch');
  });

  test('a Pod that did not opt in is admitted without a patch and with a warning', async () => {
    const out = (await call(server.port, { body: review(coursePod(), { namespace: 'plain' }) })).json();
    assert.equal(out.response['allowed'], true);
    assert.equal(out.response['patch'], undefined);
    const warnings = out.response['warnings'] as string[];
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /^netmesh: sidecar not injected \(NamespaceNotEnabled\)/);
    assert.ok(warnings[0]!.length <= 256);
  });

  test('a name conflict is admitted unchanged with a warning', async () => {
    const pod = coursePod();
    pod.spec!.volumes = [{ name: 'envoy-conf', emptyDir: {} }];
    const out = (await call(server.port, { body: review(pod) })).json();
    assert.equal(out.response['patch'], undefined);
    assert.match((out.response['warnings'] as string[])[0]!, /NameConflict/);
  });

  test('a Pod that already has the sidecar without our record is not injected again, with a warning', async () => {
    const pod = coursePod();
    pod.spec!.containers.push({ name: 'envoy', image: 'my/own-envoy' });
    const out = (await call(server.port, { body: review(pod) })).json();
    assert.equal(out.response['patch'], undefined);
    assert.ok((out.response['warnings'] as string[]).some((w) => /AlreadyInjected/.test(w)));
  });

  test('the legacy annotation opts a Pod in where the namespace is not enabled', async () => {
    const pod = coursePod();
    pod.metadata!.annotations = { 'initializer.kubernetes.io/envoy': 'true' };
    const out = (await call(server.port, { body: review(pod, { namespace: 'plain' }) })).json();
    assert.equal(out.response['patchType'], 'JSONPatch');
  });

  test('without a template Pods are admitted unchanged (NoTemplate)', async () => {
    context = () => ({ template: undefined });
    try {
      const out = (await call(server.port, { body: review(coursePod()) })).json();
      assert.equal(out.response['allowed'], true);
      assert.equal(out.response['patch'], undefined);
      assert.match((out.response['warnings'] as string[])[0]!, /NoTemplate/);
    } finally {
      context = () => ({});
    }
  });

  test('odd Pod shapes never fail the request', async () => {
    for (const object of [
      { spec: { containers: 'nope' } },
      { metadata: 'x', spec: {} },
      { metadata: { annotations: [1, 2] }, spec: { containers: [] } },
      null,
      { metadata: { labels: null }, spec: { containers: [null, 7, { name: 5 }], volumes: {} } },
    ]) {
      const reply = await call(server.port, { body: review(object) });
      assert.equal(reply.status, 200, JSON.stringify(object));
      const out = reply.json();
      assert.equal(out.response['allowed'], true);
      assert.equal(out.response['patch'], undefined, JSON.stringify(object));
    }
  });

  for (const how of ['sync', 'async'] as const) {
    test(`an exception in the reviewer (${how}) admits unchanged with a warning`, async () => {
      throwIt = how;
      try {
        const body = review(coursePod());
        const reply = await call(server.port, { body });
        assert.equal(reply.status, 200);
        const out = reply.json();
        assert.equal(out.response['uid'], JSON.parse(body).request.uid);
        assert.equal(out.response['allowed'], true);
        assert.equal(out.response['patch'], undefined);
        assert.match((out.response['warnings'] as string[])[0]!, /internal error.*boom/);
      } finally {
        throwIt = false;
      }
    });
  }

  test('an object that is not a Pod is allowed without a patch', async () => {
    const body = review(
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } },
      { kind: { group: '', version: 'v1', kind: 'ConfigMap' } },
    );
    const out = (await call(server.port, { body })).json();
    assert.equal(out.response['uid'], JSON.parse(body).request.uid);
    assert.equal(out.response['allowed'], true);
    assert.equal(out.response['patch'], undefined);
    assert.equal(out.response['warnings'], undefined);
  });

  test('a Pod subresource or another operation gets no patch', async () => {
    const eph = (
      await call(server.port, { body: review(coursePod(), { subResource: 'ephemeralcontainers' }) })
    ).json();
    assert.equal(eph.response['patch'], undefined);
    const upd = (await call(server.port, { body: review(coursePod(), { operation: 'UPDATE' }) })).json();
    assert.equal(upd.response['patch'], undefined);
  });

  test('bad JSON is a 400 with a one-line reason', async () => {
    const reply = await call(server.port, { body: '{"apiVersion": ' });
    assert.equal(reply.status, 400);
    assert.match(reply.text, /^body is not valid JSON/);
    assert.equal(reply.text.trim().split('\n').length, 1);
  });

  test('JSON that is not an AdmissionReview is a 400', async () => {
    for (const body of [
      '{"kind":"Pod"}',
      '[]',
      '"x"',
      '{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"a"}}',
      '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}',
      '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":""}}',
      '',
    ]) {
      const reply = await call(server.port, { body });
      assert.equal(reply.status, 400, body);
      assert.equal(reply.text.trim().split('\n').length, 1, body);
    }
  });

  test('another method is a 405 with Allow: POST', async () => {
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const reply = await call(server.port, { method });
      assert.equal(reply.status, 405);
      assert.equal(reply.headers['allow'], 'POST');
    }
  });

  test('a body over the limit is a 413', async () => {
    const big = review({ spec: { containers: [] }, filler: 'x'.repeat(70 * 1024) });
    const reply = await call(server.port, { body: big });
    assert.equal(reply.status, 413);
    assert.match(reply.text, /exceeds the limit/);
  });

  test('a body announced over the limit is a 413, and the connection stays usable', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: ca.certPem });
    try {
      const big = review({ spec: { containers: [] }, filler: 'x'.repeat(70 * 1024) });
      const sockets = new Set<unknown>();
      const send = (body: string) =>
        new Promise<number>((resolve, reject) => {
          const req = httpsRequest(
            {
              host: '127.0.0.1',
              port: server.port,
              method: 'POST',
              path: '/mutate',
              agent,
              headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
            },
            (res) => {
              sockets.add(res.socket);
              res.resume();
              res.on('end', () => resolve(res.statusCode ?? 0));
            },
          );
          req.on('error', reject);
          req.end(body);
        });
      assert.equal(await send(big), 413);
      assert.equal(await send(review(coursePod())), 200);
      assert.equal(sockets.size, 1, 'the rejected body was read off and the connection kept');
    } finally {
      agent.destroy();
    }
  });

  test('a compressed body is a 415 (the apiserver never compresses; nothing is inflated)', async () => {
    const reply = await call(server.port, {
      body: review(coursePod()),
      headers: { 'content-encoding': 'gzip' },
    });
    assert.equal(reply.status, 415);
    assert.match(reply.text, /content encoding "gzip" unsupported/);
  });

  test('a content type other than application/json is a 415 naming it', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/yaml']) {
      const reply = await call(server.port, { body: review(coursePod()), headers: { 'content-type': type } });
      assert.equal(reply.status, 415, type);
      assert.equal(reply.text, `content type "${type}" unsupported: send application/json\n`);
    }
    const charset = await call(server.port, {
      body: review(coursePod()),
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    assert.equal(charset.status, 200, 'parameters of application/json are fine');
  });

  test('a request field of the wrong type is a 400 naming the field', async () => {
    const cases: [Partial<AdmissionRequest> | Record<string, unknown>, RegExp][] = [
      [{ uid: 7 }, /^request\.uid must be a string, got a number$/],
      [{ operation: ['CREATE'] }, /^request\.operation must be a string, got an array$/],
      [{ object: 'pod' }, /^request\.object must be an object, got a string$/],
      [{ object: 42 }, /^request\.object must be an object, got a number$/],
      [{ kind: { group: '', version: 1, kind: 'Pod' } }, /^request\.kind\.version must be a string/],
      [{ dryRun: 'false' }, /^request\.dryRun must be a boolean, got a string$/],
      [
        { userInfo: { username: 'u', groups: 'system:masters' } },
        /^request\.userInfo\.groups must be a list/,
      ],
    ];
    for (const [extra, reason] of cases) {
      const reply = await call(server.port, {
        body: review(coursePod(), extra as Partial<AdmissionRequest>),
      });
      assert.equal(reply.status, 400, JSON.stringify(extra));
      assert.match(reply.text.trimEnd(), reason);
    }
    const nulls = await call(server.port, { body: review(coursePod(), { oldObject: null, options: null }) });
    assert.equal(nulls.status, 200, 'null stands for an absent field');
  });

  test("the apiserver's ?timeout= query string is accepted", async () => {
    const reply = await call(server.port, { path: '/mutate?timeout=10s', body: review(coursePod()) });
    assert.equal(reply.status, 200);
    assert.equal(reply.json().response['patchType'], 'JSONPatch');
  });

  test('other spellings of the path (trailing slash, case) go through express to the same handler', async () => {
    for (const path of ['/mutate/', '/MUTATE', '/Mutate/?timeout=10s']) {
      const reply = await call(server.port, { path, body: review(coursePod()) });
      assert.equal(reply.status, 200, path);
      assert.equal(reply.json().response['patchType'], 'JSONPatch', path);
    }
    const wrongType = await call(server.port, {
      path: '/mutate/',
      body: review(coursePod()),
      headers: { 'content-type': 'text/plain' },
    });
    assert.equal(wrongType.status, 415, 'the same checks on the express route');
  });

  test('a POST without a body is a 400 saying so', async () => {
    const reply = await call(server.port, {});
    assert.equal(reply.status, 400);
    assert.match(reply.text, /^empty body: expected an AdmissionReview/);
  });

  test('unknown paths are a 404', async () => {
    const reply = await call(server.port, { path: '/other', method: 'POST', body: '{}' });
    assert.equal(reply.status, 404);
  });

  test('TLS below 1.2 is refused', async () => {
    await assert.rejects(
      new Promise<void>((resolve, reject) => {
        const socket = connect(
          {
            host: '127.0.0.1',
            port: server.port,
            ca: ca.certPem,
            maxVersion: 'TLSv1.1',
            minVersion: 'TLSv1',
          },
          () => {
            socket.end();
            resolve();
          },
        );
        socket.on('error', reject);
      }),
    );
  });

  test('the serving certificate is swapped without a restart', async () => {
    const ca2 = createCertificateAuthority('test-ca-2');
    const serving2 = issueCertificate(ca2, {
      commonName: 'localhost',
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
    });
    server.setCertificate(serving2);
    try {
      await assert.rejects(
        call(server.port, { body: review(coursePod()) }),
        /self-signed|unable to verify|certificate/i,
      );
      const reply = await call(server.port, { body: review(coursePod()), caPem: ca2.certPem });
      assert.equal(reply.status, 200);
    } finally {
      server.setCertificate(serving);
    }
  });

  test('metrics count outcomes, injections and skips', async () => {
    const text = await metrics.registry.metrics();
    assert.match(text, /netmesh_webhook_requests_total\{outcome="injected"\} [1-9]/);
    assert.match(text, /netmesh_webhook_requests_total\{outcome="invalid_request"\} [1-9]/);
    assert.match(text, /netmesh_webhook_requests_total\{outcome="not_pod"\} [1-9]/);
    assert.match(text, /netmesh_webhook_skips_total\{reason="NoTemplate"\} 1/);
    assert.match(text, /netmesh_webhook_injections_total [1-9]/);
    assert.match(text, /netmesh_webhook_injection_duration_seconds_count [1-9]/);
  });
});

test('durations: every request by outcome, and injections alone in the injection histogram', async () => {
  const metrics = createWebhookMetrics();
  const { template, hash } = courseTemplate();
  const server = await startAdmissionServer({
    host: '127.0.0.1',
    port: 0,
    tls: serving,
    logger: silent,
    metrics,
    review: async (request) =>
      admit(request, {
        template: { template, hash },
        namespaceLabels: NAMESPACES[request.namespace ?? ''],
        webhookNamespace: 'netmesh-system',
      }),
  });
  try {
    assert.equal(
      (await call(server.port, { body: review(coursePod()) })).json().response['patchType'],
      'JSONPatch',
    );
    await call(server.port, { body: review(coursePod(), { namespace: 'plain' }) });
    await call(server.port, { body: review(coursePod(), { namespace: 'plain' }) });
    assert.equal((await call(server.port, { body: '{' })).status, 400);
    const text = await metrics.registry.metrics();
    assert.match(text, /^netmesh_webhook_injection_duration_seconds_count 1$/m);
    assert.match(text, /^netmesh_webhook_request_duration_seconds_count\{outcome="injected"\} 1$/m);
    assert.match(text, /^netmesh_webhook_request_duration_seconds_count\{outcome="skipped"\} 2$/m);
    assert.match(text, /^netmesh_webhook_request_duration_seconds_count\{outcome="invalid_request"\} 1$/m);
    const sum = Number(/^netmesh_webhook_injection_duration_seconds_sum (\S+)$/m.exec(text)?.[1]);
    assert.ok(sum > 0 && sum < 5, `a positive, plausible duration (${sum} s)`);
  } finally {
    await server.close();
  }
});

test('a client that never finishes its headers is cut off', async () => {
  const server = await startAdmissionServer({
    host: '127.0.0.1',
    port: 0,
    tls: serving,
    logger: silent,
    metrics: createWebhookMetrics(),
    headersTimeoutMs: 300,
    requestTimeoutMs: 500,
    review: async () => {
      throw new Error('not reached');
    },
  });
  try {
    const started = Date.now();
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: server.port, ca: ca.certPem }, () => {
        socket.write('POST /mutate HTTP/1.1\r\nHost: x\r\n');
      });
      let data = '';
      socket.on('data', (d: Buffer) => {
        data += d.toString();
      });
      socket.on('close', () => resolve(data));
      socket.on('error', reject);
    });
    assert.match(reply, /^HTTP\/1\.1 408/);
    assert.ok(Date.now() - started < 3000, 'closed within the timeout and one sweep');
  } finally {
    await server.close();
  }
});

test('a TLS client that sends its hello (or nothing) and goes quiet is cut off', async () => {
  const server = await startAdmissionServer({
    host: '127.0.0.1',
    port: 0,
    tls: serving,
    logger: silent,
    metrics: createWebhookMetrics(),
    headersTimeoutMs: 300,
    requestTimeoutMs: 500,
    review: async () => {
      throw new Error('not reached');
    },
  });
  try {
    const started = Date.now();
    // A raw TCP socket: the handshake never completes, so the HTTP timeouts do not apply yet.
    const closed = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port: server.port }, () => {
        socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00]));
      });
      socket.on('close', () => resolve(true));
      socket.on('error', () => undefined);
      socket.resume();
    });
    assert.ok(closed);
    assert.ok(Date.now() - started < 3000, `closed after ${Date.now() - started} ms, not tls's 120 s`);
  } finally {
    await server.close();
  }
});

test("isJsonBody answers as express's req.is('application/json')", async () => {
  const { request } = (await import('express')).default;
  const is = (headers: Record<string, string>) => request.is.call({ headers } as never, 'application/json');
  const cases: Record<string, string>[] = [
    {},
    { 'content-length': '0' },
    { 'content-length': '12' },
    { 'transfer-encoding': 'chunked' },
    { 'content-length': '12', 'content-type': 'application/json' },
    { 'content-length': '12', 'content-type': 'Application/JSON; charset=utf-8' },
    { 'content-length': '12', 'content-type': ' application/json ;charset=utf-8' },
    { 'content-length': '12', 'content-type': 'application/json-patch+json' },
    { 'content-length': '12', 'content-type': 'application/jsonx' },
    { 'content-length': '12', 'content-type': 'text/plain' },
    { 'transfer-encoding': 'chunked', 'content-type': 'application/json' },
    { 'content-length': 'x', 'content-type': 'application/json' },
    { 'content-length': '12abc', 'content-type': 'text/plain' },
    { 'content-length': '', 'content-type': 'text/plain' },
  ];
  for (const headers of cases) {
    const expected = is(headers);
    assert.equal(isJsonBody(headers), expected === null ? null : expected !== false, JSON.stringify(headers));
  }
});
