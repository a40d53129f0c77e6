import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { componentLogger, createLogger, reconcileLogger, resolveLogLevel } from './logger.ts';

function capture(): { lines: Record<string, unknown>[]; destination: { write(s: string): void } } {
  const lines: Record<string, unknown>[] = [];
  return { lines, destination: { write: (s: string) => lines.push(JSON.parse(s)) } };
}

describe('createLogger', () => {
  it('writes JSON with the name, a level label and an ISO time; info by default', () => {
    const { lines, destination } = capture();
    const log = createLogger('netmesh', { destination, env: {} });
    log.debug('hidden');
    log.info({ a: 1 }, 'hello');
    assert.equal(lines.length, 1);
    const [line] = lines;
    assert.equal(line?.['name'], 'netmesh');
    assert.equal(line?.['level'], 'info');
    assert.equal(line?.['msg'], 'hello');
    assert.equal(line?.['a'], 1);
    assert.match(String(line?.['time']), /^\d{4}-\d\d-\d\dT/);
  });

  it('takes the level from NETMESH_LOG_LEVEL, an explicit level first', () => {
    const a = capture();
    createLogger('x', { destination: a.destination, env: { NETMESH_LOG_LEVEL: 'DEBUG' } }).debug('shown');
    assert.equal(a.lines.length, 1);
    const b = capture();
    createLogger('x', {
      destination: b.destination,
      env: { NETMESH_LOG_LEVEL: 'debug' },
      level: 'warn',
    }).info('hidden');
    assert.equal(b.lines.length, 0);
  });

  it('falls back to info on an unknown level and says so', () => {
    const { lines, destination } = capture();
    const log = createLogger('x', { destination, env: { NETMESH_LOG_LEVEL: 'verbose' } });
    assert.equal(log.level, 'info');
    assert.equal(lines[0]?.['msg'], 'unknown log level; using info');
    assert.equal(lines[0]?.['NETMESH_LOG_LEVEL'], 'verbose');
  });

  it('child loggers carry the component and the reconcile key', () => {
    const { lines, destination } = capture();
    const log = createLogger('netmesh', { destination, env: {} });
    reconcileLogger(componentLogger(log, 'network-controller'), 'team-a/blue').info('reconciled');
    assert.equal(lines[0]?.['component'], 'network-controller');
    assert.equal(lines[0]?.['key'], 'team-a/blue');
  });
});

describe('error serializer', () => {
  it('logs the cause chain of a failed Kubernetes call, not just "fetch failed"', () => {
    const { lines, destination } = capture();
    const log = createLogger('netmesh', { destination, env: {} });
    const cause = Object.assign(new Error('connect ECONNREFUSED 10.96.0.1:443'), {
      code: 'ECONNREFUSED',
      address: '10.96.0.1',
      port: 443,
    });
    log.error({ err: Object.assign(new TypeError('fetch failed'), { cause }) }, 'list failed');
    const err = lines[0]?.['err'] as Record<string, unknown>;
    assert.equal(err['message'], 'connection refused at 10.96.0.1:443');
    assert.equal(err['reason'], 'ECONNREFUSED');
    assert.equal((err['causes'] as unknown[]).length, 2);
  });
});

describe('resolveLogLevel', () => {
  it('normalises and validates', () => {
    assert.deepEqual(resolveLogLevel(undefined), { level: 'info' });
    assert.deepEqual(resolveLogLevel(' Trace '), { level: 'trace' });
    assert.deepEqual(resolveLogLevel('silent'), { level: 'silent' });
    assert.deepEqual(resolveLogLevel('loud'), { level: 'info', invalid: 'loud' });
  });
});
