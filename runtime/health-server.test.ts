import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { Counter, Registry } from 'prom-client';
import {
  type HealthCheck,
  type HealthServer,
  renderProbe,
  runChecks,
  startHealthServer,
} from './health-server.ts';

describe('health server (127.0.0.1:0)', () => {
  let server: HealthServer;
  let base: string;
  const registry = new Registry();
  const counter = new Counter({ name: 'netmesh_test_things_total', help: 'Things.', registers: [registry] });

  before(async () => {
    server = await startHealthServer({
      host: '127.0.0.1',
      port: 0,
      registry,
      log: pino({ level: 'silent' }),
    });
    base = `http://127.0.0.1:${server.port}`;
  });
  after(async () => {
    await server.close();
  });

  const get = async (path: string, init?: RequestInit) => {
    const res = await fetch(`${base}${path}`, init);
    return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
  };

  it('listens on the port it reports', () => {
    assert.ok(server.port > 0);
  });

  it('/healthz and /readyz answer ok with no checks', async () => {
    assert.deepEqual(await get('/healthz'), { status: 200, type: 'text/plain; charset=utf-8', body: 'ok\n' });
    assert.deepEqual(await get('/readyz'), { status: 200, type: 'text/plain; charset=utf-8', body: 'ok\n' });
  });

  it('/readyz fails while any readiness check fails, listing the failing ones', async () => {
    let informerSynced = false;
    const removeA = server.addReadinessCheck('informers', () => informerSynced || 'networks not synced');
    const removeB = server.addReadinessCheck('leader', () => true);
    const removeC = server.addReadinessCheck('broken', () => {
      throw new Error('boom');
    });
    const r = await get('/readyz');
    assert.equal(r.status, 503);
    assert.equal(
      r.body,
      '[-]informers failed: networks not synced\n[-]broken failed: check threw: boom\nreadyz check failed\n',
    );
    removeC();
    const verbose = await get('/readyz?verbose');
    assert.equal(
      verbose.body,
      '[-]informers failed: networks not synced\n[+]leader ok\nreadyz check failed\n',
    );
    informerSynced = true;
    assert.equal((await get('/readyz')).status, 200);
    assert.equal((await get('/readyz?verbose')).body, '[+]informers ok\n[+]leader ok\nreadyz check passed\n');
    assert.equal((await get('/healthz')).status, 200, 'readiness does not affect liveness');
    removeA();
    removeB();
  });

  it('a false check fails without a reason', async () => {
    const remove = server.addReadinessCheck('flag', () => false);
    assert.equal((await get('/readyz')).body, '[-]flag failed: failed\nreadyz check failed\n');
    remove();
  });

  it('rejects duplicate check names', () => {
    const remove = server.addReadinessCheck('dup', () => true);
    assert.throws(() => server.addReadinessCheck('dup', () => true), /already registered/);
    remove();
  });

  it('/healthz fails on a failing liveness check', async () => {
    const remove = server.addLivenessCheck('loop', () => 'event loop stalled');
    const r = await get('/healthz');
    assert.equal(r.status, 503);
    assert.equal(r.body, '[-]loop failed: event loop stalled\nhealthz check failed\n');
    remove();
    assert.equal((await get('/healthz')).status, 200);
    assert.equal((await get('/livez')).status, 200);
  });

  it('/metrics serves the registry in its content type', async () => {
    counter.inc(3);
    const r = await get('/metrics');
    assert.equal(r.status, 200);
    assert.equal(r.type, registry.contentType);
    assert.match(r.body, /# TYPE netmesh_test_things_total counter\nnetmesh_test_things_total 3\n/);
  });

  it('/metrics carries the process, Node.js and build-info metrics of every netmesh process', async () => {
    const { body } = await get('/metrics');
    for (const name of [
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
      'nodejs_eventloop_lag_p99_seconds',
    ])
      assert.match(body, new RegExp(`^${name}(\\{[^}]*\\})? [0-9.e+-]+$`, 'm'), name);
    assert.match(body, /^netmesh_build_info\{version="[^"]+",commit="[^"]+",node="[^"]+"\} 1$/m);
  });

  it('HEAD works, other methods and paths do not', async () => {
    const head = await get('/readyz', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal((await get('/readyz', { method: 'POST' })).status, 405);
    assert.equal((await get('/nope')).status, 404);
    assert.equal((await get('/healthz/')).status, 200);
  });

  // Last: it cannot be undone.
  it('setFatal makes /healthz fail for good', async () => {
    server.setFatal(new Error('cache corrupted'));
    server.setFatal('second reason is ignored');
    const r = await get('/healthz');
    assert.equal(r.status, 503);
    assert.equal(r.body, '[-]fatal failed: cache corrupted\nhealthz check failed\n');
    assert.equal((await get('/readyz')).status, 200);
  });
});

describe('health server lifecycle', () => {
  it('close() ends keep-alive connections and frees the port', async () => {
    const server = await startHealthServer({
      host: '127.0.0.1',
      port: 0,
      registry: new Registry(),
      log: pino({ level: 'silent' }),
    });
    const res = await fetch(`http://127.0.0.1:${server.port}/healthz`, {
      headers: { connection: 'keep-alive' },
    });
    await res.text();
    await server.close();
    await server.close();
    await assert.rejects(fetch(`http://127.0.0.1:${server.port}/healthz`));
  });

  it('rejects when the port is taken', async () => {
    const log = pino({ level: 'silent' });
    const a = await startHealthServer({ host: '127.0.0.1', port: 0, registry: new Registry(), log });
    await assert.rejects(
      startHealthServer({ host: '127.0.0.1', port: a.port, registry: new Registry(), log }),
      /EADDRINUSE/,
    );
    await a.close();
  });
});

describe('renderProbe / runChecks', () => {
  it('formats like the apiserver and keeps reasons on one line', () => {
    const results = runChecks(
      new Map<string, HealthCheck>([
        ['a', () => true],
        ['b', () => 'line one\nline two'],
        ['c', () => ''],
      ]),
    );
    assert.deepEqual(renderProbe('readyz', results, false), {
      status: 503,
      body: '[-]b failed: line one line two\n[-]c failed: failed\nreadyz check failed\n',
    });
    assert.deepEqual(renderProbe('healthz', [], false), { status: 200, body: 'ok\n' });
    assert.deepEqual(renderProbe('healthz', [], true), { status: 200, body: 'healthz check passed\n' });
  });
});

describe('health checks with details', () => {
  it('a passing check with a detail shows it under ?verbose only; a failing one gives the detail as reason', () => {
    const checks = new Map<string, HealthCheck>([
      ['webhook', () => ({ ok: true, detail: 'template: STALE (last good kept)' })],
      ['operator', () => true],
    ]);
    const results = runChecks(checks);
    assert.deepEqual(renderProbe('readyz', results, false), { status: 200, body: 'ok\n' });
    assert.match(renderProbe('readyz', results, true).body, /\[\+\]webhook ok: template: STALE/);
    const failing = runChecks(
      new Map<string, HealthCheck>([['webhook', () => ({ ok: false, detail: 'no certificate' })]]),
    );
    assert.deepEqual(renderProbe('readyz', failing, false), {
      status: 503,
      body: '[-]webhook failed: no certificate\nreadyz check failed\n',
    });
  });
});
