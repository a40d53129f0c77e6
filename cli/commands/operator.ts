// `netmesh operator`: the Network controller alone.
import { Registry } from 'prom-client';
import { startOperator } from '../../operator/main.ts';
import { startHealthServer } from '../../runtime/health-server.ts';
import { createLogger } from '../../runtime/logger.ts';
import { clusterLogFields, connect } from '../cluster.ts';
import { parseFlags } from '../flags.ts';
import { operatorFlags, operatorOptionsFromFlags, parseListen, serveUntilSignal } from './common.ts';
import { preflightLease } from './preflight.ts';

export const SUMMARY =
  'Run the Network controller: reconciles netmesh.io/v1 Networks into CNI network definitions (a Multus NetworkAttachmentDefinition, or a ConfigMap <name>-cni holding a conflist), with leader election between replicas.';

export const flags = operatorFlags;

export async function run(argv: string[]): Promise<number> {
  const { values, help } = parseFlags('operator', SUMMARY, argv, operatorFlags);
  if (help) return 0;
  const options = operatorOptionsFromFlags(values); // bad flags fail before anything starts
  const log = createLogger('netmesh', { level: values['log-level']! });
  const cluster = connect(values);
  const kc = cluster.kc;
  log.info(clusterLogFields(cluster), 'using cluster');
  if (options.leaderElect)
    await preflightLease(kc, options.namespace, options.leaseName ?? 'netmesh-operator');
  const registry = new Registry();
  const health = await startHealthServer({ ...parseListen(values['health-listen']!), registry, log });
  let exitCode = 0;
  const operator = await startOperator({
    ...options,
    kc,
    log,
    registry,
    onLostLeadership: () => {
      exitCode = 1;
      process.kill(process.pid, 'SIGTERM');
    },
  }).catch(async (err: unknown) => {
    await health.close();
    throw err;
  });
  health.addReadinessCheck('operator', () => operator.ready());
  log.info({ identity: operator.identity, health: health.port }, 'netmesh operator running');
  await serveUntilSignal(log, async () => {
    await operator.stop();
    await health.close();
  });
  return exitCode;
}
