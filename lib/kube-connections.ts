// Connection reuse for @kubernetes/client-node. Version 2.0.1 builds a new undici Agent for
// every request: KubeConfig.applySecurityAuthentication, which every API call goes through,
// calls createDispatcher, which returns `new Agent(...)` each time. So every call opens a new
// TCP and TLS connection (a full handshake on both sides, ~1 ms of CPU each, more on the
// apiserver), and the Agents with their idle sockets pile up until their keep-alive expires:
// thousands of connections and hundreds of megabytes of RSS for an operator writing at speed.
// This keeps one dispatcher per TLS identity (server, CA, client certificate and key), closes
// the old one when the identity changes (a rotated client certificate), and leaves everything
// else (bearer tokens, which are headers, are re-read per request as before) to client-node.
//
// The pool speaks HTTP/1.1. undici 8 negotiates HTTP/2 by default, and then every request of
// the process shares one connection: when that connection stalls without closing (a dead NAT
// entry, a hung load balancer), every request and the leader's Lease renewals time out on it
// for good, because undici has no health check that would drop it. Over HTTP/1.1 a request that
// times out costs its own socket only, and the next request opens a fresh one.
import { createHash } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import { Agent } from 'undici';

interface Closable {
  close(): Promise<void>;
}

type CreateDispatcher = (cluster: unknown, agentOptions: Record<string, unknown>) => Closable | undefined;
type DispatcherOptions = { type: string; connect?: Record<string, unknown> };

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
  const target = kc as unknown as {
    createDispatcher?: CreateDispatcher;
    createDispatcherOptions?: (cluster: unknown, agentOptions: Record<string, unknown>) => DispatcherOptions;
  };
  const original = target.createDispatcher;
  const options = target.createDispatcherOptions;
  // A future client-node without these methods builds dispatchers differently: leave it be.
  if (typeof original !== 'function' || typeof options !== 'function') return kc;
  const build: CreateDispatcher = (cluster, agentOptions) => {
    const o = options.call(kc, cluster, agentOptions);
    // Proxies and plain HTTP keep client-node's own dispatcher.
    if (o.type !== 'agent' || !o.connect) return original.call(kc, cluster, agentOptions);
    return new Agent({ connect: o.connect, allowH2: false });
  };
  let current: { key: string; dispatcher: Closable | undefined } | undefined;
  target.createDispatcher = (cluster, agentOptions) => {
    const key = identityKey(cluster, agentOptions);
    if (current?.key === key) return current.dispatcher;
    const previous = current?.dispatcher;
    current = { key, dispatcher: build(cluster, agentOptions) };
    // In-flight requests finish on the old pool; it then closes its sockets.
    void previous?.close().catch(() => {});
    return current.dispatcher;
  };
  patched.add(kc);
  return kc;
}
