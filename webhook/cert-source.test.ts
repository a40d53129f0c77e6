// --cert-dir mode: files written by cert-manager (here: by the test) are picked up without a
// restart; a half-written pair is ignored until it is consistent again. The Secret source
// against a fake API: the Secret it creates, and what a 403 says. No cluster involved.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { AdmissionregistrationV1Api, CoreV1Api, V1Secret } from '@kubernetes/client-node';
import { pino } from 'pino';
import { createCertificateAuthority, issueCertificate } from '../lib/pki.ts';
import {
  DirCertSource,
  SecretCertSource,
  SecretForbiddenError,
  type ServingCertificate,
} from './cert-source.ts';
import { rotationTimings, servingNames } from './certs.ts';

const dir = mkdtempSync(join(tmpdir(), 'netmesh-certdir-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const ca = createCertificateAuthority('dir-test-ca');
const pair = () =>
  issueCertificate(ca, { commonName: 'localhost', dnsNames: ['localhost'], usage: 'server' });
const write = (p: { certPem: string; keyPem: string }) => {
  writeFileSync(join(dir, 'tls.crt'), p.certPem);
  writeFileSync(join(dir, 'tls.key'), p.keyPem);
};

async function until(what: string, fn: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('DirCertSource loads, hot-reloads, and ignores an inconsistent pair', async () => {
  const first = pair();
  write(first);
  const source = new DirCertSource({ dir, logger: pino({ level: 'silent' }), pollMs: 30 });
  const seen: ServingCertificate[] = [];
  source.onChange((c) => seen.push(c));
  try {
    const loaded = await source.start();
    assert.equal(loaded.certPem, first.certPem);
    assert.equal(source.caBundle(), undefined, 'cert-manager owns the caBundle');
    await assert.rejects(source.rotateNow(), /rotated by whoever writes them/);

    const second = pair();
    write(second);
    await until('the new pair', () => seen.length === 1);
    assert.equal(source.current().certPem, second.certPem);

    // Certificate updated, key not yet: keep serving the consistent old pair.
    const third = pair();
    writeFileSync(join(dir, 'tls.crt'), third.certPem);
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(source.current().certPem, second.certPem);
    writeFileSync(join(dir, 'tls.key'), third.keyPem);
    await until('the completed pair', () => seen.length === 2);
    assert.equal(source.current().certPem, third.certPem);
  } finally {
    await source.stop();
  }
});

test('DirCertSource fails to start with a clear message when the files are missing', async () => {
  const empty = mkdtempSync(join(tmpdir(), 'netmesh-certdir-empty-'));
  try {
    const source = new DirCertSource({ dir: empty, logger: pino({ level: 'silent' }) });
    await assert.rejects(source.start(), /cannot load tls\.crt\/tls\.key from/);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

describe('SecretCertSource', () => {
  const apiError = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code });

  /** A fake Secret API: `deny` lists the verbs answered with 403. */
  function fakeApi(opts: { existing?: V1Secret; deny?: string[] }) {
    let stored = opts.existing;
    const created: V1Secret[] = [];
    const deny = new Set(opts.deny ?? []);
    const core = {
      readNamespacedSecret: async () => {
        if (deny.has('get')) throw apiError(403);
        if (!stored) throw apiError(404);
        return stored;
      },
      createNamespacedSecret: async ({ body }: { body: V1Secret }) => {
        if (deny.has('create')) throw apiError(403);
        created.push(body);
        stored = { ...body, metadata: { ...body.metadata, resourceVersion: '1' } };
        return stored;
      },
      patchNamespacedSecret: async ({ body }: { body: V1Secret }) => {
        if (deny.has('patch')) throw apiError(403);
        // A merge patch: null removes a key.
        const merge = (a: Record<string, string> | undefined, b: Record<string, string | null> | undefined) =>
          Object.fromEntries(
            Object.entries({ ...a, ...b }).filter((e): e is [string, string] => e[1] !== null),
          );
        stored = {
          ...stored,
          metadata: {
            ...stored?.metadata,
            annotations: merge(stored?.metadata?.annotations, body.metadata?.annotations),
            resourceVersion: String(Number(stored?.metadata?.resourceVersion ?? '0') + 1),
          },
          data: merge(stored?.data, body.data),
        };
        return stored;
      },
    } as unknown as CoreV1Api;
    return { core, created, current: () => stored };
  }

  const source = (core: CoreV1Api) =>
    new SecretCertSource({
      core,
      admission: {} as AdmissionregistrationV1Api,
      namespace: 'netmesh-system',
      secretName: 'netmesh-webhook-tls',
      webhookConfigName: undefined,
      names: servingNames({ serviceName: 'netmesh', namespace: 'netmesh-system', local: true }),
      timings: rotationTimings(3600_000),
      logger: pino({ level: 'silent' }),
    });

  test('creates a missing Secret as Opaque with the tls.crt/tls.key/ca.crt/ca.key keys', async () => {
    const api = fakeApi({});
    const s = source(api.core);
    try {
      await s.start();
    } finally {
      await s.stop();
    }
    assert.equal(api.created.length, 1);
    assert.equal(api.created[0]!.type, 'Opaque', 'the type the chart pre-creates it with (immutable)');
    assert.deepEqual(Object.keys(api.created[0]!.data ?? {}).sort(), [
      'ca.crt',
      'ca.key',
      'tls.crt',
      'tls.key',
    ]);
  });

  test("fills the chart's empty Opaque Secret in place", async () => {
    const api = fakeApi({
      existing: { metadata: { name: 'netmesh-webhook-tls', resourceVersion: '7' }, type: 'Opaque' },
    });
    const s = source(api.core);
    try {
      await s.start();
    } finally {
      await s.stop();
    }
    assert.equal(api.created.length, 0);
    assert.equal(api.current()?.type, 'Opaque');
    assert.deepEqual(Object.keys(api.current()?.data ?? {}).sort(), [
      'ca.crt',
      'ca.key',
      'tls.crt',
      'tls.key',
    ]);
  });

  for (const [verb, existing] of [
    ['create', undefined],
    ['get', undefined],
    ['patch', { metadata: { name: 'netmesh-webhook-tls', resourceVersion: '1' }, type: 'Opaque' }],
  ] as const) {
    test(`403 on ${verb}: names the missing permission and the chart`, async () => {
      const api = fakeApi({ deny: [verb], ...(existing ? { existing } : {}) });
      const s = source(api.core);
      try {
        await assert.rejects(s.start(), (err: unknown) => {
          assert.ok(err instanceof SecretForbiddenError);
          assert.equal(err.code, 403);
          assert.equal(err.verb, verb);
          assert.match(err.message, new RegExp(`lacks permission "${verb}" on secrets`));
          assert.match(err.message, /Secret netmesh-system\/netmesh-webhook-tls/);
          assert.match(err.message, /Helm chart creates this Secret/);
          assert.match(err.message, /helm upgrade/);
          return true;
        });
      } finally {
        await s.stop();
      }
    });
  }
});
