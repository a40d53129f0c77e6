// Child processes of the control plane are owned here: each runs in its own process group,
// every group is killed when this process exits or is signalled, and a detached reaper kills
// them too if this process dies without running any handler (SIGKILL, OOM).
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNodeState, teardownNodeSync } from './node/teardown.ts';

const here = dirname(fileURLToPath(import.meta.url));

interface Owned {
  pgid: number;
  name: string;
}

const owned = new Set<Owned>();
const ownedDirs = new Set<string>();
let handlersInstalled = false;
let reaperState: string | undefined;
let nodeStateFile: string | undefined;

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

/** Synchronous last-resort cleanup: safe to call from 'exit' and signal handlers. */
export function killAllOwnedSync(): void {
  // The node first: its teardown needs containerd alive to remove Pod sandboxes cleanly.
  const node = nodeStateFile ? readNodeState(nodeStateFile) : undefined;
  if (node) teardownNodeSync(node);
  nodeStateFile = undefined;
  for (const o of owned) killGroup(o.pgid, 'SIGKILL');
  owned.clear();
  for (const d of ownedDirs) rmSync(d, { recursive: true, force: true });
  ownedDirs.clear();
  writeReaperState();
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAllOwnedSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      killAllOwnedSync();
      // When nobody else handles the signal, exit with its conventional status; otherwise the
      // other handler (a CLI shutting down gracefully) decides when to exit.
      if (process.listenerCount(sig) === 1)
        process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const)[sig]);
    });
  }
}

function writeReaperState(): void {
  if (!reaperState) return;
  try {
    writeFileSync(
      reaperState,
      JSON.stringify({ pgids: [...owned].map((o) => o.pgid), dirs: [...ownedDirs], nodeStateFile }),
    );
  } catch {
    // the state dir may already be removed at shutdown
  }
}

function ensureReaper(stateDir: string): void {
  if (reaperState) return;
  reaperState = join(stateDir, 'reaper.json');
  writeReaperState();
  const reaper = spawn(process.execPath, [join(here, 'reaper.ts'), String(process.pid), reaperState], {
    detached: true,
    stdio: 'ignore',
  });
  reaper.unref();
}

/** Removes `dir` on exit, signal or (through the reaper) on a hard kill. */
export function ownDirectory(dir: string): void {
  ownedDirs.add(dir);
  writeReaperState();
}

/** Tears the local node down (see node/teardown.ts) on exit, signal or hard kill. */
export function ownNodeState(stateFile: string): void {
  installHandlers();
  nodeStateFile = stateFile;
  writeReaperState();
}

/** The node was torn down on purpose: nothing left to do for it on exit. */
export function releaseNodeState(): void {
  nodeStateFile = undefined;
  writeReaperState();
}

export function releaseDirectory(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  ownedDirs.delete(dir);
  writeReaperState();
}

export interface OwnedProcess {
  name: string;
  child: ChildProcess;
  logFile: string;
  /** Resolves when the process has exited. */
  exited: Promise<number | null>;
  stop(graceMs?: number): Promise<void>;
}

export function spawnOwned(
  name: string,
  command: string,
  args: string[],
  opts: { logDir: string; stateDir: string; env?: NodeJS.ProcessEnv },
): OwnedProcess {
  installHandlers();
  ensureReaper(opts.stateDir);
  const logFile = join(opts.logDir, `${name}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(command, args, {
    detached: true, // own process group, so the whole tree can be killed at once
    stdio: ['ignore', fd, fd],
    env: opts.env ?? process.env,
  });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${name} (${command})`);
  const entry: Owned = { pgid: child.pid, name };
  owned.add(entry);
  writeReaperState();
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      owned.delete(entry);
      writeReaperState();
      resolve(code);
    });
    child.on('error', () => resolve(null));
  });
  return {
    name,
    child,
    logFile,
    exited,
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      killGroup(entry.pgid, 'SIGTERM');
      const timer = setTimeout(() => killGroup(entry.pgid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      killGroup(entry.pgid, 'SIGKILL'); // stray grandchildren, if any
    },
  };
}
