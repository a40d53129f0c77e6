/**
 * admission.k8s.io/v1 AdmissionReview in and out, as pure functions: validating the review,
 * deciding for one Pod (selection, then the injection plan) and shaping the response. The
 * HTTP shell (server.ts) only adds the namespace's labels and the current template.
 *
 * Every path answers `allowed: true`: the webhook adds a sidecar or does nothing, it never
 * rejects a Pod. Anything unexpected, including a bug here, admits the Pod unchanged with a
 * warning rather than failing the user's request.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { planEncodedInjection } from './core/inject.ts';
import { decideSelection } from './core/selection.ts';
import type { SidecarTemplate } from './core/template.ts';
import { isPlainObject } from './core/template.ts';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';
export const ADMISSION_KIND = 'AdmissionReview';
/** The apiserver truncates longer warnings; we cut them ourselves so the end is visible. */
export const MAX_WARNING_LENGTH = 256;
export const WARNING_PREFIX = 'netmesh: ';

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

export interface AdmissionRequest {
  uid: string;
  kind?: GroupVersionKind;
  resource?: { group: string; version: string; resource: string };
  subResource?: string;
  name?: string;
  namespace?: string;
  operation?: string;
  object?: unknown;
  dryRun?: boolean;
  [key: string]: unknown;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
  status?: { code?: number; message?: string };
}

export interface AdmissionReviewOut {
  apiVersion: string;
  kind: string;
  response: AdmissionResponse;
}

export type ParsedReview =
  | { ok: true; apiVersion: string; kind: string; request: AdmissionRequest }
  | { ok: false; reason: string };

type FieldType = 'string' | 'boolean' | 'object' | 'gvk' | 'gvr' | 'userInfo';

/**
 * The types admission.k8s.io/v1 AdmissionRequest gives its fields. The apiserver never sends
 * anything else; a body that does is not an AdmissionReview, and answering it as one (a
 * `String([...])` operation in a log line, a number for a name) would only hide the caller's
 * bug. This is what decoding into the Go struct does in controller-runtime (a 400), checked by
 * hand because the handler reads the body with one JSON.parse and no schema library on the
 * admission path. null stands for an absent field, as in Go; unknown fields are ignored.
 */
const REQUEST_FIELDS: Record<string, FieldType> = {
  kind: 'gvk',
  resource: 'gvr',
  subResource: 'string',
  requestKind: 'gvk',
  requestResource: 'gvr',
  requestSubResource: 'string',
  name: 'string',
  namespace: 'string',
  operation: 'string',
  userInfo: 'userInfo',
  object: 'object',
  oldObject: 'object',
  dryRun: 'boolean',
  options: 'object',
};

function typeName(value: unknown): string {
  return Array.isArray(value) ? 'an array' : value === null ? 'null' : `a ${typeof value}`;
}

function wrongStrings(
  value: Record<string, unknown>,
  keys: readonly string[],
  path: string,
): string | undefined {
  for (const key of keys) {
    const v = value[key];
    if (v !== undefined && v !== null && typeof v !== 'string') {
      return `${path}.${key} must be a string, got ${typeName(v)}`;
    }
  }
  return undefined;
}

function wrongFieldType(request: Record<string, unknown>): string | undefined {
  for (const [field, type] of Object.entries(REQUEST_FIELDS)) {
    const value = request[field];
    if (value === undefined || value === null) continue;
    const path = `request.${field}`;
    if (type === 'string' || type === 'boolean') {
      if (typeof value !== type) return `${path} must be a ${type}, got ${typeName(value)}`;
      continue;
    }
    if (!isPlainObject(value)) return `${path} must be an object, got ${typeName(value)}`;
    const inner =
      type === 'gvk'
        ? wrongStrings(value, ['group', 'version', 'kind'], path)
        : type === 'gvr'
          ? wrongStrings(value, ['group', 'version', 'resource'], path)
          : type === 'userInfo'
            ? wrongUserInfo(value, path)
            : undefined;
    if (inner !== undefined) return inner;
  }
  return undefined;
}

function wrongUserInfo(info: Record<string, unknown>, path: string): string | undefined {
  const strings = wrongStrings(info, ['username', 'uid'], path);
  if (strings !== undefined) return strings;
  const groups = info['groups'];
  if (groups !== undefined && groups !== null) {
    if (!Array.isArray(groups) || groups.some((g) => typeof g !== 'string')) {
      return `${path}.groups must be a list of strings`;
    }
  }
  const extra = info['extra'];
  if (extra !== undefined && extra !== null) {
    const lists = isPlainObject(extra) ? Object.values(extra) : undefined;
    if (
      lists === undefined ||
      lists.some((l) => l !== null && (!Array.isArray(l) || l.some((v) => typeof v !== 'string')))
    ) {
      return `${path}.extra must map names to lists of strings`;
    }
  }
  return undefined;
}

