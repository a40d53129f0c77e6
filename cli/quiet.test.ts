// The first thing a user runs is `npx netmesh ...` under whatever Node the machine has: its
// output must be netmesh's, not a wall of npm EBADENGINE warnings (bin/netmesh.js says why).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// The machine's own PATH, without the pinned Node that npm scripts put first.
const systemPath = (process.env['PATH'] ?? '')
  .split(delimiter)
  .filter((d) => d && !d.includes('node_modules'))
  .join(delimiter);
const npx = systemPath
  .split(delimiter)
  .find((d) => existsSync(join(d, 'npx')) && existsSync(join(d, 'node')));
// A fresh npm cache: `npx netmesh` installs this checkout (a file: spec) into the cache's _npx
// directory, and the warnings come from that install; a warm cache would hide them.
const caches: string[] = [];
after(() => {
  for (const c of caches) rmSync(c, { recursive: true, force: true });
});
/** The environment of one npm run, each with its own fresh cache. */
const env = (): NodeJS.ProcessEnv => {
  const cache = mkdtempSync(join(tmpdir(), 'netmesh-npm-cache-'));
  caches.push(cache);
  return {
    HOME: process.env['HOME'] ?? '/root',
    PATH: systemPath,
    npm_config_cache: cache,
    npm_config_update_notifier: 'false',
  };
};
const systemNode = npx
  ? spawnSync(join(npx, 'node'), ['--version'], { encoding: 'utf8', env: env() }).stdout.trim()
  : '';

describe(`npx netmesh under the system Node (${systemNode || 'none'})`, () => {
  test('prints the help and no EBADENGINE warning', {
    skip: npx ? false : 'no system node/npx on PATH',
  }, () => {
    const r = spawnSync(join(npx!, 'npx'), ['netmesh', '--help'], {
      cwd: root,
      encoding: 'utf8',
      env: env(),
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^netmesh: Kubernetes Network operator/);
    assert.doesNotMatch(`${r.stdout}${r.stderr}`, /EBADENGINE/);
    assert.equal(r.stderr, '', 'nothing on stderr');
  });

  test('npm exec (what npm scripts go through) is quiet too', {
    skip: npx ? false : 'no system node/npm on PATH',
  }, () => {
    const r = spawnSync(join(npx!, 'npm'), ['exec', '--', 'netmesh', 'version'], {
      cwd: root,
      encoding: 'utf8',
      env: env(),
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^netmesh \d/);
    assert.doesNotMatch(`${r.stdout}${r.stderr}`, /EBADENGINE/);
  });
});
