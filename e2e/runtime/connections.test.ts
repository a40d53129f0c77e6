// client-node opens a new TLS connection for every API call unless its dispatcher is reused
// (lib/kube-connections.ts). Counted on the wire: a loopback TCP proxy in front of the real
// apiserver sees every connection the client opens.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { reuseConnections } from '../../lib/kube-connections.ts';
import { startStallingProxy } from '../faults/tcp-proxy.ts';
import { useCluster } from '../support.ts';

describe('API connections', () => {
  const h = useCluster();

  const count = async (reuse: boolean, requests: number): Promise<number> => {
    const server = new URL(h.kc.getCurrentCluster()!.server);
    const proxy = await startStallingProxy({ host: server.hostname, port: Number(server.port) });
    try {
      const kc = new k8s.KubeConfig();
      kc.loadFromString(h.cluster.kubeconfig.replace(server.origin, `https://127.0.0.1:${proxy.port}`));
      if (reuse) reuseConnections(kc);
      const core = kc.makeApiClient(k8s.CoreV1Api);
      for (let i = 0; i < requests; i++) await core.readNamespace({ name: 'default' });
      // Concurrent calls may open a few connections, never one each.
      await Promise.all(Array.from({ length: 8 }, () => core.readNamespace({ name: 'default' })));
      return proxy.connections();
    } finally {
      await proxy.close();
    }
  };

  test('without reuse, client-node 2.0.1 opens a connection per request', async () => {
    assert.ok((await count(false, 30)) >= 38);
  });

  test('with reuseConnections, sequential requests share one connection and concurrent ones a small pool', async () => {
    const n = await count(true, 30);
    assert.ok(n <= 9, `${n} connections for 38 requests`);
  });
});
