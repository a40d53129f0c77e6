// `npm start` end to end: the demo against the test run's cluster (netmesh installed in-cluster
// from the image built here), asked to exit once it has shown everything (NETMESH_DEMO_EXIT=1),
// and cleaning up after itself on a cluster it did not start.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { requireNode } from './incluster/helpers.ts';
import { eventually, gone, useCluster } from './support.ts';

const demo = join(dirname(fileURLToPath(import.meta.url)), '..', 'cluster', 'demo.ts');

describe('npm start (cluster/demo.ts)', () => {
  const h = useCluster();

  test('netmesh in-cluster, the Network Ready, the course Pod Running 2/2 with its sidecar, then cleans up', {
    timeout: 300_000,
  }, async () => {
    const image = requireNode(h);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NETMESH_DEMO_EXIT: '1',
      NETMESH_E2E_KUBECONFIG: h.cluster.kubeconfigPath,
      NETMESH_E2E_IMAGE: image,
    };
    delete env['NETMESH_SHARED_KUBECONFIG'];
    const child = spawn(process.execPath, [demo], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      out += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      out += c;
    });
    const code = await new Promise<number | null>((r) => child.on('close', r)); // after the pipes are drained
    assert.equal(code, 0, out);
    assert.match(out, /example-network\s+192\.168\.0\.0\/16\s+192\.168\.0\.1\s+True/);
    assert.match(out, /materialised as ConfigMap netmesh-demo\/example-network-cni/);
    assert.match(out, /netmesh Ready in-cluster [\d.]+ s after helm install/);
    assert.match(out, /myapp-pod\s+2\/2\s+Running/);
    assert.match(out, /containers: myapp-container, envoy/);
    assert.match(out, /envoy-standin: read configuration \/etc\/envoy\/envoy\.json/);
    assert.match(out, /Hello Kubernetes!/);
    assert.match(out, /volumes: .*envoy-conf/);
    assert.match(out, /"templateHash":"[0-9a-f]{16}"/);
    await eventually(
      'the demo namespace removed',
      () => gone(() => h.core.readNamespace({ name: 'netmesh-demo' })),
      {
        timeoutMs: 60_000,
      },
    );
    await eventually('the release removed', () =>
      gone(() => h.apps.readNamespacedDeployment({ namespace: 'netmesh-system', name: 'netmesh' })),
    );
  });
});
