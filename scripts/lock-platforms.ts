// Keeps package-lock.json acceptable to `npm ci` on registries that mirror only some of
// biome's per-platform binaries (@biomejs/cli-<os>-<cpu>[-musl]). `npm install` silently drops
// the optional packages it cannot resolve from the lock, and `npm ci` then refuses the lock as
// out of sync. This re-adds an entry for every platform package biome declares; npm never
// fetches them on a machine of another platform, so no download is involved.
// Run after changing dependencies: `npm run lock:platforms`.
import { readFileSync, writeFileSync } from 'node:fs';

const lockPath = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(lockPath, 'utf8')) as {
  packages: Record<string, Record<string, unknown>>;
};
const biome = lock.packages['node_modules/@biomejs/biome'] as {
  version: string;
  optionalDependencies?: Record<string, string>;
};
const engines = { node: '>=14.21.3' };
let added = 0;
for (const [name, version] of Object.entries(biome.optionalDependencies ?? {})) {
  const key = `node_modules/${name}`;
  if (lock.packages[key]) continue;
  const m = /^@biomejs\/cli-(linux|darwin|win32|android)-(x64|arm64)(-musl)?$/.exec(name);
  if (!m) throw new Error(`unexpected biome platform package ${name}`);
  lock.packages[key] = {
    version,
    cpu: [m[2]],
    dev: true,
    ...(m[1] === 'linux' ? { libc: [m[3] ? 'musl' : 'glibc'] } : {}),
    license: 'MIT OR Apache-2.0',
    optional: true,
    os: [m[1]],
    engines,
  };
  added++;
}
const [root, ...rest] = Object.entries(lock.packages);
lock.packages = Object.fromEntries([root!, ...rest.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))]);
writeFileSync(lockPath, `${JSON.stringify(lock, null, 2)}\n`);
console.log(
  added ? `added ${added} platform entries to package-lock.json` : 'package-lock.json already complete',
);
