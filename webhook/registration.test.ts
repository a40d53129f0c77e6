// Which existing configurations a local run (--register-url) may update: only its own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import { LOCAL_REGISTRATION_LABELS, registrationConflict } from './registration.ts';

const config = (
  labels: Record<string, string> | undefined,
  annotations?: Record<string, string>,
): V1MutatingWebhookConfiguration => ({
  metadata: { name: 'netmesh', ...(labels ? { labels } : {}), ...(annotations ? { annotations } : {}) },
  webhooks: [],
});

test('none, or an earlier local registration: free to apply', () => {
  assert.equal(registrationConflict(undefined), undefined);
  assert.equal(registrationConflict(config({ ...LOCAL_REGISTRATION_LABELS, team: 'a' })), undefined);
});

test("the chart's configuration is refused, naming the release", () => {
  const message = registrationConflict(
    config(
      { 'app.kubernetes.io/managed-by': 'Helm', 'app.kubernetes.io/name': 'netmesh' },
      { 'meta.helm.sh/release-name': 'netmesh', 'meta.helm.sh/release-namespace': 'netmesh-system' },
    ),
  );
  assert.match(
    message ?? '',
    /MutatingWebhookConfiguration netmesh belongs to Helm release netmesh in namespace netmesh-system/,
  );
  assert.match(message ?? '', /delete it on exit/);
  assert.match(
    registrationConflict(config({ 'app.kubernetes.io/managed-by': 'Helm' })) ?? '',
    /managed by Helm/,
  );
});

test("Helm's label wins over ours: a release's configuration is never taken over", () => {
  assert.match(
    registrationConflict(config({ 'app.kubernetes.io/managed-by': 'Helm', ...LOCAL_REGISTRATION_LABELS })) ??
      '',
    /managed by Helm/,
  );
});

test('any other unlabelled configuration is refused', () => {
  assert.match(registrationConflict(config(undefined)) ?? '', /not registered by a local netmesh webhook/);
  assert.match(
    registrationConflict(config({ 'app.kubernetes.io/name': 'netmesh' })) ?? '',
    /no label netmesh\.io\/registered-by=netmesh-webhook/,
  );
});
