import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  createCertificateAuthority,
  generateRsaKeyPair,
  inspectCertificate,
  isSignedBy,
  issueCertificate,
  splitPemBundle,
} from './pki.ts';

describe('pki', () => {
  const ca = createCertificateAuthority('test-ca');

  test('CA is a self-signed CA certificate', () => {
    const info = inspectCertificate(ca.certPem);
    assert.equal(info.isCA, true);
    assert.equal(info.commonName, 'test-ca');
    assert.ok(isSignedBy(ca.certPem, ca.certPem));
    assert.equal(new X509Certificate(ca.certPem).ca, true);
  });

  test('serving certificate carries DNS and IP SANs and verifies against the CA (Node crypto)', () => {
    const cert = issueCertificate(ca, {
      commonName: 'netmesh.netmesh-system.svc',
      usage: 'server',
      dnsNames: ['netmesh.netmesh-system.svc', 'netmesh.netmesh-system.svc.cluster.local'],
      ipAddresses: ['127.0.0.1'],
    });
    const info = inspectCertificate(cert.certPem);
    assert.deepEqual(info.dnsNames, [
      'netmesh.netmesh-system.svc',
      'netmesh.netmesh-system.svc.cluster.local',
    ]);
    assert.deepEqual(info.ipAddresses, ['127.0.0.1']);
    assert.equal(info.isCA, false);
    const x = new X509Certificate(cert.certPem);
    assert.ok(x.verify(new X509Certificate(ca.certPem).publicKey));
    assert.equal(x.checkHost('netmesh.netmesh-system.svc'), 'netmesh.netmesh-system.svc');
    assert.equal(x.checkIP('127.0.0.1'), '127.0.0.1');
    assert.ok(x.checkPrivateKey(createPrivateKeyFrom(cert.keyPem)));
  });

  test('serving certificate without SANs is refused (CN-only certs do not work with Go clients)', () => {
    assert.throws(
      () => issueCertificate(ca, { commonName: 'x', usage: 'server' }),
      /needs at least one DNS or IP SAN/,
    );
  });

  test('client certificate maps organisations to groups', () => {
    const cert = issueCertificate(ca, {
      commonName: 'admin',
      organizations: ['system:masters'],
      usage: 'client',
    });
    const info = inspectCertificate(cert.certPem);
    assert.deepEqual(info.organizations, ['system:masters']);
    assert.equal(new X509Certificate(cert.certPem).keyUsage?.includes('1.3.6.1.5.5.7.3.2'), true);
  });

  test('validity honours notBefore and validForMs', () => {
    const notBefore = new Date('2030-01-01T00:00:00Z');
    const cert = issueCertificate(ca, { commonName: 'c', usage: 'client', notBefore, validForMs: 3600_000 });
    const info = inspectCertificate(cert.certPem);
    assert.equal(info.notBefore.toISOString(), '2030-01-01T00:00:00.000Z');
    assert.equal(info.notAfter.toISOString(), '2030-01-01T01:00:00.000Z');
  });

  test('a certificate from another CA is not signed by this one', () => {
    const other = createCertificateAuthority('other');
    const cert = issueCertificate(other, { commonName: 'c', usage: 'client' });
    assert.equal(isSignedBy(cert.certPem, ca.certPem), false);
    assert.equal(isSignedBy(cert.certPem, other.certPem), true);
  });

  test('RSA key pair PEMs', () => {
    const kp = generateRsaKeyPair();
    assert.match(kp.privateKeyPem, /BEGIN RSA PRIVATE KEY/);
    assert.match(kp.publicKeyPem, /BEGIN PUBLIC KEY/);
  });

  test('splitPemBundle separates concatenated CAs', () => {
    const other = createCertificateAuthority('other');
    const parts = splitPemBundle(ca.certPem + other.certPem);
    assert.equal(parts.length, 2);
    assert.equal(inspectCertificate(parts[1]!).commonName, 'other');
  });
});

import { createPrivateKey } from 'node:crypto';

function createPrivateKeyFrom(pem: string) {
  return createPrivateKey(pem);
}
