/**
 * Offline injection for `netmesh inject -f` (like `istioctl kube-inject`) and the
 * human-readable explanation behind `netmesh explain`-style output.
 *
 * It goes through the same planner as the webhook, on the Pod itself or on a workload's pod
 * template, so an offline-injected manifest is byte-for-byte what the webhook would have
 * added, status annotation included; applying it later is a no-op for the webhook
 * (AlreadyInjected).
 *
 * Documents are edited in place in the YAML tree so comments and formatting outside the
 * injected parts survive; the edited text is re-parsed and compared with the result of
 * fast-json-patch's applyPatch, and if they disagree (anchors, aliases, odd layouts) the
 * document is re-serialised from that result instead.
 */
import { isDeepStrictEqual } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node';
import type { Operation } from 'fast-json-patch';
import jsonpatch from 'fast-json-patch';
import type { Document } from 'yaml';
import { isCollection, parseAllDocuments, parseDocument } from 'yaml';
import { UserFacingError } from '../../lib/errors.ts';
import { DEFAULT_WEBHOOK_NAMESPACE, POD_INJECT_LABEL, STATUS_ANNOTATION } from './contract.ts';
import { planInjection, summarizeStatus } from './inject.ts';
import { decideSelection, podLabels } from './selection.ts';
import { hashTemplate, isPlainObject, type SidecarTemplate } from './template.ts';

export type ManifestAction = 'injected' | 'skipped' | 'unchanged';

export interface ManifestDecision {
  action: ManifestAction;
  /** 'Injected', a selection or plan skip reason, 'UnsupportedKind' or 'InvalidManifest'. */
  reason: string;
  message: string;
  warnings: string[];
}

export interface ManifestResult {
  kind: string;
  name: string;
  decision: ManifestDecision;
}

export interface InjectManifestsOptions {
  /** When given, each result also warns if the webhook itself would not have selected the pod. */
  namespaceLabels?: Record<string, string>;
  /** Namespace assumed for documents without metadata.namespace (default "default"). */
  namespace?: string;
  webhookNamespace?: string;
}

interface PodTemplateLocation {
  groups: readonly string[];
  path: readonly string[];
}

/** Where each supported kind keeps its Pod (an empty path: the document is the Pod). */
export const POD_TEMPLATE_LOCATIONS: Readonly<Record<string, PodTemplateLocation>> = {
  Pod: { groups: [''], path: [] },
  Deployment: { groups: ['apps', 'extensions'], path: ['spec', 'template'] },
  StatefulSet: { groups: ['apps'], path: ['spec', 'template'] },
  DaemonSet: { groups: ['apps', 'extensions'], path: ['spec', 'template'] },
  ReplicaSet: { groups: ['apps', 'extensions'], path: ['spec', 'template'] },
  Job: { groups: ['batch'], path: ['spec', 'template'] },
  CronJob: { groups: ['batch'], path: ['spec', 'jobTemplate', 'spec', 'template'] },
};

function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash === -1 ? '' : apiVersion.slice(0, slash);
}

/**
 * The pod template path for a document, or undefined when the kind is not one we inject.
 * The API group is checked too: CRDs reuse kind names (e.g. a `Job` in another group) with
 * different shapes.
 */
export function podTemplatePath(manifest: Record<string, unknown>): readonly string[] | undefined {
  const kind = manifest['kind'];
  if (typeof kind !== 'string' || !Object.hasOwn(POD_TEMPLATE_LOCATIONS, kind)) return undefined;
  const location = POD_TEMPLATE_LOCATIONS[kind]!;
  const apiVersion = manifest['apiVersion'];
  if (typeof apiVersion === 'string' && !location.groups.includes(groupOf(apiVersion))) return undefined;
  return location.path;
}

function getAt(root: unknown, path: readonly string[]): unknown {
  let node = root;
  for (const key of path) {
    if (!isPlainObject(node)) return undefined;
    node = node[key];
  }
  return node;
}

function setAt(
  root: Record<string, unknown>,
  path: readonly string[],
  value: unknown,
): Record<string, unknown> {
  if (path.length === 0) return value as Record<string, unknown>;
  let node = root;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string, unknown>;
  node[path[path.length - 1]!] = value;
  return root;
}

function metadataOf(object: unknown): Record<string, unknown> {
  const metadata = isPlainObject(object) ? object['metadata'] : undefined;
  return isPlainObject(metadata) ? metadata : {};
}

