// Fetches the certificate chain a TLS endpoint presents, without trusting it: for saying which
// certificate a client refused (the x509 errors of fetch carry no certificate) and for
// checking a webhook endpoint against its caBundle. Verification is lib/tls-verify.ts's job.
import { isIP } from 'node:net';
import { connect, type DetailedPeerCertificate } from 'node:tls';

export interface TlsProbe {
  /** PEM certificates as presented: the leaf first. */
  chain: string[];
}

function toPem(der: Buffer): string {
  const b64 = der
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

/**
 * Connects to host:port, sends `servername` as SNI (not for IP addresses, which SNI may not
 * carry), and returns the presented chain. Rejects on a connection error or timeout.
 */
export function probeTls(opts: {
  host: string;
  port: number;
  servername?: string;
  timeoutMs?: number;
}): Promise<TlsProbe> {
  return new Promise((resolve, reject) => {
    const sni = opts.servername ?? opts.host;
    const socket = connect({
      host: opts.host,
      port: opts.port,
      ...(isIP(sni) ? {} : { servername: sni }),
      // We only read what is presented; the caller decides whether to trust it.
      rejectUnauthorized: false,
    });
    socket.setTimeout(opts.timeoutMs ?? 5_000, () => {
      socket.destroy(
        Object.assign(new Error(`TLS handshake with ${opts.host}:${opts.port} timed out`), {
          code: 'ETIMEDOUT',
        }),
      );
    });
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      const chain: string[] = [];
      const seen = new Set<string>();
      let c: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
      while (c?.raw && !seen.has(c.fingerprint256)) {
        seen.add(c.fingerprint256);
        chain.push(toPem(c.raw));
        c = c.issuerCertificate;
      }
      socket.end();
      if (chain.length === 0) reject(new Error(`${opts.host}:${opts.port} presented no certificate`));
      else resolve({ chain });
    });
  });
}

/** host and port of an https URL (default port 443). */
export function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : 443 };
}
