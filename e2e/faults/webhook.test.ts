// Fault suite, injector side, on the real node with netmesh installed in-cluster (2 replicas
// behind the chart's Service): a replica that hangs (SIGSTOP on its process, so it stays an
// endpoint until its readiness probe fails, and answers nothing: a handler slower than any
// timeout) while 200 Pods are created at once, under both failure policies; and the template
// edited 100 times while Pods are created. Pods are created with `nodeName` set to a node that
// does not exist: admission is exactly as for any Pod, they are stored and can be queried, and
// the node is not asked to run 200 of them.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { installInCluster } from '../../cluster/chart.ts';
import { kubectl } from '../../cluster/tools.ts';
import { STATUS_ANNOTATION } from '../../webhook/core/contract.ts';
import { parseInjectionStatus } from '../../webhook/core/inject.ts';
import { parseTemplate } from '../../webhook/core/template.ts';
import {
  ENABLED,
  installRelease,
  netmeshPods,
  podReady,
  type Release,
  requireNode,
} from '../incluster/helpers.ts';
import { deleteNamespace, eventually, useCluster } from '../support.ts';

/** The host PID of the netmesh process in a Pod (its cgroup path names the Pod's UID). */
function hostPidOf(pod: k8s.V1Pod): number {
  const uid = pod.metadata!.uid!.replaceAll('-', '_');
  const uidDashed = pod.metadata!.uid!;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('netmesh.js')) continue;
      const cg = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
      if (cg.includes(uidDashed) || cg.includes(uid)) return Number(pid);
    } catch {
      // exited
    }
  }
  throw new Error(`no netmesh process found for Pod ${pod.metadata?.name}`);
}

interface Burst {
  injected: number;
  admittedWithoutSidecar: string[];
  rejected: string[];
}

/** Creates `n` Pods at `concurrency`, counting outcomes. */
async function burst(
  h: ReturnType<typeof useCluster>,
  namespace: string,
  prefix: string,
  n: number,
): Promise<Burst> {
  const out: Burst = { injected: 0, admittedWithoutSidecar: [], rejected: [] };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const name = `${prefix}-${next++}`;
      try {
        const pod = await h.core.createNamespacedPod({
          namespace,
          body: {
            metadata: { name },
            spec: {
              nodeName: 'nowhere',
              containers: [{ name: 'app', image: 'busybox:1.35', command: ['sleep', '1'] }],
            },
          },
        });
        if (pod.metadata?.annotations?.[STATUS_ANNOTATION]) out.injected++;
        else out.admittedWithoutSidecar.push(name);
      } catch (err) {
        // The apiserver's Status message says why (ApiException keeps it in `body`).
        const body = (err as { body?: unknown }).body;
        let message = (err as Error).message;
        try {
          message = (JSON.parse(String(body)) as { message?: string }).message ?? message;
        } catch {
          // not JSON: keep the error's message
        }
        out.rejected.push(message);
      }
    }
  };
  await Promise.all(Array.from({ length: 20 }, worker));
  return out;
}

/** The README's query for Pods in labelled namespaces that carry no sidecar. */
function podsWithoutSidecar(kubeconfig: string, namespace: string): string[] {
  const tpl =
    '{{range .items}}{{if not (and .metadata.annotations (index .metadata.annotations "netmesh.io/status"))}}{{.metadata.name}}{{"\\n"}}{{end}}{{end}}';
  return kubectl(kubeconfig, ['get', 'pods', '-n', namespace, '-o', `go-template=${tpl}`])
    .split('\n')
    .filter(Boolean)
    .sort();
}

