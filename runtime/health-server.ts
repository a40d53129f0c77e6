/**
 * Plain-HTTP probe and metrics endpoint for the kubelet and Prometheus:
 *   /healthz  liveness: 200 while every liveness check passes and no fatal error was set
 *             (/livez is an alias)
 *   /readyz   readiness: 200 only while every readiness check passes
 *   /metrics  the prom-client Registry, in its own content type, with the process, Node.js and
 *             build-info metrics every netmesh process exposes (runtime/metrics.ts) added to it
 * Failing probes answer 503 with one line per failing check, as the apiserver's `?verbose`
 * does ("[-]name failed: reason"); `?verbose` lists the passing checks too.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { instrumentProcess } from './metrics.ts';

/**
 * true = passing; false or a string (the reason) = failing; an object can carry a detail that
 * `?verbose` shows for passing checks too (e.g. "template: STALE" while still serving).
 */
export type HealthCheck = () => boolean | string | { ok: boolean; detail?: string };

export interface HealthServerOptions {
  /** Default 0.0.0.0. */
  host?: string;
  /** 0 picks a free port (see HealthServer.port). */
  port: number;
  registry: Registry;
  log: Logger;
  /**
   * Add the default process/Node.js metrics and netmesh_build_info to `registry` (default true).
   * Every command serves its metrics through this server, so this is the one place that makes
   * them uniform across `netmesh run`, `operator` and `webhook`.
   */
  processMetrics?: boolean;
}

export interface HealthServer {
  /** The port actually listened on. */
  readonly port: number;
  /** Adds a /readyz check; returns a function removing it. Names must be unique. */
  addReadinessCheck(name: string, check: HealthCheck): () => void;
  /** Adds a /healthz check; returns a function removing it. Names must be unique. */
  addLivenessCheck(name: string, check: HealthCheck): () => void;
  /** Marks the process broken for good: /healthz fails from now on, so the kubelet restarts it. */
  setFatal(reason: string | Error): void;
  close(): Promise<void>;
}

export interface CheckResult {
  name: string;
  ok: boolean;
  reason?: string;
  detail?: string;
}

export function runChecks(checks: ReadonlyMap<string, HealthCheck>): CheckResult[] {
  const results: CheckResult[] = [];
  for (const [name, check] of checks) {
    let v: unknown;
    try {
      v = check();
    } catch (err) {
      results.push({
        name,
        ok: false,
        reason: `check threw: ${err instanceof Error ? err.message : String(err)}`,
      });
      continue;
    }
    if (v === true) results.push({ name, ok: true });
    else if (typeof v === 'object' && v !== null) {
      const { ok, detail } = v as { ok: boolean; detail?: string };
      results.push(
        ok ? { name, ok, ...(detail ? { detail } : {}) } : { name, ok, reason: detail || 'failed' },
      );
    } else results.push({ name, ok: false, reason: typeof v === 'string' && v !== '' ? v : 'failed' });
  }
  return results;
}

/** Status code and body of a probe answer, in the apiserver's format. */
export function renderProbe(
  probe: 'healthz' | 'readyz',
  results: readonly CheckResult[],
  verbose: boolean,
): { status: number; body: string } {
  const failing = results.filter((r) => !r.ok);
  if (failing.length === 0 && !verbose) return { status: 200, body: 'ok\n' };
  const lines = (verbose ? results : failing).map((r) =>
    r.ok
      ? `[+]${r.name} ok${r.detail ? `: ${oneLine(r.detail)}` : ''}`
      : `[-]${r.name} failed: ${oneLine(r.reason ?? 'failed')}`,
  );
  lines.push(failing.length === 0 ? `${probe} check passed` : `${probe} check failed`);
  return { status: failing.length === 0 ? 200 : 503, body: `${lines.join('\n')}\n` };
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ');
}

const TEXT = 'text/plain; charset=utf-8';

/** One plain HTTP answer, uncached; no body for HEAD. */
function send(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  contentType: string,
  body: string,
): void {
  res.statusCode = status;
  res.setHeader('content-type', contentType);
  res.setHeader('cache-control', 'no-store');
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** The registered checks and the fatal flag: what /readyz and /healthz report. */
interface Checks {
  readiness: Map<string, HealthCheck>;
  liveness: Map<string, HealthCheck>;
  fatal: string | undefined;
}

function probeResults(checks: Checks, probe: 'healthz' | 'readyz'): CheckResult[] {
  const results = runChecks(probe === 'readyz' ? checks.readiness : checks.liveness);
  if (probe === 'healthz')
    results.unshift(
      checks.fatal === undefined
        ? { name: 'fatal', ok: true }
        : { name: 'fatal', ok: false, reason: checks.fatal },
    );
  return results;
}

/** GET/HEAD /healthz (/livez), /readyz and /metrics; 404 and 405 for anything else. */
function healthHandler(opts: HealthServerOptions, checks: Checks, log: Logger) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://health.invalid');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (path !== '/healthz' && path !== '/readyz' && path !== '/metrics' && path !== '/livez') {
      send(req, res, 404, TEXT, 'not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(req, res, 405, TEXT, 'method not allowed\n');
      return;
    }
    if (path === '/metrics') {
      const body = await opts.registry.metrics();
      send(req, res, 200, opts.registry.contentType, body);
      return;
    }
    const probe = path === '/readyz' ? 'readyz' : 'healthz';
    const results = probeResults(checks, probe);
    const { status, body } = renderProbe(probe, results, url.searchParams.has('verbose'));
    if (status !== 200) {
      log.debug({ probe, failing: results.filter((r) => !r.ok).map((r) => r.name) }, 'probe failing');
    }
    send(req, res, status, TEXT, body);
  };
}

/** Listens; resolves with the port once bound, rejects if it cannot bind. */
async function listen(server: Server, opts: HealthServerOptions, log: Logger): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'health server error'));
  const port = (server.address() as AddressInfo).port;
  log.info({ host: opts.host ?? '0.0.0.0', port }, 'health server listening');
  return port;
}

function checkAdder(checks: Map<string, HealthCheck>, kind: string) {
  return (name: string, check: HealthCheck): (() => void) => {
    if (checks.has(name)) throw new RangeError(`${kind} check "${name}" is already registered`);
    checks.set(name, check);
    return () => {
      if (checks.get(name) === check) checks.delete(name);
    };
  };
}

export async function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  const log = opts.log.child({ component: 'health-server' });
  if (opts.processMetrics !== false) instrumentProcess(opts.registry);
  const checks: Checks = { readiness: new Map(), liveness: new Map(), fatal: undefined };
  const handle = healthHandler(opts, checks, log);
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error({ err, url: req.url }, 'health server request failed');
      if (!res.headersSent) send(req, res, 500, TEXT, 'internal error\n');
      else res.destroy();
    });
  });
  // Probes are tiny; a stuck client must not pin a socket for the default 5 minutes.
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;
  const port = await listen(server, opts, log);
  let closing: Promise<void> | undefined;
  return {
    port,
    addReadinessCheck: checkAdder(checks.readiness, 'readiness'),
    addLivenessCheck: checkAdder(checks.liveness, 'liveness'),
    setFatal(reason) {
      const text = reason instanceof Error ? reason.message : reason;
      if (checks.fatal === undefined)
        log.error({ reason: text }, 'fatal error registered; /healthz now fails');
      checks.fatal ??= text || 'fatal error';
    },
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Prometheus and kubelet keep connections alive; close() alone would wait for them.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
