// A TCP proxy on loopback between a netmesh process and the apiserver, for the quiet-stall
// fault: stall() makes every connection open at that moment stop forwarding in both directions
// without closing it (what a dead NAT entry or a hung load balancer does), while connections
// opened afterwards are forwarded normally, so a client that notices and reconnects recovers.
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface StallingProxy {
  port: number;
  /** Connections forwarded so far. */
  connections(): number;
  /** Freezes every open connection; returns how many were frozen. */
  stall(): number;
  close(): Promise<void>;
}

export async function startStallingProxy(target: { host: string; port: number }): Promise<StallingProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket; frozen: boolean }>();
  let count = 0;
  const server: Server = createServer((client) => {
    count++;
    const upstream = connect(target.port, target.host);
    const pair = { client, upstream, frozen: false };
    pairs.add(pair);
    const end = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    // Forward by hand (not pipe) so a frozen pair can drop bytes without any signal.
    client.on('data', (b) => {
      if (!pair.frozen) upstream.write(b);
    });
    upstream.on('data', (b) => {
      if (!pair.frozen) client.write(b);
    });
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    connections: () => count,
    stall: () => {
      for (const p of pairs) p.frozen = true;
      return pairs.size;
    },
    close: () =>
      new Promise((resolve) => {
        for (const p of pairs) {
          p.client.destroy();
          p.upstream.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
