// Flag parsing shared by the subcommands: node:util parseArgs plus environment fallbacks, so
// every flag can also be set as NETMESH_<FLAG> (documented in --help and the README).
import { parseArgs } from 'node:util';
import { DurationError, parseDuration } from '../lib/duration.ts';
import { DEFAULT_WEBHOOK_NAMESPACE } from '../webhook/core/contract.ts';

export interface FlagSpec {
  type: 'string' | 'boolean';
  short?: string;
  default?: string | boolean;
  description: string;
  /** Environment variable consulted when the flag is not given. */
  env?: string;
  multiple?: boolean;
  /** The only values accepted (checked by parseFlags; offered by shell completion). */
  values?: readonly string[];
  /** What shell completion offers for the value: files, directories, or nothing in particular. */
  complete?: 'file' | 'dir';
  /** Appended to the error for a value outside `values` (e.g. where a renamed meaning went). */
  hint?: string;
}

/**
 * A flag a command does not have but that users will try, refused with its own one-line
 * message (where to go instead) rather than parseArgs' "Unknown option" and the whole help.
 */
export interface RefusedFlag {
  short?: string;
  message: string;
}

export class FlagError extends Error {
  override name = 'FlagError';
}

/** --kubeconfig and --context, with kubectl's meaning, for every command that talks to a cluster. */
export const kubeFlags = {
  kubeconfig: {
    type: 'string',
    description:
      'kubeconfig file; default: KUBECONFIG, then ~/.kube/config, then the in-cluster ServiceAccount',
    env: 'NETMESH_KUBECONFIG',
    complete: 'file',
  },
  context: {
    type: 'string',
    description: 'kubeconfig context to use (default: its current-context)',
    env: 'NETMESH_CONTEXT',
  },
} satisfies Record<string, FlagSpec>;

/**
 * --netmesh-namespace: the namespace netmesh is installed in, for every command that needs it
 * (its Lease, TLS Secret, template, Service). `-n/--namespace` is never this: as in kubectl,
 * istioctl (-i) and linkerd (-L) it is the namespace of the workloads a command looks at.
 */
export const netmeshNamespaceFlag = {
  'netmesh-namespace': {
    type: 'string',
    description:
      'namespace netmesh is installed in: its Lease, TLS Secret, template ConfigMap and Service (never injected)',
    env: 'NETMESH_NAMESPACE',
    default: DEFAULT_WEBHOOK_NAMESPACE,
  },
} satisfies Record<string, FlagSpec>;

/**
 * -n/--namespace on the daemons: they look at no workloads, and the namespace they are
 * installed in is --netmesh-namespace. Refused rather than reinterpreted, so that a script
 * written for the old meaning fails at once instead of running in the wrong namespace.
 */
export function refuseWorkloadNamespace(command: string): Record<string, RefusedFlag> {
  return {
    namespace: {
      short: 'n',
      message: `-n/--namespace is not a flag of netmesh ${command} (it looks at no workloads): the namespace netmesh is installed in is --netmesh-namespace (env NETMESH_NAMESPACE)`,
    },
  };
}

