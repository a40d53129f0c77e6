/**
 * The admission endpoint: Node's https server (TLS 1.2+, no plaintext listener) with one route,
 * `POST /mutate`. Health and metrics are served elsewhere (runtime/health-server.ts) on plain HTTP.
 *
 * Status codes are for callers that are not the apiserver (or a broken one): 400 for a body
 * that is not an AdmissionReview, 404 for another path, 405 for another method, 413 over the
 * size limit, 415 for a compressed body (the apiserver never compresses) or a content type other
 * than application/json. Any review that
 * parses gets 200 and `allowed: true`; see admission.ts.
 *
 * The apiserver's request (POST /mutate, with its ?timeout= query) goes straight from the
 * https server to its handler; express routes everything else (404, 405, other spellings of the
 * path, its error handler for anything thrown). The handler stays lean because every Pod
 * creation in an injected namespace waits for it: no body-parser or res.json (the body is read
 * into one Buffer, parsed once, and the answer is written as bytes already encoded), so the
 * request costs reading the body, JSON.parse, the decision and one write. `npm run bench`
 * measures what is left against a bare node:https server answering the same bytes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SecureContextOptions } from 'node:tls';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import {
  type AdmissionRequest,
  type AdmitResult,
  encodeReviewResponse,
  formatWarning,
  parseReviewBody,
  podDisplayName,
} from './admission.ts';
import type { WebhookMetrics } from './metrics.ts';
import { MUTATE_PATH } from './webhook-config.ts';

export const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;
export const MIN_TLS_VERSION = 'TLSv1.2';
const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** The decision for one review: synchronous when the caches settle it, a promise when it needs I/O. */
export type ReviewFn = (request: AdmissionRequest) => AdmitResult | Promise<AdmitResult>;

export interface AdmissionAppOptions {
  review: ReviewFn;
  logger: Logger;
  metrics: WebhookMetrics;
  maxBodyBytes?: number;
}

