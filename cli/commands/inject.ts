// `netmesh inject -f manifest.yaml`: offline injection through the webhook's own planner (like
// `istioctl kube-inject`), for Pods and for workload pod templates. YAML in, YAML out.
import { readFileSync, writeFileSync } from 'node:fs';
import { UserFacingError } from '../../lib/errors.ts';
import { loadKubeConfig } from '../../lib/kube.ts';
import type { LoadedTemplate } from '../../webhook/admission.ts';
import { DEFAULT_WEBHOOK_NAMESPACE, TEMPLATE_CONFIGMAP_NAME } from '../../webhook/core/contract.ts';
import { injectManifests } from '../../webhook/core/workloads.ts';
import { parseLabelList, templateFromCluster, templateFromText } from '../../webhook/template-input.ts';
import { type FlagSpec, parseFlags } from '../flags.ts';

const SUMMARY = [
  'Add the sidecar to the Pods and workload pod templates (Deployment, StatefulSet, DaemonSet, ReplicaSet,',
  'Job, CronJob) of a manifest, exactly as the webhook would, and print the result. Other documents pass',
  'through unchanged. The template comes from --template (a ConfigMap manifest or the bare template), or',
  'from the cluster (--kubeconfig, ConfigMap --template-configmap in --namespace).',
].join('\n');

const flags = {
  filename: { type: 'string', short: 'f', description: 'manifest to inject, or - for stdin' },
  template: {
    type: 'string',
    description: 'sidecar template file (ConfigMap manifest or bare config)',
    env: 'NETMESH_TEMPLATE',
  },
  kubeconfig: {
    type: 'string',
    description: 'read the template from this cluster instead',
    env: 'NETMESH_KUBECONFIG',
  },
  namespace: {
    type: 'string',
    description: 'namespace of the template ConfigMap in the cluster',
    env: 'NETMESH_NAMESPACE',
    default: DEFAULT_WEBHOOK_NAMESPACE,
  },
  'template-configmap': {
    type: 'string',
    description: 'name of the template ConfigMap in the cluster',
    env: 'NETMESH_TEMPLATE_CONFIGMAP',
    default: TEMPLATE_CONFIGMAP_NAME,
  },
  'namespace-labels': {
    type: 'string',
    description: 'k=v,... labels of the target namespace: warn where the webhook would not inject',
  },
  output: { type: 'string', short: 'o', description: 'write the result here instead of stdout' },
  quiet: { type: 'boolean', short: 'q', description: 'do not print the per-document summary on stderr' },
} satisfies Record<string, FlagSpec>;

export function readInput(path: string): string {
  try {
    return path === '-' ? readFileSync(0, 'utf8') : readFileSync(path, 'utf8');
  } catch (err) {
    throw new UserFacingError(`cannot read ${path === '-' ? 'stdin' : path}: ${(err as Error).message}`);
  }
}

export async function loadTemplate(v: {
  template?: string | undefined;
  kubeconfig?: string | undefined;
  namespace?: string | undefined;
  'template-configmap'?: string | undefined;
}): Promise<LoadedTemplate | undefined> {
  if (v.template !== undefined) return templateFromText(readInput(v.template), v.template);
  if (v.kubeconfig !== undefined) {
    return templateFromCluster(
      loadKubeConfig(v.kubeconfig),
      v.namespace ?? DEFAULT_WEBHOOK_NAMESPACE,
      v['template-configmap'] ?? TEMPLATE_CONFIGMAP_NAME,
    );
  }
  return undefined;
}

export async function run(argv: string[]): Promise<number> {
  const { values, help } = parseFlags('inject', SUMMARY, argv, flags);
  if (help) return 0;
  if (values.filename === undefined) {
    throw new UserFacingError('no manifest given', 'pass -f <file> (or -f - for stdin)');
  }
  const input = readInput(values.filename);
  const loaded = await loadTemplate(values);
  if (!loaded) {
    throw new UserFacingError(
      'no sidecar template',
      'pass --template <configmap.yaml>, or --kubeconfig <path> [--namespace <ns>] to read it from the cluster',
    );
  }
  const { output, results } = injectManifests(input, loaded.template, loaded.hash, {
    ...(values['namespace-labels'] !== undefined
      ? { namespaceLabels: parseLabelList(values['namespace-labels']) }
      : {}),
  });
  if (values.output !== undefined) writeFileSync(values.output, output);
  else process.stdout.write(output);
  if (!values.quiet) {
    for (const r of results) {
      const what = `${r.kind || 'document'} ${r.name}`;
      process.stderr.write(`${what}: ${r.decision.action} (${r.decision.reason}): ${r.decision.message}\n`);
      for (const w of r.decision.warnings) process.stderr.write(`  warning: ${w}\n`);
    }
  }
  return 0;
}
