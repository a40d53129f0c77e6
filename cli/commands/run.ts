// `netmesh run`: what the chart's Deployment runs. The webhook serves on every replica; the
// Network controller runs only on the replica holding the leader Lease. One health server and
// one metrics registry for both.
import { Registry } from 'prom-client';
import { startOperator } from '../../operator/main.ts';
import { startHealthServer } from '../../runtime/health-server.ts';
import { createLogger } from '../../runtime/logger.ts';
import { startWebhook } from '../../webhook/start.ts';
import { DEFAULT_WEBHOOK_CONFIG_NAME } from '../../webhook/webhook-config.ts';
import { clusterLogFields, connect } from '../cluster.ts';
import { parseFlags } from '../flags.ts';
import { operatorFlags, operatorOptionsFromFlags, parseListen, serveUntilSignal } from './common.ts';
import { preflightLease } from './preflight.ts';
import { webhookFlags, webhookOptionsFromFlags } from './webhook.ts';

export const SUMMARY = [
  'Run netmesh as the chart deploys it: the sidecar-injecting admission webhook on every replica and the',
  'Network controller on the elected leader, sharing one health/metrics port (/healthz, /readyz, /metrics).',
  'Flags are those of `netmesh webhook` and `netmesh operator`.',
].join('\n');

export const flags = { ...webhookFlags, ...operatorFlags };

export async function run(argv: string[]): Promise<number> {
  const { values, help } = parseFlags('run', SUMMARY, argv, flags);
  if (help) return 0;
  // Bad flags fail before anything starts.
  const webhookOptions = webhookOptionsFromFlags(values);
  const operatorOptions = operatorOptionsFromFlags(values);
  const log = createLogger('netmesh', { level: values['log-level']! });
  const cluster = connect(values);
  const kc = cluster.kc;
  log.info(clusterLogFields(cluster), 'using cluster');
  if (operatorOptions.leaderElect) {
    await preflightLease(kc, operatorOptions.namespace, operatorOptions.leaseName ?? 'netmesh-operator');
  }
  const registry = new Registry();
  const health = await startHealthServer({ ...parseListen(values['health-listen']!), registry, log });
  let started = false;
  health.addReadinessCheck('startup', () => started || 'starting');
  let exitCode = 0;
  let webhook: Awaited<ReturnType<typeof startWebhook>> | undefined;
  let operator: Awaited<ReturnType<typeof startOperator>>;
  try {
    webhook = await startWebhook({
      ...webhookOptions,
      kubeconfig: kc,
      healthListen: false,
      registry,
      logger: log.child({ component: 'webhook' }),
    });
    const w = webhook;
    health.addReadinessCheck('webhook', () => {
      const r = w.readiness();
      return { ok: r.ok, detail: r.message.replace(/\n/g, '; ') };
    });
    operator = await startOperator({
      ...operatorOptions,
      // The bootstrap copies exist for the webhook's sidecars: they go when its configuration
      // goes (helm uninstall), through garbage collection.
      envoyBootstrapOwner: {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'MutatingWebhookConfiguration',
        name: webhookOptions.webhookConfigName ?? DEFAULT_WEBHOOK_CONFIG_NAME,
      },
      kc,
      log,
      registry,
      onLostLeadership: () => {
        exitCode = 1;
        process.kill(process.pid, 'SIGTERM');
      },
    });
  } catch (err) {
    // Do not linger half-started with a health port that says ready.
    await webhook?.stop().catch(() => {});
    await health.close();
    throw err;
  }
  // Every replica serves the webhook, whatever the controller does: the operator's state is
  // shown (/readyz?verbose) but never takes the replica, and with it the webhook, out of the
  // Service. A leader whose caches cannot sync reports why there, in its logs and in an Event.
  health.addReadinessCheck('operator', () => {
    const r = operator.ready();
    return { ok: true, detail: r === true ? (operator.isLeader() ? 'leader, working' : 'standby') : r };
  });
  started = true;
  log.info({ identity: operator.identity, webhook: webhook.url, health: health.port }, 'netmesh running');
  await serveUntilSignal(log, async () => {
    // Both at once: the operator finishes its in-flight reconciles and releases the lease (so
    // the standby takes over at once) while the webhook turns unready and keeps serving through
    // its shutdown delay, so no admission request is dropped during a rollout.
    await Promise.all([operator.stop(), webhook?.stop()]);
    await health.close();
  });
  return exitCode;
}
