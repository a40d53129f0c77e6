// Fuzzing the template parser (core/template.ts parseTemplate) and the template source's
// reducer (template-source.ts reduceTemplate) with fast-check: random and garbled YAML and
// JSON, valid templates with one value swapped for another type, YAML's own traps (aliases,
// tags, merge keys, several documents), deep nesting and inputs over the size limit. Neither
// ever throws; a refused template has a one-line reason; the reducer keeps the last good
// template through any sequence of edits and deletions and reports why it kept it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1ConfigMap } from '@kubernetes/client-node';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { validTemplate } from '../../examples/arbitraries.ts';
import { INITIAL_TEMPLATE_STATE, reduceTemplate, type TemplateState } from '../template-source.ts';
import { isDns1123Label, MAX_TEMPLATE_BYTES, parseTemplate } from './template.ts';

const NUM_RUNS = Number(process.env['NETMESH_PROPERTY_RUNS'] ?? 300);

/** parseTemplate's contract for any input: a result, never an exception; reasons on one line. */
function parses(text: unknown): ReturnType<typeof parseTemplate> {
  const result = parseTemplate(text as string);
  if (result.ok) {
    const names = [...result.template.containers, ...result.template.initContainers].map((c) => c.name);
    assert.ok(names.every(isDns1123Label), 'accepted names are DNS-1123 labels');
    assert.equal(new Set(names).size, names.length, 'accepted container names are unique');
    assert.ok(Object.isFrozen(result.template), 'accepted templates are frozen');
    assert.match(result.hash, /^[0-9a-f]{16}$/);
  } else {
    assert.ok(result.error.length > 0, 'a reason');
    assert.doesNotMatch(result.error, /\n/, `one line: ${JSON.stringify(result.error)}`);
  }
  return result;
}

/** Edits of the text: cut, insert, delete, duplicate, at random places. */
const garble = (text: string): fc.Arbitrary<string> =>
  fc
    .array(
      fc.tuple(
        fc.constantFrom('cut', 'insert', 'delete', 'duplicate'),
        fc.nat(text.length),
        fc.nat(text.length),
        fc.oneof(
          fc.string({ maxLength: 4 }),
          fc.constantFrom(
            ':',
            '-',
            ' ',
            '\n',
            '\t',
            '{',
            '}',
            '[',
            ']',
            '"',
            "'",
            '&a',
            '*a',
            '!!',
            '#',
            '|',
            '>',
            '---',
          ),
        ),
      ),
      { minLength: 1, maxLength: 4 },
    )
    .map((edits) =>
      edits.reduce((t, [kind, a, b, s]) => {
        const [i, j] = [Math.min(a, b, t.length), Math.min(Math.max(a, b), t.length)];
        if (kind === 'cut') return t.slice(0, i);
        if (kind === 'insert') return t.slice(0, i) + s + t.slice(i);
        if (kind === 'delete') return t.slice(0, i) + t.slice(j);
        return t.slice(0, j) + t.slice(i, j) + t.slice(j);
      }, text),
    );

/** A valid template with one value, anywhere in it, replaced by another JSON value. */
const wrongType = validTemplate.chain((sample) => {
  const paths: (string | number)[][] = [];
  const walk = (v: unknown, path: (string | number)[]): void => {
    paths.push(path);
    if (Array.isArray(v)) {
      for (const [i, x] of v.entries()) walk(x, [...path, i]);
    } else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
  };
  walk(sample.object, []);
  return fc
    .tuple(fc.constantFrom(...paths), fc.jsonValue({ maxDepth: 2 }), fc.boolean())
    .map(([path, value, yaml]) => {
      const copy = structuredClone(sample.object) as Record<string | number, unknown>;
      let root: unknown = copy;
      if (path.length === 0) root = value;
      else {
        let node = copy as Record<string | number, unknown>;
        for (const p of path.slice(0, -1)) node = node[p] as Record<string | number, unknown>;
        node[path.at(-1)!] = value;
      }
      return yaml ? stringify(root) : JSON.stringify(root);
    });
});

