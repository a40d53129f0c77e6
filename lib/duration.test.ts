import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DURATION_PATTERN, DurationError, formatDuration, parseDuration } from './duration.ts';

describe('parseDuration (Go time.ParseDuration syntax)', () => {
  test('single and compound terms', () => {
    const cases: [string, number][] = [
      ['0', 0],
      ['0s', 0],
      ['15s', 15_000],
      ['500ms', 500],
      ['2m', 120_000],
      ['1h30m', 5_400_000],
      ['1m30s', 90_000],
      ['1h1m1s1ms', 3_661_001],
      ['1.5h', 5_400_000],
      ['.5s', 500],
      ['1.s', 1000],
      ['8760h', 8760 * 3_600_000],
      ['1500us', 1.5],
      ['1500µs', 1.5],
      ['2000000ns', 2],
      [' 15s ', 15_000],
      ['+3s', 3000],
    ];
    for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
  });

  test('errors say what is wrong', () => {
    const bad: [string, RegExp][] = [
      ['', /empty duration/],
      ['15', /"15" has no unit: did you mean 15s\?/],
      ['1h30', /missing a unit after 30/],
      ['-5s', /negative/],
      ['5 s', /contains a space/],
      ['5d', /unknown unit "d": use ns, us, ms, s, m or h/],
      ['s', /not a duration/],
      ['1.2.3s', /missing a unit after 1\.2/],
      ['abc', /not a duration/],
    ];
    for (const [text, re] of bad) {
      assert.throws(
        () => parseDuration(text),
        (err: Error) => err instanceof DurationError && re.test(err.message),
        text,
      );
    }
  });

  test('the schema pattern accepts exactly what the parser accepts (for the chart)', () => {
    const re = new RegExp(DURATION_PATTERN, 'u');
    const samples = [
      '0',
      '0s',
      '15s',
      '500ms',
      '1h30m',
      '1m30s',
      '1.5h',
      '.5s',
      '8760h',
      '1500µs',
      '1500us',
      '10ns',
    ];
    const rejected = ['', '15', '1h30', '-5s', '5 s', '5d', 's', '1.2.3s', 'abc', '00'];
    for (const s of samples) {
      assert.ok(re.test(s), `pattern accepts ${s}`);
      assert.doesNotThrow(() => parseDuration(s), s);
    }
    for (const s of rejected) {
      assert.equal(re.test(s), false, `pattern rejects ${JSON.stringify(s)}`);
      assert.throws(() => parseDuration(s), DurationError, s);
    }
  });

  test('formatDuration writes what parseDuration reads', () => {
    const cases: [number, string][] = [
      [0, '0s'],
      [500, '500ms'],
      [1.5, '1.5ms'],
      [15_000, '15s'],
      [90_000, '1m30s'],
      [5_400_000, '1h30m0s'],
      [3_600_000, '1h0m0s'],
    ];
    for (const [ms, text] of cases) {
      assert.equal(formatDuration(ms), text, String(ms));
      assert.equal(parseDuration(text), ms);
    }
  });
});

describe('the chart schema', () => {
  test('values.schema.json uses the same duration pattern as the CLI', async () => {
    const { readFileSync } = await import('node:fs');
    const schema = JSON.parse(
      readFileSync(new URL('../charts/netmesh/values.schema.json', import.meta.url), 'utf8'),
    ) as { definitions: { duration: { pattern: string } } };
    assert.equal(schema.definitions.duration.pattern, DURATION_PATTERN);
  });
});
