// `netmesh operator`: the Network controller alone.
import { runProcess } from '../../runtime/lifecycle.ts';
import { createLogger } from '../../runtime/logger.ts';
import { clusterLogFields, connect } from '../cluster.ts';
import { parseFlags, refuseWorkloadNamespace } from '../flags.ts';
import { operatorFlags, operatorOptionsFromFlags, parseListen, startProcessOperator } from './common.ts';
import { preflightLease } from './preflight.ts';

export const SUMMARY =
  'Run the Network controller: reconciles netmesh.io/v1 Networks into CNI network definitions (a Multus NetworkAttachmentDefinition, or a ConfigMap <name>-cni holding a conflist), with leader election between replicas.';

export const flags = operatorFlags;

export async function run(argv: string[]): Promise<number> {
  const { values, help } = parseFlags('operator', SUMMARY, argv, operatorFlags, {
    refuse: refuseWorkloadNamespace('operator'),
  });
  if (help) return 0;
  const options = operatorOptionsFromFlags(values); // bad flags fail before anything starts
  const log = createLogger('netmesh', { level: values['log-level']! });
  const cluster = connect(values);
  log.info(clusterLogFields(cluster), 'using cluster');
  if (options.leaderElect)
    await preflightLease(cluster.kc, options.namespace, options.leaseName ?? 'netmesh-operator');
  return runProcess(
    {
      log,
      kc: cluster.kc,
      health: parseListen(values['health-listen']!),
      runningMessage: 'netmesh operator running',
    },
    async (ctx) => {
      const operator = await startProcessOperator(ctx, cluster.kc, options);
      return [{ name: 'operator', ready: () => operator.ready(), stop: () => operator.stop() }];
    },
  );
}
