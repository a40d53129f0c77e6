// The bare Node https servers the benchmarks compare netmesh with (bench/webhook/baseline-server.mjs,
// bench/admission/bare-webhook.mjs): netmesh's certificate and TLS floor, keep-alive as the
// apiserver uses it, `listening <port>` on stdout once it accepts connections (the benchmark waits
// for that line), and a clean stop on SIGTERM. Plain JavaScript, as the servers that use it.
import { createServer } from 'node:https';

/** Starts the server on config.host:config.port with config.certPem / config.keyPem. */
export function serveBare(config, handler) {
  const server = createServer({ cert: config.certPem, key: config.keyPem, minVersion: 'TLSv1.2' }, handler);
  // As netmesh's server: the apiserver keeps connections to webhooks alive.
  server.keepAliveTimeout = 30_000;
  server.listen(config.port, config.host, () => {
    console.log(`listening ${server.address().port}`);
  });
  process.on('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
  });
  return server;
}
