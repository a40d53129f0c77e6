// `netmesh explain`: whether and why new Pods will get the sidecar, rule by rule. Live
// (`netmesh explain -n shop deploy/web`, or pod/NAME): the object, its namespace's labels, the
// webhook configuration and the template are read from the cluster. From manifests (-f): the
// same, with the objects from the files (and namespace labels from --namespace-labels, or the
// cluster when there is one). Exit 1 when some Pods will not be injected, as `kubectl auth can-i`
// answers no.
import {
  AdmissionregistrationV1Api,
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  type V1MutatingWebhookConfiguration,
  type V1Pod,
} from '@kubernetes/client-node';
import { UserFacingError } from '../../lib/errors.ts';
import type { ResolvedKubeConfig } from '../../lib/kube.ts';
import { describeKubeError, hasStatus } from '../../lib/kube-errors.ts';
import { DEFAULT_WEBHOOK_NAMESPACE, SYSTEM_NAMESPACES } from '../../webhook/core/contract.ts';
import { isPlainObject } from '../../webhook/core/template.ts';
import { podTemplatePath } from '../../webhook/core/workloads.ts';
import { parseLabelList } from '../../webhook/template-input.ts';
import { connect, kubeFailure } from '../cluster.ts';
import { type ExplainInput, type Explanation, explain, renderExplanation } from '../explain-core.ts';
import {
  type FlagSpec,
  manifestFlags,
  namespaceFlag,
  netmeshNamespaceFlag,
  outputFlag,
  parseFlags,
} from '../flags.ts';
import { objectsOf, readManifestSources } from '../manifests.ts';
import { excludedByName } from '../webhook-match.ts';
import { loadTemplate, templateFlags } from './inject.ts';

export const SUMMARY = [
  'Explain whether new Pods will get the sidecar, and why: the namespace labels, which webhooks of the live',
  "MutatingWebhookConfiguration the apiserver calls (rules, selectors, matchConditions), the webhook's own",
  'selection rules, and the template plan. Exit status 1 when a Pod will not be injected.',
  '',
  '  netmesh explain -n shop deploy/web        a workload (deploy, sts, ds, rs, job, cronjob) or pod/NAME, live',
  '  netmesh explain -f pod.yaml [-f dir/]     manifests; labels from --namespace-labels or the cluster',
].join('\n');

export const flags = {
  ...manifestFlags,
  namespace: {
    type: 'string',
    short: 'n',
    description: "the Pods' namespace (default: metadata.namespace, then the context's, then default)",
  },
  'namespace-labels': {
    type: 'string',
    description: 'k=v,... labels of that namespace, instead of reading them from the cluster',
  },
  release: {
    type: 'string',
    description: 'Helm release of netmesh: its webhook configuration is <release>, or <release>-netmesh',
    env: 'NETMESH_RELEASE',
    default: 'netmesh',
  },
  'webhook-config-name': {
    type: 'string',
    description: 'MutatingWebhookConfiguration to evaluate (default: from --release)',
    env: 'NETMESH_WEBHOOK_CONFIG_NAME',
  },
  ...templateFlags,
  // No default: when not given, the live webhook configuration says where netmesh is installed.
  'netmesh-namespace': {
    ...netmeshNamespaceFlag['netmesh-namespace'],
    default: undefined,
    description: `${netmeshNamespaceFlag['netmesh-namespace'].description}; default: read from the webhook configuration, else ${DEFAULT_WEBHOOK_NAMESPACE}`,
  },
  ...outputFlag,
} satisfies Record<string, FlagSpec>;

/** The chart's names: fullname is the release, or <release>-netmesh (charts/netmesh/templates/_helpers.tpl). */
export function chartFullname(release: string): string {
  return release.includes('netmesh') ? release : `${release}-netmesh`;
}

type Reader = (
  core: CoreV1Api,
  apps: AppsV1Api,
  batch: BatchV1Api,
  namespace: string,
  name: string,
) => Promise<unknown>;

const RESOURCES: Readonly<Record<string, { kind: string; read: Reader }>> = {};
const register = (names: string[], kind: string, read: Reader): void => {
  for (const n of names) (RESOURCES as Record<string, { kind: string; read: Reader }>)[n] = { kind, read };
};
register(['pod', 'pods', 'po'], 'Pod', (c, _a, _b, namespace, name) =>
  c.readNamespacedPod({ namespace, name }),
);
register(
  ['deployment', 'deployments', 'deploy', 'deployment.apps'],
  'Deployment',
  (_c, a, _b, namespace, name) => a.readNamespacedDeployment({ namespace, name }),
);
register(
  ['statefulset', 'statefulsets', 'sts', 'statefulset.apps'],
  'StatefulSet',
  (_c, a, _b, namespace, name) => a.readNamespacedStatefulSet({ namespace, name }),
);
register(['daemonset', 'daemonsets', 'ds', 'daemonset.apps'], 'DaemonSet', (_c, a, _b, namespace, name) =>
  a.readNamespacedDaemonSet({ namespace, name }),
);
register(['replicaset', 'replicasets', 'rs', 'replicaset.apps'], 'ReplicaSet', (_c, a, _b, namespace, name) =>
  a.readNamespacedReplicaSet({ namespace, name }),
);
register(['job', 'jobs', 'job.batch'], 'Job', (_c, _a, b, namespace, name) =>
  b.readNamespacedJob({ namespace, name }),
);
register(['cronjob', 'cronjobs', 'cj', 'cronjob.batch'], 'CronJob', (_c, _a, b, namespace, name) =>
  b.readNamespacedCronJob({ namespace, name }),
);

