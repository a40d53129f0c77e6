import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  coalescedDestination,
  componentLogger,
  createLogger,
  isoTimeCachedPerMs,
  reconcileLogger,
  resolveLogLevel,
} from './logger.ts';

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

describe('isoTimeCachedPerMs', () => {
  it("gives pino's isoTime text, formatting each millisecond once", () => {
    let now = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
    const time = isoTimeCachedPerMs(() => now);
    const first = time();
    assert.equal(first, ',"time":"2026-01-02T03:04:05.678Z"');
    assert.equal(time(), first);
    now += 1;
    assert.equal(time(), ',"time":"2026-01-02T03:04:05.679Z"');
  });
});

describe('coalescedDestination', () => {
  it('writes the lines of one event-loop turn together, in order, at the end of the turn', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'netmesh-log-'));
    const file = join(dir, 'out.log');
    const fd = openSync(file, 'w');
    try {
      const dest = coalescedDestination(fd);
      dest.write('{"n":1}\n');
      dest.write('{"n":2}\n');
      assert.equal(readFileSync(file, 'utf8'), '', 'nothing written during the turn');
      await new Promise((r) => setImmediate(r));
      assert.equal(readFileSync(file, 'utf8'), '{"n":1}\n{"n":2}\n');
      dest.write('{"n":3}\n');
      dest.flush();
      assert.equal(readFileSync(file, 'utf8'), '{"n":1}\n{"n":2}\n{"n":3}\n', 'flush writes at once');
      await new Promise((r) => setImmediate(r));
      assert.equal(readFileSync(file, 'utf8').split('\n').length, 4, 'and only once');
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes what is pending when the process exits', () => {
    const script = [
      `import { coalescedDestination } from ${JSON.stringify(new URL('./logger.ts', import.meta.url).href)};`,
      'const dest = coalescedDestination(1);',
      "dest.write('before exit\\n');",
      'process.exit(0);',
    ].join('\n');
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(out, 'before exit\n');
  });

  it('stops writing, without throwing, once the reader is gone (EPIPE)', () => {
    const script = [
      `import { coalescedDestination } from ${JSON.stringify(new URL('./logger.ts', import.meta.url).href)};`,
      'const dest = coalescedDestination(1);',
      "for (let i = 0; i < 1000; i++) dest.write('x'.repeat(1000) + '\\n');",
      'dest.flush();',
      "process.stderr.write('survived\\n');",
    ].join('\n');
    // `head -c 1` reads one byte and closes the pipe, so the writer gets EPIPE; its stderr
    // (kept apart in a file) says whether it got through.
    const dir = mkdtempSync(join(tmpdir(), 'netmesh-log-'));
    const err = join(dir, 'stderr');
    let out: string;
    try {
      execFileSync(
        'sh',
        ['-c', `"${process.execPath}" --input-type=module -e "$SCRIPT" 2>"${err}" | head -c 1 >/dev/null`],
        {
          env: { ...process.env, SCRIPT: script },
        },
      );
      out = readFileSync(err, 'utf8');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.match(out, /survived/);
  });
});
