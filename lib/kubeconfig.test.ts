import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { buildKubeconfig } from './kubeconfig.ts';

describe('kubeconfig', () => {
  test('client-certificate kubeconfig loads in client-node with embedded data', () => {
    const text = buildKubeconfig({
      server: 'https://127.0.0.1:6443',
      caPem: 'CA-PEM',
      user: { clientCertPem: 'CERT', clientKeyPem: 'KEY' },
    });
    const kc = new KubeConfig();
    kc.loadFromString(text);
    assert.equal(kc.getCurrentCluster()?.server, 'https://127.0.0.1:6443');
    assert.equal(Buffer.from(kc.getCurrentCluster()!.caData!, 'base64').toString(), 'CA-PEM');
    assert.equal(Buffer.from(kc.getCurrentUser()!.certData!, 'base64').toString(), 'CERT');
    assert.equal(Buffer.from(kc.getCurrentUser()!.keyData!, 'base64').toString(), 'KEY');
  });

  test('token kubeconfig with a default namespace', () => {
    const text = buildKubeconfig({
      server: 'https://127.0.0.1:1',
      caPem: 'CA',
      user: { token: 'abc' },
      userName: 'sa',
      namespace: 'netmesh-system',
    });
    const kc = new KubeConfig();
    kc.loadFromString(text);
    assert.equal(kc.getCurrentUser()?.token, 'abc');
    assert.equal(kc.getCurrentUser()?.name, 'sa');
    assert.equal(kc.getContextObject(kc.getCurrentContext())?.namespace, 'netmesh-system');
  });
});
