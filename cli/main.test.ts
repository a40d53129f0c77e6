// The CLI as users meet it: help, and one clear line (no stack trace) for bad input. No cluster.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'netmesh.js');
const netmesh = (...args: string[]) => {
  const env = { ...process.env };
  delete env['KUBERNETES_SERVICE_HOST'];
  delete env['NETMESH_KUBECONFIG'];
  return spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env, timeout: 30_000 });
};

describe('netmesh CLI', () => {
  test('--help lists every command', () => {
    const r = netmesh('--help');
    assert.equal(r.status, 0);
    for (const c of ['run', 'operator', 'webhook', 'inject', 'explain'])
      assert.match(r.stdout, new RegExp(`^  ${c} `, 'm'));
  });

  test('each command documents its flags and their environment variables', () => {
    const r = netmesh('operator', '--help');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /--lease-duration <value>.*default 15s; env NETMESH_LEASE_DURATION/);
    assert.match(netmesh('run', '--help').stdout, /--shutdown-delay/);
  });

  test('an unknown command or flag is a usage error (exit 2)', () => {
    const a = netmesh('frobnicate');
    assert.equal(a.status, 2);
    assert.match(a.stderr, /unknown command "frobnicate"/);
    const b = netmesh('operator', '--no-such-flag');
    assert.equal(b.status, 2);
    assert.match(b.stderr, /Unknown option '--no-such-flag'/);
  });

  test('inconsistent leader-election timings are refused with one line', () => {
    const r = netmesh(
      'operator',
      '--kubeconfig',
      '/dev/null',
      '--lease-duration',
      '1s',
      '--renew-deadline',
      '5s',
    );
    assert.equal(r.status, 2);
    assert.equal(
      r.stderr.trim(),
      'netmesh: leader election needs --lease-duration > --renew-deadline > --retry-period',
    );
  });

  test('no kubeconfig outside a cluster: one clear line and exit 1, not a hang or a stack trace', () => {
    for (const cmd of ['operator', 'run']) {
      const r = netmesh(cmd, '--health-listen', '127.0.0.1:0');
      assert.equal(r.status, 1, `${cmd}: ${r.stderr}`);
      assert.match(
        r.stderr,
        /^netmesh: no --kubeconfig given and not running inside a cluster: pass --kubeconfig/,
      );
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
  });

  test('a kubeconfig that does not exist names the path', () => {
    const r = netmesh(
      'operator',
      '--kubeconfig',
      '/nonexistent/kubeconfig',
      '--health-listen',
      '127.0.0.1:0',
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot load kubeconfig \/nonexistent\/kubeconfig/);
  });
});
