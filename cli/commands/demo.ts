// `netmesh demo` (what `npm start` runs): see e2e/demo.ts. Lives with the test harness because
// it drives the same local control plane, chart install and host process as the e2e suites.
import { parseFlags } from '../flags.ts';

const SUMMARY = [
  'Bring up a local Kubernetes control plane (or use NETMESH_E2E_KUBECONFIG), helm install the chart, run',
  'netmesh on this host under the chart identity, apply the example Network, create the course Pod in a',
  'labelled namespace, print what happened, and keep running until Ctrl-C.',
].join('\n');

export async function run(argv: string[]): Promise<number> {
  const { help } = parseFlags('demo', SUMMARY, argv, {});
  if (help) return 0;
  const { runDemo } = await import('../../e2e/demo.ts');
  await runDemo();
  return 0;
}