/** `deploy/web`, or `deploy web` as kubectl also accepts. */
export function parseResourceArgs(args: readonly string[]): { resource: string; name: string } {
  const [first, second] = args;
  if (args.length === 1 && first?.includes('/')) {
    const [resource, name] = [first.slice(0, first.indexOf('/')), first.slice(first.indexOf('/') + 1)];
    if (resource && name) return { resource: resource.toLowerCase(), name };
  }
  if (args.length === 2 && first && second && !first.includes('/'))
    return { resource: first.toLowerCase(), name: second };
  throw new UserFacingError(
    `expected one object as TYPE/NAME, got "${args.join(' ')}"`,
    'e.g. netmesh explain -n shop deploy/web (or pod/NAME, sts/NAME, ds/NAME, job/NAME, cronjob/NAME)',
  );
}

/**
 * The namespace netmesh is installed in, as its webhook configuration tells: Helm's release
 * annotation, else the Service it calls, else the one namespace it excludes besides the system ones.
 */
export function installedNamespace(config: V1MutatingWebhookConfiguration): string | undefined {
  const helm = config.metadata?.annotations?.['meta.helm.sh/release-namespace'];
  if (helm) return helm;
  const service = config.webhooks?.[0]?.clientConfig.service?.namespace;
  if (service) return service;
  const own = excludedByName(config).filter((n) => !SYSTEM_NAMESPACES.includes(n));
  return own.length === 1 ? own[0] : undefined;
}

function getAt(root: unknown, path: readonly string[]): unknown {
  let node = root;
  for (const key of path) node = isPlainObject(node) ? node[key] : undefined;
  return node;
}

interface Target {
  kind: string;
  name: string;
  namespace: string;
  source: string;
  pod: V1Pod;
}

function targetOf(object: Record<string, unknown>, namespace: string, source: string): Target | undefined {
  const path = podTemplatePath(object);
  if (path === undefined) return undefined;
  const pod = path.length === 0 ? object : getAt(object, path);
  if (!isPlainObject(pod)) return undefined;
  const meta = getAt(object, ['metadata']);
  const name = isPlainObject(meta)
    ? String(meta['name'] ?? (meta['generateName'] ? `${String(meta['generateName'])}*` : '<unnamed>'))
    : '<unnamed>';
  return { kind: String(object['kind']), name, namespace, source, pod: pod as V1Pod };
}

type ExplainFlags = ReturnType<typeof parseFlags<typeof flags>>['values'];

export async function run(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseFlags('explain', SUMMARY, argv, flags, {
    positionals: '[TYPE/NAME]',
  });
  if (help) return 0;
  const live = positionals.length > 0;
  if (live && values.filename.length > 0) {
    throw new UserFacingError('give either TYPE/NAME (live) or -f manifests, not both');
  }
  if (!live && values.filename.length === 0) {
    throw new UserFacingError('nothing to explain', 'pass TYPE/NAME (e.g. deploy/web) or -f <file|dir|->');
  }
  const cluster = connectIfPossible(values, live);
  const targets = live ? [await liveTarget(values, positionals, cluster!)] : manifestTargets(values, cluster);
  const warnings: string[] = [];
  const webhookConfiguration = cluster
    ? await readWebhookConfiguration(values, cluster, warnings)
    : undefined;
  const netmeshNamespace =
    (values['netmesh-namespace'] !== undefined
      ? namespaceFlag('netmesh-namespace', values['netmesh-namespace'])
      : undefined) ??
    (webhookConfiguration?.object ? installedNamespace(webhookConfiguration.object) : undefined) ??
    DEFAULT_WEBHOOK_NAMESPACE;
  const template = await templateOrError(values, netmeshNamespace);
  const labels = namespaceLabelsReader(values, cluster);
  const explanations: Explanation[] = [];
  for (const t of targets) {
    const e = explain({
      ...t,
      namespaceLabels: await labels.read(t.namespace),
      webhookConfiguration,
      template,
      webhookNamespace: netmeshNamespace,
    });
    const nsWarning = labels.warnings.get(t.namespace);
    e.warnings.unshift(...warnings, ...(nsWarning ? [nsWarning] : []));
    explanations.push(e);
  }
  const injected = explanations.every((e) => e.injected);
  if (values.output === 'json') console.log(JSON.stringify({ injected, items: explanations }, null, 2));
  else console.log(explanations.map(renderExplanation).join('\n\n'));
  return injected ? 0 : 1;
}

