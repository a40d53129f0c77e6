import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FIELD_MANAGER, MANAGED_BY_LABEL } from '../lib/ownership.ts';
import { bootstrapCopy, copyUpToDate, isOurCopy } from './bootstrap-copier.ts';
import { BOOTSTRAP_COPY_LABEL } from './core/contract.ts';

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
const owner = {
  apiVersion: 'admissionregistration.k8s.io/v1' as const,
  kind: 'MutatingWebhookConfiguration' as const,
  name: 'netmesh',
  uid: 'mwc-1',
};

describe('bootstrapCopy', () => {
  test('copies the data under netmesh labels into the target namespace, nothing else', () => {
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

  test('with an owner: an owner reference without blockOwnerDeletion', () => {
    assert.deepEqual(bootstrapCopy(source, 'my-app', owner).metadata?.ownerReferences, [
      { apiVersion: owner.apiVersion, kind: owner.kind, name: 'netmesh', uid: 'mwc-1' },
    ]);
  });
});

describe('isOurCopy: the ownership mark of a copy', () => {
  const copy = bootstrapCopy(source, 'my-app');
  test('our label and the annotation naming this source', () => {
    assert.equal(isOurCopy(copy, 'netmesh-system/envoy'), true);
  });
  test("a copy of another installation's source is not ours", () => {
    assert.equal(isOurCopy(copy, 'other-system/envoy'), false);
  });
  test("Helm's or a user's ConfigMap of that name is not ours, whatever else it carries", () => {
    assert.equal(
      isOurCopy({ metadata: { name: 'envoy', labels: source.metadata.labels } }, 'netmesh-system/envoy'),
      false,
    );
    assert.equal(
      isOurCopy(
        { metadata: { name: 'envoy', labels: { [BOOTSTRAP_COPY_LABEL]: 'true' } } },
        'netmesh-system/envoy',
      ),
      false,
      'the label alone is not enough',
    );
  });
});

describe('copyUpToDate', () => {
  const desired = bootstrapCopy(source, 'my-app', owner);
  test('same data and owner: nothing to write', () => {
    assert.equal(copyUpToDate(structuredClone(desired), desired), true);
  });
  test('changed or extra data, a missing or stale owner: rewrite', () => {
    assert.equal(copyUpToDate({ ...desired, data: { 'envoy.yaml': 'x' } }, desired), false);
    assert.equal(copyUpToDate({ ...desired, data: { ...desired.data, extra: 'y' } }, desired), false);
    assert.equal(
      copyUpToDate({ ...desired, metadata: { ...desired.metadata, ownerReferences: [] } }, desired),
      false,
    );
    const stale = {
      ...desired,
      metadata: { ...desired.metadata, ownerReferences: [{ ...owner, uid: 'old' }] },
    };
    assert.equal(copyUpToDate(stale, desired), false);
  });
});
