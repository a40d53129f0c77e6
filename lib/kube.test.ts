import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { UserFacingError } from './errors.ts';
import { chooseKubeConfigSource, describeSource, resolveKubeConfig } from './kube.ts';
import { buildKubeconfig } from './kubeconfig.ts';

const dir = mkdtempSync(join(tmpdir(), 'netmesh-kube-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, server: string, extra: { namespace?: string; context?: string } = {}): string {
  const path = join(dir, name);
  const text = buildKubeconfig({
    server,
    caPem: 'CA',
    user: { token: 't' },
    ...(extra.context ? { clusterName: extra.context } : {}),
    ...(extra.namespace ? { namespace: extra.namespace } : {}),
  });
  writeFileSync(path, text);
  return path;
}

const home = join(dir, 'home');
const emptyHome = join(dir, 'empty-home');
mkdirSync(join(home, '.kube'), { recursive: true });
mkdirSync(emptyHome, { recursive: true });
writeFileSync(
  join(home, '.kube', 'config'),
  buildKubeconfig({ server: 'https://home:6443', caPem: 'CA', user: { token: 't' } }),
);

describe('kubeconfig resolution (kubectl order)', () => {
  const a = file('a', 'https://a:6443', { namespace: 'team-a', context: 'a' });
  const b = file('b', 'https://b:6443', { context: 'b' });

  test('--kubeconfig first, then KUBECONFIG, then ~/.kube/config, then in-cluster', () => {
    const env = { KUBECONFIG: b, KUBERNETES_SERVICE_HOST: '10.0.0.1' };
    assert.deepEqual(chooseKubeConfigSource({ kubeconfig: a, env, homeDir: home }), {
      kind: 'flag',
      paths: [a],
    });
    assert.deepEqual(chooseKubeConfigSource({ env, homeDir: home }), {
      kind: 'env',
      paths: [b],
      skipped: [],
    });
    assert.equal(
      chooseKubeConfigSource({ env: { KUBERNETES_SERVICE_HOST: '1' }, homeDir: home }).kind,
      'home',
    );
    assert.equal(
      chooseKubeConfigSource({ env: { KUBERNETES_SERVICE_HOST: '1' }, homeDir: emptyHome }).kind,
      'in-cluster',
    );
  });

  test('nothing found: one clear error', () => {
    assert.throws(
      () => chooseKubeConfigSource({ env: {}, homeDir: emptyHome }),
      (err: Error) =>
        err instanceof UserFacingError &&
        /no kubeconfig found and not running inside a cluster/.test(err.message),
    );
    assert.throws(
      () => chooseKubeConfigSource({ kubeconfig: join(dir, 'nope'), env: {} }),
      /cannot load kubeconfig .*nope: no such file/,
    );
    assert.throws(
      () => chooseKubeConfigSource({ env: { KUBECONFIG: join(dir, 'x') }, homeDir: home }),
      /KUBECONFIG names no existing file/,
    );
  });

  test('KUBECONFIG merges files in order, skipping missing ones; the first current-context wins', () => {
    const missing = join(dir, 'missing');
    const r = resolveKubeConfig({ env: { KUBECONFIG: [missing, a, b].join(delimiter) }, homeDir: emptyHome });
    assert.deepEqual(r.source, { kind: 'env', paths: [a, b], skipped: [missing] });
    assert.equal(r.context, 'a');
    assert.equal(r.server, 'https://a:6443');
    assert.equal(r.namespace, 'team-a');
    assert.deepEqual(
      r.kc.contexts.map((c) => c.name),
      ['a', 'b'],
    );
    const other = resolveKubeConfig({ env: { KUBECONFIG: [a, b].join(delimiter) }, context: 'b' });
    assert.equal(other.server, 'https://b:6443');
    assert.equal(other.namespace, undefined);
  });

  test('an unknown --context lists the ones there are', () => {
    assert.throws(
      () => resolveKubeConfig({ kubeconfig: a, context: 'prod', env: {} }),
      (err: Error) =>
        err instanceof UserFacingError &&
        /context "prod" not found/.test(err.message) &&
        /contexts: a/.test(err.oneLine()),
    );
  });

  test('a file that is not a kubeconfig names the path', () => {
    const bad = join(dir, 'bad');
    writeFileSync(bad, 'not: [a, kubeconfig');
    assert.throws(() => resolveKubeConfig({ kubeconfig: bad, env: {} }), /cannot load kubeconfig .*bad/);
  });

  test('describeSource', () => {
    assert.equal(describeSource({ kind: 'in-cluster' }), 'in-cluster ServiceAccount');
    assert.equal(describeSource({ kind: 'flag', paths: ['/k'] }), 'kubeconfig /k');
  });
});