/** The cluster; optional for manifests unless asked for explicitly (then its errors count). */
function connectIfPossible(values: ExplainFlags, live: boolean): ResolvedKubeConfig | undefined {
  const explicitCluster = values.kubeconfig !== undefined || values.context !== undefined;
  try {
    return connect(values);
  } catch (err) {
    if (live || explicitCluster || !(err instanceof UserFacingError)) throw err;
    return undefined;
  }
}

/** TYPE/NAME read from the cluster. */
async function liveTarget(
  values: ExplainFlags,
  positionals: string[],
  cluster: ResolvedKubeConfig,
): Promise<Target> {
  const { resource, name } = parseResourceArgs(positionals);
  const r = RESOURCES[resource];
  if (!r) {
    throw new UserFacingError(
      `cannot explain "${resource}": new Pods come from pods, deployments, statefulsets, daemonsets, replicasets, jobs and cronjobs`,
    );
  }
  const kc = cluster.kc;
  const namespace = values.namespace ?? cluster.namespace ?? 'default';
  const object = await r
    .read(
      kc.makeApiClient(CoreV1Api),
      kc.makeApiClient(AppsV1Api),
      kc.makeApiClient(BatchV1Api),
      namespace,
      name,
    )
    .catch((err: unknown) => {
      if (hasStatus(err, 404))
        throw new UserFacingError(
          `${r.kind} ${namespace}/${name} not found`,
          'check the name and -n/--namespace',
        );
      throw kubeFailure(err, `read ${r.kind} ${namespace}/${name}`);
    });
  const t = targetOf(
    { kind: r.kind, ...(JSON.parse(JSON.stringify(object)) as Record<string, unknown>) },
    namespace,
    'cluster',
  );
  if (!t) throw new UserFacingError(`${r.kind} ${namespace}/${name} has no pod template`);
  return t;
}

/** Every Pod and workload of the -f manifests, with the namespace it would land in. */
function manifestTargets(values: ExplainFlags, cluster: ResolvedKubeConfig | undefined): Target[] {
  const targets: Target[] = [];
  for (const source of readManifestSources(values.filename, values.recursive)) {
    for (const object of objectsOf(source)) {
      const metaNs = getAt(object, ['metadata', 'namespace']);
      const namespace =
        values.namespace ??
        (typeof metaNs === 'string' && metaNs !== '' ? metaNs : (cluster?.namespace ?? 'default'));
      const t = targetOf(object, namespace, source.name);
      if (t) targets.push(t);
    }
  }
  if (targets.length === 0)
    throw new UserFacingError('no Pod or workload with a pod template in the manifests');
  return targets;
}

/** The live configuration (null: none of that name); a failure to read it becomes a warning. */
async function readWebhookConfiguration(
  values: ExplainFlags,
  cluster: ResolvedKubeConfig,
  warnings: string[],
): Promise<ExplainInput['webhookConfiguration']> {
  const configName = values['webhook-config-name'] ?? chartFullname(values.release ?? 'netmesh');
  const admission = cluster.kc.makeApiClient(AdmissionregistrationV1Api);
  return admission.readMutatingWebhookConfiguration({ name: configName }).then(
    (object) => ({ name: configName, object }),
    (err: unknown) => {
      if (hasStatus(err, 404)) return { name: configName, object: null };
      warnings.push(
        `cannot read MutatingWebhookConfiguration ${configName}: ${describeKubeError(err).message}`,
      );
      return undefined;
    },
  );
}

/** The template, or why it could not be loaded (explained, not thrown). */
async function templateOrError(
  values: ExplainFlags,
  netmeshNamespace: string,
): Promise<ExplainInput['template']> {
  try {
    const loaded = await loadTemplate({ ...values, 'netmesh-namespace': netmeshNamespace });
    return loaded ? { template: loaded.template, hash: loaded.hash, where: loaded.where } : undefined;
  } catch (err) {
    if (!(err instanceof UserFacingError)) throw err;
    return { error: err.message };
  }
}

/** Namespace labels: --namespace-labels, else read once per namespace from the cluster. */
function namespaceLabelsReader(
  values: ExplainFlags,
  cluster: ResolvedKubeConfig | undefined,
): { read(ns: string): Promise<Record<string, string> | undefined>; warnings: Map<string, string> } {
  const fixedLabels =
    values['namespace-labels'] !== undefined ? parseLabelList(values['namespace-labels']) : undefined;
  const cache = new Map<string, Record<string, string> | undefined>();
  const warnings = new Map<string, string>();
  const read = async (ns: string): Promise<Record<string, string> | undefined> => {
    if (fixedLabels) return fixedLabels;
    if (!cluster) return undefined;
    if (cache.has(ns)) return cache.get(ns);
    const labels = await cluster.kc
      .makeApiClient(CoreV1Api)
      .readNamespace({ name: ns })
      .then(
        (n) => n.metadata?.labels ?? {},
        (err: unknown) => {
          if (hasStatus(err, 404)) {
            warnings.set(ns, `namespace ${ns} does not exist yet: evaluated with no labels`);
            return {};
          }
          throw kubeFailure(err, `read namespace ${ns}`);
        },
      );
    cache.set(ns, labels);
    return labels;
  };
  return { read, warnings };
}