const yamlTraps = fc.constantFrom(
  '',
  '~',
  'null',
  '[]',
  '42',
  '"a string"',
  '---\ncontainers: []\n---\nvolumes: []\n',
  '%YAML 1.1\n---\ncontainers: []\n',
  'containers: *nope\n',
  'a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n',
  'base: &b {name: envoy, image: envoy}\ncontainers:\n- <<: *b\n  name: envoy2\n',
  'containers: !!binary aGVsbG8=\n',
  'containers: !!set {a, b}\n',
  'containers: !!omap [a: 1]\n',
  'containers: !custom [1]\n',
  'containers:\n- name: envoy\n  image: !!timestamp 2001-12-14\n',
  'containers: [{name: envoy, image: envoy}]\ncontainers: []\n',
  '{"__proto__": {"containers": []}}',
  '{"containers": [{"name": "envoy", "image": "envoy", "__proto__": {"x": 1}}]}',
  'containers:\n- name: envoy\n  image: envoy\n  volumeMounts: [{name: v, mountPath: /a}]\n',
  '\uFEFFcontainers: []\n',
  'containers:\n\t- name: a\n',
);

/** Nesting as deep as the size limit allows: slow to parse, so each is tried once. */
const DEEP = [
  `${'['.repeat(30_000)}${']'.repeat(30_000)}`,
  `${'{a: '.repeat(12_000)}1${'}'.repeat(12_000)}`,
  `${'- '.repeat(10_000)}x`,
  `${Array.from({ length: 300 }, (_, i) => `${' '.repeat(i)}a:`).join('\n')} 1`,
];

describe('template parser fuzz (fast-check)', () => {
  test('valid templates are accepted, as JSON and as YAML', () => {
    fc.assert(
      fc.property(validTemplate, (sample) => {
        const result = parses(sample.text);
        assert.ok(result.ok, result.ok ? '' : `${result.error}\n${sample.text}`);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  test('random text, JSON values as JSON or YAML: a result, never an exception', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 200 }),
          fc.jsonValue().map((v) => JSON.stringify(v) ?? ''),
          fc.jsonValue().map((v) => stringify(v)),
          fc.object().map((v) => {
            try {
              return stringify(v);
            } catch {
              return String(v);
            }
          }),
        ),
        (text) => {
          parses(text);
        },
      ),
      { numRuns: NUM_RUNS * 3 },
    );
  });

  test('garbled valid templates and wrong types in every field: a result, never an exception', () => {
    fc.assert(
      fc.property(
        validTemplate.chain((s) => garble(s.text)),
        (text) => {
          parses(text);
        },
      ),
      { numRuns: NUM_RUNS },
    );
    fc.assert(
      fc.property(wrongType, (text) => {
        parses(text);
      }),
      { numRuns: NUM_RUNS * 2 },
    );
  });

  test("YAML's traps, deep nesting and non-text: refused with a reason", () => {
    fc.assert(
      fc.property(yamlTraps, (text) => {
        parses(text);
      }),
      { numRuns: 100 },
    );
    for (const text of DEEP) {
      const started = performance.now();
      assert.equal(parses(text).ok, false);
      console.log(
        `# ${text.length} bytes of nesting refused in ${(performance.now() - started).toFixed(0)} ms`,
      );
    }
    for (const text of [undefined, null, 42, {}, ['containers']]) {
      const result = parses(text);
      assert.equal(result.ok, false);
    }
    const bomb = parses(
      'a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n',
    );
    assert.deepEqual(bomb, {
      ok: false,
      error: 'invalid YAML: Excessive alias count indicates a resource exhaustion attack',
    });
    assert.match(
      (parses('containers: *nope\n') as { error: string }).error,
      /^invalid YAML: Unresolved alias/,
    );
  });

  test('inputs over the size limit are refused at once, before any parsing', () => {
    const line = '- name: c\n  image: envoy\n';
    for (const text of [
      `containers:\n${line.repeat(Math.ceil(MAX_TEMPLATE_BYTES / line.length))}`,
      `containers:\n${line.repeat(50_000)}`,
      `{"containers":[${'{"name":"a","image":"b"},'.repeat(60_000)}]}`,
      'x'.repeat(MAX_TEMPLATE_BYTES + 1),
      'é'.repeat(MAX_TEMPLATE_BYTES / 2 + 1),
    ]) {
      const started = performance.now();
      const result = parses(text);
      assert.equal(result.ok, false);
      assert.match(
        (result as { error: string }).error,
        new RegExp(`^template is ${Buffer.byteLength(text)} bytes, over the limit of ${MAX_TEMPLATE_BYTES}$`),
      );
      assert.ok(performance.now() - started < 50, 'refused without parsing');
    }
    // Just under the limit is parsed (and here, accepted).
    const names = Array.from({ length: 1000 }, (_, i) => `- name: c${i}\n  image: envoy\n`).join('');
    const near = `containers:\n${names}`.slice(0, MAX_TEMPLATE_BYTES);
    assert.ok(Buffer.byteLength(near) <= MAX_TEMPLATE_BYTES);
    parses(near.slice(0, near.lastIndexOf('- name')));
  });
});

