// Detached watchdog: when the process that owns the control plane dies without cleaning up
// (SIGKILL, OOM kill), kill the process groups and remove the directories it listed.
import { readFileSync, rmSync } from 'node:fs';
import { readNodeState, teardownNodeSync } from './node/teardown.ts';

const parent = Number(process.argv[2]);
const stateFile = process.argv[3]!;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const timer = setInterval(() => {
  if (alive(parent)) return;
  clearInterval(timer);
  try {
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as {
      pgids: number[];
      dirs: string[];
      nodeStateFile?: string;
    };
    const node = state.nodeStateFile ? readNodeState(state.nodeStateFile) : undefined;
    if (node) teardownNodeSync(node);
    for (const pgid of state.pgids) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    for (const d of state.dirs) rmSync(d, { recursive: true, force: true });
  } catch {
    // nothing recorded: nothing to clean
  }
  try {
    rmSync(stateFile, { force: true });
  } catch {
    // ignore
  }
  process.exit(0);
}, 500);
