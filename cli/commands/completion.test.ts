// The completion scripts are run by the shells themselves: bash always (it runs npm scripts),
// zsh when installed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { bashScript, loadCommandFlags, zshScript } from './completion.ts';

const cmds = await loadCommandFlags();

/** COMPREPLY for the words typed so far (the last one being completed). */
function complete(words: string[]): string[] {
  const script = `${bashScript(cmds)}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})
COMP_CWORD=${words.length - 1}
_netmesh
printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

describe('bash completion', () => {
  test('commands, then the flags of that command', () => {
    assert.deepEqual(complete(['netmesh', 'c']), ['check', 'completion']);
    assert.ok(complete(['netmesh', '']).includes('version'));
    const flags = complete(['netmesh', 'operator', '--le']);
    assert.deepEqual(flags, ['--leader-elect', '--lease-name', '--lease-duration']);
    assert.ok(complete(['netmesh', 'check', '--']).includes('--leader-health-url'));
  });

  test('values: enumerations, nothing for free text, shells for the shell', () => {
    assert.deepEqual(complete(['netmesh', 'run', '--log-level', 'd']), ['debug']);
    assert.deepEqual(complete(['netmesh', 'check', '-o', '']), ['text', 'json']);
    assert.deepEqual(complete(['netmesh', 'run', '--log-level', '=', 'w']), ['warn']);
    assert.deepEqual(complete(['netmesh', 'operator', '--netmesh-namespace', '']), []);
    // -n/--namespace is the workloads' namespace: offered where there are workloads only.
    for (const cmd of ['run', 'operator', 'webhook'])
      assert.ok(!complete(['netmesh', cmd, '--']).includes('--namespace'), cmd);
    for (const cmd of ['run', 'operator', 'webhook', 'check', 'inject', 'explain']) {
      assert.deepEqual(complete(['netmesh', cmd, '--netmesh-n']), ['--netmesh-namespace'], cmd);
    }
    assert.ok(complete(['netmesh', 'check', '--']).includes('--namespace'));
    assert.deepEqual(complete(['netmesh', 'inject', '-o', '']), ['yaml', 'json']);
    assert.deepEqual(complete(['netmesh', 'inject', '--output-file', 'package.j']), ['package.json']);
    assert.deepEqual(complete(['netmesh', 'completion', '']), ['bash', 'zsh']);
    assert.deepEqual(complete(['netmesh', 'explain', 'dep']), ['deploy/']);
  });
});

describe('zsh completion', () => {
  const zsh = spawnSync('zsh', ['--version'], { encoding: 'utf8' });
  test('parses and defines _netmesh', { skip: zsh.status === 0 ? false : 'zsh is not installed' }, () => {
    const script = `autoload -Uz compinit && compinit -u -D\n${zshScript(cmds)}\nwhence -w _netmesh`;
    const r = spawnSync('zsh', ['-f', '-c', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /_netmesh: function/);
    assert.equal(r.stderr, '');
  });
});
