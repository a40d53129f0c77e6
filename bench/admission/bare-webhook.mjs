// The admission area's bare webhook: what any mutating webhook written on Node costs the
// apiserver's Pod-create path, so that netmesh's cost reads against it in the same run. A bare
// node:https server with netmesh's certificate and keep-alive that reads the review, JSON.parses
// it and answers with netmesh's own JSON Patch for that Pod and the review's uid: the apiserver
// applies the same mutation and stores the same Pod as with netmesh. The patch is learnt once per
// Pod shape (the object's generateName) by forwarding that first review to netmesh; every other
// review is answered without netmesh. Plain JavaScript, as bench/webhook/baseline-server.mjs.
//
//   node bench/admission/bare-webhook.mjs <config.json>
//   config: { host, port, certPem, keyPem, learnFrom: { url, caPem } }
// Prints `listening <port>` once it accepts connections.
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { serveBare } from '../lib/bare-https.mjs';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
/** generateName -> netmesh's base64 JSON Patch for that Pod (a promise while it is learnt). */
const patches = new Map();

function learn(raw) {
  return new Promise((resolve, reject) => {
    const req = request(
      config.learnFrom.url,
      {
        method: 'POST',
        ca: config.learnFrom.caPem,
        headers: { 'content-type': 'application/json', 'content-length': raw.length },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const patch = JSON.parse(Buffer.concat(chunks).toString('utf8')).response?.patch;
          if (typeof patch === 'string') resolve(patch);
          else reject(new Error(`netmesh answered ${res.statusCode} without a patch`));
        });
      },
    );
    req.on('error', reject);
    req.end(raw);
  });
}

function send(res, status, type, text) {
  const body = Buffer.from(text);
  res.writeHead(status, { 'content-type': type, 'content-length': body.length });
  res.end(body);
}

serveBare(config, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const raw = Buffer.concat(chunks);
    try {
      const request = JSON.parse(raw.toString('utf8')).request;
      const shape = request.object?.metadata?.generateName ?? '';
      let patch = patches.get(shape);
      if (patch === undefined) {
        patch = learn(raw);
        patches.set(shape, patch);
        patch.then(
          (p) => patches.set(shape, p),
          () => patches.delete(shape),
        );
      }
      if (typeof patch !== 'string') patch = await patch;
      send(
        res,
        200,
        'application/json',
        JSON.stringify({
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response: { uid: request.uid, allowed: true, patchType: 'JSONPatch', patch },
        }),
      );
    } catch (err) {
      console.error(`review not answered: ${err.message}`);
      send(res, 400, 'text/plain', `${err.message}\n`);
    }
  });
});
