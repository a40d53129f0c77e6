// `npm run lint` part 3: the layering rules of docs/ARCHITECTURE.md, checked on every import of
// every TypeScript file (a small script rather than a dependency: the rules fit in a table).
//
//   folder            may import (besides itself and npm packages)
//   lib/              nothing of the product
//   runtime/          lib/
//   operator/         lib/, runtime/
//   webhook/          lib/, runtime/
//   cli/, bin/        lib/, runtime/, operator/, webhook/
//   cluster/, deploy/ anything of the product, never e2e/ or bench/
//   e2e/, bench/, examples/, scripts/   anything
// and the pure cores (webhook/core/, operator/network/, operator/model.ts, runtime/queue/ but
// its Prometheus adapter)
// import no I/O: no node:fs, net, http(s), tls, child_process, dns, and nothing from
// @kubernetes/client-node, pino or express but types.
// Test files (*.test.ts) may also import the repository's test support (examples/).
import { globSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const ALLOWED: Record<string, string[]> = {
  lib: [],
  runtime: ['lib'],
  operator: ['lib', 'runtime'],
  webhook: ['lib', 'runtime'],
  cli: ['lib', 'runtime', 'operator', 'webhook'],
  bin: ['lib', 'runtime', 'operator', 'webhook', 'cli'],
  cluster: ['lib', 'runtime', 'operator', 'webhook', 'cli', 'deploy', 'examples'],
  deploy: ['lib', 'runtime', 'operator', 'webhook', 'cli'],
};
const ANYTHING = new Set(['e2e', 'bench', 'examples', 'scripts']);

const PURE = ['webhook/core/', 'operator/network/', 'operator/model.ts', 'runtime/queue/'];
/** The queue's Prometheus adapter is a shell that lives next to the queue it measures. */
const NOT_PURE = ['runtime/queue/metrics.ts'];
const IO_MODULES =
  /^(node:)?(fs|fs\/promises|net|http|https|http2|tls|child_process|dns|dgram|cluster|worker_threads)$/;
const IO_PACKAGES = /^(@kubernetes\/client-node|pino|express|prom-client)(\/|$)/;

const importRe =
  /^\s*(import|export)\s+(type\s+)?(?:[^'"]*?\s+from\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm;

const problems: string[] = [];
const files = globSync(
  '{bin,lib,runtime,operator,webhook,cli,cluster,deploy,e2e,bench,examples,scripts}/**/*.{ts,js}',
  {
    cwd: root,
  },
).filter((f) => !f.includes('node_modules'));

for (const file of files) {
  const top = file.split('/')[0]!;
  const isTest = file.endsWith('.test.ts');
  const pure = PURE.some((p) => file.startsWith(p)) && !NOT_PURE.includes(file) && !isTest;
  const text = readFileSync(join(root, file), 'utf8');
  for (const m of text.matchAll(importRe)) {
    const typeOnly = Boolean(m[2]);
    const spec = m[3] ?? m[4]!;
    if (spec.startsWith('.')) {
      const target = normalize(relative(root, resolve(root, dirname(file), spec)));
      const targetTop = target.split('/')[0]!;
      if (targetTop === top || ANYTHING.has(top)) continue;
      if (isTest && targetTop === 'examples') continue;
      if (!(ALLOWED[top] ?? []).includes(targetTop))
        problems.push(`${file}: ${top}/ may not import ${target}`);
      if (pure && !typeOnly && !PURE.some((p) => target.startsWith(p)) && targetTop !== 'lib')
        problems.push(`${file}: the pure core may not import ${target}`);
    } else if (pure && !typeOnly && (IO_MODULES.test(spec) || IO_PACKAGES.test(spec))) {
      problems.push(`${file}: the pure core may not import ${spec} (I/O)`);
    }
  }
}

if (problems.length) {
  console.error(`import rules (docs/ARCHITECTURE.md) broken:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  process.exit(1);
}
console.log(`import rules hold (${files.length} files)`);
