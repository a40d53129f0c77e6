// The image ships the product as JavaScript, not as the TypeScript sources the repository runs.
// Node strips types at run time with a WebAssembly build of swc whose memory only grows: the
// first .ts import costs about 20 MB of resident memory and the product's sources about 28 MB
// more, in every netmesh process, for a transform that gives the same bytes every time. So the
// image build does it once, with the same transform Node applies (module.stripTypeScriptTypes,
// which keeps every line and column, so stack traces point at the source lines), and rewrites
// the relative `.ts` import specifiers to `.js`. The benchmarks run this tree too, since it is
// what users run.
import { cpSync, globSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import { dirname, join, relative } from 'node:path';

/** `from './x.ts'`, `import('../y.ts')`: relative specifiers only; packages are left alone. */
const RELATIVE_TS_SPECIFIER = /(\bfrom\s*|\bimport\s*\(\s*)(['"])(\.{1,2}\/[^'"\n]+)\.ts\2/g;

/** Rewrites relative `.ts` import specifiers to `.js`; throws if one is left in another form. */
export function rewriteSpecifiers(code: string, file: string): string {
  const out = code.replace(RELATIVE_TS_SPECIFIER, (_m, head: string, quote: string, path: string) => {
    return `${head}${quote}${path}.js${quote}`;
  });
  // An import the pattern does not know (a template literal, a computed path) would fail at run
  // time in the image only; fail the build instead.
  const left = /\bimport\b[^;\n]*['"`]\.{1,2}\/[^'"`\n]+\.ts['"`]/.exec(out);
  if (left) throw new Error(`${file}: an import of a .ts file the build cannot rewrite: ${left[0]}`);
  return out;
}

/** TypeScript source to the JavaScript Node would run for it. */
export function compileModule(source: string, file: string): string {
  // The API is marked experimental in Node 24; its output is what the runtime loader runs.
  const emitWarning = process.emitWarning;
  process.emitWarning = () => {};
  try {
    return rewriteSpecifiers(stripTypeScriptTypes(source, { mode: 'strip' }), file);
  } finally {
    process.emitWarning = emitWarning;
  }
}

/**
 * Writes the product's folders `dirs` of `repo` to `dest` as JavaScript: `.ts` files compiled
 * to `.js` next to each other, tests left out, other files copied (with their relative `.ts`
 * imports rewritten, as bin/netmesh.js has). Returns the number of modules compiled.
 */
export function compileApp(repo: string, dest: string, dirs: readonly string[]): number {
  let compiled = 0;
  for (const dir of dirs) {
    for (const entry of globSync('**/*', { cwd: join(repo, dir), withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const src = join(entry.parentPath, entry.name);
      const rel = relative(repo, src);
      if (rel.includes('node_modules') || rel.endsWith('.test.ts')) continue;
      const target = join(dest, rel);
      mkdirSync(dirname(target), { recursive: true });
      if (rel.endsWith('.ts')) {
        writeFileSync(target.replace(/\.ts$/, '.js'), compileModule(readFileSync(src, 'utf8'), src));
        compiled++;
      } else if (/\.m?js$/.test(rel)) {
        writeFileSync(target, rewriteSpecifiers(readFileSync(src, 'utf8'), src));
      } else {
        cpSync(src, target);
      }
    }
  }
  return compiled;
}

/**
 * A throwaway copy of the compiled product, to run it as the image does (the benchmarks), with
 * the repository's node_modules linked in.
 */
export function compileAppTree(repo: string, dest: string, dirs: readonly string[], files: readonly string[]): string {
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  compileApp(repo, dest, dirs);
  for (const f of files) cpSync(join(repo, f), join(dest, f));
  symlinkSync(join(repo, 'node_modules'), join(dest, 'node_modules'));
  return dest;
}
