// Durations as Go's time.ParseDuration reads them ("1h30m", "1m30s", "500ms", "15s", "0"),
// because the chart's values and the flags are written by people who also write client-go,
// kubectl and controller-runtime durations: the same spelling must mean the same thing here.
// Pure: the CLI turns a DurationError into a usage error naming the flag, the chart schema
// carries DURATION_PATTERN, and both reject what the other would.

/** Milliseconds per unit. Go also accepts "µs" (U+00B5) and "μs" (U+03BC) for microseconds. */
const UNITS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * The same grammar as a JSON-schema / ECMAScript pattern (values.schema.json keeps a copy):
 * one or more <number><unit> terms, or a bare 0. No sign: netmesh has no negative durations.
 */
export const DURATION_PATTERN = '^(0|(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$';

export class DurationError extends Error {
  override name = 'DurationError';
}

const TERM = /([0-9]*(?:\.[0-9]*)?)([a-zµμ]*)/y;

/**
 * Parses a Go duration into milliseconds (fractions kept: "1.5ms" is 1.5). Throws DurationError
 * with a message that says what is wrong and shows valid spellings.
 */
export function parseDuration(input: string): number {
  const text = input.trim();
  const examples = 'e.g. 15s, 500ms, 2m, 1h30m';
  if (text === '') throw new DurationError(`empty duration (${examples})`);
  if (text.startsWith('-')) throw new DurationError(`"${input}" is negative; durations here must be >= 0`);
  if (/\s/.test(text)) throw new DurationError(`"${input}" contains a space: write 1h30m, not 1h 30m`);
  if (text === '0') return 0;
  const bare = /^\+?[0-9]+(\.[0-9]+)?$/.exec(text);
  if (bare) {
    // Go refuses a number without unit; guessing seconds (or ms) silently is how 15 becomes 15ms.
    throw new DurationError(
      `"${input}" has no unit: did you mean ${text.replace(/^\+/, '')}s? (${examples})`,
    );
  }
  let total = 0;
  let pos = text.startsWith('+') ? 1 : 0;
  while (pos < text.length) {
    TERM.lastIndex = pos;
    const m = TERM.exec(text);
    const whole = m?.[0] ?? '';
    const num = m?.[1] ?? '';
    const unit = m?.[2] ?? '';
    if (!m || whole === '' || num === '' || num === '.') {
      throw new DurationError(`"${input}" is not a duration (${examples})`);
    }
    if (unit === '') throw new DurationError(`"${input}" is missing a unit after ${num} (${examples})`);
    const factor = UNITS[unit];
    if (factor === undefined) {
      throw new DurationError(`"${input}" has an unknown unit "${unit}": use ns, us, ms, s, m or h`);
    }
    total += Number(num) * factor;
    pos += whole.length;
  }
  if (!Number.isFinite(total)) throw new DurationError(`"${input}" is out of range`);
  return total;
}

/** Milliseconds in Go's String() spelling: 90000 → "1m30s", 500 → "500ms", 0 → "0s". */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000) return `${Number(ms.toFixed(3))}ms`;
  let rest = ms;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = Number((rest / 1000).toFixed(3));
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s}s`;
}
