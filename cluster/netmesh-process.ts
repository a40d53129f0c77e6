// Runs the real `netmesh` CLI as a child process for end-to-end tests (the same binary users
// run), with its JSON logs in a temp file and its health port on loopback.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './controlplane.ts';

const bin = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'netmesh.js');

export interface NetmeshProcess {
  child: ChildProcess;
  healthPort: number;
  logFile: string;
  exited: Promise<number | null>;
  logs(): string;
  /** Resolves when /readyz answers 200. */
  waitReady(timeoutMs?: number): Promise<void>;
  /** SIGTERM and wait for exit (graceful shutdown). */
  stop(): Promise<number | null>;
  kill9(): Promise<void>;
}

/**
 * Runs `netmesh <command>` on this host. `netmeshBin` is the CLI to run: the repository's
 * (TypeScript sources) by default, or the image's bundle (the benchmarks), run with
 * `nodeArgs` before it (the image's ENTRYPOINT options, for the benchmarks).
 */
export async function startNetmesh(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  netmeshBin = bin,
  nodeArgs: string[] = [],
): Promise<NetmeshProcess> {
  const healthPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'netmesh-proc-'));
  const logFile = join(dir, `${command}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(
    process.execPath,
    [...nodeArgs, netmeshBin, command, '--health-listen', `127.0.0.1:${healthPort}`, ...args],
    {
      stdio: ['ignore', fd, fd],
      // No rollout to protect in tests: stop at once.
      env: { ...process.env, NETMESH_LOG_LEVEL: 'debug', NETMESH_SHUTDOWN_DELAY: '0', ...env },
    },
  );
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  // Never leave a stray operator behind a failed test.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  void exited.then(() => {
    process.off('exit', killOnExit);
  });
  const logs = (): string => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  return {
    child,
    healthPort,
    logFile,
    exited,
    logs,
    async waitReady(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (child.exitCode !== null)
          throw new Error(`${command} exited with ${child.exitCode}:\n${logs().slice(-3000)}`);
        const ok = await fetch(`http://127.0.0.1:${healthPort}/readyz`).then(
          (r) => r.status === 200,
          () => false,
        );
        if (ok) return;
        if (Date.now() > deadline)
          throw new Error(`timed out after ${timeoutMs} ms waiting for ${command} /readyz (log ${logFile})`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const code = await exited;
      if (code === 0) rmSync(dir, { recursive: true, force: true });
      return code;
    },
    async kill9() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
