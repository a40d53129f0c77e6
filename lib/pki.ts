// Certificates and keys for everything netmesh secures: the test control plane (CA, apiserver
// serving cert, admin client cert, service-account signing key) and the webhook (CA + serving
// cert with DNS SANs). node-forge builds the X.509 structures; forge delegates RSA key
// generation to Node's native crypto when it is available, so a key costs milliseconds.
import { randomBytes } from 'node:crypto';
import forge from 'node-forge';

const { pki, md } = forge;

export interface KeyPairPem {
  privateKeyPem: string;
  publicKeyPem: string;
}

export interface CertificateAuthority {
  certPem: string;
  keyPem: string;
}

export interface IssuedCert {
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  commonName: string;
  /** Subject organisations (Kubernetes maps them to groups for client certs). */
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: 'server' | 'client' | 'both';
  /** Validity in milliseconds (default one year). */
  validForMs?: number;
  /** Start of validity; defaults to now minus one minute to tolerate clock skew. */
  notBefore?: Date;
}

const YEAR_MS = 365 * 24 * 3600 * 1000;

export function generateRsaKeyPair(bits = 2048): KeyPairPem {
  const keys = pki.rsa.generateKeyPair({ bits, e: 0x10001 });
  return {
    privateKeyPem: pki.privateKeyToPem(keys.privateKey),
    publicKeyPem: pki.publicKeyToPem(keys.publicKey),
  };
}

function serialNumber(): string {
  // Positive 128-bit serial: clear the top bit so DER does not read it as negative.
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}

function validity(cert: forge.pki.Certificate, notBefore: Date | undefined, validForMs: number): void {
  const start = notBefore ?? new Date(Date.now() - 60_000);
  cert.validity.notBefore = start;
  cert.validity.notAfter = new Date(start.getTime() + validForMs);
}

export function createCertificateAuthority(
  commonName: string,
  opts: { validForMs?: number; notBefore?: Date } = {},
): CertificateAuthority {
  const keys = pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  const cert = pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serialNumber();
  validity(cert, opts.notBefore, opts.validForMs ?? 10 * YEAR_MS);
  const subject = [{ name: 'commonName', value: commonName }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, md.sha256.create());
  return { certPem: pki.certificateToPem(cert), keyPem: pki.privateKeyToPem(keys.privateKey) };
}

export function issueCertificate(ca: CertificateAuthority, opts: IssueOptions): IssuedCert {
  const caCert = pki.certificateFromPem(ca.certPem);
  const caKey = pki.privateKeyFromPem(ca.keyPem);
  const keys = pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  const cert = pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serialNumber();
  validity(cert, opts.notBefore, opts.validForMs ?? YEAR_MS);
  const subject: forge.pki.CertificateField[] = [{ name: 'commonName', value: opts.commonName }];
  for (const o of opts.organizations ?? []) subject.push({ name: 'organizationName', value: o });
  cert.setSubject(subject);
  cert.setIssuer(caCert.subject.attributes);
  const altNames = [
    ...(opts.dnsNames ?? []).map((value) => ({ type: 2, value })),
    ...(opts.ipAddresses ?? []).map((ip) => ({ type: 7, ip })),
  ];
  const server = opts.usage === 'server' || opts.usage === 'both';
  const client = opts.usage === 'client' || opts.usage === 'both';
  if (server && altNames.length === 0) {
    // Go's TLS stack ignores the CN for host verification: a serving cert without SANs is useless.
    throw new Error(`serving certificate "${opts.commonName}" needs at least one DNS or IP SAN`);
  }
  const extensions: object[] = [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: server, clientAuth: client },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ];
  if (altNames.length > 0) extensions.push({ name: 'subjectAltName', altNames });
  cert.setExtensions(extensions);
  cert.sign(caKey, md.sha256.create());
  return { certPem: pki.certificateToPem(cert), keyPem: pki.privateKeyToPem(keys.privateKey) };
}

export interface CertificateInfo {
  commonName: string | undefined;
  organizations: string[];
  dnsNames: string[];
  ipAddresses: string[];
  notBefore: Date;
  notAfter: Date;
  isCA: boolean;
}

/** Reads back the fields netmesh cares about (for tests, expiry metrics and rotation). */
export function inspectCertificate(certPem: string): CertificateInfo {
  const cert = pki.certificateFromPem(certPem);
  const san = cert.getExtension('subjectAltName') as {
    altNames?: { type: number; value?: string; ip?: string }[];
  };
  const bc = cert.getExtension('basicConstraints') as { cA?: boolean } | null;
  return {
    commonName: cert.subject.getField('CN')?.value as string | undefined,
    organizations: cert.subject.attributes.filter((a) => a.shortName === 'O').map((a) => String(a.value)),
    dnsNames: (san?.altNames ?? []).filter((a) => a.type === 2).map((a) => a.value ?? ''),
    ipAddresses: (san?.altNames ?? []).filter((a) => a.type === 7).map((a) => a.ip ?? ''),
    notBefore: cert.validity.notBefore,
    notAfter: cert.validity.notAfter,
    isCA: bc?.cA === true,
  };
}

/** True when `certPem` was signed by the CA certificate `caPem`. */
export function isSignedBy(certPem: string, caPem: string): boolean {
  try {
    return pki.certificateFromPem(caPem).verify(pki.certificateFromPem(certPem));
  } catch {
    return false;
  }
}

/** Splits a PEM bundle into its certificates (a caBundle may hold several CAs during rotation). */
export function splitPemBundle(bundle: string): string[] {
  return (
    bundle
      .match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)
      ?.map((c) => `${c.trim()}\n`) ?? []
  );
}
