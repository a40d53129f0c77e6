// --cert-dir mode: files written by cert-manager (here: by the test) are picked up without a
// restart; a half-written pair is ignored until it is consistent again. No cluster involved.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { createCertificateAuthority, issueCertificate } from '../lib/pki.ts';
import { DirCertSource, type ServingCertificate } from './cert-source.ts';

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