// RFC 1123 label, what the apiserver requires of a namespace name.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A namespace flag's value, refused as a usage error unless the apiserver could accept it. */
export function namespaceFlag(name: string, value: string | undefined): string {
  if (value === undefined || value === '') throw new FlagError(`--${name} must not be empty`);
  if (value.length > 63 || !DNS_LABEL.test(value)) {
    throw new FlagError(
      `--${name} must be a namespace name (lowercase letters, digits and '-', at most 63), got "${value}"`,
    );
  }
  return value;
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** --log-level, for every long-running command. */
export const logLevelFlag = {
  'log-level': {
    type: 'string',
    description: 'log level: trace, debug, info, warn, error, fatal or silent',
    env: 'NETMESH_LOG_LEVEL',
    default: 'info',
    values: LOG_LEVELS,
  },
} satisfies Record<string, FlagSpec>;

/** --health-listen, for every long-running command (runtime/lifecycle.ts serves it). */
export const healthListenFlag = {
  'health-listen': {
    type: 'string',
    description: 'host:port for /healthz, /readyz and /metrics (plain HTTP)',
    env: 'NETMESH_HEALTH_LISTEN',
    default: '0.0.0.0:8081',
  },
} satisfies Record<string, FlagSpec>;

/** -f and -R, for the commands that read manifests (cli/manifests.ts reads them). */
export const manifestFlags = {
  filename: {
    type: 'string',
    short: 'f',
    multiple: true,
    description: 'manifest file, directory, or - for stdin; repeatable',
    complete: 'file',
  },
  recursive: { type: 'boolean', short: 'R', description: 'read the subdirectories of -f directories too' },
} satisfies Record<string, FlagSpec>;

/** -o text|json, for the commands that report. */
export const outputFlag = {
  output: {
    type: 'string',
    short: 'o',
    description: 'output format',
    default: 'text',
    values: ['text', 'json'],
  },
} satisfies Record<string, FlagSpec>;

export function helpText(
  command: string,
  summary: string,
  specs: Record<string, FlagSpec>,
  positionals?: string,
): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const value = s.type === 'string' ? ` <${s.values ? s.values.join('|') : 'value'}>` : '';
    const left = `  ${s.short ? `-${s.short}, ` : '    '}--${name}${s.values && s.values.length > 4 ? ' <value>' : value}`;
    const extra = [
      s.default !== undefined && s.default !== '' ? `default ${String(s.default)}` : '',
      s.env ? `env ${s.env}` : '',
    ]
      .filter(Boolean)
      .join('; ');
    const pad = left.length >= 34 ? `${left}\n${''.padEnd(34)}` : left.padEnd(34);
    return `${pad} ${s.description}${extra ? ` (${extra})` : ''}`;
  });
  return [
    `usage: netmesh ${command}${positionals ? ` ${positionals}` : ''} [flags]`,
    '',
    summary,
    '',
    'flags:',
    ...rows,
    `${'  -h, --help'.padEnd(34)} show this help`,
  ].join('\n');
}

const TRUE = new Set(['1', 't', 'true', 'yes', 'y', 'on']);
const FALSE = new Set(['0', 'f', 'false', 'no', 'n', 'off']);

/** Go's strconv.ParseBool, plus yes/no/on/off for environment variables. */
export function parseBool(name: string, raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw new FlagError(`--${name} must be true or false, got "${raw}"`);
}

/**
 * Boolean flags the way Go's pflag reads them: `--flag`, `--flag=true`, `--flag=false`, and
 * (for scripts written when some of them took a value) `--flag true` / `--flag false`.
 * parseArgs only knows the bare form, so the others are folded into it here.
 */
function foldBooleans(
  argv: readonly string[],
  specs: Record<string, FlagSpec>,
): { args: string[]; explicit: Map<string, boolean> } {
  const explicit = new Map<string, boolean>();
  const args: string[] = [];
  const booleans = new Set(Object.entries(specs).flatMap(([n, s]) => (s.type === 'boolean' ? [n] : [])));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      args.push(...argv.slice(i));
      break;
    }
    const m = /^--([^=]+)(?:=(.*))?$/s.exec(arg);
    const name = m?.[1];
    if (!m || name === undefined || !booleans.has(name)) {
      args.push(arg);
      continue;
    }
    if (m[2] !== undefined) {
      explicit.set(name, parseBool(name, m[2]));
      continue;
    }
    const next = argv[i + 1]?.toLowerCase();
    if (next !== undefined && (next === 'true' || next === 'false')) {
      explicit.set(name, next === 'true');
      i++;
      continue;
    }
    explicit.set(name, true);
  }
  return { args, explicit };
}

/**
 * Throws the refusal of the first refused flag in argv, in any spelling parseArgs accepts:
 * --name, --name=v, -n, -nv, and -n inside a group of short flags (-qn). Values cannot hide a
 * flag: parseArgs refuses a separate value starting with "-", and the rest of a short group
 * after a string flag is that flag's value.
 */
