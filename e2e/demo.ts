// `npm start` (netmesh demo): the main job on an embedded default. Brings up the local control
// plane (or uses NETMESH_E2E_KUBECONFIG), installs the chart with the local-run switch, runs
// `netmesh run` on this host under the chart's ServiceAccount, applies the example Network,
// labels a demo namespace, creates the course's Pod there and prints what happened.
import { mkdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { UserFacingError } from '../lib/errors.ts';
import { COURSE_POD_YAML } from '../webhook/core/test-fixtures.ts';
import {
  hostRunArgs,
  installChart,
  releaseExists,
  serviceAccountKubeconfig,
  uninstallChart,
} from './chart-install.ts';
import { acquireCluster } from './cluster.ts';
import { freePort } from './controlplane/local.ts';
import { startNetmesh } from './netmesh-process.ts';
import { eventually } from './support.ts';
import { ensureTools, kubectl } from './tools.ts';

const root = resolve(fileURLToPath(import.meta.url), '..', '..');
const SYSTEM_NS = 'netmesh-system';
const DEMO_NS = 'netmesh-demo';

function coursePod(): string {
  // The course's manifest when ../shared is beside the checkout; the same Pod inline otherwise.
  try {
    return readFileSync(join(root, '..', 'shared', 'examples', 'seed-myapp-pod.yaml'), 'utf8');
  } catch {
    return COURSE_POD_YAML;
  }
}

export async function runDemo(): Promise<void> {
  let n = 0;
  const started = Date.now();
  const step = (s: string): void =>
    console.log(`\n[${++n}] ${s}  (+${((Date.now() - started) / 1000).toFixed(1)} s)`);
  const show = (s: string): void => console.log(s.replace(/\s+$/, '').replace(/^/gm, '    '));
  const stateDir = join(root, '.netmesh');
  mkdirSync(stateDir, { recursive: true });

  step('Kubernetes control plane');
  ensureTools();
  const cluster = await acquireCluster({ kubeconfigOut: join(stateDir, 'kubeconfig'), log: (s) => show(s) });
  const kubeconfig =
    cluster.owned && cluster.kind === 'local' ? join(stateDir, 'kubeconfig') : cluster.kubeconfigPath;
  show(`${cluster.description}`);
  const shownKubeconfig = relative(process.cwd(), kubeconfig).startsWith('..')
    ? kubeconfig
    : relative(process.cwd(), kubeconfig);
  const k = (args: string[], input?: string) => kubectl(kubeconfig, args, input);
  const core = cluster.kc.makeApiClient(k8s.CoreV1Api);

  let netmesh: Awaited<ReturnType<typeof startNetmesh>> | undefined;
  let removeToken: (() => void) | undefined;
  const cleanup = async (): Promise<void> => {
    if (!cluster.owned) {
      // On a cluster we did not create, leave it as we found it (the CRD stays, as with helm).
      // The namespace goes first, while netmesh still runs to release the Network's finalizer.
      k(['delete', 'namespace', DEMO_NS, '--ignore-not-found', '--wait=true', '--timeout=60s']);
    }
    await netmesh?.stop();
    removeToken?.();
    if (!cluster.owned) uninstallChart(kubeconfig, 'netmesh', SYSTEM_NS);
    await cluster.stop();
  };

  try {
    step(`demo namespace ${DEMO_NS}, labelled netmesh.io/injection=enabled`);
    k(
      ['apply', '-f', '-'],
      `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${DEMO_NS}\n  labels:\n    netmesh.io/injection: enabled\n`,
    );
    show(k(['get', 'namespace', DEMO_NS, '--show-labels']));

    step('helm install netmesh (chart charts/netmesh, webhook pointed at this host)');
    if (!cluster.owned && releaseExists(kubeconfig, 'netmesh', SYSTEM_NS)) {
      throw new UserFacingError(
        `a Helm release "netmesh" already exists in ${SYSTEM_NS} of ${cluster.description}`,
        'the demo installs and later uninstalls its own release; run it against a cluster without netmesh',
      );
    }
    const port = await freePort();
    const chart = installChart(kubeconfig, 'netmesh', SYSTEM_NS, {
      'webhook.localRunURL': `https://127.0.0.1:${port}/mutate`,
      // On a cluster we did not start, the apiserver may not reach this host: admit rather than block.
      'webhook.failurePolicy': cluster.owned ? 'Fail' : 'Ignore',
      replicaCount: 1,
    });
    show(
      k(['get', '-n', SYSTEM_NS, 'deploy,svc,sa,cm,secret,lease,pdb,role,rolebinding', '-o', 'name'])
        .split('\n')
        .filter((l) => !/\/(default|kube-root-ca\.crt|sh\.helm\..*)$/.test(l))
        .join('\n'),
    );
    show("(no kubelet here, so the Deployment's Pods never run: netmesh runs on this host instead)");

    step("netmesh run on this host, as the chart's ServiceAccount (token from the TokenRequest API)");
    const identity = await serviceAccountKubeconfig(cluster.kc, SYSTEM_NS, 'netmesh', 24 * 3600);
    removeToken = identity.remove;
    netmesh = await startNetmesh('run', hostRunArgs(chart, identity.path, port), {
      NETMESH_LOG_LEVEL: 'info',
    });
    await netmesh.waitReady(60_000);
    show(
      `webhook https://127.0.0.1:${port}/mutate, health http://127.0.0.1:${netmesh.healthPort}/readyz, logs ${netmesh.logFile}`,
    );

    step('kubectl apply the example Network');
    show(k(['apply', '-n', DEMO_NS, '-f', join(root, 'deploy', 'examples', 'example-network.yaml')]));
    await eventually(
      'example-network Ready',
      async () =>
        k([
          'get',
          'network',
          'example-network',
          '-n',
          DEMO_NS,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ]) === 'True',
    );
    show(k(['get', 'networks', '-n', DEMO_NS]));
    const materialized = JSON.parse(
      k(['get', 'network', 'example-network', '-n', DEMO_NS, '-o', 'jsonpath={.status.materialized}']),
    ) as {
      kind: string;
      name: string;
    };
    show(`materialised as ${materialized.kind} ${DEMO_NS}/${materialized.name}:`);
    const cm = await core
      .readNamespacedConfigMap({ namespace: DEMO_NS, name: materialized.name })
      .catch(() => undefined);
    show(
      cm
        ? JSON.stringify(JSON.parse(Object.values(cm.data ?? {})[0] ?? '{}'), null, 2)
        : k(['get', materialized.kind, materialized.name, '-n', DEMO_NS, '-o', 'yaml']),
    );

    step("create the course's Pod (myapp-pod) in the labelled namespace");
    await eventually('the Pod created', async () => {
      k(['apply', '-n', DEMO_NS, '-f', '-'], coursePod());
      return true;
    });
    const pod = parseYaml(k(['get', 'pod', 'myapp-pod', '-n', DEMO_NS, '-o', 'yaml'])) as k8s.V1Pod;
    show(`containers: ${pod.spec?.containers.map((c) => c.name).join(', ')}`);
    show(`volumes:    ${(pod.spec?.volumes ?? []).map((v) => v.name).join(', ')}`);
    show(`netmesh.io/status: ${pod.metadata?.annotations?.['netmesh.io/status']}`);
    await eventually('the Envoy bootstrap copied', async () =>
      core.readNamespacedConfigMap({ namespace: DEMO_NS, name: 'envoy' }).then(() => true),
    );
    show(`ConfigMap ${DEMO_NS}/envoy (the sidecar's bootstrap, copied by netmesh): present`);
    if (!pod.spec?.containers.some((c) => c.name === 'envoy')) {
      show(
        `not injected: the apiserver of ${cluster.description} could not reach the webhook at https://127.0.0.1:${port}`,
      );
      show(
        '(the demo runs netmesh on this host; a remote or containerised apiserver cannot call back to 127.0.0.1)',
      );
    }

    step('netmesh keeps running; try:');
    const kubectlBin = ensureTools().kubectl;
    show(`(kubectl from the npm package: ${kubectlBin})`);
    for (const cmd of [
      `kubectl --kubeconfig ${shownKubeconfig} get networks -A -o wide`,
      `kubectl --kubeconfig ${shownKubeconfig} describe network example-network -n ${DEMO_NS}`,
      `kubectl --kubeconfig ${shownKubeconfig} run web --image=nginx -n ${DEMO_NS} && kubectl --kubeconfig ${shownKubeconfig} get pod web -n ${DEMO_NS} -o jsonpath='{.spec.containers[*].name}'`,
      `kubectl --kubeconfig ${shownKubeconfig} apply -n ${DEMO_NS} -f - <<< '{"apiVersion":"netmesh.io/v1","kind":"Network","metadata":{"name":"overlap"},"spec":{"cidr":"192.168.7.0/24"}}'`,
      `curl -s http://127.0.0.1:${netmesh.healthPort}/metrics | grep netmesh_`,
    ]) {
      show(cmd);
    }
    console.log('\nPress Ctrl-C to stop netmesh and clean everything up.');
    if (process.env['NETMESH_DEMO_EXIT'] !== '1') {
      await new Promise<void>((resolveWait) => {
        process.once('SIGINT', resolveWait);
        process.once('SIGTERM', resolveWait);
      });
    }
    step('stopping netmesh and cleaning up');
  } finally {
    await cleanup();
  }
}
