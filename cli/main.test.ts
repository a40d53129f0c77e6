// The CLI as users meet it: help, and one clear line (no stack trace) for bad input. No cluster.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildKubeconfig } from '../lib/kubeconfig.ts';

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'netmesh.js');
// An empty HOME and no KUBECONFIG: the tests must not find the developer's ~/.kube/config.
const home = mkdtempSync(join(tmpdir(), 'netmesh-cli-home-'));
after(() => rmSync(home, { recursive: true, force: true }));
const netmesh = (...args: string[]) => {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
  for (const k of ['KUBERNETES_SERVICE_HOST', 'NETMESH_KUBECONFIG', 'KUBECONFIG', 'NETMESH_LOG_LEVEL'])
    delete env[k];
  return spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env, timeout: 30_000 });
};

/** A kubeconfig for a loopback port where nothing listens (bound, then closed). */
async function refusedKubeconfig(): Promise<{ path: string; server: string }> {
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const server = `https://127.0.0.1:${port}`;
  const path = join(home, 'refused.kubeconfig');
  writeFileSync(path, buildKubeconfig({ server, caPem: 'CA', user: { token: 't' } }));
  return { path, server };
}

describe('netmesh CLI', () => {
  test('--help lists every command', () => {
    const r = netmesh('--help');
    assert.equal(r.status, 0);
    for (const c of ['run', 'operator', 'webhook', 'inject', 'explain', 'check', 'version', 'completion'])
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

  test('leader-election timings the elector would refuse are refused first, with one line naming the flags', () => {
    const r = netmesh('operator', '--lease-duration', '1s', '--renew-deadline', '5s');
    assert.equal(r.status, 2);
    assert.equal(
      r.stderr.trim(),
      'netmesh: leader election: --lease-duration must be greater than --renew-deadline (got --lease-duration 1s, --renew-deadline 5s, --retry-period 2s)',
    );
    // renew-deadline > retry-period but not > 1.2 x: the elector's RangeError, now a usage error.
    const close = netmesh('operator', '--renew-deadline', '2200ms', '--retry-period', '2s');
    assert.equal(close.status, 2);
    assert.match(
      close.stderr,
      /^netmesh: leader election: --renew-deadline must be greater than 1\.2 \* --retry-period/,
    );
    // Not electing: the timings do not matter.
    const noElect = netmesh(
      'operator',
      '--leader-elect=false',
      '--lease-duration',
      '1s',
      '--renew-deadline',
      '5s',
      '--health-listen',
      '127.0.0.1:0',
    );
    assert.doesNotMatch(noElect.stderr, /leader election:/);
  });

  test('Go durations, with clear errors', () => {
    const r = netmesh('operator', '--lease-duration', '15');
    assert.equal(r.status, 2);
    assert.equal(
      r.stderr.trim(),
      'netmesh: --lease-duration: "15" has no unit: did you mean 15s? (e.g. 15s, 500ms, 2m, 1h30m)',
    );
    const bad = netmesh('webhook', '--cert-validity', '1y');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--cert-validity: "1y" has an unknown unit "y"/);
    // 1h30m is accepted: the failure is the missing cluster, after the flags.
    const ok = netmesh(
      'operator',
      '--lease-duration',
      '1m30s',
      '--renew-deadline',
      '1m',
      '--retry-period',
      '10s',
    );
    assert.equal(ok.status, 1);
    assert.match(ok.stderr, /no kubeconfig found/);
  });

  test('--leader-elect is a boolean flag: bare, =true/=false, or followed by true/false', () => {
    for (const args of [
      ['--leader-elect'],
      ['--leader-elect=true'],
      ['--leader-elect', 'false'],
      ['--no-leader-elect'],
    ]) {
      const r = netmesh('operator', ...args, '--health-listen', '127.0.0.1:0');
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /no kubeconfig found/, args.join(' '));
    }
    const bad = netmesh('operator', '--leader-elect=maybe');
    assert.equal(bad.status, 2);
    assert.equal(bad.stderr.trim(), 'netmesh: --leader-elect must be true or false, got "maybe"');
  });

  test('-n/--namespace on a daemon: one line pointing at --netmesh-namespace (exit 2)', () => {
    for (const cmd of ['run', 'operator', 'webhook']) {
      const r = netmesh(cmd, '-n', 'netmesh-system');
      assert.equal(r.status, 2, cmd);
      assert.equal(
        r.stderr.trim(),
        `netmesh: -n/--namespace is not a flag of netmesh ${cmd} (it looks at no workloads): the namespace netmesh is installed in is --netmesh-namespace (env NETMESH_NAMESPACE)`,
      );
      assert.match(
        netmesh(cmd, '--help').stdout,
        /--netmesh-namespace <value>.*default netmesh-system; env NETMESH_NAMESPACE/,
      );
    }
  });

  test('inject: -o is the format, --output-file the file', () => {
    const dir = mkdtempSync(join(home, 'inject-'));
    const file = join(dir, 'out.json');
    const args = [
      '-f',
      'examples/seed-myapp-pod.yaml',
      '--template',
      'examples/seed-envoy-initializer-configmap.yaml',
    ];
    const r = netmesh('inject', ...args, '-q', '-o', 'json', '--output-file', file);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '');
    const pod = JSON.parse(readFileSync(file, 'utf8'));
    assert.deepEqual(
      pod.spec.containers.map((c: { name: string }) => c.name),
      ['myapp-container', 'envoy'],
    );
    const old = netmesh('inject', ...args, '-o', file);
    assert.equal(old.status, 2);
    assert.match(
      old.stderr,
      /--output must be one of yaml, json, got ".*out\.json": to write the result to a file, use --output-file/,
    );
  });

  test('--log-level on every long-running command, checked', () => {
    for (const cmd of ['run', 'operator', 'webhook'])
      assert.match(netmesh(cmd, '--help').stdout, /--log-level/, cmd);
    const r = netmesh('operator', '--log-level', 'loud');
    assert.equal(r.status, 2);
    assert.match(
      r.stderr,
      /--log-level must be one of trace, debug, info, warn, error, fatal, silent, got "loud"/,
    );
  });

  test('a refused connection says where, and the hint is not about RBAC', async () => {
    const { path, server } = await refusedKubeconfig();
    const r = netmesh('explain', '--kubeconfig', path, '-n', 'shop', 'deploy/web');
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`^netmesh: .*connection refused at ${server}: is the cluster running`));
    assert.doesNotMatch(r.stderr, /fetch failed|RBAC|\n\s+at /);
    const check = netmesh('check', '--kubeconfig', path);
    assert.equal(check.status, 1);
    assert.match(check.stdout, new RegExp(`✖ cluster: connection refused at ${server}`));
    // inject reading the cluster's template: the same cause, not `fetch failed`.
    const pod = join(bin, '..', '..', 'examples', 'seed-myapp-pod.yaml');
    const inject = netmesh('inject', '--kubeconfig', path, '-f', pod);
    assert.equal(inject.status, 1);
    assert.match(
      inject.stderr,
      new RegExp(
        `^netmesh: cannot read ConfigMap netmesh-system/envoy-initializer: connection refused at ${server}: is the cluster running`,
      ),
    );
    assert.doesNotMatch(inject.stderr, /fetch failed|\n\s+at /);
  });

  test('version and completion', () => {
    const v = netmesh('version', '-o', 'json');
    assert.equal(v.status, 0);
    assert.deepEqual(Object.keys(JSON.parse(v.stdout)), ['version', 'commit', 'node', 'kubernetesClient']);
    const bash = netmesh('completion', 'bash');
    assert.equal(bash.status, 0);
    assert.match(bash.stdout, /complete -F _netmesh netmesh/);
    assert.equal(netmesh('completion', 'fish').status, 1);
  });

  test('no kubeconfig outside a cluster: one clear line and exit 1, not a hang or a stack trace', () => {
    for (const cmd of ['operator', 'run']) {
      const r = netmesh(cmd, '--health-listen', '127.0.0.1:0');
      assert.equal(r.status, 1, `${cmd}: ${r.stderr}`);
      assert.match(
        r.stderr,
        /^netmesh: no kubeconfig found and not running inside a cluster: pass --kubeconfig/,
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