export function displayName(object: unknown): string {
  const metadata = metadataOf(object);
  if (typeof metadata['name'] === 'string' && metadata['name'] !== '') return metadata['name'];
  if (typeof metadata['generateName'] === 'string' && metadata['generateName'] !== '') {
    return `${metadata['generateName']}*`;
  }
  return '<unnamed>';
}

/**
 * Turns the collections on the way to an edit into block style: inside a flow collection
 * (`metadata: {name: p}`) everything is printed in flow style, and a whole sidecar
 * definition squeezed into braces is unreadable. Untouched flow collections stay as written.
 */
function blockStyle(doc: Document, path: readonly string[]): void {
  for (let depth = 0; depth <= path.length; depth++) {
    const node = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth), true);
    if (isCollection(node)) node.flow = false;
  }
}

/** Applies our add-only patch to the YAML tree so untouched parts keep comments and layout. */
function editDocument(doc: Document, base: readonly string[], patch: readonly Operation[]): void {
  for (const op of patch) {
    if (op.op !== 'add') throw new Error(`unexpected ${op.op} operation`);
    const segments = op.path.split('/').slice(1).map(jsonpatch.unescapePathComponent);
    const path = [...base, ...segments];
    const parent = path.slice(0, -1);
    blockStyle(doc, parent);
    // The planner only adds to parents that exist, so neither call has to create one.
    if (segments[segments.length - 1] === '-') doc.addIn(parent, doc.createNode(op.value));
    else doc.setIn(path, doc.createNode(op.value));
  }
}

function render(doc: Document): string {
  return doc.toString({ flowCollectionPadding: false });
}

function updateDocument(doc: Document, base: readonly string[], patch: Operation[], expected: unknown) {
  try {
    editDocument(doc, base, patch);
    if (isDeepStrictEqual(parseDocument(render(doc)).toJS(), expected)) return;
  } catch {
    // Fall through: re-serialise from the patched object, which is known to be right.
  }
  doc.contents = doc.createNode(expected) as Document['contents'];
}

function decide(
  action: ManifestAction,
  reason: string,
  message: string,
  warnings: string[] = [],
): ManifestDecision {
  return { action, reason, message, warnings };
}

function injectDocument(
  doc: Document,
  manifest: Record<string, unknown>,
  template: SidecarTemplate,
  hash: string,
  options: InjectManifestsOptions,
): ManifestDecision {
  const kind = String(manifest['kind'] ?? '');
  const path = podTemplatePath(manifest);
  if (path === undefined) {
    if (kind === 'List') {
      return decide(
        'unchanged',
        'UnsupportedKind',
        'List documents are passed through; split them to inject their items',
      );
    }
    return decide(
      'unchanged',
      'UnsupportedKind',
      `${kind === '' ? 'document without a kind' : `kind ${kind}`} has no pod template; passed through unchanged`,
    );
  }
  const pod = getAt(manifest, path);
  if (!isPlainObject(pod)) {
    return decide('skipped', 'InvalidManifest', `${kind} has no ${path.join('.')}; passed through unchanged`);
  }

  // The user asked for this manifest explicitly: only an explicit opt-out, or a pod the
  // sidecar cannot work in, stops offline injection.
  if (podLabels(pod as V1Pod)[POD_INJECT_LABEL] === 'false') {
    return decide('skipped', 'PodOptOut', `pod template has label ${POD_INJECT_LABEL}=false`);
  }
  if (isPlainObject(pod['spec']) && pod['spec']['hostNetwork'] === true) {
    return decide(
      'skipped',
      'HostNetwork',
      'pod uses spec.hostNetwork: true; a sidecar would bind ports on the node',
    );
  }

  const plan = planInjection(pod as V1Pod, template, { templateHash: hash });
  if (plan.action === 'skip') return decide('skipped', plan.reason, plan.message, plan.warnings);

  const warnings = [...plan.warnings];
  if (options.namespaceLabels !== undefined) {
    const namespace = metadataOf(manifest)['namespace'];
    const webhook = decideSelection({
      pod: pod as V1Pod,
      namespace:
        typeof namespace === 'string' && namespace !== '' ? namespace : (options.namespace ?? 'default'),
      namespaceLabels: options.namespaceLabels,
      webhookNamespace: options.webhookNamespace ?? DEFAULT_WEBHOOK_NAMESPACE,
    });
    if (!webhook.inject) {
      warnings.push(
        `the webhook would not inject this pod (${webhook.reason}: ${webhook.message}); injected because it was requested`,
      );
    }
  }

  const injected = jsonpatch.applyPatch(jsonpatch.deepClone(pod), plan.patch, true, true).newDocument;
  const expected = setAt(structuredClone(manifest), path, injected);
  updateDocument(doc, path, plan.patch, expected);
  return decide('injected', 'Injected', `added ${summarizeStatus(plan.status)}`, warnings);
}

