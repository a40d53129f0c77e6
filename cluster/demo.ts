// `npm start`: netmesh doing its job on a real cluster, as a user would see it. Brings up the
// local cluster (control plane and node; or uses NETMESH_E2E_KUBECONFIG with NETMESH_E2E_IMAGE),
// installs the chart so netmesh runs in-cluster from the image built on this machine, applies
// the example Network, labels a demo namespace, creates the course's Pod there and shows it
// Running with its sidecar. Ctrl-C cleans everything up.
// Where no node can run (not Linux, not root), it says so in one line and runs netmesh on this
// host instead (the webhook registered by URL), which shows injection but starts no Pod.
import { mkdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { COURSE_POD_YAML, courseTemplateText } from '../examples/course.ts';
import { UserFacingError } from '../lib/errors.ts';
import {
  hostRunArgs,
  installChart,
  installInCluster,
  releaseExists,
  serviceAccountKubeconfig,
  uninstallChart,
} from './chart.ts';
import { freePort } from './controlplane.ts';
import { ENVOY_STANDIN_IMAGE } from './images.ts';
import { acquireCluster, type TestCluster } from './target.ts';
import { ensureTools, kubectl } from './tools.ts';

const root = resolve(fileURLToPath(import.meta.url), '..', '..');
const SYSTEM_NS = 'netmesh-system';
const DEMO_NS = 'netmesh-demo';

interface Ui {
  step(s: string): void;
  show(s: string): void;
}

function ui(): Ui {
  let n = 0;
  const started = Date.now();
  return {
    step: (s) => console.log(`\n[${++n}] ${s}  (+${((Date.now() - started) / 1000).toFixed(1)} s)`),
    show: (s) => console.log(s.replace(/\s+$/, '').replace(/^/gm, '    ')),
  };
}

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 90_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new UserFacingError(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The course's template, verbatim but for the image: the Envoy stand-in built on this machine. */
function demoTemplate(): string {
  return courseTemplateText().replace(/image: .*/, `image: ${ENVOY_STANDIN_IMAGE}`);
}

interface Demo {
  cluster: TestCluster;
  kubeconfig: string;
  k(args: string[], input?: string): string;
  core: k8s.CoreV1Api;
  ui: Ui;
}

async function applyNetwork(d: Demo): Promise<void> {
  d.ui.step('kubectl apply the example Network');
  d.ui.show(d.k(['apply', '-n', DEMO_NS, '-f', join(root, 'deploy', 'examples', 'example-network.yaml')]));
  const jsonpath = (p: string) =>
    d.k(['get', 'network', 'example-network', '-n', DEMO_NS, '-o', `jsonpath=${p}`]);
  await until(
    'example-network Ready',
    async () => jsonpath('{.status.conditions[?(@.type=="Ready")].status}') === 'True',
  );
  d.ui.show(d.k(['get', 'networks', '-n', DEMO_NS]));
  const ref = JSON.parse(jsonpath('{.status.materialized}')) as { kind: string; name: string };
  d.ui.show(`materialised as ${ref.kind} ${DEMO_NS}/${ref.name}:`);
  const cm = await d.core
    .readNamespacedConfigMap({ namespace: DEMO_NS, name: ref.name })
    .catch(() => undefined);
  d.ui.show(
    cm
      ? JSON.stringify(JSON.parse(Object.values(cm.data ?? {})[0] ?? '{}'), null, 2)
      : d.k(['get', ref.kind, ref.name, '-n', DEMO_NS, '-o', 'yaml']),
  );
}

async function runCoursePod(d: Demo, inCluster: boolean): Promise<void> {
  d.ui.step("create the course's Pod (examples/seed-myapp-pod.yaml) in the labelled namespace");
  const started = Date.now();
  await until('the Pod created', async () => !!d.k(['apply', '-n', DEMO_NS, '-f', '-'], COURSE_POD_YAML));
  if (inCluster) {
    await until(
      'myapp-pod Running with both containers ready',
      async () =>
        d.k([
          'get',
          'pod',
          'myapp-pod',
          '-n',
          DEMO_NS,
          '-o',
          'jsonpath={.status.containerStatuses[*].ready}',
        ]) === 'true true',
    );
    d.ui.show(d.k(['get', 'pod', 'myapp-pod', '-n', DEMO_NS, '-o', 'wide']));
    d.ui.show(
      `Running with every container ready ${((Date.now() - started) / 1000).toFixed(1)} s after creation`,
    );
  }
  const pod = await d.core.readNamespacedPod({ namespace: DEMO_NS, name: 'myapp-pod' });
  d.ui.show(`containers: ${pod.spec?.containers.map((c) => c.name).join(', ')}`);
  d.ui.show(`volumes:    ${(pod.spec?.volumes ?? []).map((v) => v.name).join(', ')}`);
  d.ui.show(`netmesh.io/status: ${pod.metadata?.annotations?.['netmesh.io/status']}`);
  if (inCluster) {
    d.ui.show(
      '$ kubectl logs myapp-pod -c envoy        # the sidecar read its bootstrap from the envoy-conf volume',
    );
    d.ui.show(await firstLogs(d, 'envoy'));
    d.ui.show('$ kubectl logs myapp-pod -c myapp-container');
    d.ui.show(await firstLogs(d, 'myapp-container'));
  } else if (!pod.spec?.containers.some((c) => c.name === 'envoy')) {
    d.ui.show(`not injected: the apiserver of ${d.cluster.description} could not reach netmesh on this host`);
  }
}

/**
 * A container's log once it has one: its first line reaches the log file through containerd's
 * shim a moment after the container counts as started. Gives up (and shows what there is) after
 * 15 s.
 */
async function firstLogs(d: Demo, container: string): Promise<string> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const out = d.k(['logs', 'myapp-pod', '-n', DEMO_NS, '-c', container]);
    if (out.trim() !== '' || Date.now() > deadline) return out;
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function installNetmesh(d: Demo, image: string | undefined): Promise<() => Promise<void>> {
  if (!d.cluster.owned && releaseExists(d.kubeconfig, 'netmesh', SYSTEM_NS)) {
    throw new UserFacingError(
      `a Helm release "netmesh" already exists in ${SYSTEM_NS} of ${d.cluster.description}`,
      'the demo installs and later uninstalls its own release; run it against a cluster without netmesh',
    );
  }
  if (image) {
    d.ui.step(`helm install netmesh (chart charts/netmesh, image ${image} built from deploy/Dockerfile)`);
    const r = await installInCluster(d.kubeconfig, {
      release: 'netmesh',
      namespace: SYSTEM_NS,
      image,
      values: { template: { config: demoTemplate() } },
    });
    d.ui.show(d.k(['get', 'deploy,pods,svc,pdb', '-n', SYSTEM_NS]));
    d.ui.show(
      `netmesh Ready in-cluster ${r.readySeconds.toFixed(1)} s after helm install (2 replicas, one leader)`,
    );
    // A cluster the demo started goes as a whole: Ctrl-C has already stopped its apiserver
    // (cluster/processes.ts tears the cluster down on SIGINT), so `helm uninstall` could only fail.
    return async () => {
      if (!d.cluster.owned) uninstallChart(d.kubeconfig, 'netmesh', SYSTEM_NS);
    };
  }
  return installHostRun(d);
}

/** Fallback where no node runs: netmesh on this host under the chart's ServiceAccount. */
async function installHostRun(d: Demo): Promise<() => Promise<void>> {
  const { startNetmesh } = await import('./netmesh-process.ts');
  d.ui.step('helm install netmesh (webhook pointed at netmesh running on this host)');
  const port = await freePort();
  const chart = installChart(d.kubeconfig, 'netmesh', SYSTEM_NS, {
    'webhook.localRunURL': `https://127.0.0.1:${port}/mutate`,
    'webhook.failurePolicy': d.cluster.owned ? 'Fail' : 'Ignore',
    replicaCount: 1,
  });
  const identity = await serviceAccountKubeconfig(d.cluster.kc, SYSTEM_NS, 'netmesh', 24 * 3600);
  const netmesh = await startNetmesh('run', hostRunArgs(chart, identity.path, port), {
    NETMESH_LOG_LEVEL: 'info',
  });
  await netmesh.waitReady(60_000);
  d.ui.show(`netmesh run on this host as the chart's ServiceAccount; logs ${netmesh.logFile}`);
  return async () => {
    await netmesh.stop();
    identity.remove();
    if (!d.cluster.owned) uninstallChart(d.kubeconfig, 'netmesh', SYSTEM_NS);
  };
}

function showTry(d: Demo, shownKubeconfig: string, inCluster: boolean): void {
  d.ui.step('netmesh keeps running; try:');
  d.ui.show(`(kubectl from the npm package: ${ensureTools().kubectl})`);
  const k = `kubectl --kubeconfig ${shownKubeconfig}`;
  for (const cmd of [
    ...(inCluster ? [`${k} get pods -n ${SYSTEM_NS} -o wide`] : []),
    `${k} get networks -A -o wide`,
    `${k} describe network example-network -n ${DEMO_NS}`,
    `${k} run web --image=busybox -n ${DEMO_NS} -- sleep 3600 && ${k} get pod web -n ${DEMO_NS}`,
    `${k} apply -n ${DEMO_NS} -f - <<< '{"apiVersion":"netmesh.io/v1","kind":"Network","metadata":{"name":"overlap"},"spec":{"cidr":"192.168.7.0/24"}}'`,
    ...(inCluster ? [`${k} logs -n ${SYSTEM_NS} deploy/netmesh`] : []),
  ]) {
    d.ui.show(cmd);
  }
}

export async function runDemo(): Promise<void> {
  const u = ui();
  const stateDir = join(root, '.netmesh');
  mkdirSync(stateDir, { recursive: true });
  u.step('Kubernetes cluster (control plane and node)');
  ensureTools();
  const cluster = await acquireCluster({
    kubeconfigOut: join(stateDir, 'kubeconfig'),
    log: (s) => u.show(s),
  });
  const kubeconfig =
    cluster.owned && cluster.kind === 'local' ? join(stateDir, 'kubeconfig') : cluster.kubeconfigPath;
  u.show(cluster.description);
  if (cluster.noNodeReason) u.show(`no node: ${cluster.noNodeReason}; netmesh runs on this host instead`);
  const shown = relative(process.cwd(), kubeconfig).startsWith('..')
    ? kubeconfig
    : relative(process.cwd(), kubeconfig);
  const d: Demo = {
    cluster,
    kubeconfig,
    k: (args, input) => kubectl(kubeconfig, args, input),
    core: cluster.kc.makeApiClient(k8s.CoreV1Api),
    ui: u,
  };
  let uninstall: (() => Promise<void>) | undefined;
  try {
    u.step(`demo namespace ${DEMO_NS}, labelled netmesh.io/injection=enabled`);
    d.k(
      ['apply', '-f', '-'],
      `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"${DEMO_NS}","labels":{"netmesh.io/injection":"enabled"}}}`,
    );
    u.show(d.k(['get', 'namespace', DEMO_NS, '--show-labels']));
    uninstall = await installNetmesh(d, cluster.noNodeReason ? undefined : cluster.image);
    await applyNetwork(d);
    await runCoursePod(d, !cluster.noNodeReason);
    showTry(d, shown, !cluster.noNodeReason);
    console.log('\nPress Ctrl-C to stop netmesh and clean everything up.');
    if (process.env['NETMESH_DEMO_EXIT'] !== '1') {
      await new Promise<void>((done) => {
        process.once('SIGINT', done);
        process.once('SIGTERM', done);
      });
    }
    u.step('stopping netmesh and cleaning up');
  } finally {
    if (!cluster.owned) {
      // On a cluster we did not create, leave it as we found it (the CRD stays, as with helm).
      // Pods end at once; the namespace goes while netmesh still runs (it removes its copies).
      d.k(['delete', 'pods', '--all', '-n', DEMO_NS, '--grace-period=0', '--force', '--ignore-not-found']);
      d.k(['delete', 'namespace', DEMO_NS, '--ignore-not-found', '--wait=true', '--timeout=60s']);
    }
    await uninstall?.();
    await cluster.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    await runDemo();
    process.exit(0);
  } catch (err) {
    console.error(err instanceof UserFacingError ? `error: ${err.oneLine()}` : err);
    process.exit(1);
  }
}
