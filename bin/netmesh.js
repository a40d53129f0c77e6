#!/usr/bin/env node
// The `netmesh` CLI. Sources are TypeScript run through Node's type stripping, which needs
// Node >= 22.19 (the project pins Node 24 through the `node` dev dependency; npm scripts and
// npx put it first on PATH). Fail with one clear line on an older runtime.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  console.error(
    `netmesh needs Node >= 22.19 (this is ${process.versions.node}); run it through npx/npm scripts, which use the pinned Node from node_modules/.bin`,
  );
  process.exit(1);
}
await import('../cli/main.ts');
