import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileModule, rewriteSpecifiers } from './compile.ts';

describe('compiling the product for the image', () => {
  test('relative .ts specifiers become .js: static, re-export, type-free and dynamic imports', () => {
    const src = [
      "import { a } from './a.ts';",
      'import b from "../lib/b.ts";',
      "export { c } from './c.ts';",
      "export * from './d.ts';",
      "const e = await import('./commands/e.ts');",
      "const f = () => import( '../f.ts' );",
    ].join('\n');
    assert.equal(
      rewriteSpecifiers(src, 'x.ts'),
      [
        "import { a } from './a.js';",
        'import b from "../lib/b.js";',
        "export { c } from './c.js';",
        "export * from './d.js';",
        "const e = await import('./commands/e.js');",
        "const f = () => import( '../f.js' );",
      ].join('\n'),
    );
  });

  test('packages, non-relative and non-import strings are left alone', () => {
    const src = [
      "import * as k8s from '@kubernetes/client-node';",
      "import { x } from 'pkg/file.ts';",
      "const name = './not-an-import.ts';",
    ].join('\n');
    assert.equal(rewriteSpecifiers(src, 'x.ts'), src);
  });

  test('an import of a .ts file in a form it cannot rewrite fails the build', () => {
    assert.throws(
      () => rewriteSpecifiers('const m = await import(`./commands/${name}.ts`);', 'cli/x.ts'),
      /cli\/x\.ts: an import of a \.ts file the build cannot rewrite/,
    );
  });

  test('types are stripped in place: every line keeps its number, so stack traces hold', () => {
    const src = [
      "import type { V1Pod } from '@kubernetes/client-node';",
      "import { plan } from './plan.ts';",
      'export interface Options {',
      '  limit: number;',
      '}',
      'export function run(pod: V1Pod, opts: Options): number {',
      '  return plan(pod as never, opts.limit satisfies number)!;',
      '}',
    ].join('\n');
    const out = compileModule(src, 'x.ts');
    assert.equal(out.split('\n').length, src.split('\n').length);
    assert.match(out, /import \{ plan \} from '\.\/plan\.js';/);
    assert.match(out, /export function run\(pod\s*, opts\s*\)\s*\{/);
    assert.doesNotMatch(out, /V1Pod|interface|satisfies|as never/);
    assert.equal(out.split('\n')[6]!.indexOf('return'), src.split('\n')[6]!.indexOf('return'));
  });
});
