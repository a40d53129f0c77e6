/**
 * What went wrong talking to Kubernetes, in one shape, from whatever @kubernetes/client-node
 * or fetch threw:
 *
 * - client-node 2.x calls the apiserver through undici's fetch. A failure below HTTP arrives as
 *   `TypeError: fetch failed` whose `cause` is the Node error that matters (ECONNREFUSED with
 *   address and port, ENOTFOUND with the hostname, a TLS verification code, ERR_TLS_CERT_ALTNAME_INVALID
 *   with the certificate...). Printing only the outer message is how users end up with "fetch failed".
 * - An HTTP answer other than 2xx arrives as ApiException { code, body, headers } with a
 *   multi-line message; the body is usually a metav1.Status whose reason and message say what
 *   the apiserver meant, or a plain "404 page not found" when the API itself is not served.
 * - Timeouts and aborts arrive as DOMException TimeoutError / AbortError.
 *
 * Pure: no I/O and no global state, so the CLI (one line + hint), the log serializer and the
 * retry decisions of the controllers can share it. Nothing here knows which command runs.
 */

export type KubeErrorCategory =
  /** The apiserver answered with an HTTP error status. */
  | 'api'
  /** Nothing listens at the address (ECONNREFUSED). */
  | 'connection-refused'
  /** The host name does not resolve. */
  | 'dns'
  /** The TLS handshake failed: certificate not trusted, expired, wrong name... */
  | 'tls'
  /** The connection was reset or closed before an answer. */
  | 'connection-reset'
  /** No answer in time (request timeout, connect timeout). */
  | 'timeout'
  /** Cancelled on purpose (AbortSignal). */
  | 'aborted'
  /** Some other network-level failure. */
  | 'network'
  /** Not an error we know (a bug, a configuration error...). */
  | 'unknown';

export interface ErrorLink {
  name?: string;
  message: string;
  code?: string;
}

export interface KubeErrorInfo {
  category: KubeErrorCategory;
  /** HTTP status of an apiserver answer. */
  statusCode?: number;
  /** metav1.Status reason (Forbidden, NotFound, Conflict...) or the low-level code (ECONNREFUSED...). */
  reason?: string;
  /** metav1.Status details: which object or resource the apiserver meant. */
  details?: { kind?: string; name?: string; group?: string };
  /** The error and every `cause` under it, outermost first, one line each. */
  causes: ErrorLink[];
  /** Whether the same request may succeed later with nothing changed. */
  retryable: boolean;
  /** One line for a person: what happened, and where. */
  message: string;
  /** What to check or do next, when there is something specific to say. */
  hint?: string;
}

export interface DescribeOptions {
  /** The apiserver (or other) URL the request went to: fetch errors do not carry it. */
  server?: string;
  /** What was being attempted, e.g. "list Networks"; prefixes api messages. */
  action?: string;
}

type AnyError = {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  cause?: unknown;
  body?: unknown;
  errors?: unknown;
  address?: unknown;
  port?: unknown;
  hostname?: unknown;
  host?: unknown;
  reason?: unknown;
  cert?: unknown;
  syscall?: unknown;
};

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}

/** The error and its causes (and AggregateError members), outermost first, without cycles. */
export function errorChain(err: unknown, max = 8): AnyError[] {
  const out: AnyError[] = [];
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (e !== undefined && e !== null && out.length < max && !seen.has(e)) {
    seen.add(e);
    if (typeof e !== 'object') {
      out.push({ message: String(e) });
      break;
    }
    const a = e as AnyError;
    out.push(a);
    // undici reports a failed connect to every address of a host as an AggregateError.
    if (a.cause === undefined && Array.isArray(a.errors) && a.errors.length > 0) e = a.errors[0];
    else e = a.cause;
  }
  return out;
}

function linkOf(e: AnyError): ErrorLink {
  const link: ErrorLink = { message: firstLine(str(e.message) ?? String(e)) };
  const name = str(e.name);
  if (name) link.name = name;
  const code = typeof e.code === 'number' ? String(e.code) : str(e.code);
  if (code) link.code = code;
  return link;
}