/** One event for the reducer: a ConfigMap upsert with good, broken or missing data, or a delete. */
type Event = { type: 'upsert'; configMap: V1ConfigMap } | { type: 'delete' };

const eventArb: fc.Arbitrary<Event> = fc
  .oneof(
    validTemplate.map((s) => ({ type: 'upsert' as const, data: { config: s.text } as unknown })),
    validTemplate
      .chain((s) => garble(s.text))
      .map((t) => ({ type: 'upsert' as const, data: { config: t } as unknown })),
    wrongType.map((t) => ({ type: 'upsert' as const, data: { config: t } as unknown })),
    yamlTraps.map((t) => ({ type: 'upsert' as const, data: { config: t } as unknown })),
    fc
      .constantFrom<unknown>(
        undefined,
        null,
        {},
        { other: 'x' },
        { config: 42 },
        { config: null },
        { config: ['a'] },
      )
      .map((data) => ({
        type: 'upsert' as const,
        data,
      })),
    fc.constant({ type: 'delete' as const, data: undefined }),
  )
  .chain((e) => fc.tuple(fc.constant(e), fc.nat()))
  .map(
    ([e, rv]): Event =>
      e.type === 'delete'
        ? { type: 'delete' }
        : {
            type: 'upsert',
            configMap: {
              metadata: { name: 'envoy-initializer', resourceVersion: String(rv) },
              data: e.data as Record<string, string>,
            },
          },
  );

describe('template source reducer fuzz (fast-check)', () => {
  test('any sequence of edits and deletions: never throws, the last good template kept, the reason reported', () => {
    fc.assert(
      fc.property(fc.array(eventArb, { minLength: 1, maxLength: 10 }), (events) => {
        let state: TemplateState = INITIAL_TEMPLATE_STATE;
        // The model: the hash of the last template that parsed since the last delete.
        let good: string | undefined;
        events.forEach((event, n) => {
          const { state: next, effect } = reduceTemplate(state, event, new Date(n * 1000));
          if (event.type === 'delete') {
            good = undefined;
            assert.equal(effect.kind, 'removed');
            assert.equal(next.present, false);
          } else {
            const text = event.configMap.data?.['config'];
            const parsed = typeof text === 'string' ? parseTemplate(text) : undefined;
            if (parsed?.ok) {
              assert.ok(effect.kind === 'loaded' || effect.kind === 'unchanged', effect.kind);
              assert.equal(next.error, undefined);
              good = parsed.hash;
            } else {
              assert.equal(effect.kind, 'invalid');
              if (effect.kind === 'invalid') {
                assert.ok(effect.message.length > 0 && !effect.message.includes('\n'), effect.message);
                assert.equal(effect.keptHash, good, 'reports the template it keeps');
              }
              assert.equal(next.error?.message.length ? 'reason' : 'none', 'reason');
            }
            assert.equal(next.present, true);
          }
          assert.equal(next.good?.hash, good, `after event ${n}: the last good template`);
          state = next;
        });
      }),
      { numRuns: Math.ceil(NUM_RUNS / 2) },
    );
  });
});
