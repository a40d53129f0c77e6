import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { targetMet } from '../lib/area.ts';
import { renderText } from '../lib/table.ts';
import {
  admissionTables,
  admissionTargets,
  apiserverWebhookTiming,
  percentile,
  summarizeAdmission,
  webhookCounters,
} from './report.ts';

const run = (perSecond: number, p50Ms = 10, bare = 0) => ({
  perSecond,
  creates: perSecond * 8,
  p50Ms,
  p99Ms: p50Ms * 3,
  cpuMicrosPerCreate: { apiserver: 1e6 / perSecond, netmesh: 100, bare, client: 50 },
  webhookCallsPerCreate: 1,
  webhookMeanMs: 0.5,
  apiserverWebhookMeanMs: 0.8,
});

describe('admission report', () => {
  it("reads netmesh's admission counters", () => {
    const text = [
      '# TYPE netmesh_webhook_requests_total counter',
      'netmesh_webhook_requests_total{outcome="injected"} 90',
      'netmesh_webhook_requests_total{outcome="skipped"} 10',
      'netmesh_webhook_request_duration_seconds_bucket{le="0.001",outcome="injected"} 80',
      'netmesh_webhook_request_duration_seconds_sum{outcome="injected"} 0.09',
      'netmesh_webhook_request_duration_seconds_sum{outcome="skipped"} 0.01',
      'netmesh_webhook_request_duration_seconds_count{outcome="injected"} 90',
    ].join('\n');
    const c = webhookCounters(text);
    assert.equal(c.requests, 100);
    assert.ok(Math.abs(c.seconds - 0.1) < 1e-12);
  });

  it("reads the apiserver's timing of netmesh's webhooks only", () => {
    const text = [
      'apiserver_admission_webhook_admission_duration_seconds_bucket{name="namespace.netmesh.io",operation="CREATE",rejected="false",type="admit",le="0.005"} 7',
      'apiserver_admission_webhook_admission_duration_seconds_sum{name="namespace.netmesh.io",operation="CREATE",rejected="false",type="admit"} 0.5',
      'apiserver_admission_webhook_admission_duration_seconds_count{name="namespace.netmesh.io",operation="CREATE",rejected="false",type="admit"} 10',
      'apiserver_admission_webhook_admission_duration_seconds_sum{name="other.example.com",operation="CREATE",rejected="false",type="admit"} 9',
      'apiserver_admission_webhook_admission_duration_seconds_count{name="other.example.com",operation="CREATE",rejected="false",type="admit"} 9',
    ].join('\n');
    assert.deepEqual(apiserverWebhookTiming(text), { calls: 10, seconds: 0.5 });
  });

  it('percentile is nearest-rank over unsorted samples', () => {
    assert.equal(percentile([5, 1, 3, 2, 4], 0.5), 3);
    assert.equal(percentile([5, 1, 3, 2, 4], 0.99), 5);
    assert.equal(percentile([7], 0.5), 7);
    assert.ok(Number.isNaN(percentile([], 0.5)));
  });

  it('cost is 1 minus the median per-round ratio, against a 20% limit', () => {
    const s = summarizeAdmission({
      name: "course's Pod",
      runs: {
        webhook: [run(90), run(80), run(170)],
        bare: [run(95), run(90), run(180)],
        none: [run(100), run(100), run(200)],
      },
    });
    assert.equal(s.ratio, 0.85);
    assert.ok(Math.abs(s.cost - 0.15) < 1e-9);
    assert.equal(s.webhookPerSecond, 90);
    // Per round, bare / none: 0.95, 0.9, 0.9; netmesh / bare: 0.947, 0.889, 0.944.
    assert.ok(Math.abs(s.bareCost - 0.1) < 1e-9);
    assert.ok(Math.abs(s.webhookOverBare - 170 / 180) < 1e-9);
    assert.equal(s.barePerSecond, 95);
    const [t] = admissionTargets([s]);
    assert.ok(Math.abs(t!.measured - 15) < 1e-9);
    assert.equal(targetMet(t!), true);
    const slow = summarizeAdmission({
      name: 'x',
      runs: { webhook: [run(70)], bare: [run(75)], none: [run(100)] },
    });
    assert.equal(targetMet(admissionTargets([slow])[0]!), false);
  });

  it('renders a row per Pod', () => {
    const s = summarizeAdmission({
      name: 'Deployment Pod',
      runs: { webhook: [run(50, 12)], bare: [run(80, 11, 40)], none: [run(100, 10)] },
    });
    const text = renderText(admissionTables({ concurrency: 16, seconds: 8, rounds: 1, bodies: [] }, [s])[0]!);
    assert.match(text, /Deployment Pod\s+50\s+80\s+100\s+50%\s+20%\s+0\.63\s+12\.0 \/ 11\.0 \/ 10\.0 ms/);
    const cpu = renderText(admissionTables({ concurrency: 16, seconds: 8, rounds: 1, bodies: [] }, [s])[1]!);
    assert.match(cpu, /Deployment Pod\s+20000 \/ 12500 \/ 10000\s+100 \/ 40\s+50 \/ 50 \/ 50/);
  });
});