/** metav1.Status fields from an ApiException body (a string or an object). */
export function statusFromBody(
  body: unknown,
): { message?: string; reason?: string; code?: number; details?: KubeErrorInfo['details'] } | undefined {
  let v = body;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      return undefined;
    }
  }
  if (v === null || typeof v !== 'object') return undefined;
  const s = v as { kind?: unknown; message?: unknown; reason?: unknown; code?: unknown; details?: unknown };
  if (s.kind !== undefined && s.kind !== 'Status') return undefined;
  const out: ReturnType<typeof statusFromBody> & object = {};
  if (str(s.message)) out.message = s.message as string;
  if (str(s.reason)) out.reason = s.reason as string;
  if (typeof s.code === 'number') out.code = s.code;
  if (s.details && typeof s.details === 'object') {
    const d = s.details as Record<string, unknown>;
    const details: NonNullable<KubeErrorInfo['details']> = {};
    if (str(d['kind'])) details.kind = d['kind'] as string;
    if (str(d['name'])) details.name = d['name'] as string;
    if (str(d['group'])) details.group = d['group'] as string;
    if (Object.keys(details).length > 0) out.details = details;
  }
  return out;
}

/** Reason names the apiserver uses when the body is not a Status (metav1.StatusReason). */
const REASON_BY_CODE: Readonly<Record<number, string>> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  406: 'NotAcceptable',
  408: 'Timeout',
  409: 'Conflict',
  410: 'Expired',
  413: 'RequestEntityTooLarge',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

/** client-go's notion (k8s.io/apimachinery/pkg/api/errors): try again later, nothing to fix. */
export function isRetryableStatus(code: number): boolean {
  return code === 408 || code === 409 || code === 410 || code === 429 || (code >= 500 && code !== 501);
}

const TLS_UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
]);
const TLS_TIME = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);
const REFUSED = new Set(['ECONNREFUSED']);
const DNS = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME', 'EAI_NODATA']);
const RESET = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ECONNABORTED']);
const TIMEOUT = new Set([
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ESOCKETTIMEDOUT',
]);
const UNREACHABLE = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EADDRNOTAVAIL']);

function isTlsCode(code: string): boolean {
  return (
    TLS_UNTRUSTED.has(code) ||
    TLS_TIME.has(code) ||
    code.startsWith('ERR_TLS_') ||
    code.startsWith('ERR_SSL_') ||
    /^(CERT_|UNABLE_TO_|X509_)/.test(code)
  );
}

/** The certificate fields Node attaches to ERR_TLS_CERT_ALTNAME_INVALID (tls.PeerCertificate). */
function describeCert(cert: unknown): string | undefined {
  if (!cert || typeof cert !== 'object') return undefined;
  const c = cert as { subject?: { CN?: unknown }; issuer?: { CN?: unknown }; subjectaltname?: unknown };
  const parts: string[] = [];
  const cn = str(c.subject?.CN);
  if (cn) parts.push(`CN=${cn}`);
  const issuer = str(c.issuer?.CN);
  if (issuer) parts.push(`issued by CN=${issuer}`);
  const sans = str(c.subjectaltname);
  if (sans) parts.push(`valid for ${sans}`);
  return parts.length > 0 ? parts.join(', ') : undefined;
}

/** host:port of a URL, for "connection refused at ..." when we know where we went. */
function where(server: string | undefined, e: AnyError | undefined): string | undefined {
  if (server) return server;
  const address = str(e?.address) ?? str(e?.host) ?? str(e?.hostname);
  if (!address) return undefined;
  const port = typeof e?.port === 'number' || typeof e?.port === 'string' ? `:${e.port}` : '';
  return `${address.includes(':') ? `[${address}]` : address}${port}`;
}

function hostOf(server: string | undefined): string | undefined {
  if (!server) return undefined;
  try {
    return new URL(server).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return undefined;
  }
}

function withAction(action: string | undefined, message: string): string {
  return action ? `cannot ${action}: ${message}` : message;
}