function refuseFlags(
  argv: readonly string[],
  specs: Record<string, FlagSpec>,
  refuse: Record<string, RefusedFlag>,
): void {
  const stringShorts = new Set(
    Object.values(specs).flatMap((s) => (s.type === 'string' && s.short ? [s.short] : [])),
  );
  for (const arg of argv) {
    if (arg === '--') return;
    for (const [name, r] of Object.entries(refuse)) {
      if (arg === `--${name}` || arg.startsWith(`--${name}=`)) throw new FlagError(r.message);
      if (!r.short || !/^-[^-]/.test(arg)) continue;
      for (const c of arg.slice(1)) {
        if (c === r.short) throw new FlagError(r.message);
        if (stringShorts.has(c)) break;
      }
    }
  }
}

export function parseFlags<T extends Record<string, FlagSpec>>(
  command: string,
  summary: string,
  argv: string[],
  specs: T,
  opts: { positionals?: string; refuse?: Record<string, RefusedFlag> } = {},
): {
  values: {
    [K in keyof T]: T[K]['type'] extends 'boolean'
      ? boolean
      : T[K]['multiple'] extends true
        ? string[]
        : string | undefined;
  };
  positionals: string[];
  help: boolean;
} {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const [name, s] of Object.entries(specs)) {
    options[name] = {
      type: s.type,
      ...(s.short ? { short: s.short } : {}),
      ...(s.multiple ? { multiple: true } : {}),
    };
  }
  const usage = (message: string): FlagError =>
    new FlagError(`${message}\n\n${helpText(command, summary, specs, opts.positionals)}`);
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  let explicit: Map<string, boolean>;
  if (opts.refuse) refuseFlags(argv, specs, opts.refuse);
  try {
    const folded = foldBooleans(argv, specs);
    explicit = folded.explicit;
    parsed = parseArgs({
      args: folded.args,
      options,
      allowPositionals: opts.positionals !== undefined,
      allowNegative: true,
      strict: true,
    });
  } catch (err) {
    if (err instanceof FlagError) throw err;
    throw usage((err as Error).message);
  }
  if (parsed.values['help']) {
    console.log(helpText(command, summary, specs, opts.positionals));
    return { values: {} as never, positionals: [], help: true };
  }
  const values: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(specs)) {
    let v = explicit.get(name) ?? parsed.values[name];
    if (v === undefined && s.env && process.env[s.env] !== undefined && process.env[s.env] !== '') {
      const raw = process.env[s.env]!;
      v = s.type === 'boolean' ? parseBool(name, raw) : s.multiple ? raw.split(',') : raw;
    }
    if (v === undefined) v = s.default ?? (s.type === 'boolean' ? false : s.multiple ? [] : undefined);
    if (s.values && typeof v === 'string') {
      const given = v;
      // Case-insensitive, as the environment variables always were (NETMESH_LOG_LEVEL=DEBUG).
      v = s.values.find((x) => x.toLowerCase() === given.trim().toLowerCase());
      if (v === undefined) {
        throw new FlagError(
          `--${name} must be one of ${s.values.join(', ')}, got "${given}"${parsed.values[name] === undefined && s.env ? ` (from ${s.env})` : ''}${s.hint ? `: ${s.hint}` : ''}`,
        );
      }
    }
    values[name] = v;
  }
  return { values: values as never, positionals: parsed.positionals, help: false };
}

export function intFlag(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0)
    throw new FlagError(`--${name} must be a non-negative number, got "${value}"`);
  return n;
}

/** Go durations (15s, 500ms, 2m, 1h30m). Returns milliseconds. */
export function durationFlag(name: string, value: string | undefined, fallbackMs: number): number {
  if (value === undefined || value === '') return fallbackMs;
  try {
    return parseDuration(value);
  } catch (err) {
    if (err instanceof DurationError) throw new FlagError(`--${name}: ${err.message}`);
    throw err;
  }
}
