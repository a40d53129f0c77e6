// A corpus of malformed AdmissionReviews sent straight to the TLS port of a real `netmesh
// webhook` process (no apiserver in between): truncated JSON, a wrong type in every field of
// the request, a missing uid, deep nesting, 50 MiB bodies, wrong content types, HTTP/1.0, a
// slow-drip body, a TLS hello then silence and plaintext HTTP. Each one gets a 4xx with a
// one-line reason or a closed connection; the process stays up, still injects a good review
// afterwards, and its memory stays bounded (VmRSS and the peak VmHWM from /proc, printed for
// the README's reliability section).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createConnection } from 'node:net';
import { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { type NetmeshProcess, startNetmesh } from '../../cluster/netmesh-process.ts';
import { createNamespace, deleteNamespace, eventually, useCluster } from '../support.ts';
import { courseConfigMap, coursePod, ENABLED, freePort, SCOPE_LABEL, testId } from './helpers.ts';

const MiB = 1024 * 1024;
/** `netmesh webhook`'s defaults (webhook/server.ts): what the cut-offs below are measured against. */
const REQUEST_TIMEOUT_MS = 15_000;
const HEADERS_TIMEOUT_MS = 10_000;

interface Reply {
  status: number;
  text: string;
}

/** One request on its own connection; the body is written in one piece or as `chunks`. */
function post(
  port: number,
  body: string | Buffer | Buffer[],
  headers: Record<string, string> = { 'content-type': 'application/json' },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/mutate',
        headers,
        agent: false,
        rejectUnauthorized: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
          // The server answered before reading a large body to its end; stop sending it.
          req.destroy();
        });
      },
    );
    // The server closing the connection before any answer (EPIPE, ECONNRESET) is an outcome
    // of its own: status 0 and the error's code. Anything else is a failure.
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ECONNRESET')
        resolve({ status: 0, text: `closed: ${err.code}` });
      else reject(err);
    });
    if (Array.isArray(body)) {
      const write = (i: number): void => {
        if (i === body.length || req.destroyed) return void req.end();
        if (req.write(body[i]!)) write(i + 1);
        else req.once('drain', () => write(i + 1));
      };
      write(0);
    } else {
      req.end(body);
    }
  });
}

function assert4xx(reply: Reply, status: number, reason: RegExp, what: string): void {
  assert.equal(reply.status, status, `${what}: ${reply.text}`);
  const text = reply.text.replace(/\n$/, '');
  assert.ok(
    text.length > 0 && !text.includes('\n'),
    `${what}: one-line reason, got ${JSON.stringify(reply.text)}`,
  );
  assert.match(text, reason, what);
}

/** What came back on a raw connection and whether (and when) the server closed it. */
interface RawOutcome {
  received: string;
  closedAfterMs: number;
}