function describeApi(e: AnyError, code: number, opts: DescribeOptions, causes: ErrorLink[]): KubeErrorInfo {
  const status = statusFromBody(e.body);
  const reason = status?.reason ?? REASON_BY_CODE[code] ?? `HTTP${code}`;
  const rawBody = typeof e.body === 'string' ? e.body.trim() : '';
  let text = status?.message ?? (rawBody && rawBody.length < 200 && !rawBody.startsWith('{') ? rawBody : '');
  let hint: string | undefined;
  switch (code) {
    case 401:
      text ||= 'Unauthorized';
      text = `the apiserver rejected the credentials (401 ${text})`;
      hint =
        'the token or client certificate in the kubeconfig is expired or not for this cluster; log in again or pick another --context';
      break;
    case 403:
      text ||= 'Forbidden';
      hint = 'this identity lacks an RBAC permission; `kubectl auth can-i --list` shows what it may do';
      break;
    case 404:
      if (!status) {
        // No Status body: the path itself is unknown, i.e. the API group/version is not served.
        text = `the API is not served by this cluster (404 ${rawBody || 'page not found'})`;
        hint = 'is the CRD (or API group) installed? `kubectl api-resources` lists what is served';
      } else text ||= 'not found';
      break;
    case 409:
      text ||= 'conflict';
      break;
    case 429:
      text ||= 'too many requests';
      hint = 'the apiserver is throttling (API priority and fairness); retry later';
      break;
    default:
      text ||= `HTTP ${code}`;
  }
  const info: KubeErrorInfo = {
    category: 'api',
    statusCode: code,
    reason,
    causes,
    retryable: isRetryableStatus(code),
    message: withAction(opts.action, text),
  };
  if (status?.details) info.details = status.details;
  if (hint) info.hint = hint;
  return info;
}

/**
 * Classifies any error from client-node, fetch, or a plain Node socket. Never throws.
 */
export function describeKubeError(err: unknown, opts: DescribeOptions = {}): KubeErrorInfo {
  const chain = errorChain(err);
  const causes = chain.map(linkOf);
  const top = chain[0];
  if (!top) return { category: 'unknown', causes: [], retryable: false, message: String(err) };
  // An HTTP answer: client-node's ApiException carries the status code as a number and the body.
  if (typeof top.code === 'number' && top.code >= 300 && top.code < 600 && 'body' in top) {
    return describeApi(top, top.code, opts, causes);
  }
  const cancelled = describeCancelled(chain, opts, causes);
  if (cancelled) return cancelled;
  // The deepest error with a string code is the one that says what happened.
  const coded = [...chain].reverse().find((e) => typeof e.code === 'string') as AnyError | undefined;
  const code = coded ? (coded.code as string) : undefined;
  const known = code && coded ? describeCode(code, coded, opts, causes) : undefined;
  if (known) return known;
  const deepest = causes[causes.length - 1]!;
  const outer = causes[0]!;
  const message =
    causes.length > 1 && deepest.message !== outer.message
      ? `${outer.message}: ${deepest.message}`
      : outer.message;
  const info: KubeErrorInfo = {
    category: code || str(top.name) === 'TypeError' ? 'network' : 'unknown',
    causes,
    retryable: false,
    message: withAction(opts.action, message),
  };
  if (code) info.reason = code;
  return info;
}

/** DOMException timeouts and aborts (AbortSignal.timeout / abort()) anywhere in the chain. */
function describeCancelled(
  chain: readonly AnyError[],
  opts: DescribeOptions,
  causes: KubeErrorInfo['causes'],
): KubeErrorInfo | undefined {
  for (const e of chain) {
    const name = str(e.name);
    if (name === 'TimeoutError') {
      const at = where(opts.server, undefined);
      return {
        category: 'timeout',
        reason: 'Timeout',
        causes,
        retryable: true,
        message: withAction(opts.action, `request timed out${at ? ` (${at})` : ''}`),
        hint: 'the apiserver is slow or unreachable; retry, or check the network path to it',
      };
    }
    if (name === 'AbortError') {
      return {
        category: 'aborted',
        reason: 'Aborted',
        causes,
        retryable: false,
        message: withAction(opts.action, 'request cancelled'),
      };
    }
  }
  return undefined;
}

