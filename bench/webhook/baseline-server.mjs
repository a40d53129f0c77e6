// The webhook benchmark's baseline: what Node itself costs for an admission webhook, so that
// netmesh's figures read as a fraction of the runtime's limit on the same machine in the same
// run. A bare node:https server with netmesh's certificate, TLS settings and keep-alive
// (webhook/server.ts), that reads the body, JSON.parses it (every webhook has to) and answers
// with a precomputed response: netmesh's own answer to that review, so the bytes written are
// the same. Plain JavaScript on purpose: "bare Node" without the TypeScript loader (about
// 18 MB of resident memory) that netmesh's sources need.
//
//   node bench/webhook/baseline-server.mjs <config.json>
//   config: { host, port, certPem, keyPem, responses: { <request uid>: <response body> } }
// Prints `listening <port>` once it accepts connections.
import { readFileSync } from 'node:fs';
import { serveBare } from '../lib/bare-https.mjs';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const responses = new Map(Object.entries(config.responses).map(([uid, body]) => [uid, Buffer.from(body)]));
const unknown = Buffer.from('unknown review uid\n');

serveBare(config, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let body;
    try {
      body = responses.get(JSON.parse(Buffer.concat(chunks).toString('utf8')).request?.uid ?? '');
    } catch {
      body = undefined;
    }
    if (body === undefined) {
      res.writeHead(400, { 'content-type': 'text/plain', 'content-length': unknown.length });
      res.end(unknown);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
});
