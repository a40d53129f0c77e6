/**
 * A listen address: `host:port`, `:port` (every IPv4 address) or `[v6]:port`; port 0 picks a
 * free one. The one parser for every --listen / --health-listen flag and startWebhook's options.
 */
export function parseListen(value: string, flag = 'listen'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value.trim());
  if (!m) throw new Error(`--${flag} must be host:port (e.g. 0.0.0.0:9443 or 127.0.0.1:0), got "${value}"`);
  const host = m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`--${flag}: port ${port} is out of range`);
  return { host, port };
}
