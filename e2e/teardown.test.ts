// Interrupting the process that owns a local control plane leaves nothing behind: SIGTERM runs
// the owner's handlers, SIGKILL leaves the work to the detached reaper.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cachedBinaries } from '../cluster/build.ts';
import { isAlive as alive } from '../cluster/processes.ts';
import { eventually } from './support.ts';

const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'hold-control-plane.ts');

async function startHolder(): Promise<{ pid: number; pids: number[]; dir: string; exited: Promise<void> }> {
  const env = { ...process.env };
  delete env['NETMESH_SHARED_KUBECONFIG'];
  const child = spawn(process.execPath, [fixture], { stdio: ['ignore', 'pipe', 'inherit'], env });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  const line = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c: string) => {
      buf += c;
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(buf.slice(0, nl));
    });
    child.on('exit', (code) => reject(new Error(`holder exited early (${code})`)));
  });
  const info = JSON.parse(line) as { pids: number[]; dir: string };
  return { pid: child.pid!, ...info, exited };
}

const skip = cachedBinaries()
  ? false
  : 'the local cluster is not built on this machine (run npm run cluster:build)';

describe('control plane teardown', { skip }, () => {
  test('SIGTERM to the owning process leaves no control-plane process or temp dir', async () => {
    const holder = await startHolder();
    assert.equal(holder.pids.length, 4, 'etcd, kube-apiserver, kube-controller-manager, kube-scheduler');
    for (const pid of holder.pids) assert.ok(alive(pid), `component ${pid} runs before the signal`);
    assert.ok(existsSync(holder.dir));
    process.kill(holder.pid, 'SIGTERM');
    await holder.exited;
    await eventually('every component to exit', async () => holder.pids.every((p) => !alive(p)), {
      timeoutMs: 10_000,
    });
    assert.equal(existsSync(holder.dir), false, 'temp dir removed');
  });

  test('SIGKILL to the owning process: the reaper still cleans up', async () => {
    const holder = await startHolder();
    process.kill(holder.pid, 'SIGKILL');
    await holder.exited;
    await eventually('the reaper to kill every component', async () => holder.pids.every((p) => !alive(p)), {
      timeoutMs: 15_000,
    });
    await eventually('the reaper to remove the temp dir', async () => !existsSync(holder.dir), {
      timeoutMs: 5000,
    });
  });
});
