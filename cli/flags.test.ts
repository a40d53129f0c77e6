import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { flags as checkFlags } from './commands/check.ts';
import { operatorFlags } from './commands/common.ts';
import { flags as explainFlags } from './commands/explain.ts';
import { flags as injectFlags } from './commands/inject.ts';
import { flags as runFlags } from './commands/run.ts';
import { webhookFlags } from './commands/webhook.ts';
import { FlagError, type FlagSpec, namespaceFlag, parseFlags, refuseWorkloadNamespace } from './flags.ts';

// parseFlags reads NETMESH_* variables: the tests set them explicitly, never inherit them.
let savedEnv: string | undefined;
beforeEach(() => {
  savedEnv = process.env['NETMESH_NAMESPACE'];
  delete process.env['NETMESH_NAMESPACE'];
});
afterEach(() => {
  if (savedEnv === undefined) delete process.env['NETMESH_NAMESPACE'];
  else process.env['NETMESH_NAMESPACE'] = savedEnv;
});

const DAEMONS: [string, Record<string, FlagSpec>][] = [
  ['run', runFlags],
  ['operator', operatorFlags],
  ['webhook', webhookFlags],
];

describe('--netmesh-namespace', () => {
  test('one definition, on every command that needs the install namespace', () => {
    const all: [string, Record<string, FlagSpec>][] = [
      ...DAEMONS,
      ['check', checkFlags],
      ['inject', injectFlags],
      ['explain', explainFlags],
    ];
    for (const [cmd, specs] of all) {
      const s = specs['netmesh-namespace'];
      assert.ok(s, cmd);
      assert.equal(s.env, 'NETMESH_NAMESPACE', cmd);
      assert.equal(s.short, undefined, `${cmd}: -n is the workloads' namespace`);
      // explain alone has no default: it reads the namespace from the webhook configuration.
      assert.equal(s.default, cmd === 'explain' ? undefined : 'netmesh-system', cmd);
    }
  });

  test('flag, then NETMESH_NAMESPACE, then netmesh-system', () => {
    for (const [cmd, specs] of DAEMONS) {
      const parse = (...argv: string[]) => parseFlags(cmd, '', argv, specs).values['netmesh-namespace'];
      assert.equal(parse(), 'netmesh-system', cmd);
      process.env['NETMESH_NAMESPACE'] = 'mesh';
      assert.equal(parse(), 'mesh', cmd);
      assert.equal(parse('--netmesh-namespace', 'other'), 'other', cmd);
      assert.equal(parse('--netmesh-namespace=third'), 'third', cmd);
      delete process.env['NETMESH_NAMESPACE'];
    }
  });

  test('a value the apiserver would refuse is a usage error', () => {
    assert.equal(namespaceFlag('netmesh-namespace', 'mesh-1'), 'mesh-1');
    for (const bad of ['', 'Mesh', 'mesh_1', '-mesh', 'mesh-', 'a.b', 'x'.repeat(64)]) {
      assert.throws(
        () => namespaceFlag('netmesh-namespace', bad),
        (err: unknown) => err instanceof FlagError && /^--netmesh-namespace must/.test(err.message),
        JSON.stringify(bad),
      );
    }
    assert.throws(() => namespaceFlag('namespace', undefined), /--namespace must not be empty/);
  });
});

describe('-n/--namespace', () => {
  test('the workloads namespace where there are workloads: check, inject, explain', () => {
    for (const [cmd, specs] of [
      ['check', checkFlags],
      ['inject', injectFlags],
      ['explain', explainFlags],
    ] as const) {
      const v = parseFlags(cmd, '', ['-n', 'shop'], specs).values;
      assert.equal(v.namespace, 'shop', cmd);
      assert.equal(v['netmesh-namespace'], cmd === 'explain' ? undefined : 'netmesh-system', cmd);
      // No environment fallback: as kubectl's -n, it is given or it is not.
      assert.equal((specs.namespace as FlagSpec).env, undefined, cmd);
    }
  });

  test('refused on run, operator and webhook, in every spelling, with one line naming --netmesh-namespace', () => {
    for (const [cmd, specs] of DAEMONS) {
      assert.equal(specs['namespace'], undefined, cmd);
      for (const argv of [
        ['-n', 'netmesh-system'],
        ['-nnetmesh-system'],
        ['--namespace', 'netmesh-system'],
        ['--namespace=netmesh-system'],
        ['--namespace'],
        ['-n'],
        ['--workers', '3', '-n', 'x'],
      ]) {
        assert.throws(
          () => parseFlags(cmd, 'summary', argv, specs, { refuse: refuseWorkloadNamespace(cmd) }),
          (err: unknown) =>
            err instanceof FlagError &&
            err.message ===
              `-n/--namespace is not a flag of netmesh ${cmd} (it looks at no workloads): the namespace netmesh is installed in is --netmesh-namespace (env NETMESH_NAMESPACE)`,
          `${cmd} ${argv.join(' ')}`,
        );
      }
    }
  });

  test('the refusal looks at flags only: values, other flags and what follows -- are left alone', () => {
    const refuse = refuseWorkloadNamespace('webhook');
    const ok = (...argv: string[]) =>
      parseFlags('webhook', '', argv, webhookFlags, { refuse }).values['netmesh-namespace'];
    assert.equal(ok('--netmesh-namespace', 'n'), 'n');
    assert.equal(ok('--namespace-selector', 'team=n', '--netmesh-namespace=namespace'), 'namespace');
    // Values of short string flags swallow the rest of their group (-fn is -f "n").
    const specs = {
      filename: { type: 'string', short: 'f', description: 'f' },
      quiet: { type: 'boolean', short: 'q', description: 'q' },
    } satisfies Record<string, FlagSpec>;
    const parse = (...argv: string[]) => parseFlags('x', '', argv, specs, { refuse, positionals: '[ARGS]' });
    assert.equal(parse('-fn').values.filename, 'n');
    assert.deepEqual(parse('--', '-n').positionals, ['-n']);
    assert.throws(() => parse('-qn'), /not a flag of netmesh webhook/);
  });
});

describe('inject -o', () => {
  test('-o/--output is the format, --output-file the file', () => {
    const parse = (...argv: string[]) => parseFlags('inject', '', argv, injectFlags).values;
    assert.equal(parse().output, undefined, "no default: the input's own format");
    assert.equal(parse('-o', 'json').output, 'json');
    assert.equal(parse('--output=YAML').output, 'yaml');
    assert.equal(parse('--output-file', 'out.yaml')['output-file'], 'out.yaml');
    assert.throws(
      () => parse('-o', 'out.yaml'),
      (err: unknown) =>
        err instanceof FlagError &&
        err.message ===
          '--output must be one of yaml, json, got "out.yaml": to write the result to a file, use --output-file',
    );
  });
});