function onClose(
  socket: TLSSocket | ReturnType<typeof createConnection>,
  started: number,
): Promise<RawOutcome> {
  return new Promise((resolve) => {
    let received = '';
    socket.on('data', (d: Buffer) => {
      received += d.toString('latin1');
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve({ received, closedAfterMs: Date.now() - started }));
  });
}

function rss(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

const mb = (n: number): string => `${(n / MiB).toFixed(0)} MB`;

describe('malformed admission requests on the TLS port', () => {
  const h = useCluster();
  const scope = testId();
  let sysNs: string;
  let appNs: string;
  let port: number;
  let netmesh: NetmeshProcess;

  const review = (request: Record<string, unknown> = {}): Record<string, unknown> => ({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `u-${Math.random().toString(36).slice(2)}`,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      subResource: '',
      requestSubResource: '',
      name: 'myapp-pod',
      namespace: appNs,
      operation: 'CREATE',
      userInfo: { username: 'alice', uid: 'a-1', groups: ['system:authenticated'], extra: { scope: ['x'] } },
      object: { ...goodPod, metadata: { ...goodPod.metadata, namespace: appNs } },
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
      ...request,
    },
  });
  let goodPod: Awaited<ReturnType<typeof coursePod>>;

  /** A good review still gets its patch: the process is up and serving. */
  async function stillInjects(what: string): Promise<void> {
    assert.equal(netmesh.child.exitCode, null, `netmesh still running after ${what}`);
    const reply = await post(port, JSON.stringify(review()));
    assert.equal(reply.status, 200, `good review after ${what}: ${reply.text}`);
    assert.equal(JSON.parse(reply.text).response.patchType, 'JSONPatch', `injected after ${what}`);
  }

  before(async () => {
    goodPod = await coursePod();
    sysNs = await createNamespace(h, 'wh-bad-sys', { [SCOPE_LABEL]: scope });
    appNs = await createNamespace(h, 'wh-bad', { ...ENABLED, [SCOPE_LABEL]: scope });
    const cm = await courseConfigMap();
    await h.core.createNamespacedConfigMap({
      namespace: sysNs,
      body: { metadata: { name: 'envoy-initializer' }, data: cm.data },
    });
    port = await freePort();
    // No --register-url: nothing routes the apiserver here; this file talks to the port itself.
    // A configuration name of its own, which does not exist: no other test's caBundle is touched.
    netmesh = await startNetmesh(
      'webhook',
      [
        ...[
          '--kubeconfig',
          h.cluster.kubeconfigPath,
          '--netmesh-namespace',
          sysNs,
          '--listen',
          `127.0.0.1:${port}`,
        ],
        ...['--webhook-config-name', `wh-bad-${scope}`],
      ],
      { NETMESH_LOG_LEVEL: 'info' },
    );
    await netmesh.waitReady(60_000);
    await eventually('the template loaded and the namespace seen', async () => {
      const reply = await post(port, JSON.stringify(review()));
      return reply.status === 200 && JSON.parse(reply.text).response.patchType === 'JSONPatch';
    });
  });
  after(async () => {
    await netmesh?.stop();
    for (const ns of [appNs, sysNs]) if (ns) await deleteNamespace(h, ns);
  });

  test('truncated JSON is a 400', async () => {
    const text = JSON.stringify(review());
    for (const cut of [1, 17, Math.floor(text.length / 2), text.length - 1]) {
      assert4xx(await post(port, text.slice(0, cut)), 400, /^body is not valid JSON: /, `cut at ${cut}`);
    }
    assert4xx(await post(port, ''), 400, /^empty body/, 'empty body');
    await stillInjects('truncated JSON');
  });

  test('a wrong type in every field of the request is a 400 naming the field', async () => {
    const values: unknown[] = [7, 'text', ['CREATE'], { a: 1 }, true];
    const expected: Record<string, string> = {
      uid: 'string',
      kind: 'object',
      resource: 'object',
      requestKind: 'object',
      requestResource: 'object',
      subResource: 'string',
      requestSubResource: 'string',
      name: 'string',
      namespace: 'string',
      operation: 'string',
      userInfo: 'object',
      object: 'object',
      oldObject: 'object',
      dryRun: 'boolean',
      options: 'object',
    };
    const typeOf = (v: unknown): string => (Array.isArray(v) ? 'array' : typeof v);
    let cases = 0;
    for (const [field, type] of Object.entries(expected)) {
      for (const value of values.filter((v) => typeOf(v) !== type)) {
        const what = `request.${field} = ${JSON.stringify(value)}`;
        assert4xx(
          await post(port, JSON.stringify(review({ [field]: value }))),
          400,
          new RegExp(`^request\\.${field} must be`),
          what,
        );
        cases++;
      }
    }
    // One level down: the strings inside kind, resource and userInfo.
    const nested: [string, Record<string, unknown>][] = [
      ['kind.kind', { kind: { group: '', version: 'v1', kind: 5 } }],
      ['resource.resource', { resource: { group: '', version: 'v1', resource: ['pods'] } }],
      ['requestKind.group', { requestKind: { group: {}, version: 'v1', kind: 'Pod' } }],
      ['userInfo.username', { userInfo: { username: 1 } }],
      ['userInfo.groups', { userInfo: { username: 'a', groups: [1] } }],
      ['userInfo.extra', { userInfo: { username: 'a', extra: { k: 'v' } } }],
    ];
    for (const [path, request] of nested) {
      assert4xx(
        await post(port, JSON.stringify(review(request))),
        400,
        new RegExp(`^request\\.${path.replace('.', '\\.')} must`),
        path,
      );
      cases++;
    }
    // And the envelope.
    for (const [what, body, reason] of [
      [
        'apiVersion number',
        { ...review(), apiVersion: 1 },
        /^apiVersion must be admission\.k8s\.io\/v1, got 1$/,
      ],
      ['kind array', { ...review(), kind: ['AdmissionReview'] }, /^kind must be AdmissionReview/],
      ['request string', { ...review(), request: 'x' }, /^AdmissionReview has no request$/],
      ['a list', [review()], /^body is not a JSON object$/],
    ] as const) {
      assert4xx(await post(port, JSON.stringify(body)), 400, reason, what);
      cases++;
    }
    console.log(`# ${cases} wrong-type reviews, each a 400 naming the field`);
    await stillInjects('wrong types');
  });

  test('a review without a uid is a 400', async () => {
    const body = review();
    delete (body['request'] as Record<string, unknown>)['uid'];
    assert4xx(await post(port, JSON.stringify(body)), 400, /^AdmissionReview request has no uid$/, 'no uid');
    assert4xx(await post(port, JSON.stringify(review({ uid: '' }))), 400, /no uid/, 'empty uid');
    await stillInjects('missing uid');
  });

  test('100-level nesting: as the body a 400, inside the Pod carried through untouched', async () => {
    const deep = (levels: number): unknown => {
      let v: unknown = 'bottom';
      for (let i = 0; i < levels; i++) v = { n: v };
      return v;
    };
    assert4xx(
      await post(port, `${'['.repeat(100)}${']'.repeat(100)}`),
      400,
      /^body is not a JSON object$/,
      '100 nested arrays',
    );
    // Far deeper than any parser's recursion would take: still one clean 400.
    assert4xx(
      await post(port, `${'['.repeat(200_000)}${']'.repeat(200_000)}`),
      400,
      /^body is not a JSON object$/,
      '200,000 nested arrays',
    );
    assert4xx(
      await post(port, JSON.stringify({ ...review(), request: deep(100) })),
      400,
      /no uid/,
      'nested request',
    );
    // A Pod with a 100-level unknown field: a valid review; the patch touches none of it.
    const pod = {
      ...goodPod,
      metadata: { ...goodPod.metadata, namespace: appNs },
      spec: { ...goodPod.spec },
    };
    (pod as Record<string, unknown>)['nested'] = deep(100);
    const reply = await post(port, JSON.stringify(review({ object: pod })));
    assert.equal(reply.status, 200);
    const patch = JSON.parse(
      Buffer.from(JSON.parse(reply.text).response.patch as string, 'base64').toString('utf8'),
    ) as { path: string }[];
    assert.ok(patch.length > 0 && patch.every((op) => !op.path.startsWith('/nested')));
    await stillInjects('deep nesting');
  });

  test('50 MiB bodies are a 413, declared or streamed, and memory stays bounded', async () => {
    const before = rss(netmesh.child.pid!);
    const huge = Buffer.alloc(50 * MiB, 'a');
    const body = Buffer.concat([
      Buffer.from('{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","x":"'),
      huge,
    ]);
    const started = Date.now();
    // Four at once with a Content-Length (refused from the header), four streamed in 1 MiB
    // chunks without one (refused once 10 MiB arrived, the rest read and dropped).
    const chunks = Array.from({ length: 50 }, (_, i) => body.subarray(i * MiB, (i + 1) * MiB));
    const replies = await Promise.all([
      ...Array.from({ length: 4 }, () =>
        post(port, body, { 'content-type': 'application/json', 'content-length': String(body.length) }),
      ),
      ...Array.from({ length: 4 }, () => post(port, chunks)),
    ]);
    console.log(`# 50 MiB outcomes: ${replies.map((r) => r.status || r.text).join(', ')}`);
    // The answer is a 413; a client still pushing its body may instead see the connection
    // closed under it (EPIPE), which is the other acceptable outcome.
    for (const reply of replies) {
      if (reply.status !== 0) assert4xx(reply, 413, /^body exceeds the limit of 10485760 bytes$/, '50 MiB');
    }
    assert.ok(
      replies.some((r) => r.status === 413),
      'at least one client read its 413',
    );
    await stillInjects('50 MiB bodies');
    const after = rss(netmesh.child.pid!);
    console.log(
      `# 8 concurrent 50 MiB bodies (4 declared, 4 streamed) refused in ${Date.now() - started} ms: rss ${mb(before.rss)} before, ${mb(after.rss)} after, peak ${mb(after.peak)} (peak before ${mb(before.peak)})`,
    );
    // At most 10 MiB of each streamed body is ever held, plus its copy in the parser: the
    // process must not have taken 8 x 50 MiB. Bound: 160 MiB over the RSS before.
    assert.ok(after.peak < before.rss + 160 * MiB, `peak ${mb(after.peak)} vs ${mb(before.rss)} before`);
    assert.ok(after.rss < before.rss + 160 * MiB, `rss ${mb(after.rss)} vs ${mb(before.rss)} before`);
  });

  test('a content type other than application/json is a 415', async () => {
    const body = JSON.stringify(review());
    for (const type of [
      'text/plain',
      'application/yaml',
      'application/x-www-form-urlencoded',
      'multipart/form-data',
    ]) {
      assert4xx(
        await post(port, body, { 'content-type': type }),
        415,
        /^content type ".+" unsupported/,
        type,
      );
    }
    assert4xx(await post(port, body, {}), 415, /^content type "" unsupported/, 'no content type');
    await stillInjects('wrong content types');
  });

  test('HTTP/1.0: answered, then the connection is closed', async () => {
    const started = Date.now();
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    const outcome = onClose(socket, started);
    const body = JSON.stringify(review());
    socket.write(
      `POST /mutate HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    const { received, closedAfterMs } = await outcome;
    assert.match(received, /^HTTP\/1\.1 200 /);
    assert.match(received, /"patchType":"JSONPatch"/);
    assert.ok(closedAfterMs < 5000, `closed by the server after the answer (${closedAfterMs} ms)`);
    // A broken body over HTTP/1.0 is the same 400.
    const bad = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    const badOutcome = onClose(bad, Date.now());
    bad.write('POST /mutate HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{"');
    assert.match(
      (await badOutcome).received,
      /^HTTP\/1\.1 400 [^\n]*\r\n[\s\S]*\r\n\r\nbody is not valid JSON/,
    );
    await stillInjects('HTTP/1.0');
  });

  test('slow drip, TLS hello then silence, and plaintext are cut off', { timeout: 60_000 }, async () => {
    const started = Date.now();
    // 1. Headers, then the body at one byte per 100 ms: the request timeout ends it.
    const drip = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    const dripOutcome = onClose(drip, started);
    const body = JSON.stringify(review());
    drip.write(
      `POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`,
    );
    let sent = 0;
    const timer = setInterval(() => {
      if (drip.destroyed || !drip.writable) return clearInterval(timer);
      drip.write(body[sent++]!);
    }, 100);

    // 2. A real ClientHello, then nothing: the server's handshake timeout ends it.
    const raw = createConnection({ host: '127.0.0.1', port });
    const helloOutcome = onClose(raw, started);
    let helloSent = false;
    const onlyTheHello = new Duplex({
      write(chunk: Buffer, _enc, cb) {
        if (!helloSent) raw.write(chunk);
        helloSent = true;
        cb();
      },
      read() {},
    });
    const client = tlsConnect({ socket: onlyTheHello, rejectUnauthorized: false });
    client.on('error', () => undefined);

    // 3. A TCP connection that says nothing at all.
    const silent = createConnection({ host: '127.0.0.1', port });
    const silentOutcome = onClose(silent, started);

    // 4. Plaintext HTTP on the TLS port.
    const plain = createConnection({ host: '127.0.0.1', port });
    const plainOutcome = onClose(plain, started);
    plain.write(
      `POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );

    const [d, hello, quiet, p] = await Promise.all([dripOutcome, helloOutcome, silentOutcome, plainOutcome]);
    clearInterval(timer);
    client.destroy();
    console.log(
      `# cut off: slow drip after ${d.closedAfterMs} ms (${sent} of ${body.length} body bytes sent), TLS hello then silence after ${hello.closedAfterMs} ms, silent TCP after ${quiet.closedAfterMs} ms, plaintext after ${p.closedAfterMs} ms`,
    );
    assert.ok(sent < body.length, 'the drip never finished its body');
    assert.ok(
      d.closedAfterMs >= REQUEST_TIMEOUT_MS - 1000 && d.closedAfterMs < REQUEST_TIMEOUT_MS + 5000,
      `slow drip cut by the request timeout (${d.closedAfterMs} ms)`,
    );
    // Whatever the server said before closing, it was no answer to the review.
    assert.doesNotMatch(d.received, /^HTTP\/1\.1 2/);
    assert.ok(helloSent, 'the ClientHello went out');
    for (const [what, o] of [
      ['hello then silence', hello],
      ['silent TCP', quiet],
    ] as const) {
      assert.ok(o.closedAfterMs < HEADERS_TIMEOUT_MS + 5000, `${what} cut off (${o.closedAfterMs} ms)`);
      assert.equal(o.received.includes('HTTP/'), false, `${what}: no HTTP answer`);
    }
    assert.ok(p.closedAfterMs < 5000, `plaintext closed at once (${p.closedAfterMs} ms)`);
    assert.doesNotMatch(p.received, /HTTP\/1\.[01] 2/, 'plaintext never served');
    await stillInjects('slow and silent clients');
  });

  test('after the whole corpus the process is up, logged no crash and memory is bounded', async () => {
    await stillInjects('the corpus');
    const m = rss(netmesh.child.pid!);
    console.log(`# after the corpus: rss ${mb(m.rss)}, peak ${mb(m.peak)}`);
    assert.ok(m.rss < 400 * MiB, `rss ${mb(m.rss)}`);
    assert.doesNotMatch(netmesh.logs(), /uncaught|unhandled|FATAL/i);
  });
});
