// `helm test` for netmesh: asks the apiserver to create a Pod in a namespace labelled for
// injection as a server-side dry run (nothing is stored, nothing runs), exactly the path a real
// Pod takes through admission, and checks that the webhook injected the sidecar.
//
// Runs on the netmesh image's Node with no dependencies (the image has no shell and no kubectl).
// Inputs, all from the environment:
//   NETMESH_TEST_NAMESPACE        namespace to dry-run the Pod in (labelled for injection)
//   NETMESH_TEST_IMAGE            image of the dry-run Pod (never pulled: nothing is scheduled)
//   NETMESH_EXPECTED_CONTAINERS   JSON array of the template's container and init container names ([] = unknown)
//   KUBERNETES_SERVICE_HOST/PORT  the apiserver, as the kubelet sets them
//   NETMESH_TEST_SA_DIR           where token and ca.crt are (default: the mounted ServiceAccount)
// Exit 0 when injected; 1 with the reason (and the apiserver's warnings) otherwise.
import { readFileSync } from 'node:fs';
import { request } from 'node:https';

const STATUS_ANNOTATION = 'netmesh.io/status';

function env(name, fallback) {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') throw new Error(`${name} is not set`);
  return v;
}

function dryRunCreate({ host, port, token, ca, namespace, pod }) {
  const body = JSON.stringify(pod);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port,
        method: 'POST',
        path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods?dryRun=All&fieldManager=netmesh-helm-test`,
        ca,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json',
          'content-length': Buffer.byteLength(body),
        },
        timeout: 30_000,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const warnings = [res.headers.warning ?? []].flat();
          let json;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, json, text, warnings });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('the apiserver did not answer within 30 s')));
    req.on('error', reject);
    req.end(body);
  });
}

async function main() {
  const saDir = env('NETMESH_TEST_SA_DIR', '/var/run/secrets/kubernetes.io/serviceaccount');
  const namespace = env('NETMESH_TEST_NAMESPACE');
  const image = env('NETMESH_TEST_IMAGE');
  const expected = JSON.parse(env('NETMESH_EXPECTED_CONTAINERS', '[]'));
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'netmesh-helm-test', labels: { 'app.kubernetes.io/name': 'netmesh-helm-test' } },
    spec: {
      restartPolicy: 'Never',
      securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'app',
          image,
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        },
      ],
    },
  };
  const res = await dryRunCreate({
    host: env('KUBERNETES_SERVICE_HOST').replace(/^\[|\]$/g, ''),
    port: Number(env('KUBERNETES_SERVICE_PORT', '443')),
    token: readFileSync(`${saDir}/token`, 'utf8').trim(),
    ca: readFileSync(`${saDir}/ca.crt`),
    namespace,
    pod,
  });
  for (const w of res.warnings) console.log(`apiserver warning: ${w}`);
  if (res.status !== 201 && res.status !== 200) {
    const message = res.json?.message ?? res.text.slice(0, 500);
    throw new Error(`dry-run create of a Pod in ${namespace} failed with HTTP ${res.status}: ${message}`);
  }
  const created = res.json;
  // Native sidecars are init containers: look for the template's names in both lists.
  const initContainers = (created?.spec?.initContainers ?? []).map((c) => c.name);
  const containers = [...initContainers, ...(created?.spec?.containers ?? []).map((c) => c.name)];
  const listed = `${initContainers.length > 0 ? `initContainers ${initContainers.join(', ')}; ` : ''}containers ${(created?.spec?.containers ?? []).map((c) => c.name).join(', ')}`;
  const status = created?.metadata?.annotations?.[STATUS_ANNOTATION];
  if (!status) {
    throw new Error(
      `the Pod was admitted without the sidecar (no ${STATUS_ANNOTATION} annotation; ${listed}). ` +
        'Check that netmesh is Ready, its webhook configuration has a caBundle, and the warnings above.',
    );
  }
  const record = JSON.parse(status);
  const injected = [...(record.initContainers ?? []), ...(record.containers ?? [])];
  const missing = [...new Set([...injected, ...expected])].filter((name) => !containers.includes(name));
  if (missing.length > 0) {
    throw new Error(`containers missing from the injected Pod: ${missing.join(', ')} (has ${listed})`);
  }
  console.log(`ok: a Pod created in ${namespace} would be injected; ${listed}`);
}

main().catch((err) => {
  console.error(`netmesh helm test FAILED: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
