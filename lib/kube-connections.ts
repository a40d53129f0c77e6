// Connection reuse for @kubernetes/client-node. Version 2.0.1 builds a new undici Agent for
// every request: KubeConfig.applySecurityAuthentication, which every API call goes through,
// calls createDispatcher, which returns `new Agent(...)` each time. So every call opens a new
// TCP and TLS connection (a full handshake on both sides, ~1 ms of CPU each, more on the
// apiserver), and the Agents with their idle sockets pile up until their keep-alive expires:
// thousands of connections and hundreds of megabytes of RSS for an operator writing at speed.
// This keeps one dispatcher per TLS identity (server, CA, client certificate and key), closes
// the old one when the identity changes (a rotated client certificate), and leaves everything
// else (bearer tokens, which are headers, are re-read per request as before) to client-node.
import { createHash } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';

interface Closable {
  close(): Promise<void>;
}

type CreateDispatcher = (cluster: unknown, agentOptions: Record<string, unknown>) => Closable | undefined;

const patched = new WeakSet<KubeConfig>();

function identityKey(cluster: unknown, o: Record<string, unknown>): string {
  const c = cluster as { server?: string; proxyUrl?: string } | null;
  const h = createHash('sha256');
  for (const part of [c?.server, c?.proxyUrl, o['ca'], o['cert'], o['key'], o['pfx'], o['passphrase']]) {
    h.update(part === undefined ? '-' : Buffer.isBuffer(part) ? part : String(part)).update('\0');
  }
  h.update(String(o['rejectUnauthorized'])).update(String(o['servername']));
  return h.digest('hex');
}

/** Makes every API client built from `kc` share one keep-alive connection pool. Idempotent. */
export function reuseConnections(kc: KubeConfig): KubeConfig {
  if (patched.has(kc)) return kc;
  const target = kc as unknown as { createDispatcher?: CreateDispatcher };
  const original = target.createDispatcher;
  // A future client-node without this method builds dispatchers differently: leave it be.
  if (typeof original !== 'function') return kc;
  let current: { key: string; dispatcher: Closable | undefined } | undefined;
  target.createDispatcher = (cluster, agentOptions) => {
    const key = identityKey(cluster, agentOptions);
    if (current?.key === key) return current.dispatcher;
    const previous = current?.dispatcher;
    current = { key, dispatcher: original.call(kc, cluster, agentOptions) };
    // In-flight requests finish on the old pool; it then closes its sockets.
    void previous?.close().catch(() => {});
    return current.dispatcher;
  };
  patched.add(kc);
  return kc;
}