function plain(res: ServerResponse, status: number, text: string): void {
  const body = `${text}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

function secondsSince(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

type BodyResult = { ok: true; body: Buffer } | { ok: false; status: number; reason: string };

/**
 * Reads the whole body, up to `limit` bytes. Over the limit, or compressed, the rest is read
 * and discarded (so the connection stays usable) while the caller answers at once.
 */
function readBody(req: IncomingMessage, limit: number, done: (result: BodyResult) => void): void {
  const refuse = (status: number, reason: string): void => {
    req.removeAllListeners('data');
    req.resume();
    done({ ok: false, status, reason });
  };
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
    refuse(415, `content encoding ${JSON.stringify(encoding)} unsupported: send the body uncompressed`);
    return;
  }
  const tooLarge = `body exceeds the limit of ${limit} bytes`;
  const declared = Number(req.headers['content-length']);
  if (declared > limit) {
    refuse(413, tooLarge);
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > limit) {
      finished = true;
      refuse(413, tooLarge);
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    if (finished) return;
    finished = true;
    done({ ok: true, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
  });
  req.on('error', () => {
    if (finished) return;
    finished = true;
    done({ ok: false, status: 400, reason: 'request aborted' });
  });
}

type Bookkeeping = Pick<AdmissionAppOptions, 'logger' | 'metrics'>;

/** A request that is not an AdmissionReview we can answer: a plain-text error. */
function invalid(
  { logger, metrics }: Bookkeeping,
  res: ServerResponse,
  started: bigint,
  status: number,
  reason: string,
): void {
  if (!res.headersSent) plain(res, status, reason);
  metrics.requests.inc({ outcome: 'invalid_request' });
  metrics.requestDuration.observe({ outcome: 'invalid_request' }, secondsSince(started));
  logger.warn({ status, reason }, 'rejected admission request');
}

/** Writes the answer, then the metrics and the log line. */
function respond(
  { logger, metrics }: Bookkeeping,
  res: ServerResponse,
  request: AdmissionRequest,
  result: AdmitResult,
  started: bigint,
): void {
  const body = Buffer.from(encodeReviewResponse(result.response), 'utf8');
  res.writeHead(200, { 'content-type': JSON_CONTENT_TYPE, 'content-length': body.length });
  res.end(body);
  // Bookkeeping after the answer is on its way: the apiserver is waiting, the log is not.
  const seconds = secondsSince(started);
  metrics.requests.inc({ outcome: result.outcome });
  metrics.requestDuration.observe({ outcome: result.outcome }, seconds);
  if (result.outcome === 'injected') {
    metrics.injections.inc();
    metrics.injectionDuration.observe(seconds);
  } else if (result.outcome === 'skipped' || result.outcome === 'error') {
    metrics.skips.inc({ reason: result.reason });
  }
  const line = {
    uid: request.uid,
    namespace: result.namespace,
    name: result.podName,
    operation: request.operation,
    dryRun: request.dryRun === true,
    decision: result.outcome,
    reason: result.reason,
    durationMs: Math.round(seconds * 1e6) / 1e3,
  };
  if (result.outcome === 'error') logger.error({ ...line, message: result.message }, 'admission');
  else logger.info(line, 'admission');
}

/** The reviewer already catches everything it knows about; this is the last resort. */
function reviewFailed(request: AdmissionRequest, err: unknown): AdmitResult {
  const message = `internal error, pod admitted without the sidecar: ${(err as Error)?.message ?? String(err)}`;
  return {
    response: { uid: request.uid, allowed: true, warnings: [formatWarning(message)] },
    outcome: 'error',
    reason: 'InternalError',
    message,
    podName: podDisplayName(request.object, request.name),
    namespace: typeof request.namespace === 'string' ? request.namespace : '',
  };
}

function unexpected({ logger, metrics }: Bookkeeping, res: ServerResponse, err: unknown): void {
  logger.error({ err: (err as Error)?.message ?? String(err) }, 'unexpected error in the admission server');
  metrics.requests.inc({ outcome: 'error' });
  if (!res.headersSent) plain(res, 500, 'internal error');
}

/** Admits one parsed body: runs the review (sync or async) and answers, never throwing. */
function answer(opts: AdmissionAppOptions, res: ServerResponse, raw: Buffer, started: bigint): void {
  const parsed = parseReviewBody(raw);
  if (!parsed.ok) {
    invalid(opts, res, started, 400, parsed.reason);
    return;
  }
  const request = parsed.request;
  let result: AdmitResult | Promise<AdmitResult>;
  try {
    result = opts.review(request);
  } catch (err) {
    result = reviewFailed(request, err);
  }
  if (result instanceof Promise) {
    result
      .then(
        (r) => respond(opts, res, request, r, started),
        (err: unknown) => respond(opts, res, request, reviewFailed(request, err), started),
      )
      .catch((err: unknown) => unexpected(opts, res, err));
  } else {
    respond(opts, res, request, result, started);
  }
}

/**
 * What express's `req.is('application/json')` answers, without express: null for a request
 * without a body, whether the media type (parameters aside) is application/json otherwise.
 */
export function isJsonBody(headers: IncomingMessage['headers']): boolean | null {
  const length = headers['content-length'];
  const hasBody =
    headers['transfer-encoding'] !== undefined || (length !== undefined && !Number.isNaN(Number(length)));
  if (!hasBody) return null;
  const type = headers['content-type'];
  if (type === undefined) return false;
  const semicolon = type.indexOf(';');
  return (semicolon === -1 ? type : type.slice(0, semicolon)).trim().toLowerCase() === 'application/json';
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** POST /mutate: checks the content type, reads the body within the limit, then answers. */
function mutateHandler(opts: AdmissionAppOptions): Handler {
  const limit = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  return (req, res) => {
    const started = process.hrtime.bigint();
    // The apiserver always sends application/json; anything else (a form, YAML, text) is a
    // caller's mistake worth naming rather than a JSON syntax error. A request without a body
    // (is() gives null) goes on to the empty-body 400.
    if (isJsonBody(req.headers) === false) {
      req.resume();
      invalid(
        opts,
        res,
        started,
        415,
        `content type ${JSON.stringify(req.headers['content-type'] ?? '')} unsupported: send application/json`,
      );
      return;
    }
    readBody(req, limit, (result) => {
      if (!result.ok) {
        invalid(opts, res, started, result.status, result.reason);
        return;
      }
      try {
        answer(opts, res, result.body, started);
      } catch (err) {
        unexpected(opts, res, err);
      }
    });
  };
}

/** The express application: every request but the exact POST /mutate (see admissionListener). */
function createAdmissionApp(opts: AdmissionAppOptions, mutate: Handler): Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  // Other spellings of the path (a trailing slash, another case) still reach the handler.
  app.post(MUTATE_PATH, mutate);
  app.all(MUTATE_PATH, (req, res) => {
    res.setHeader('Allow', 'POST');
    invalid(
      opts,
      res,
      process.hrtime.bigint(),
      405,
      `method ${req.method} not allowed: POST an admission.k8s.io/v1 AdmissionReview`,
    );
  });
  app.use((req, res) => {
    plain(res, 404, `no such endpoint ${req.path}: the webhook serves POST ${MUTATE_PATH}`);
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => unexpected(opts, res, err));
  return app;
}

/**
 * The https server's request listener. The apiserver's request, POST to the configured path
 * plus its `?timeout=<n>s` query, goes straight to the handler; express routes the rest (404,
 * 405, other spellings of the path). Why: express sets its own prototypes on every request and
 * response and walks its router, 10-15% of the CPU of a small Pod's admission in A/B runs
 * under wrk, for a route that needs none of it.
 */
export function admissionListener(opts: AdmissionAppOptions): Handler {
  const mutate = mutateHandler(opts);
  const app = createAdmissionApp(opts, mutate);
  return (req, res) => {
    const url = req.url ?? '';
    const query = url.indexOf('?');
    if (req.method === 'POST' && (query === -1 ? url : url.slice(0, query)) === MUTATE_PATH) {
      try {
        mutate(req, res);
      } catch (err) {
        unexpected(opts, res, err);
      }
    } else {
      app(req, res);
    }
  };
}

export interface TlsMaterial {
  certPem: string;
  keyPem: string;
}

export interface AdmissionServerOptions extends AdmissionAppOptions {
  tls: TlsMaterial;
  host: string;
  port: number;
  /** Whole-request deadline for slow clients (default 15 s; the apiserver gives up at timeoutSeconds). */
  requestTimeoutMs?: number;
  headersTimeoutMs?: number;
  /**
   * Ask clients to reconnect after this many requests on one connection (0: never). The
   * apiserver otherwise keeps one connection per replica for ever, so a new replica behind the
   * Service gets no traffic and rotated certificates are only presented on new handshakes.
   */
  maxRequestsPerSocket?: number;
}

export interface AdmissionServer {
  server: Server;
  host: string;
  port: number;
  /** Swaps the serving certificate for new connections, without a restart. */
  setCertificate(tls: TlsMaterial): void;
  close(graceMs?: number): Promise<void>;
}

function secureOptions(tls: TlsMaterial): SecureContextOptions {
  return { cert: tls.certPem, key: tls.keyPem, minVersion: MIN_TLS_VERSION };
}

/**
 * Answers what the HTTP parser rejects (timeout, oversized headers, garbage) with a status line
 * where that is still possible, and otherwise drops the socket.
 */
function clientErrorHandler(logger: Logger): (err: NodeJS.ErrnoException, socket: Duplex) => void {
  return (err, socket) => {
    logger.debug({ err: err.message, code: err.code }, 'client error');
    const status =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? '408 Request Timeout'
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? '431 Request Header Fields Too Large'
          : '400 Bad Request';
    // With a response already under way on the socket, a status line would corrupt it. An
    // error that is not the HTTP parser's (a TLS handshake timeout also lands here) has no
    // HTTP to answer: end() would wait behind the unfinished handshake for ever.
    const http = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code?.startsWith('HPE_') === true;
    if (http && socket.writable && !(socket as { _httpMessage?: unknown })._httpMessage) {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    } else {
      socket.destroy();
    }
  };
}

/** Resolves once the server listens; rejects with the listen error (e.g. EADDRINUSE). */
function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export async function startAdmissionServer(opts: AdmissionServerOptions): Promise<AdmissionServer> {
  const requestTimeout = opts.requestTimeoutMs ?? 15_000;
  const headersTimeout = Math.min(opts.headersTimeoutMs ?? 10_000, requestTimeout);
  const server = createServer(
    {
      ...secureOptions(opts.tls),
      // Node enforces the two timeouts below only when it sweeps connections (30 s by default).
      connectionsCheckingInterval: Math.min(1000, headersTimeout),
      // Those two only start once the TLS handshake is done: a client that sends its hello (or
      // nothing) and then goes quiet would otherwise hold a socket for tls's default 120 s.
      handshakeTimeout: headersTimeout,
    },
    admissionListener(opts),
  );
  server.requestTimeout = requestTimeout;
  server.headersTimeout = headersTimeout;
  // The apiserver keeps connections to webhooks alive; a short idle timeout just costs handshakes.
  server.keepAliveTimeout = 30_000;
  server.maxRequestsPerSocket = opts.maxRequestsPerSocket ?? 0;
  server.on('tlsClientError', (err) => {
    opts.logger.debug({ err: err.message }, 'TLS handshake failed');
  });
  server.on('clientError', clientErrorHandler(opts.logger));
  await listen(server, opts.port, opts.host);
  const address = server.address() as AddressInfo;
  return {
    server,
    host: opts.host,
    port: address.port,
    setCertificate(tls) {
      server.setSecureContext(secureOptions(tls));
    },
    async close(graceMs = 2000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      timer.unref();
      await closed;
      clearTimeout(timer);
    },
  };
}