/**
 * Injects every Pod and workload pod template of a multi-document YAML stream. Other
 * documents are passed through. Throws UserFacingError when the input is not valid YAML.
 */
export function injectManifests(
  yamlText: string,
  template: SidecarTemplate,
  hash: string,
  options: InjectManifestsOptions = {},
): { output: string; results: ManifestResult[] } {
  const docs = parseAllDocuments(yamlText);
  if (!Array.isArray(docs)) {
    throw new UserFacingError('manifest is not a YAML document stream', 'check the file content');
  }
  docs.forEach((doc, i) => {
    const error = doc.errors[0];
    if (error) {
      throw new UserFacingError(
        `manifest document ${i + 1} is not valid YAML: ${error.message.split('\n')[0]}`,
        'fix the YAML and retry',
      );
    }
  });

  const results: ManifestResult[] = [];
  const chunks: string[] = [];
  docs.forEach((doc, i) => {
    // The source is tiled into one chunk per document (the first also takes any leading
    // comments), so documents we do not change are reproduced byte for byte.
    const original = yamlText.slice(i === 0 ? 0 : doc.range[0], docs[i + 1]?.range[0] ?? yamlText.length);
    const manifest: unknown = doc.toJS();
    if (manifest === null || manifest === undefined) {
      chunks.push(original);
      return;
    }
    if (!isPlainObject(manifest)) {
      results.push({
        kind: '',
        name: '<unnamed>',
        decision: decide(
          'unchanged',
          'UnsupportedKind',
          'document is not a mapping; passed through unchanged',
        ),
      });
      chunks.push(original);
      return;
    }
    const decision = injectDocument(doc, manifest, template, hash, options);
    results.push({ kind: String(manifest['kind'] ?? ''), name: displayName(manifest), decision });
    if (decision.action !== 'injected') {
      chunks.push(original);
      return;
    }
    const text = render(doc);
    chunks.push(i === 0 || text.startsWith('---') || text.startsWith('%') ? text : `---\n${text}`);
  });
  const output = chunks.join('');
  return { output, results };
}

export interface ExplainOptions {
  webhookNamespace?: string;
  /** Defaults to the hash of the given template. */
  templateHash?: string;
}

/** Whether and why the webhook would inject this Pod: selection first, then the plan. */
export function explainPod(
  pod: V1Pod,
  namespace: string,
  namespaceLabels: Record<string, string>,
  template?: SidecarTemplate,
  options: ExplainOptions = {},
): string {
  const lines = [`Pod ${namespace}/${displayName(pod)}`];
  const selection = decideSelection({
    pod,
    namespace,
    namespaceLabels,
    webhookNamespace: options.webhookNamespace ?? DEFAULT_WEBHOOK_NAMESPACE,
  });
  lines.push(`  selected: ${selection.inject ? 'yes' : 'no'} (${selection.reason}): ${selection.message}`);
  if (!selection.inject) {
    lines.push('  result: not injected');
    return lines.join('\n');
  }
  if (template === undefined) {
    lines.push('  plan: not evaluated (no template given)');
    lines.push('  result: would be injected if the template adds anything');
    return lines.join('\n');
  }
  const templateHash = options.templateHash ?? hashTemplate(template);
  const plan = planInjection(pod, template, { templateHash });
  if (plan.action === 'skip') {
    lines.push(`  plan: skip (${plan.reason}): ${plan.message}`);
  } else {
    lines.push(
      `  plan: add ${summarizeStatus(plan.status)} and annotation ${STATUS_ANNOTATION} (template ${templateHash}), ${plan.patch.length} patch operation(s)`,
    );
  }
  for (const warning of plan.warnings) lines.push(`  warning: ${warning}`);
  lines.push(`  result: ${plan.action === 'inject' ? 'injected' : 'not injected'}`);
  return lines.join('\n');
}
