// `netmesh inject -f manifest.yaml`: offline injection through the webhook's own planner (like
// `istioctl kube-inject`), for Pods and for workload pod templates. Several -f, directories,
// stdin; `kind: List` as kubectl prints it; JSON in, JSON out.
import { writeFileSync } from 'node:fs';
import { parseAllDocuments, parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { UserFacingError } from '../../lib/errors.ts';
import type { KubeConfigRequest } from '../../lib/kube.ts';
import type { LoadedTemplate } from '../../webhook/admission.ts';
import { DEFAULT_WEBHOOK_NAMESPACE, TEMPLATE_CONFIGMAP_NAME } from '../../webhook/core/contract.ts';
import type { SidecarTemplate } from '../../webhook/core/template.ts';
import {
  type InjectManifestsOptions,
  injectManifests,
  type ManifestResult,
} from '../../webhook/core/workloads.ts';
import { parseLabelList, templateFromCluster, templateFromText } from '../../webhook/template-input.ts';
import { connect, kubeFailure } from '../cluster.ts';
import {
  type FlagSpec,
  kubeFlags,
  manifestFlags,
  namespaceFlag,
  netmeshNamespaceFlag,
  parseFlags,
} from '../flags.ts';
import { isList, jsonIndent, type ManifestSource, parseJson, readManifestSources } from '../manifests.ts';

export const SUMMARY = [
  'Add the sidecar to the Pods and workload pod templates (Deployment, StatefulSet, DaemonSet, ReplicaSet,',
  'Job, CronJob) of manifests, exactly as the webhook would, and print the result. Other documents pass',
  'through unchanged; `kind: List` (kubectl get -o yaml|json) is injected item by item; JSON input gives',
  'JSON output. The template comes from --template (a ConfigMap manifest or the bare template), or from',
  'the cluster (ConfigMap --template-configmap in --netmesh-namespace; kubeconfig as kubectl finds it).',
].join('\n');

/** The template source flags of inject and explain. */
export const templateFlags = {
  template: {
    type: 'string',
    description:
      'sidecar template file (ConfigMap manifest or bare config); default: read it from the cluster',
    env: 'NETMESH_TEMPLATE',
    complete: 'file',
  },
  ...netmeshNamespaceFlag,
  'template-configmap': {
    type: 'string',
    description: 'name of the template ConfigMap in the cluster',
    env: 'NETMESH_TEMPLATE_CONFIGMAP',
    default: TEMPLATE_CONFIGMAP_NAME,
  },
  ...kubeFlags,
} satisfies Record<string, FlagSpec>;

export const flags = {
  ...manifestFlags,
  namespace: {
    type: 'string',
    short: 'n',
    description:
      "the workloads' namespace, for documents without metadata.namespace (default: the context's, else default)",
  },
  'namespace-labels': {
    type: 'string',
    description: 'k=v,... labels of the target namespace: warn where the webhook would not inject',
  },
  ...templateFlags,
  output: {
    type: 'string',
    short: 'o',
    description: "output format (default: the input's own: JSON when every input is JSON, else YAML)",
    values: ['yaml', 'json'],
    hint: 'to write the result to a file, use --output-file',
  },
  'output-file': {
    type: 'string',
    description: 'write the result to this file instead of stdout',
    complete: 'file',
  },
  quiet: { type: 'boolean', short: 'q', description: 'do not print the per-document summary on stderr' },
} satisfies Record<string, FlagSpec>;

type TemplateValues = {
  template?: string | undefined;
  kubeconfig?: string | undefined;
  context?: string | undefined;
  'netmesh-namespace'?: string | undefined;
  'template-configmap'?: string | undefined;
};

/**
 * The template from --template, else from the cluster. Returns undefined when there is no
 * template file and no cluster configuration to be found (the caller says what to pass).
 */
export async function loadTemplate(
  v: TemplateValues,
): Promise<(LoadedTemplate & { where: string; namespace?: string | undefined }) | undefined> {
  if (v.template !== undefined) {
    const [source] = readManifestSources([v.template]);
    return { ...templateFromText(source!.text, v.template), where: v.template };
  }
  const req: KubeConfigRequest = { kubeconfig: v.kubeconfig, context: v.context };
  let cluster: ReturnType<typeof connect>;
  try {
    cluster = connect(req);
  } catch (err) {
    // No cluster configuration at all: not an error of its own, there is just no template.
    if (err instanceof UserFacingError && v.kubeconfig === undefined && v.context === undefined)
      return undefined;
    throw err;
  }
  const ns = namespaceFlag('netmesh-namespace', v['netmesh-namespace'] ?? DEFAULT_WEBHOOK_NAMESPACE);
  const name = v['template-configmap'] ?? TEMPLATE_CONFIGMAP_NAME;
  const loaded = await templateFromCluster(cluster.kc, ns, name).catch((err: unknown) => {
    if (err instanceof UserFacingError && /not found/.test(err.message)) {
      throw new UserFacingError(
        err.message,
        'pass --template <file>, or --netmesh-namespace where netmesh is installed',
      );
    }
    if (err instanceof UserFacingError) throw err;
    throw kubeFailure(err, `read ConfigMap ${ns}/${name}`);
  });
  return { ...loaded, where: `ConfigMap ${ns}/${name}`, namespace: cluster.namespace };
}

export interface SourceResult extends ManifestResult {
  source: string;
}

/** One object (a List: each item), through the webhook's planner. */
function injectObject(
  object: unknown,
  template: SidecarTemplate,
  hash: string,
  options: InjectManifestsOptions,
  results: ManifestResult[],
): unknown {
  if (isList(object)) {
    return {
      ...object,
      items: object.items.map((item) => injectObject(item, template, hash, options, results)),
    };
  }
  // JSON is YAML: the planner reads it as a one-document stream.
  const r = injectManifests(JSON.stringify(object), template, hash, options);
  results.push(...r.results);
  return r.results[0]?.decision.action === 'injected' ? parseYaml(r.output) : object;
}

/** The injected text of one source, in its own format, and the injected objects. */
function injectSource(
  source: ManifestSource,
  template: SidecarTemplate,
  hash: string,
  options: InjectManifestsOptions,
): { text: string; objects: unknown[]; results: ManifestResult[] } {
  const results: ManifestResult[] = [];
  if (source.format === 'json') {
    const object = injectObject(parseJson(source), template, hash, options, results);
    return { text: `${JSON.stringify(object, null, jsonIndent(source.text))}\n`, objects: [object], results };
  }
  const docs = parseAllDocuments(source.text);
  const hasList = Array.isArray(docs) && docs.some((d) => d.errors.length === 0 && isList(d.toJS()));
  if (!hasList) {
    // The common case: edited in place, comments and layout kept (webhook/core/workloads.ts).
    const r = injectManifests(source.text, template, hash, options);
    return { text: r.output, objects: parseAllDocuments(r.output).map((d) => d.toJS()), results: r.results };
  }
  const chunks: string[] = [];
  const objects: unknown[] = [];
  for (const doc of docs) {
    const o: unknown = doc.toJS();
    if (o === null || o === undefined) continue;
    if (isList(o)) {
      const injected = injectObject(o, template, hash, options, results);
      objects.push(injected);
      chunks.push(stringifyYaml(injected));
    } else {
      const r = injectManifests(doc.toString(), template, hash, options);
      results.push(...r.results);
      objects.push(parseYaml(r.output));
      chunks.push(r.output);
    }
  }
  return { text: joinYaml(chunks), objects, results };
}

function joinYaml(chunks: readonly string[]): string {
  return chunks
    .map((c, i) => {
      const text = c.endsWith('\n') ? c : `${c}\n`;
      return i === 0 || text.startsWith('---') ? text : `---\n${text}`;
    })
    .join('');
}

/**
 * Injects every source. The output format is `format`, else the input's: all JSON in, JSON out;
 * otherwise a YAML stream, JSON sources converted. JSON output is one object as it was, or
 * several wrapped in a v1 List, as kubectl prints several objects.
 */
export function injectSources(
  sources: readonly ManifestSource[],
  template: SidecarTemplate,
  hash: string,
  options: InjectManifestsOptions = {},
  format?: OutputFormat,
): { output: string; results: SourceResult[] } {
  const done = sources.map((s) => ({ source: s, ...injectSource(s, template, hash, options) }));
  const results = done.flatMap((d) => d.results.map((r) => ({ ...r, source: d.source.name })));
  if ((format ?? (done.every((d) => d.source.format === 'json') ? 'json' : 'yaml')) === 'json') {
    // Indented as the first JSON input was, else as kubectl prints.
    const firstJson = done.find((d) => d.source.format === 'json');
    const indent = firstJson ? jsonIndent(firstJson.source.text) : 2;
    if (done.length === 1 && firstJson) return { output: done[0]!.text, results };
    // Empty YAML documents (a trailing ---, comments only) are no objects.
    const objects = done.flatMap((d) => d.objects.filter((o) => o !== null && o !== undefined));
    if (objects.length === 1) return { output: `${JSON.stringify(objects[0], null, indent)}\n`, results };
    const items = objects.flatMap((o) => (isList(o) ? o.items : [o]));
    const list = { apiVersion: 'v1', kind: 'List', items, metadata: {} };
    return { output: `${JSON.stringify(list, null, indent)}\n`, results };
  }
  const chunks = done.map((d) =>
    d.source.format === 'json' ? d.objects.map((o) => stringifyYaml(o)).join('---\n') : d.text,
  );
  return { output: joinYaml(chunks.filter((c) => c.trim() !== '')), results };
}

export type OutputFormat = 'yaml' | 'json';

function outputFormat(value: string | undefined): OutputFormat | undefined {
  return value === 'yaml' || value === 'json' ? value : undefined;
}

export async function run(argv: string[]): Promise<number> {
  const { values, help } = parseFlags('inject', SUMMARY, argv, flags);
  if (help) return 0;
  const netmeshNamespace = namespaceFlag('netmesh-namespace', values['netmesh-namespace']);
  const sources = readManifestSources(values.filename, values.recursive);
  const loaded = await loadTemplate(values);
  if (!loaded) {
    throw new UserFacingError(
      'no sidecar template',
      'pass --template <configmap.yaml>, or a cluster (--kubeconfig/--context, KUBECONFIG or ~/.kube/config) to read it from',
    );
  }
  const namespace =
    values.namespace !== undefined ? namespaceFlag('namespace', values.namespace) : loaded.namespace;
  const { output, results } = injectSources(
    sources,
    loaded.template,
    loaded.hash,
    {
      ...(values['namespace-labels'] !== undefined
        ? { namespaceLabels: parseLabelList(values['namespace-labels']) }
        : {}),
      ...(namespace ? { namespace } : {}),
      webhookNamespace: netmeshNamespace,
    },
    outputFormat(values.output),
  );
  if (values['output-file'] !== undefined) writeFileSync(values['output-file'], output);
  else process.stdout.write(output);
  if (!values.quiet) {
    const prefix = sources.length > 1;
    for (const r of results) {
      const what = `${prefix ? `${r.source}: ` : ''}${r.kind || 'document'} ${r.name}`;
      process.stderr.write(`${what}: ${r.decision.action} (${r.decision.reason}): ${r.decision.message}\n`);
      for (const w of r.decision.warnings) process.stderr.write(`  warning: ${w}\n`);
    }
  }
  return 0;
}
