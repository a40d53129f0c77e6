import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { releaseStartupMemory } from './startup-memory.ts';

describe('releaseStartupMemory', () => {
  it('does nothing without an exposed gc', () => {
    assert.equal(releaseStartupMemory(undefined), undefined);
  });

  it('asks V8 for its last-resort collection, once, and reports the memory around it', () => {
    const calls: unknown[] = [];
    const released = releaseStartupMemory((options) => calls.push(options));
    assert.deepEqual(calls, [{ type: 'major', execution: 'sync', flavor: 'last-resort' }]);
    assert.ok(released);
    assert.ok(released.ms >= 0);
    for (const v of [released.rssBefore, released.rssAfter, released.heapBefore, released.heapAfter]) {
      assert.ok(v > 0);
    }
  });

  // In a child process with --expose-gc, as the image runs netmesh: a start that grew the young
  // generation gives it back.
  it('gives back the young generation a busy start grew', () => {
    const script = `
      import v8 from 'node:v8';
      import { releaseStartupMemory } from ${JSON.stringify(new URL('./startup-memory.ts', import.meta.url).href)};
      // Objects that survive a few scavenges make V8 grow the young generation, as a start does.
      let keep = [];
      for (let round = 0; round < 40; round++) {
        keep.push(Array.from({ length: 20000 }, (_, i) => ({ i, s: 'x' + i })));
        if (keep.length > 8) keep.shift();
      }
      keep = undefined;
      const newSpace = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
      const before = newSpace();
      const released = releaseStartupMemory();
      console.log(JSON.stringify({ before, after: newSpace(), released }));
    `;
    const child = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    assert.equal(child.status, 0, child.stderr);
    const { before, after, released } = JSON.parse(child.stdout) as {
      before: number;
      after: number;
      released: { heapBefore: number; heapAfter: number } | null;
    };
    assert.ok(released, 'gc is exposed, so the collection ran');
    assert.ok(after < before, `young generation ${before} -> ${after} bytes`);
    assert.ok(released.heapAfter < released.heapBefore, JSON.stringify(released));
  });
});
