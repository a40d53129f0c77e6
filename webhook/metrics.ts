/**
 * The webhook's Prometheus metrics, in their own Registry so several webhooks in one process
 * (tests, `netmesh run`) do not collide and the caller decides what to expose.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface WebhookMetrics {
  registry: Registry;
  requests: Counter<'outcome'>;
  requestDuration: Histogram<'outcome'>;
  injectionDuration: Histogram;
  injections: Counter;
  skips: Counter<'reason'>;
  templateReloads: Counter;
  templateErrors: Counter;
  templateStale: Gauge;
  certificateExpiry: Gauge;
}

/** From a small Pod answered from memory (a tenth of a millisecond) to the apiserver's 10 s timeout. */
const DURATION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export function createWebhookMetrics(registry: Registry = new Registry()): WebhookMetrics {
  const certificateExpiry = new Gauge({
    name: 'netmesh_webhook_certificate_expiry_timestamp_seconds',
    help: 'Expiry (Unix time) of the serving certificate in use; absent until one is loaded.',
    registers: [registry],
  });
  // prom-client starts an unlabelled gauge at 0, which reads as "expired in 1970" and would fire
  // every expiry alert while the webhook starts: no sample until a certificate is known.
  certificateExpiry.remove();
  return {
    registry,
    requests: new Counter({
      name: 'netmesh_webhook_requests_total',
      help: 'Admission requests by outcome (injected, skipped, not_pod, error, invalid_request).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: 'netmesh_webhook_request_duration_seconds',
      help: 'Time to answer an admission request, by outcome: from its headers to the answer handed to the connection, reading and parsing the body included.',
      labelNames: ['outcome'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    injectionDuration: new Histogram({
      name: 'netmesh_webhook_injection_duration_seconds',
      help: 'Time to answer an admission request that injected the sidecar: from its headers to the answer handed to the connection, reading and parsing the body included.',
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    injections: new Counter({
      name: 'netmesh_webhook_injections_total',
      help: 'Pods the sidecar was added to.',
      registers: [registry],
    }),
    skips: new Counter({
      name: 'netmesh_webhook_skips_total',
      help: 'Pods admitted without the sidecar, by reason.',
      labelNames: ['reason'],
      registers: [registry],
    }),
    templateReloads: new Counter({
      name: 'netmesh_webhook_template_reloads_total',
      help: 'Sidecar templates loaded from the ConfigMap (first load and every change).',
      registers: [registry],
    }),
    templateErrors: new Counter({
      name: 'netmesh_webhook_template_errors_total',
      help: 'ConfigMap versions rejected as invalid templates (the last good one stays in force).',
      registers: [registry],
    }),
    templateStale: new Gauge({
      name: 'netmesh_webhook_template_stale',
      help: '1 while the ConfigMap holds an invalid template and the last good one is in force.',
      registers: [registry],
    }),
    certificateExpiry,
  };
}
