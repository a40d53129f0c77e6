// `netmesh run`: what the chart's Deployment runs. The webhook serves on every replica; the
// Network controller runs only on the replica holding the leader Lease. One health server and
// one metrics registry for both.
import { type Component, runProcess } from '../../runtime/lifecycle.ts';
import { createLogger } from '../../runtime/logger.ts';
import { startWebhook } from '../../webhook/start.ts';
import { DEFAULT_WEBHOOK_CONFIG_NAME } from '../../webhook/webhook-config.ts';
import { RUN_OPERATOR_DETAIL } from '../check-core.ts';
import { clusterLogFields, connect } from '../cluster.ts';
import { parseFlags, refuseWorkloadNamespace } from '../flags.ts';
import { operatorFlags, operatorOptionsFromFlags, parseListen, startProcessOperator } from './common.ts';
import { preflightLease } from './preflight.ts';
import { webhookComponent, webhookFlags, webhookOptionsFromFlags } from './webhook.ts';

export const SUMMARY = [
  'Run netmesh as the chart deploys it: the sidecar-injecting admission webhook on every replica and the',
  'Network controller on the elected leader, sharing one health/metrics port (/healthz, /readyz, /metrics).',
  'Flags are those of `netmesh webhook` and `netmesh operator`.',
].join('\n');

export const flags = { ...webhookFlags, ...operatorFlags };

export async function run(argv: string[]): Promise<number> {
  const { values, help } = parseFlags('run', SUMMARY, argv, flags, {
    refuse: refuseWorkloadNamespace('run'),
  });
  if (help) return 0;
  // Bad flags fail before anything starts.
  const webhookOptions = webhookOptionsFromFlags(values);
  const operatorOptions = operatorOptionsFromFlags(values);
  const log = createLogger('netmesh', { level: values['log-level']! });
  const cluster = connect(values);
  const kc = cluster.kc;
  log.info(clusterLogFields(cluster), 'using cluster');
  if (operatorOptions.leaderElect)
    await preflightLease(kc, operatorOptions.namespace, operatorOptions.leaseName ?? 'netmesh-operator');
  return runProcess(
    { log, kc, health: parseListen(values['health-listen']!), runningMessage: 'netmesh running' },
    async (ctx) => {
      const webhook = await startWebhook({
        ...webhookOptions,
        kubeconfig: kc,
        healthListen: false,
        registry: ctx.registry,
        // One namespaces watch for the webhook's selection and the bootstrap copier.
        informers: ctx.informers,
        logger: log.child({ component: 'webhook' }),
      });
      const components: Component[] = [webhookComponent(webhook)];
      // The bootstrap copies exist for the webhook's sidecars: they go when its configuration
      // goes (helm uninstall), through garbage collection.
      const operator = await startProcessOperator(ctx, kc, operatorOptions, {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'MutatingWebhookConfiguration',
        name: webhookOptions.webhookConfigName ?? DEFAULT_WEBHOOK_CONFIG_NAME,
      }).catch(async (err: unknown) => {
        await webhook.stop().catch(() => {});
        throw err;
      });
      // Every replica serves the webhook, whatever the controller does: the operator's state is
      // shown (/readyz?verbose) but never takes the replica, and with it the webhook, out of the
      // Service. A leader whose caches cannot sync reports why there, in its logs and in an Event.
      components.push({
        name: 'operator',
        ready: () => {
          const r = operator.ready();
          const state = operator.isLeader() ? RUN_OPERATOR_DETAIL.working : RUN_OPERATOR_DETAIL.standby;
          return { ok: true, detail: r === true ? state : r };
        },
        stop: () => operator.stop(),
      });
      return components;
    },
  );
}