/** Checks the parts we rely on and the types of the rest; unknown fields are passed along untouched. */
export function parseAdmissionReview(body: unknown): ParsedReview {
  if (!isPlainObject(body)) return { ok: false, reason: 'body is not a JSON object' };
  if (body['kind'] !== ADMISSION_KIND) {
    return {
      ok: false,
      reason: `kind must be ${ADMISSION_KIND}, got ${JSON.stringify(body['kind'] ?? null)}`,
    };
  }
  if (body['apiVersion'] !== ADMISSION_API_VERSION) {
    return {
      ok: false,
      reason: `apiVersion must be ${ADMISSION_API_VERSION}, got ${JSON.stringify(body['apiVersion'] ?? null)}`,
    };
  }
  const request = body['request'];
  if (!isPlainObject(request)) return { ok: false, reason: 'AdmissionReview has no request' };
  const uid = request['uid'];
  if (uid === undefined || uid === null || uid === '') {
    return { ok: false, reason: 'AdmissionReview request has no uid' };
  }
  if (typeof uid !== 'string')
    return { ok: false, reason: `request.uid must be a string, got ${typeName(uid)}` };
  const wrong = wrongFieldType(request);
  if (wrong !== undefined) return { ok: false, reason: wrong };
  return {
    ok: true,
    apiVersion: ADMISSION_API_VERSION,
    kind: ADMISSION_KIND,
    request: request as AdmissionRequest,
  };
}

/** Parses the raw body; one-line reasons for a 400. */
export function parseReviewBody(raw: Buffer | string | undefined): ParsedReview {
  const text = raw === undefined ? '' : typeof raw === 'string' ? raw : raw.toString('utf8');
  if (text.trim() === '') return { ok: false, reason: 'empty body: expected an AdmissionReview' };
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `body is not valid JSON: ${(err as Error).message.split('\n')[0]}` };
  }
  return parseAdmissionReview(body);
}

export function isPodCreate(request: AdmissionRequest): boolean {
  const kind = request.kind;
  return (
    isPlainObject(kind) &&
    kind.group === '' &&
    kind.version === 'v1' &&
    kind.kind === 'Pod' &&
    (request.subResource === undefined || request.subResource === '')
  );
}

export type AdmissionOutcome = 'injected' | 'skipped' | 'not_pod' | 'error';

export interface LoadedTemplate {
  template: SidecarTemplate;
  hash: string;
}

export interface AdmitContext {
  template: LoadedTemplate | undefined;
  /** A message when the template in force is stale (the ConfigMap's current content is broken). */
  templateStale?: string | undefined;
  namespaceLabels: Record<string, string> | undefined;
  /** Set when the namespace's labels could not be read; selection then sees no labels. */
  namespaceLabelsError?: string | undefined;
  webhookNamespace: string;
}

export interface AdmitResult {
  response: AdmissionResponse;
  outcome: AdmissionOutcome;
  /** Selection or plan reason, 'Injected', 'NoTemplate', 'NotAPod', 'NotCreate', 'InternalError'. */
  reason: string;
  message: string;
  /** For the log line: the Pod's name, or its generateName followed by '*'. */
  podName: string;
  namespace: string;
}

export function formatWarning(text: string): string {
  const line = `${WARNING_PREFIX}${text}`.replace(/[\r\n\t]+/g, ' ');
  return line.length <= MAX_WARNING_LENGTH ? line : `${line.slice(0, MAX_WARNING_LENGTH - 3)}...`;
}

export function podDisplayName(object: unknown, requestName?: string): string {
  const metadata = isPlainObject(object) && isPlainObject(object['metadata']) ? object['metadata'] : {};
  if (typeof metadata['name'] === 'string' && metadata['name'] !== '') return metadata['name'];
  if (typeof requestName === 'string' && requestName !== '') return requestName;
  if (typeof metadata['generateName'] === 'string' && metadata['generateName'] !== '') {
    return `${metadata['generateName']}*`;
  }
  return '<unnamed>';
}

function allowed(
  request: AdmissionRequest,
  outcome: AdmissionOutcome,
  reason: string,
  message: string,
  warnings: string[],
): AdmitResult {
  const response: AdmissionResponse = { uid: request.uid, allowed: true };
  if (warnings.length > 0) response.warnings = warnings.map(formatWarning);
  return {
    response,
    outcome,
    reason,
    message,
    podName: podDisplayName(request.object, request.name),
    namespace: typeof request.namespace === 'string' ? request.namespace : '',
  };
}

/** Skips nobody needs to hear about: the pod reached us again after we injected it. */
const QUIET_SKIPS = new Set(['AlreadyInjected']);

/** The decision for one admission request. Never throws. */
export function admit(request: AdmissionRequest, ctx: AdmitContext): AdmitResult {
  try {
    return admitUnsafe(request, ctx);
  } catch (err) {
    const message = `internal error, pod admitted without the sidecar: ${(err as Error)?.message ?? String(err)}`;
    return allowed(request, 'error', 'InternalError', message, [message]);
  }
}

/**
 * The steps of one decision, top to bottom: is this a Pod being created, is it selected, is a
 * template in force, and what patch does that template make of it. Each step either answers
 * (returns the AdmitResult) or hands on to the next.
 */
