#!/usr/bin/env node
// The `netmesh` CLI. Sources are TypeScript run through Node's type stripping, which needs
// Node >= 22.19 (the project pins Node 24 through the `node` dev dependency; npm scripts and
// npx put it first on PATH). Fail with one clear line on an older runtime.
//
// This check is the only statement of the Node requirement: package.json deliberately has no
// `engines` field. npm compares `engines` with the Node that runs npm itself, not the one the
// command runs on, so under an older system Node every `npx netmesh ...` and `npm run ...`
// printed ten lines of EBADENGINE warnings about a requirement the pinned Node already meets.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  console.error(
    `netmesh needs Node >= 22.19 (this is ${process.versions.node}); run it through npx/npm scripts, which use the pinned Node from node_modules/.bin`,
  );
  process.exit(1);
}
await import('../cli/main.ts');
