import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BOOTSTRAP_COPY_LABEL, bootstrapCopy } from './bootstrap.ts';
import { FIELD_MANAGER, MANAGED_BY_LABEL } from './model.ts';

describe('bootstrapCopy', () => {
  test('copies the data under netmesh labels into the target namespace, nothing else', () => {
    const source = {
      metadata: {
        name: 'envoy',
        namespace: 'netmesh-system',
        labels: { 'app.kubernetes.io/managed-by': 'Helm' },
        resourceVersion: '7',
        uid: 'u',
      },
      data: { 'envoy.yaml': 'admin: {}' },
    };
    const copy = bootstrapCopy(source, 'my-app');
    assert.deepEqual(copy, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'envoy',
        namespace: 'my-app',
        labels: { [MANAGED_BY_LABEL]: FIELD_MANAGER, [BOOTSTRAP_COPY_LABEL]: 'true' },
        annotations: { 'netmesh.io/copied-from': 'netmesh-system/envoy' },
      },
      data: { 'envoy.yaml': 'admin: {}' },
    });
    copy.data!['envoy.yaml'] = 'changed';
    assert.equal(source.data['envoy.yaml'], 'admin: {}', 'the source is not aliased');
  });
});
