import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createCertificateAuthority, issueCertificate } from './pki.ts';
import { describeCert, summarizeCert, verifyChain } from './tls-verify.ts';

describe('verifyChain', () => {
  const ca = createCertificateAuthority('netmesh-webhook-ca');
  const other = createCertificateAuthority('someone-else');
  const name = 'netmesh.netmesh-system.svc';
  const serving = issueCertificate(ca, {
    commonName: name,
    usage: 'server',
    dnsNames: [name],
    ipAddresses: ['127.0.0.1'],
  });
  const now = new Date();

  test('a leaf signed by a CA of the bundle, valid for the name, is trusted', () => {
    const v = verifyChain({ chain: [serving.certPem], caBundlePem: ca.certPem, serverName: name, now });
    assert.equal(v.trusted, true, v.problems.join('; '));
    assert.equal(v.signedBy?.subject, 'CN=netmesh-webhook-ca');
    assert.equal(
      verifyChain({ chain: [serving.certPem], caBundlePem: ca.certPem, serverName: '127.0.0.1', now })
        .trusted,
      true,
    );
  });

  test('a bundle with the old and the new CA (rotation overlap) trusts either', () => {
    const v = verifyChain({
      chain: [serving.certPem],
      caBundlePem: other.certPem + ca.certPem,
      serverName: name,
      now,
    });
    assert.equal(v.trusted, true);
  });

  test('another CA: says who signed and what the bundle holds', () => {
    const v = verifyChain({ chain: [serving.certPem], caBundlePem: other.certPem, serverName: name, now });
    assert.equal(v.trusted, false);
    assert.deepEqual(v.problems, [
      'it is signed by CN=netmesh-webhook-ca, which is not in the caBundle (CN=someone-else)',
    ]);
  });

  test('wrong name, expiry, empty bundle', () => {
    assert.deepEqual(
      verifyChain({ chain: [serving.certPem], caBundlePem: ca.certPem, serverName: 'netmesh.other.svc', now })
        .problems,
      [`it is not valid for netmesh.other.svc (DNS:${name}, IP Address:127.0.0.1)`],
    );
    const later = new Date(now.getTime() + 2 * 365 * 24 * 3600 * 1000);
    assert.match(
      verifyChain({
        chain: [serving.certPem],
        caBundlePem: ca.certPem,
        serverName: name,
        now: later,
      }).problems.join(),
      new RegExp(`CN=${name} expired at`),
    );
    assert.match(
      verifyChain({ chain: [serving.certPem], caBundlePem: '', serverName: name, now }).problems.join(),
      /caBundle holds no certificate/,
    );
  });

  test('a chain that also carries its CA verifies against the bundle, not against itself', () => {
    const withRoot = [serving.certPem, ca.certPem];
    assert.equal(
      verifyChain({ chain: withRoot, caBundlePem: ca.certPem, serverName: name, now }).trusted,
      true,
    );
    // The server's own copy of its CA does not make it trusted.
    assert.equal(
      verifyChain({ chain: withRoot, caBundlePem: other.certPem, serverName: name, now }).trusted,
      false,
    );
  });

  test('describeCert says which certificate', () => {
    assert.match(
      describeCert(summarizeCert(serving.certPem)),
      new RegExp(
        `^CN=${name}, issued by CN=netmesh-webhook-ca, DNS:${name}, IP Address:127.0.0.1, valid until \\d{4}-`,
      ),
    );
  });
});
