/**
 * Process logger: pino, JSON lines on stdout, level from NETMESH_LOG_LEVEL (default info).
 * Components take child loggers (componentLogger) and the controller one per reconcile
 * (reconcileLogger, `{ key: 'ns/name' }`), so every line says where it came from.
 */
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
    timestamp: pino.stdTimeFunctions.isoTime,
    // Level names rather than pino's numbers: what log pipelines and people grep for.
    formatters: { level: (label) => ({ level: label }) },
    // `{ err }` shows what failed underneath ("connection refused at 10.0.0.1:443", the
    // apiserver's Status reason), not just "fetch failed" (lib/kube-errors.ts).
    serializers: { err: serializeError },
  };
  const log = opts.destination ? pino(options, opts.destination) : pino(options);
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