describe('faults: the injector in-cluster', () => {
  const h = useCluster();
  let r: Release;
  const namespaces: string[] = [];

  before(async () => {
    r = await installRelease(h, { release: 'nmfault', values: { webhook: { timeoutSeconds: 2 } } });
  });
  after(async () => {
    for (const ns of namespaces) await deleteNamespace(h, ns);
    r?.uninstall();
  });

  /** Admission requests each replica has served (its own metric, read through the pod proxy). */
  const served = async (pod: k8s.V1Pod): Promise<number> => {
    const text = await h.core.connectGetNamespacedPodProxyWithPath({
      namespace: r.namespace,
      name: `${pod.metadata!.name!}:8081`,
      path: 'metrics',
    });
    let total = 0;
    for (const line of String(text).split('\n'))
      if (line.startsWith('netmesh_webhook_requests_total'))
        total += Number(line.slice(line.lastIndexOf(' ') + 1));
    return total;
  };

  /**
   * Hangs the replica the apiserver is talking to. The apiserver keeps one HTTP/2 connection
   * per webhook and multiplexes every call over it, so the replica it dialled is the one that
   * matters; a probe Pod shows which one that is.
   */
  const withHungReplica = async <T>(namespace: string, fn: () => Promise<T>): Promise<T> => {
    const pods = await netmeshPods(h, r);
    const before = await Promise.all(pods.map(served));
    await h.core.createNamespacedPod({
      namespace,
      dryRun: 'All',
      body: { metadata: { name: 'probe' }, spec: { containers: [{ name: 'app', image: 'busybox:1.35' }] } },
    });
    const after = await Promise.all(pods.map(served));
    const active = pods.findIndex((_, i) => after[i]! > before[i]!);
    assert.ok(active >= 0, 'one replica served the probe');
    const victim = pods[active]!;
    const pid = hostPidOf(victim);
    process.kill(pid, 'SIGSTOP');
    try {
      return await fn();
    } finally {
      process.kill(pid, 'SIGCONT');
      await eventually(
        'both replicas Ready again',
        async () => (await netmeshPods(h, r)).filter(podReady).length === 2,
        { timeoutMs: 60_000 },
      );
    }
  };

  test('one replica hung, 200 Pods at once, failurePolicy Fail: no Pod is admitted without its sidecar', async () => {
    const ns = await r.appNamespace('fault-fail', ENABLED);
    namespaces.push(ns);
    const b = await withHungReplica(ns, () => burst(h, ns, 'f', 200));
    console.log(
      `# Fail: ${b.injected} injected, ${b.rejected.length} rejected, ${b.admittedWithoutSidecar.length} without sidecar`,
    );
    assert.deepEqual(b.admittedWithoutSidecar, [], 'nothing admitted without the sidecar');
    assert.equal(b.injected + b.rejected.length, 200);
    assert.ok(b.rejected.length > 0, 'the hung replica was called and the apiserver cut the calls off');
    for (const m of b.rejected) assert.match(m, /failed calling webhook|deadline|timeout|Timeout/, m);
    assert.deepEqual(podsWithoutSidecar(h.cluster.kubeconfigPath, ns), []);
  });

  test('one replica hung, failurePolicy Ignore: every Pod admitted without its sidecar is found by the documented query', async () => {
    requireNode(h);
    await installInCluster(h.cluster.kubeconfigPath, {
      release: r.release,
      namespace: r.namespace,
      image: h.cluster.image!,
      values: { ...r.values, webhook: { ...(r.values['webhook'] as object), failurePolicy: 'Ignore' } },
    });
    const ns = await r.appNamespace('fault-ignore', ENABLED);
    namespaces.push(ns);
    const b = await withHungReplica(ns, () => burst(h, ns, 'i', 200));
    console.log(
      `# Ignore: ${b.injected} injected, ${b.admittedWithoutSidecar.length} admitted without sidecar, ${b.rejected.length} rejected`,
    );
    assert.deepEqual(b.rejected, [], 'Ignore rejects nothing');
    assert.equal(b.injected + b.admittedWithoutSidecar.length, 200);
    assert.ok(b.admittedWithoutSidecar.length > 0, 'the hung replica was called and timed out');
    assert.deepEqual(podsWithoutSidecar(h.cluster.kubeconfigPath, ns), [...b.admittedWithoutSidecar].sort());
  });

  test('the template edited 100 times while Pods are created: each Pod carries exactly one real revision', async () => {
    // Back to Fail with the default timeout (the tests above left Ignore and 2 s): this test is
    // about revisions, and a call stalled a few seconds on a loaded machine is slow, not lost.
    await installInCluster(h.cluster.kubeconfigPath, {
      release: r.release,
      namespace: r.namespace,
      image: requireNode(h),
      values: {
        ...r.values,
        webhook: { ...(r.values['webhook'] as object), failurePolicy: 'Fail', timeoutSeconds: 10 },
      },
    });
    const ns = await r.appNamespace('fault-churn', ENABLED);
    namespaces.push(ns);
    const cmName = 'envoy-initializer';
    const base = (await h.core.readNamespacedConfigMap({ namespace: r.namespace, name: cmName })).data![
      'config'
    ]!;
    // Revision i sets REVISION=i in the sidecar's env and its CPU limit to (100+i)m: a Pod mixing
    // two revisions would show a mismatch between them.
    const revision = (i: number): string =>
      base
        .replace(/limits: \{cpu: [^,]+,/, `limits: {cpu: ${100 + i}m,`)
        .replace('    ports:', `    env:\n      - {name: REVISION, value: "${i}"}\n    ports:`);
    const hashes = new Map<string, number>();
    const firstHash = parseTemplate(base);
    assert.ok(firstHash.ok);
    hashes.set(firstHash.hash, -1);
    for (let i = 0; i < 100; i++) {
      const p = parseTemplate(revision(i));
      assert.ok(p.ok, `revision ${i} parses`);
      hashes.set(p.hash, i);
    }
    let stop = false;
    const created: k8s.V1Pod[] = [];
    const creator = (async () => {
      for (let k = 0; !stop; k++) {
        const pod = await h.core.createNamespacedPod({
          namespace: ns,
          body: {
            metadata: { name: `c-${k}` },
            spec: { nodeName: 'nowhere', containers: [{ name: 'app', image: 'busybox:1.35' }] },
          },
        });
        created.push(pod);
      }
    })();
    for (let i = 0; i < 100; i++) {
      await h.core.patchNamespacedConfigMap(
        { namespace: r.namespace, name: cmName, body: { data: { config: revision(i) } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
      await new Promise((res) => setTimeout(res, 50));
    }
    await new Promise((res) => setTimeout(res, 2000));
    stop = true;
    await creator;
    const seen = new Set<number>();
    for (const pod of created) {
      const status = parseInjectionStatus(pod.metadata?.annotations?.[STATUS_ANNOTATION]);
      assert.ok(status, `${pod.metadata?.name} injected`);
      const rev = hashes.get(status.templateHash);
      assert.notEqual(
        rev,
        undefined,
        `${pod.metadata?.name}: hash ${status.templateHash} is a real revision`,
      );
      seen.add(rev!);
      // The in-cluster template is a native sidecar: envoy is an init container.
      const envoy = pod.spec?.initContainers?.find((c) => c.name === 'envoy');
      const envRev = envoy?.env?.find((e) => e.name === 'REVISION')?.value;
      const cpu = envoy?.resources?.limits?.['cpu'];
      if (rev === -1) {
        assert.equal(envRev, undefined);
      } else {
        assert.equal(envRev, String(rev), `${pod.metadata?.name}: env from revision ${rev}`);
        assert.equal(cpu, `${100 + rev!}m`, `${pod.metadata?.name}: limits from revision ${rev}`);
      }
    }
    console.log(
      `# ${created.length} Pods during 100 template edits, ${seen.size} distinct revisions injected`,
    );
    assert.ok(created.length >= 50);
    assert.ok(seen.size >= 5, 'the edits took effect while Pods were created');
    // The last revision is in force.
    await eventually('the last revision injected', async () => {
      const pod = await h.core.createNamespacedPod({
        namespace: ns,
        dryRun: 'All',
        body: { metadata: { name: 'last' }, spec: { containers: [{ name: 'app', image: 'busybox:1.35' }] } },
      });
      return (
        pod.spec?.initContainers?.find((c) => c.name === 'envoy')?.env?.find((e) => e.name === 'REVISION')
          ?.value === '99'
      );
    });
  });
});
