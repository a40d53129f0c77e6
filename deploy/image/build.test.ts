import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { DOCKERFILE, entrypointNodeArgs, parseFinalStage } from './build.ts';

const stage = (entrypoint: string): ReturnType<typeof parseFinalStage> =>
  parseFinalStage(`FROM node AS build\nFROM scratch\nCOPY --from=build /rootfs/app/ /\nENTRYPOINT ${entrypoint}\n`);

test("the repository's Dockerfile: node, then bin/netmesh.js, with the options in between", () => {
  const args = entrypointNodeArgs(parseFinalStage(readFileSync(DOCKERFILE, 'utf8')));
  assert.ok(args.every((a) => a.startsWith('--')), `options only, got ${JSON.stringify(args)}`);
  // Without it V8 sizes the young generation from the memory limit: 1 MiB under the chart's.
  assert.ok(
    args.some((a) => /^--max-semi-space-size=\d+$/.test(a)),
    `the young generation is fixed, got ${JSON.stringify(args)}`,
  );
  // runtime/startup-memory.ts needs gc to give back what starting left resident.
  assert.ok(args.includes('--expose-gc'), `gc is exposed, got ${JSON.stringify(args)}`);
});

test('entrypointNodeArgs returns the Node options between the binary and the script', () => {
  assert.deepEqual(entrypointNodeArgs(stage('["/usr/local/bin/node", "/app/bin/netmesh.js"]')), []);
  assert.deepEqual(
    entrypointNodeArgs(stage('["/usr/local/bin/node", "--max-semi-space-size=8", "/app/bin/netmesh.js"]')),
    ['--max-semi-space-size=8'],
  );
});

test('entrypointNodeArgs refuses an ENTRYPOINT that does not run bin/netmesh.js on node', () => {
  assert.throws(() => entrypointNodeArgs(stage('["/app/bin/netmesh.js"]')), /ENTRYPOINT must be/);
  assert.throws(() => entrypointNodeArgs(stage('["/bin/sh", "-c", "/app/bin/netmesh.js"]')), /ENTRYPOINT must be/);
  assert.throws(() => entrypointNodeArgs(stage('["/usr/local/bin/node", "/app/other.js"]')), /ENTRYPOINT must be/);
});
