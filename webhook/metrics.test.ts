import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createWebhookMetrics } from './metrics.ts';

describe('webhook metrics', () => {
  test('the certificate expiry has no sample until a certificate is loaded (0 would read as expired)', async () => {
    const metrics = createWebhookMetrics();
    const before = await metrics.registry.metrics();
    assert.match(before, /^# TYPE netmesh_webhook_certificate_expiry_timestamp_seconds gauge$/m);
    assert.doesNotMatch(before, /^netmesh_webhook_certificate_expiry_timestamp_seconds /m);
    metrics.certificateExpiry.set(1_900_000_000);
    assert.match(
      await metrics.registry.metrics(),
      /^netmesh_webhook_certificate_expiry_timestamp_seconds 1900000000$/m,
    );
  });

  test('the durations are histograms in seconds, per outcome for requests', async () => {
    const metrics = createWebhookMetrics();
    metrics.requestDuration.observe({ outcome: 'skipped' }, 0.0002);
    metrics.injectionDuration.observe(0.0003);
    const text = await metrics.registry.metrics();
    assert.match(
      text,
      /^netmesh_webhook_request_duration_seconds_bucket\{le="0.00025",outcome="skipped"\} 1$/m,
    );
    assert.match(text, /^netmesh_webhook_injection_duration_seconds_bucket\{le="0.0005"\} 1$/m);
    assert.match(text, /^netmesh_webhook_injection_duration_seconds_bucket\{le="0.00025"\} 0$/m);
  });

  test('two webhooks in one process keep separate registries', async () => {
    const a = createWebhookMetrics();
    const b = createWebhookMetrics();
    a.injections.inc();
    assert.match(await a.registry.metrics(), /^netmesh_webhook_injections_total 1$/m);
    assert.match(await b.registry.metrics(), /^netmesh_webhook_injections_total 0$/m);
  });
});
