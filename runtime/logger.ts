/**
 * Process logger: pino, JSON lines on stdout, level from NETMESH_LOG_LEVEL (default info).
 * Components take child loggers (componentLogger) and the controller one per reconcile
 * (reconcileLogger, `{ key: 'ns/name' }`), so every line says where it came from.
 */
import { writeSync } from 'node:fs';
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';
import { serializeError } from '../lib/kube-errors.ts';

export interface CreateLoggerOptions {
  /** Overrides NETMESH_LOG_LEVEL. */
  level?: string;
  /** Where JSON lines go; stdout by default. For tests. */
  destination?: DestinationStream;
  /** Environment to read NETMESH_LOG_LEVEL from; process.env by default. */
  env?: Record<string, string | undefined>;
}

/**
 * A file descriptor (stdout) with the lines of one event-loop turn written together. pino's
 * default destination makes one write(2) per line; the webhook logs one line per admission, so
 * under load that was a system call per request, the largest cost after TLS and JSON.parse.
 * Lines wait only until the end of the current turn (setImmediate), so a quiet process still
 * writes each line at once; what is pending is written synchronously on exit. Like pino's
 * destination: retries while a non-blocking pipe is full, and stops writing once it is closed
 * (EPIPE).
 */
export function coalescedDestination(fd: number): DestinationStream & { flush(): void } {
  let pending = '';
  let scheduled = false;
  let closed = false;
  const flush = (): void => {
    scheduled = false;
    let data: string | Buffer = pending;
    pending = '';
    while (!closed && data.length > 0) {
      try {
        const bytes: Buffer | undefined = typeof data === 'string' ? undefined : data;
        const written = bytes ? writeSync(fd, bytes) : writeSync(fd, data as string);
        if (written >= (bytes ? bytes.length : Buffer.byteLength(data as string))) return;
        // A partial write (a pipe near full): go on from the first byte not written.
        data = (bytes ?? Buffer.from(data as string)).subarray(written);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') closed = true;
        else if (code === 'EAGAIN') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
        else throw err;
      }
    }
  };
  process.on('exit', flush);
  return {
    write(line: string): void {
      pending += line;
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    flush,
  };
}

let sharedStdout: (DestinationStream & { flush(): void }) | undefined;
/** One destination per process for every logger on stdout, so their lines stay in order. */
function stdout(): DestinationStream {
  sharedStdout ??= coalescedDestination(1);
  return sharedStdout;
}

/**
 * pino's isoTime, formatted once per millisecond: the same text, without building a Date and
 * its ISO string for every one of the lines a busy webhook writes in the same millisecond.
 */
export function isoTimeCachedPerMs(now: () => number = Date.now): () => string {
  let last = Number.NaN;
  let text = '';
  return () => {
    const ms = now();
    if (ms !== last) {
      last = ms;
      text = `,"time":"${new Date(ms).toISOString()}"`;
    }
    return text;
  };
}

export const LOG_LEVEL_ENV = 'NETMESH_LOG_LEVEL';
const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** The level to use and, when the requested one is not a pino level, why it was ignored. */
export function resolveLogLevel(requested: string | undefined): { level: string; invalid?: string } {
  const v = requested?.trim().toLowerCase();
  if (!v) return { level: 'info' };
  if (LEVELS.has(v)) return { level: v };
  return { level: 'info', invalid: requested };
}

export function createLogger(name: string, opts: CreateLoggerOptions = {}): Logger {
  const env = opts.env ?? process.env;
  const { level, invalid } = resolveLogLevel(opts.level ?? env[LOG_LEVEL_ENV]);
  const options: LoggerOptions = {
    name,
    level,
    timestamp: isoTimeCachedPerMs(),
    // Level names rather than pino's numbers: what log pipelines and people grep for.
    formatters: { level: (label) => ({ level: label }) },
    // `{ err }` shows what failed underneath ("connection refused at 10.0.0.1:443", the
    // apiserver's Status reason), not just "fetch failed" (lib/kube-errors.ts).
    serializers: { err: serializeError },
  };
  const log = pino(options, opts.destination ?? stdout());
  if (invalid !== undefined) {
    log.warn({ [LOG_LEVEL_ENV]: invalid, valid: [...LEVELS] }, 'unknown log level; using info');
  }
  return log;
}

/** A child logger for one component (informer, elector, health server...). */
export function componentLogger(log: Logger, component: string): Logger {
  return log.child({ component });
}

/** A child logger for one reconcile of the object `key` ('ns/name', or 'name' when cluster-scoped). */
export function reconcileLogger(log: Logger, key: string): Logger {
  return log.child({ key });
}
