/**
 * JSON with object keys sorted at every level (arrays keep their order; undefined members are
 * left out, as JSON.stringify does): equal values give equal text. The one definition for the
 * template hash (webhook/core/template.ts) and the status comparison (operator/model.ts), on
 * safe-stable-stringify (what pino already uses) rather than a hand-written replacer.
 */
import { configure } from 'safe-stable-stringify';

// A cycle is a bug in the caller, not something to hash: throw, as JSON.stringify does.
const stringify = configure({ deterministic: true, circularValue: TypeError, bigint: false });

export function canonicalJson(value: unknown): string {
  const text = stringify(value);
  if (text === undefined) throw new TypeError(`cannot serialise ${typeof value} as JSON`);
  return text;
}
