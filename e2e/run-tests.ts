// The whole suite in one `node --test` run, so the runner's summary is the last thing printed.
// One local cluster (control plane and node) serves every integration file
// (NETMESH_SHARED_KUBECONFIG, NETMESH_SHARED_IMAGE); files run one at a time because they share
// cluster-scoped objects (CRDs, webhook configurations) and the node. With
// NETMESH_E2E_KUBECONFIG or NETMESH_E2E_CLUSTER=k3s the files acquire that target instead.
// When the run started a node, it also proves that tearing it down left the machine as it was.
import { spawn } from 'node:child_process';
import { globSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fingerprintDiff, hostFingerprint } from '../cluster/node/teardown.ts';
import { acquireCluster, type TestCluster, unavailableReason } from '../cluster/target.ts';
import { UserFacingError } from '../lib/errors.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);

const only = process.argv.slice(2);
const unitFiles = globSync('{lib,runtime,operator,webhook,cli,cluster,bench,deploy}/**/*.test.ts').sort();
// The fault suite (e2e/faults/) runs on its own: `npm run test:faults`, after `npm test` in CI.
const e2eFiles = globSync('e2e/**/*.test.ts')
  .filter((f) => !f.startsWith('e2e/faults/'))
  .sort();
let files = only.length > 0 ? only : [...unitFiles, ...e2eFiles];
const needsCluster = files.some((f) => f.startsWith('e2e/'));

let cluster: TestCluster | undefined;
let before: Record<string, string[]> | undefined;
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
    before = process.platform === 'linux' && process.getuid?.() === 0 ? hostFingerprint() : undefined;
    cluster = await acquireCluster({ log: (s) => console.log(`# ${s}`) });
    env['NETMESH_SHARED_KUBECONFIG'] = cluster.kubeconfigPath;
    if (cluster.image) env['NETMESH_SHARED_IMAGE'] = cluster.image;
    if (cluster.noNodeReason) {
      env['NETMESH_SHARED_NODE_REASON'] = cluster.noNodeReason;
      console.log(`# no node: ${cluster.noNodeReason}; the in-cluster suites will fail with that reason`);
    }
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
let code: number = await new Promise((r) => child.on('exit', (c, s) => r(c ?? (s ? 1 : 0))));
const hadNode = !!cluster?.local?.node;
await cluster?.stop();
if (hadNode && before) {
  // `cluster:down` must leave the machine as it found it: processes, mounts, cgroups, links,
  // routes, iptables, sysctls and state directories.
  const left = fingerprintDiff(before, hostFingerprint());
  if (left.length) {
    console.log(`# node teardown left the machine changed:\n${left.map((l) => `#   ${l}`).join('\n')}`);
    code ||= 1;
  } else {
    console.log('# node teardown: the machine is as it was before the run');
  }
}
process.exit(code);
