// `npm start` end to end: the demo against the test run's cluster, asked to exit once it has
// shown everything (NETMESH_DEMO_EXIT=1), and cleaning up after itself on a cluster it did not
// start.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { eventually, gone, useCluster } from './support.ts';

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'netmesh.js');

describe('npm start (netmesh demo)', () => {
  const h = useCluster();

  test('shows the Network Ready, its CNI object and the injected course Pod, then cleans up', {
    timeout: 180_000,
  }, async () => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NETMESH_DEMO_EXIT: '1',
      NETMESH_E2E_KUBECONFIG: h.cluster.kubeconfigPath,
    };
    delete env['NETMESH_SHARED_KUBECONFIG'];
    const child = spawn(process.execPath, [bin, 'demo'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      out += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      out += c;
    });
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    assert.equal(code, 0, out);
    assert.match(out, /example-network\s+192\.168\.0\.0\/16\s+192\.168\.0\.1\s+True/);
    assert.match(out, /materialised as ConfigMap netmesh-demo\/example-network-cni/);
    assert.match(out, /containers: myapp-container, envoy/);
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
