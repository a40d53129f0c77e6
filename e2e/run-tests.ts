// The whole suite in one `node --test` run, so the runner's summary is the last thing printed.
// One local control plane serves every integration file (NETMESH_SHARED_KUBECONFIG); files run
// one at a time because they share cluster-scoped objects (CRDs, webhook configurations).
// With NETMESH_E2E_KUBECONFIG or NETMESH_E2E_CLUSTER=k3s the files acquire that target instead.
import { spawn } from 'node:child_process';
import { globSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserFacingError } from '../lib/errors.ts';
import { acquireCluster, type TestCluster, unavailableReason } from './cluster.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);

const only = process.argv.slice(2);
const unitFiles = globSync('{lib,runtime,operator,webhook,cli}/**/*.test.ts').sort();
const e2eFiles = globSync('e2e/**/*.test.ts').sort();
let files = only.length > 0 ? only : [...unitFiles, ...e2eFiles];
const needsCluster = files.some((f) => f.startsWith('e2e/'));

let cluster: TestCluster | undefined;
const env = { ...process.env };
try {
  const unavailable =
    needsCluster && !process.env['NETMESH_E2E_KUBECONFIG'] ? await unavailableReason() : undefined;
  if (unavailable) {
    // Say why and run what can run; never pretend the integration suites passed.
    console.log(`# integration suites SKIPPED: ${unavailable}`);
    files = files.filter((f) => !f.startsWith('e2e/'));
  } else if (needsCluster && !process.env['NETMESH_E2E_KUBECONFIG']) {
    // One cluster (the local control plane, or k3s) for every integration file of the run.
    const started = Date.now();
    cluster = await acquireCluster({ log: (s) => console.log(`# ${s}`) });
    env['NETMESH_SHARED_KUBECONFIG'] = cluster.kubeconfigPath;
    console.log(`# shared ${cluster.description} (up in ${((Date.now() - started) / 1000).toFixed(1)} s)`);
  }
} catch (err) {
  console.error(err instanceof UserFacingError ? `error: ${err.oneLine()}` : err);
  process.exit(1);
}

const integration = files.filter((f) => f.startsWith('e2e/')).length;
console.log(`# ${files.length} test files (${files.length - integration} unit, ${integration} integration)`);
const child = spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=600000', ...files], {
  stdio: 'inherit',
  env,
});
const forward = (sig: NodeJS.Signals): void => {
  child.kill(sig);
};
process.on('SIGINT', forward);
process.on('SIGTERM', forward);
const code: number = await new Promise((r) => child.on('exit', (c, s) => r(c ?? (s ? 1 : 0))));
await cluster?.stop();
process.exit(code);
