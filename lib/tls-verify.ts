// Whether a serving certificate chain is what a TLS client trusting `caBundle` would accept
// for `serverName`: the check the apiserver makes when it calls the webhook, done here on the
// certificates themselves so that `netmesh check` can say which certificate is wrong and why,
// instead of repeating OpenSSL's one-word verdict. Pure: certificates in, verdict out.

import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { splitPemBundle } from './pki.ts';

export interface CertSummary {
  subject: string;
  issuer: string;
  /** subjectAltName as Node prints it: "DNS:a, IP Address:1.2.3.4". */
  sans: string;
  notBefore: Date;
  notAfter: Date;
  fingerprint256: string;
}

export function summarizeCert(pemOrCert: string | X509Certificate): CertSummary {
  const c = typeof pemOrCert === 'string' ? new X509Certificate(pemOrCert) : pemOrCert;
  return {
    subject: oneLineName(c.subject),
    issuer: oneLineName(c.issuer),
    sans: c.subjectAltName ?? '',
    notBefore: new Date(c.validFrom),
    notAfter: new Date(c.validTo),
    fingerprint256: c.fingerprint256,
  };
}

/** "CN=netmesh.ns.svc" from Node's multi-line distinguished name. */
export function oneLineName(dn: string): string {
  return dn.split('\n').filter(Boolean).join(', ');
}

export function describeCert(s: CertSummary): string {
  return `${s.subject}, issued by ${s.issuer}${s.sans ? `, ${s.sans}` : ''}, valid until ${s.notAfter.toISOString()}`;
}

export interface ChainVerdict {
  trusted: boolean;
  /** Why not, one clause each (empty when trusted). */
  problems: string[];
  leaf: CertSummary;
  /** The CA of the bundle that signed the chain, when one did. */
  signedBy?: CertSummary;
}

/**
 * Verifies `chain` (leaf first, then any intermediates the server sent) against the CAs in
 * `caBundlePem`: a signature path from the leaf to a bundle CA, every certificate valid at
 * `now`, and the leaf valid for `serverName` (DNS name or IP address).
 */
export function verifyChain(opts: {
  chain: readonly string[];
  caBundlePem: string;
  serverName: string;
  now: Date;
}): ChainVerdict {
  const certs = opts.chain.map((p) => new X509Certificate(p));
  const leafCert = certs[0];
  if (!leafCert) throw new RangeError('verifyChain needs at least the leaf certificate');
  const leaf = summarizeCert(leafCert);
  const problems: string[] = [];
  const cas = splitPemBundle(opts.caBundlePem.replace(/\r\n/g, '\n')).map((p) => new X509Certificate(p));
  if (cas.length === 0) problems.push('the caBundle holds no certificate');

  // Walk from the leaf through the intermediates the server sent until a bundle CA signs one.
  let signedBy: X509Certificate | undefined;
  let current = leafCert;
  const pool = certs.slice(1);
  for (let depth = 0; depth < 8 && !signedBy; depth++) {
    signedBy = cas.find((ca) => current.checkIssued(ca) && current.verify(ca.publicKey));
    if (signedBy) break;
    const next = pool.find((c) => current.checkIssued(c) && current.verify(c.publicKey));
    if (!next) break;
    current = next;
  }
  if (!signedBy && cas.length > 0) {
    problems.push(
      `it is signed by ${leaf.issuer}, which is not in the caBundle (${cas.map((c) => oneLineName(c.subject)).join('; ')})`,
    );
  }
  const t = opts.now.getTime();
  for (const c of [leafCert, ...(signedBy ? [signedBy] : [])]) {
    const s = summarizeCert(c);
    if (t > s.notAfter.getTime()) problems.push(`${s.subject} expired at ${s.notAfter.toISOString()}`);
    if (t < s.notBefore.getTime())
      problems.push(`${s.subject} is not valid before ${s.notBefore.toISOString()}`);
  }
  const name = opts.serverName.replace(/^\[|\]$/g, '');
  const matches = isIP(name) ? leafCert.checkIP(name) !== undefined : leafCert.checkHost(name) !== undefined;
  if (!matches) problems.push(`it is not valid for ${name} (${leaf.sans || 'no subjectAltName'})`);
  const verdict: ChainVerdict = { trusted: problems.length === 0, problems, leaf };
  if (signedBy) verdict.signedBy = summarizeCert(signedBy);
  return verdict;
}
