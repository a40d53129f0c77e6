/**
 * The admission endpoint: express on Node's https server (TLS 1.2+, no plaintext listener),
 * `POST /mutate` only. Health and metrics are served elsewhere (runtime/health-server.ts) on plain HTTP.
 *
 * Status codes are for callers that are not the apiserver (or a broken one): 400 for a body
 * that is not an AdmissionReview, 405 for another method, 413 over the size limit. Any review
 * that parses gets 200 and `allowed: true`; see admission.ts.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import {
  type AdmissionRequest,
  type AdmitResult,
  formatWarning,
  parseReviewBody,
  podDisplayName,
  reviewResponse,
} from './admission.ts';
import type { WebhookMetrics } from './metrics.ts';
import { MUTATE_PATH } from './webhook-config.ts';

export const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;
export const MIN_TLS_VERSION = 'TLSv1.2';

export type ReviewFn = (request: AdmissionRequest) => Promise<AdmitResult>;

export interface AdmissionAppOptions {
  review: ReviewFn;
  logger: Logger;
  metrics: WebhookMetrics;
  maxBodyBytes?: number;
}

function plain(res: Response, status: number, text: string): void {
  res.status(status).type('text/plain').send(`${text}\n`);
}

/** The express application, without a server (unit tests mount it on their own). */
export function createAdmissionApp(opts: AdmissionAppOptions): express.Express {
  const { logger, metrics } = opts;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  const invalid = (res: Response, status: number, reason: string): void => {
    metrics.requests.inc({ outcome: 'invalid_request' });
    logger.warn({ status, reason }, 'rejected admission request');
    plain(res, status, reason);
  };

  app.all(MUTATE_PATH, (req, res, next) => {
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      invalid(res, 405, `method ${req.method} not allowed: POST an admission.k8s.io/v1 AdmissionReview`);
      return;
    }
    next();
  });

  app.post(
    MUTATE_PATH,
    // Any content type: the apiserver sends application/json, other clients may not say.
    express.raw({ type: () => true, limit: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES }),
    async (req: Request, res: Response) => {
      const started = process.hrtime.bigint();
      const parsed = parseReviewBody(Buffer.isBuffer(req.body) ? req.body : undefined);
      if (!parsed.ok) {
        invalid(res, 400, parsed.reason);
        return;
      }
      let result: AdmitResult;
      try {
        result = await opts.review(parsed.request);
      } catch (err) {
        // The reviewer already catches everything it knows about; this is the last resort.
        const message = `internal error, pod admitted without the sidecar: ${(err as Error)?.message ?? String(err)}`;
        result = {
          response: { uid: parsed.request.uid, allowed: true, warnings: [formatWarning(message)] },
          outcome: 'error',
          reason: 'InternalError',
          message,
          podName: podDisplayName(parsed.request.object, parsed.request.name),
          namespace: typeof parsed.request.namespace === 'string' ? parsed.request.namespace : '',
        };
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.requests.inc({ outcome: result.outcome });
      if (result.outcome !== 'not_pod') metrics.injectionDuration.observe(seconds);
      if (result.outcome === 'injected') metrics.injections.inc();
      else if (result.outcome === 'skipped' || result.outcome === 'error')
        metrics.skips.inc({ reason: result.reason });
      const line = {
        uid: parsed.request.uid,
        namespace: result.namespace,
        name: result.podName,
        operation: parsed.request.operation,
        dryRun: parsed.request.dryRun === true,
        decision: result.outcome,
        reason: result.reason,
        durationMs: Math.round(seconds * 1e6) / 1e3,
      };
      if (result.outcome === 'error') logger.error({ ...line, message: result.message }, 'admission');
      else logger.info(line, 'admission');
      res.status(200).json(reviewResponse(result.response));
    },
  );

  app.use((req: Request, res: Response) => {
    plain(res, 404, `no such endpoint ${req.path}: the webhook serves POST ${MUTATE_PATH}`);
  });

  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = err as { status?: number; statusCode?: number; type?: string; message?: string };
    const status = e.status ?? e.statusCode ?? 500;
    if (e.type === 'entity.too.large') {
      invalid(res, 413, `body exceeds the limit of ${opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES} bytes`);
    } else if (status >= 400 && status < 500) {
      invalid(res, status, (e.message ?? 'bad request').split('\n')[0]!);
    } else {
      logger.error({ err: e.message }, 'unexpected error in the admission server');
      metrics.requests.inc({ outcome: 'error' });
      if (!res.headersSent) plain(res, 500, 'internal error');
    }
  });
  return app;
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

export async function startAdmissionServer(opts: AdmissionServerOptions): Promise<AdmissionServer> {
  const app = createAdmissionApp(opts);
  const requestTimeout = opts.requestTimeoutMs ?? 15_000;
  const headersTimeout = Math.min(opts.headersTimeoutMs ?? 10_000, requestTimeout);
  const server = createServer(
    {
      ...secureOptions(opts.tls),
      // Node enforces the two timeouts below only when it sweeps connections (30 s by default).
      connectionsCheckingInterval: Math.min(1000, headersTimeout),
    },
    app,
  );
  server.requestTimeout = requestTimeout;
  server.headersTimeout = headersTimeout;
  // The apiserver keeps connections to webhooks alive; a short idle timeout just costs handshakes.
  server.keepAliveTimeout = 30_000;
  server.maxRequestsPerSocket = opts.maxRequestsPerSocket ?? 0;
  server.on('tlsClientError', (err) => {
    opts.logger.debug({ err: err.message }, 'TLS handshake failed');
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    opts.logger.debug({ err: err.message, code: err.code }, 'client error');
    const status =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? '408 Request Timeout'
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? '431 Request Header Fields Too Large'
          : '400 Bad Request';
    // With a response already under way on the socket, a status line would corrupt it.
    if (socket.writable && !(socket as { _httpMessage?: unknown })._httpMessage) {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    } else {
      socket.destroy();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
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

/** `host:port`, `:port` or `[v6]:port`. */
export function parseListen(value: string, flag = 'listen'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value.trim());
  if (!m) throw new Error(`--${flag} must be host:port (e.g. 0.0.0.0:9443 or 127.0.0.1:0), got "${value}"`);
  const host = m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`--${flag}: port ${port} is out of range`);
  return { host, port };
}
