// `netmesh version`: version, commit, and the Node and Kubernetes client it runs on.
import { buildInfo } from '../../lib/build-info.ts';
import { type FlagSpec, outputFlag, parseFlags } from '../flags.ts';

export const SUMMARY =
  'Print the netmesh version, the commit it was built from, and its Node and Kubernetes client versions.';

export const flags = {
  ...outputFlag,
} satisfies Record<string, FlagSpec>;

export async function run(argv: string[]): Promise<number> {
  const { values, help } = parseFlags('version', SUMMARY, argv, flags);
  if (help) return 0;
  const info = buildInfo();
  if (values.output === 'json') console.log(JSON.stringify(info));
  else
    console.log(
      `netmesh ${info.version} (commit ${info.commit}, node ${info.node}, @kubernetes/client-node ${info.kubernetesClient})`,
    );
  return 0;
}
