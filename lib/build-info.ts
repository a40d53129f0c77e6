// What this netmesh is: its version, the commit it was built from, and the runtimes under it.
// The image records the commit at build time (build-info.json, written by deploy/image/rootfs.ts);
// a source checkout (or a linked worktree of one) reads it from .git without running git.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BuildInfo {
  version: string;
  commit: string;
  node: string;
  kubernetesClient: string;
}

function readJson<T>(url: URL): T | undefined {
  try {
    return JSON.parse(readFileSync(url, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/**
 * The commit HEAD points at, from the files of a git checkout (`read` returns a file's text, or
 * undefined when it cannot). A linked worktree (`git worktree add`) has a `.git` file naming its
 * own git dir, whose `commondir` holds the refs shared with the main checkout.
 */
export function commitFromGitFiles(
  dotGit: string,
  read: (path: string) => string | undefined,
): string | undefined {
  const pointer = /^gitdir: (.+)$/m.exec(read(dotGit) ?? '')?.[1]?.trim();
  const gitDir = pointer ? resolve(dirname(dotGit), pointer) : dotGit;
  const common = read(join(gitDir, 'commondir'))?.trim();
  const commonDir = common ? resolve(gitDir, common) : gitDir;
  const head = read(join(gitDir, 'HEAD'))?.trim();
  if (!head) return undefined;
  const ref = /^ref: (.+)$/.exec(head)?.[1];
  if (!ref) return /^[0-9a-f]{40}$/.test(head) ? head.slice(0, 12) : undefined;
  const loose = read(join(commonDir, ref))?.trim() ?? read(join(gitDir, ref))?.trim();
  if (loose) return loose.slice(0, 12);
  const escaped = ref.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^([0-9a-f]{40}) ${escaped}$`, 'm')
    .exec(read(join(commonDir, 'packed-refs')) ?? '')?.[1]
    ?.slice(0, 12);
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

let cached: BuildInfo | undefined;

export function buildInfo(): BuildInfo {
  if (cached) return cached;
  const root = new URL('../', import.meta.url);
  const pkg = readJson<{ version: string }>(new URL('package.json', root));
  const stamped = readJson<{ version?: string; commit?: string }>(new URL('build-info.json', root));
  const client =
    readJson<{ version: string }>(new URL('node_modules/@kubernetes/client-node/package.json', root))
      ?.version ?? 'unknown';
  cached = {
    version: stamped?.version ?? pkg?.version ?? 'unknown',
    commit: stamped?.commit ?? commitFromGitFiles(join(fileURLToPath(root), '.git'), readText) ?? 'unknown',
    node: process.versions.node,
    kubernetesClient: client,
  };
  return cached;
}
