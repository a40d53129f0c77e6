// What this netmesh is: its version, the commit it was built from, and the runtimes under it.
// The image records the commit at build time (build-info.json, written by deploy/image/rootfs.ts);
// a source checkout reads it from .git without running git.
import { readFileSync } from 'node:fs';

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

function commitFromGit(root: URL): string | undefined {
  try {
    const head = readFileSync(new URL('.git/HEAD', root), 'utf8').trim();
    const ref = /^ref: (.+)$/.exec(head)?.[1];
    if (!ref) return head.slice(0, 12);
    try {
      return readFileSync(new URL(`.git/${ref}`, root), 'utf8')
        .trim()
        .slice(0, 12);
    } catch {
      const packed = readFileSync(new URL('.git/packed-refs', root), 'utf8');
      return new RegExp(`^([0-9a-f]{40}) ${ref.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm')
        .exec(packed)?.[1]
        ?.slice(0, 12);
    }
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
    commit: stamped?.commit ?? commitFromGit(root) ?? 'unknown',
    node: process.versions.node,
    kubernetesClient: client,
  };
  return cached;
}
