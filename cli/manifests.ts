// Reading manifests the way `kubectl apply -f` does: several -f, each a file, a directory (its
// .yaml, .yml and .json files, sorted; subdirectories with --recursive) or - for stdin; YAML
// streams and JSON alike; `kind: List` (what `kubectl get -o yaml|json` prints) unwrapped into
// its items. Each source remembers whether it was JSON, so `netmesh inject` can answer in kind.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { UserFacingError } from '../lib/errors.ts';
import { isPlainObject } from '../webhook/core/template.ts';

export interface ManifestSource {
  /** The path as given (or inside a given directory), or "stdin". */
  name: string;
  text: string;
  format: 'yaml' | 'json';
}

const MANIFEST_EXTENSIONS = /\.(ya?ml|json)$/i;

function readText(path: string): string {
  try {
    return path === '-' ? readFileSync(0, 'utf8') : readFileSync(path, 'utf8');
  } catch (err) {
    throw new UserFacingError(`cannot read ${path === '-' ? 'stdin' : path}: ${(err as Error).message}`);
  }
}

/** JSON when the first meaningful character opens an object or array (kubectl's sniffing). */
export function looksLikeJson(text: string): boolean {
  return /^\s*[{[]/.test(text);
}

function filesOf(dir: string, recursive: boolean): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
    a.name.localeCompare(b.name),
  )) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (recursive) out.push(...filesOf(path, true));
    } else if (MANIFEST_EXTENSIONS.test(entry.name)) out.push(path);
  }
  return out;
}

export function readManifestSources(filenames: readonly string[], recursive = false): ManifestSource[] {
  if (filenames.length === 0) {
    throw new UserFacingError(
      'no manifest given',
      'pass -f <file|directory> (or -f - for stdin), as often as needed',
    );
  }
  if (filenames.filter((f) => f === '-').length > 1)
    throw new UserFacingError('-f - (stdin) can be given only once');
  const sources: ManifestSource[] = [];
  for (const f of filenames) {
    let paths = [f];
    if (f !== '-') {
      let isDir: boolean;
      try {
        isDir = statSync(f).isDirectory();
      } catch (err) {
        throw new UserFacingError(`cannot read ${f}: ${(err as Error).message}`);
      }
      if (isDir) {
        paths = filesOf(f, recursive);
        if (paths.length === 0) {
          throw new UserFacingError(
            `directory ${f} holds no .yaml, .yml or .json file`,
            recursive ? 'check the path' : 'pass --recursive (-R) to read its subdirectories',
          );
        }
      }
    }
    for (const p of paths) {
      const text = readText(p);
      sources.push({ name: p === '-' ? 'stdin' : p, text, format: looksLikeJson(text) ? 'json' : 'yaml' });
    }
  }
  return sources;
}

/** `kind: List` or any `<Kind>List` with an items array. */
export function isList(o: unknown): o is Record<string, unknown> & { items: unknown[] } {
  return (
    isPlainObject(o) &&
    typeof o['kind'] === 'string' &&
    o['kind'].endsWith('List') &&
    Array.isArray(o['items'])
  );
}

/** Every object of a source, Lists unwrapped (recursively), in order. */
export function objectsOf(source: ManifestSource): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const add = (o: unknown): void => {
    if (isList(o)) for (const item of o.items) add(item);
    else if (isPlainObject(o)) out.push(o);
  };
  if (source.format === 'json') add(parseJson(source));
  else {
    for (const [i, doc] of parseAllDocuments(source.text).entries()) {
      if (doc.errors[0]) {
        throw new UserFacingError(
          `${source.name}: document ${i + 1} is not valid YAML: ${doc.errors[0].message.split('\n')[0]}`,
          'fix the YAML and retry',
        );
      }
      add(doc.toJS());
    }
  }
  return out;
}

export function parseJson(source: ManifestSource): unknown {
  try {
    return JSON.parse(source.text);
  } catch (err) {
    throw new UserFacingError(
      `${source.name} is not valid JSON: ${(err as Error).message}`,
      'fix the JSON and retry',
    );
  }
}

/** The indentation of a JSON text (kubectl prints 4 spaces), to answer in the same layout. */
export function jsonIndent(text: string): number {
  const m = /^[{[]\s*\n( +)\S/.exec(text.trimStart());
  return m ? m[1]!.length : 2;
}
