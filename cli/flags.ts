// Flag parsing shared by the subcommands: node:util parseArgs plus environment fallbacks, so
// every flag can also be set as NETMESH_<FLAG> (documented in --help and the README).
import { parseArgs } from 'node:util';

export interface FlagSpec {
  type: 'string' | 'boolean';
  short?: string;
  default?: string | boolean;
  description: string;
  /** Environment variable consulted when the flag is not given. */
  env?: string;
  multiple?: boolean;
}

export class FlagError extends Error {
  override name = 'FlagError';
}

export function helpText(command: string, summary: string, specs: Record<string, FlagSpec>): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const left = `  ${s.short ? `-${s.short}, ` : ''}--${name}${s.type === 'string' ? ' <value>' : ''}`;
    const extra = [
      s.default !== undefined && s.default !== '' ? `default ${String(s.default)}` : '',
      s.env ? `env ${s.env}` : '',
    ]
      .filter(Boolean)
      .join('; ');
    return `${left.padEnd(34)} ${s.description}${extra ? ` (${extra})` : ''}`;
  });
  return [
    `usage: netmesh ${command} [flags]`,
    '',
    summary,
    '',
    'flags:',
    ...rows,
    `${'  -h, --help'.padEnd(34)} show this help`,
  ].join('\n');
}

export function parseFlags<T extends Record<string, FlagSpec>>(
  command: string,
  summary: string,
  argv: string[],
  specs: T,
): {
  values: {
    [K in keyof T]: T[K]['type'] extends 'boolean'
      ? boolean
      : T[K]['multiple'] extends true
        ? string[]
        : string | undefined;
  };
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
  let parsed: { values: Record<string, unknown> };
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: false, strict: true });
  } catch (err) {
    throw new FlagError(`${(err as Error).message}\n\n${helpText(command, summary, specs)}`);
  }
  if (parsed.values['help']) {
    console.log(helpText(command, summary, specs));
    return { values: {} as never, help: true };
  }
  const values: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(specs)) {
    let v = parsed.values[name];
    if (v === undefined && s.env && process.env[s.env] !== undefined) {
      const raw = process.env[s.env]!;
      v =
        s.type === 'boolean'
          ? ['1', 'true', 'yes'].includes(raw.toLowerCase())
          : s.multiple
            ? raw.split(',')
            : raw;
    }
    if (v === undefined) v = s.default ?? (s.type === 'boolean' ? false : s.multiple ? [] : undefined);
    values[name] = v;
  }
  return { values: values as never, help: false };
}

export function intFlag(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0)
    throw new FlagError(`--${name} must be a non-negative number, got "${value}"`);
  return n;
}

/** Durations like 15s, 500ms, 2m, or plain seconds. Returns milliseconds. */
export function durationFlag(name: string, value: string | undefined, fallbackMs: number): number {
  if (value === undefined || value === '') return fallbackMs;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new FlagError(`--${name} must be a duration like 15s, 500ms or 2m, got "${value}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * unit;
}
