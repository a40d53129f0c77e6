// `netmesh demo` (what `npm start` runs): bring up the local control plane, or use
// NETMESH_E2E_KUBECONFIG, and keep it running until Ctrl-C.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { acquireCluster } from '../../e2e/cluster.ts';
import { parseFlags } from '../flags.ts';

const SUMMARY =
  'Bring up a local Kubernetes control plane (or use NETMESH_E2E_KUBECONFIG) and keep it running until Ctrl-C.';

export async function run(argv: string[]): Promise<number> {
  const { help } = parseFlags('demo', SUMMARY, argv, {});
  if (help) return 0;
  const stateDir = join(process.cwd(), '.netmesh');
  mkdirSync(stateDir, { recursive: true });
  const kubeconfigOut = join(stateDir, 'kubeconfig');
  const step = (s: string): void => console.log(`==> ${s}`);
  step('starting the Kubernetes control plane');
  const cluster = await acquireCluster({ kubeconfigOut, log: (s) => console.log(`    ${s}`) });
  const kubeconfig = cluster.kind === 'local' ? kubeconfigOut : cluster.kubeconfigPath;
  step(`${cluster.description} is up`);
  console.log(`\n    kubectl --kubeconfig ${kubeconfig} get --raw /version`);
  console.log(`    kubectl --kubeconfig ${kubeconfig} get namespaces\n`);
  console.log('Press Ctrl-C to stop and clean up.');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  step('stopping');
  await cluster.stop();
  return 0;
}