/** A Node error code that says what went wrong on the way to the server. */
function describeCode(
  code: string,
  coded: AnyError,
  opts: DescribeOptions,
  causes: KubeErrorInfo['causes'],
): KubeErrorInfo | undefined {
  const at = where(opts.server, coded);
  const act = (m: string): string => withAction(opts.action, m);
  if (REFUSED.has(code)) {
    return {
      category: 'connection-refused',
      reason: code,
      causes,
      retryable: true,
      message: act(`connection refused at ${at ?? 'the server'}`),
      hint: 'is the cluster running, and is this the right server and --context? (`kubectl config view --minify` shows them)',
    };
  }
  if (DNS.has(code)) {
    const host = str(coded.hostname) ?? hostOf(opts.server) ?? at ?? 'the server';
    return {
      category: 'dns',
      reason: code,
      causes,
      // EAI_AGAIN is a resolver that did not answer; ENOTFOUND is a definite "no such name".
      retryable: code === 'EAI_AGAIN',
      message: act(
        `unknown host ${host}${opts.server ? ` (${opts.server})` : ''}: the name does not resolve`,
      ),
      hint: 'check the server address in the kubeconfig, and DNS on this machine',
    };
  }
  if (isTlsCode(code)) {
    const { what, hint } = describeTls(code, coded, opts, at);
    return { category: 'tls', reason: code, causes, retryable: false, message: act(what), hint };
  }
  if (RESET.has(code)) {
    return {
      category: 'connection-reset',
      reason: code,
      causes,
      retryable: true,
      message: act(`connection to ${at ?? 'the server'} closed before an answer (${code})`),
      hint: 'is it a TLS endpoint, and is there a proxy or load balancer in the way?',
    };
  }
  if (TIMEOUT.has(code)) {
    return {
      category: 'timeout',
      reason: code,
      causes,
      retryable: true,
      message: act(`timed out talking to ${at ?? 'the server'} (${code})`),
      hint: 'check the network path and firewalls',
    };
  }
  if (UNREACHABLE.has(code)) {
    return {
      category: 'network',
      reason: code,
      causes,
      retryable: true,
      message: act(`${at ?? 'the server'} is unreachable (${code})`),
      hint: 'there is no route to it from this machine',
    };
  }
  return undefined;
}

/** Which certificate was refused, and why. */
function describeTls(
  code: string,
  coded: AnyError,
  opts: DescribeOptions,
  at: string | undefined,
): { what: string; hint: string } {
  const certText = describeCert(coded.cert);
  const presented = `the certificate presented by ${at ?? 'the server'}`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const name = str(coded.host) ?? hostOf(opts.server) ?? 'the server name';
    return {
      what: `x509: ${presented}${certText ? ` (${certText})` : ''} is not valid for ${name}`,
      hint: 'use a server address the certificate names, or re-issue the certificate with that name as a SAN',
    };
  }
  if (TLS_TIME.has(code)) {
    return {
      what: `x509: ${presented} ${code === 'CERT_HAS_EXPIRED' ? 'has expired' : 'is not valid yet'}${certText ? ` (${certText})` : ''}`,
      hint: 'renew the certificate, and check the clock of this machine',
    };
  }
  return {
    what: `x509: ${presented}${certText ? ` (${certText})` : ''} is not signed by a trusted CA (${code})`,
    hint: 'the certificate-authority of the kubeconfig did not sign it: is this the right cluster and --context?',
  };
}

/** "message: hint", the one line the CLI prints (the same shape as UserFacingError.oneLine). */
export function formatKubeError(info: KubeErrorInfo): string {
  return info.hint ? `${info.message}: ${info.hint}` : info.message;
}

/** HTTP status of a failed Kubernetes call (client-node's ApiException `code`), if it got one. */
export function statusCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  return typeof e?.code === 'number' ? e.code : typeof e?.statusCode === 'number' ? e.statusCode : undefined;
}

/** True when a Kubernetes call failed with the given HTTP status. */
export function hasStatus(err: unknown, code: number): boolean {
  return statusCode(err) === code;
}

/** The apiserver's Status `reason` (AlreadyExists, Conflict...) in a failed call's body. */
export function statusReason(err: unknown): string | undefined {
  return statusFromBody((err as { body?: unknown } | null)?.body)?.reason;
}

/** The apiserver's Status `message` in a failed call's body. */
export function statusMessage(err: unknown): string | undefined {
  return statusFromBody((err as { body?: unknown } | null)?.body)?.message;
}

/**
 * The pino serializer for `err`: the classification plus the cause chain, so a log line says
 * "connection refused at 10.0.0.1:443 (ECONNREFUSED)" instead of "fetch failed". Objects that
 * are not errors (callers that already logged a summary) pass through unchanged. Stacks are kept
 * only for errors we cannot classify: those are bugs, and the stack is what finds them.
 */
export function serializeError(err: unknown): unknown {
  if (!(err instanceof Error) && !(typeof err === 'object' && err !== null && 'cause' in err)) return err;
  const info = describeKubeError(err);
  const out: Record<string, unknown> = {
    type: (err as { name?: unknown }).name ?? 'Error',
    message: info.message,
    category: info.category,
    retryable: info.retryable,
  };
  if (info.statusCode !== undefined) out['statusCode'] = info.statusCode;
  if (info.reason !== undefined) out['reason'] = info.reason;
  if (info.details !== undefined) out['details'] = info.details;
  if (info.causes.length > 1) out['causes'] = info.causes;
  if (info.category === 'unknown' && err instanceof Error && err.stack) out['stack'] = err.stack;
  return out;
}