function admitUnsafe(request: AdmissionRequest, ctx: AdmitContext): AdmitResult {
  const notForUs = rejectNonPodCreate(request);
  if (notForUs !== undefined) return notForUs;
  const pod = request.object;
  if (!isPlainObject(pod)) {
    const message = 'request has no Pod object; admitted unchanged';
    return allowed(request, 'skipped', 'InvalidPod', message, [message]);
  }
  const namespace = requestNamespace(request, pod);
  const warnings: string[] = [];
  if (ctx.namespaceLabelsError !== undefined) {
    warnings.push(
      `could not read the labels of namespace ${JSON.stringify(namespace)} (${ctx.namespaceLabelsError}); decided on the pod's own labels`,
    );
  }
  const selection = decideSelection({
    pod: pod as V1Pod,
    namespace,
    namespaceLabels: ctx.namespaceLabels,
    webhookNamespace: ctx.webhookNamespace,
  });
  if (!selection.inject) {
    const loud = !QUIET_SKIPS.has(selection.reason);
    if (loud) warnings.push(`sidecar not injected (${selection.reason}): ${selection.message}`);
    return allowed(request, 'skipped', selection.reason, selection.message, warnings);
  }
  return injectSelected(request, pod as V1Pod, ctx, `${selection.reason}: ${selection.message}`, warnings);
}

/** Anything but a Pod CREATE passes unchanged; undefined means it is one. */
function rejectNonPodCreate(request: AdmissionRequest): AdmitResult | undefined {
  if (!isPodCreate(request)) {
    const kind = isPlainObject(request.kind)
      ? `${request.kind.group || 'core'}/${request.kind.version} ${request.kind.kind}`
      : 'unknown kind';
    return allowed(
      request,
      'not_pod',
      'NotAPod',
      `${kind}${request.subResource ? `/${request.subResource}` : ''} is not a Pod; nothing to do`,
      [],
    );
  }
  if (request.operation !== undefined && request.operation !== 'CREATE') {
    return allowed(
      request,
      'skipped',
      'NotCreate',
      `operation ${String(request.operation)} is not CREATE; sidecars are only added at creation`,
      [],
    );
  }
  return undefined;
}

/** The request's namespace, else the Pod's own metadata.namespace, else ''. */
function requestNamespace(request: AdmissionRequest, pod: Record<string, unknown>): string {
  if (typeof request.namespace === 'string' && request.namespace !== '') return request.namespace;
  const metadata = pod['metadata'];
  return isPlainObject(metadata) && typeof metadata['namespace'] === 'string' ? metadata['namespace'] : '';
}

/** A selected Pod: patch it with the template in force, or say why not. */
function injectSelected(
  request: AdmissionRequest,
  pod: V1Pod,
  ctx: AdmitContext,
  selected: string,
  warnings: string[],
): AdmitResult {
  if (ctx.template === undefined) {
    const message =
      'no valid sidecar template is loaded (ConfigMap missing or never valid); pod admitted without the sidecar';
    warnings.push(`sidecar not injected (NoTemplate): ${message}`);
    return allowed(request, 'skipped', 'NoTemplate', message, warnings);
  }
  if (ctx.templateStale !== undefined) {
    warnings.push(`using the last good sidecar template ${ctx.template.hash}: ${ctx.templateStale}`);
  }
  const plan = planEncodedInjection(pod, ctx.template.template, { templateHash: ctx.template.hash });
  warnings.push(...plan.warnings);
  if (plan.action === 'skip') {
    // The selection already let a Pod carrying our record through quietly; reaching here as
    // AlreadyInjected means the sidecar's names were there without it, which is worth a word.
    warnings.push(`sidecar not injected (${plan.reason}): ${plan.message}`);
    return allowed(request, 'skipped', plan.reason, plan.message, warnings);
  }
  const result = allowed(request, 'injected', 'Injected', selected, warnings);
  result.response.patchType = 'JSONPatch';
  result.response.patch = plan.patchBase64;
  return result;
}

export function reviewResponse(response: AdmissionResponse): AdmissionReviewOut {
  return { apiVersion: ADMISSION_API_VERSION, kind: ADMISSION_KIND, response };
}

const REVIEW_PREFIX = `{"apiVersion":${JSON.stringify(ADMISSION_API_VERSION)},"kind":${JSON.stringify(ADMISSION_KIND)},"response":`;

/**
 * The AdmissionReview answer as JSON text: JSON.stringify(reviewResponse(response)), except that
 * the patch goes in as it is. It is base64 (no character JSON escapes), more than a kilobyte,
 * the same for every Pod of a template and shape, and JSON.stringify would scan it for every
 * request: most of the cost of the answer.
 */
export function encodeReviewResponse(response: AdmissionResponse): string {
  if (response.patch === undefined) return JSON.stringify(reviewResponse(response));
  const { patch, ...rest } = response;
  // `rest` serialises to an object; its closing brace makes room for the patch.
  return `${REVIEW_PREFIX}${JSON.stringify(rest).slice(0, -1)},"patch":"${patch}"}}`;
}
