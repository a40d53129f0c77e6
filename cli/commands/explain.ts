// `netmesh explain -f pod.yaml`: whether and why the webhook would inject a Pod (or a
// workload's pod template), rule by rule, and what it would add.
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { UserFacingError } from '../../lib/errors.ts';
import { loadKubeConfig } from '../../lib/kube.ts';
import { DEFAULT_WEBHOOK_NAMESPACE, TEMPLATE_CONFIGMAP_NAME } from '../../webhook/core/contract.ts';
import { isPlainObject } from '../../webhook/core/template.ts';
import { explainPod, podTemplatePath } from '../../webhook/core/workloads.ts';
import { parseLabelList } from '../../webhook/template-input.ts';
import { type FlagSpec, parseFlags } from '../flags.ts';
import { loadTemplate, readInput } from './inject.ts';

const SUMMARY = [
  'Explain what the webhook would do with each Pod (or workload pod template) of a manifest: which selection',
  'rule decides, and with a template, what would be added. Namespace labels come from --namespace-labels,',
  'or from the cluster with --kubeconfig (which also supplies the template unless --template is given).',
].join('\n');

const flags = {
  filename: { type: 'string', short: 'f', description: 'manifest to explain, or - for stdin' },
  namespace: {
    type: 'string',
    description: "the Pods' namespace (default: metadata.namespace, else default)",
  },
  'namespace-labels': { type: 'string', description: 'k=v,... labels of that namespace' },
  template: {
    type: 'string',
    description: 'sidecar template file (ConfigMap manifest or bare config)',
    env: 'NETMESH_TEMPLATE',
  },
  kubeconfig: {
    type: 'string',
    description: 'read namespace labels and the template from this cluster',
    env: 'NETMESH_KUBECONFIG',
  },
  'template-namespace': {
    type: 'string',
    description: 'namespace of the template ConfigMap in the cluster',
    env: 'NETMESH_TEMPLATE_NAMESPACE',
    default: DEFAULT_WEBHOOK_NAMESPACE,
  },
  'template-configmap': {
    type: 'string',
    description: 'name of the template ConfigMap in the cluster',
    env: 'NETMESH_TEMPLATE_CONFIGMAP',
    default: TEMPLATE_CONFIGMAP_NAME,
  },
  'webhook-namespace': {
    type: 'string',
    description: "the webhook's own namespace (never injected)",
    env: 'NETMESH_NAMESPACE',
    default: DEFAULT_WEBHOOK_NAMESPACE,
  },
} satisfies Record<string, FlagSpec>;

function getAt(root: unknown, path: readonly string[]): unknown {
  let node = root;
  for (const key of path) node = isPlainObject(node) ? node[key] : undefined;
  return node;
}

export async function run(argv: string[]): Promise<number> {
  const { values, help } = parseFlags('explain', SUMMARY, argv, flags);
  if (help) return 0;
  if (values.filename === undefined)
    throw new UserFacingError('no manifest given', 'pass -f <file> (or -f - for stdin)');
  const docs = parseAllDocuments(readInput(values.filename));
  const objects: Record<string, unknown>[] = [];
  for (const [i, doc] of (Array.isArray(docs) ? docs : []).entries()) {
    if (doc.errors[0]) {
      throw new UserFacingError(
        `document ${i + 1} is not valid YAML: ${doc.errors[0].message.split('\n')[0]}`,
      );
    }
    const o: unknown = doc.toJS();
    if (isPlainObject(o)) objects.push(o);
  }
  const loaded = await loadTemplate({
    template: values.template,
    kubeconfig: values.kubeconfig,
    namespace: values['template-namespace'],
    'template-configmap': values['template-configmap'],
  }).catch((err: unknown) => {
    // Without a cluster template, selection can still be explained.
    if (values.template === undefined && err instanceof UserFacingError) {
      console.error(`netmesh: ${err.oneLine()} (explaining selection only)`);
      return undefined;
    }
    throw err;
  });
  const fixedLabels =
    values['namespace-labels'] !== undefined ? parseLabelList(values['namespace-labels']) : undefined;
  const core =
    values.kubeconfig !== undefined ? loadKubeConfig(values.kubeconfig).makeApiClient(CoreV1Api) : undefined;
  const labelsCache = new Map<string, Record<string, string>>();
  const labelsFor = async (ns: string): Promise<Record<string, string>> => {
    if (fixedLabels) return fixedLabels;
    if (!core) return {};
    const cached = labelsCache.get(ns);
    if (cached) return cached;
    const labels = await core.readNamespace({ name: ns }).then(
      (n) => n.metadata?.labels ?? {},
      (err: { code?: number; message?: string }) => {
        if (err.code === 404) return {};
        throw new UserFacingError(`cannot read namespace ${ns}: ${err.message}`);
      },
    );
    labelsCache.set(ns, labels);
    return labels;
  };

  const blocks: string[] = [];
  for (const object of objects) {
    const path = podTemplatePath(object);
    if (path === undefined) continue;
    const pod = path.length === 0 ? object : getAt(object, path);
    if (!isPlainObject(pod)) continue;
    const metaNs = getAt(object, ['metadata', 'namespace']);
    const ns = values.namespace ?? (typeof metaNs === 'string' && metaNs !== '' ? metaNs : 'default');
    const text = explainPod(pod as V1Pod, ns, await labelsFor(ns), loaded?.template, {
      webhookNamespace: values['webhook-namespace'] ?? DEFAULT_WEBHOOK_NAMESPACE,
      ...(loaded ? { templateHash: loaded.hash } : {}),
    });
    const kind = String(object['kind']);
    blocks.push(
      kind === 'Pod'
        ? text
        : `${kind} ${String(getAt(object, ['metadata', 'name']) ?? '<unnamed>')}, pod template:\n${text}`,
    );
  }
  if (blocks.length === 0) {
    throw new UserFacingError('no Pod or workload with a pod template in the manifest');
  }
  console.log(blocks.join('\n\n'));
  return 0;
}
