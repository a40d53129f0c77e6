// Fault suite, operator side: the real control plane and real `netmesh operator` processes
// through the failures production clusters see. Every scenario ends with the invariant of
// harness.ts (the Ready set is what a fresh operator would compute; each Ready Network has
// exactly its CNI ConfigMap) and checks that no operator process crashed unexpectedly.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import type { NetmeshProcess } from '../../cluster/netmesh-process.ts';
import { kubectlAsync } from '../../cluster/tools.ts';
import { auditLog } from '../operator-support.ts';
import { eventually } from '../support.ts';
import {
  apiserverWrites,
  assertConverged,
  compactEtcd,
  createNetworks,
  distinctCidrs,
  type FaultCluster,
  GROUP,
  listNetworks,
  ownControlPlane,
  startOperator,
} from './harness.ts';
import { startStallingProxy } from './tcp-proxy.ts';

/**
 * Waits until a tenth of the `total` Networks being created in `namespace` carry a status, and
 * returns how many do: the moment a fault is injected "mid-reconcile". Counted in the namespace,
 * not by the operator's metric: a fresh operator also reconciles the earlier tests' Networks.
 */
async function midReconcile(f: FaultCluster, namespace: string, total: number): Promise<number> {
  return eventually(
    `a tenth of ${total} Networks reconciled`,
    async () => {
      const n = (await listNetworks(f, namespace)).filter(
        (i) => (i.status?.conditions?.length ?? 0) > 0,
      ).length;
      return n >= total / 10 ? n : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 50 },
  );
}

/** What the apiserver answers to a watch of Networks from `resourceVersion` (first line). */
async function watchStatus(f: FaultCluster, namespace: string, resourceVersion: string): Promise<string> {
  const cluster = f.kc.getCurrentCluster()!;
  const url = `${cluster.server}/apis/${GROUP}/v1/namespaces/${namespace}/networks?watch=1&resourceVersion=${resourceVersion}&timeoutSeconds=5`;
  const opts: https.RequestOptions = {};
  await f.kc.applyToHTTPSOptions(opts);
  return new Promise((resolve, reject) => {
    https
      .get(url, opts, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
          if (body.includes('\n')) res.destroy();
        });
        res.on('close', () => resolve(`HTTP ${res.statusCode} ${body.split('\n')[0]}`));
      })
      .on('error', reject);
  });
}

describe('faults: the operator', () => {
  let f: FaultCluster;
  const procs: NetmeshProcess[] = [];
  let nsCount = 0;
  const namespace = async (): Promise<string> => {
    const name = `fault-${++nsCount}`;
    await f.core.createNamespace({ body: { metadata: { name } } });
    return name;
  };
  const operator = async (
    identity: string,
    extra: string[] = [],
    kubeconfig?: string,
  ): Promise<NetmeshProcess> => {
    const p = await startOperator(f, identity, { extra, ...(kubeconfig ? { kubeconfig } : {}) });
    procs.push(p);
    return p;
  };
  const stopAll = async (): Promise<void> => {
    for (const p of procs.splice(0)) {
      const code = await p.stop();
      assert.equal(code, 0, `operator exited cleanly (log ${p.logFile})`);
    }
  };
  const alive = (p: NetmeshProcess) =>
    assert.equal(p.child.exitCode, null, `operator still running (log ${p.logFile})`);

  before(async () => {
    f = await ownControlPlane();
  });
  // A failed scenario must not leave its operators holding the Lease for the next one: a
  // graceful stop releases it.
  afterEach(async () => {
    for (const p of procs.splice(0)) {
      p.child.kill('SIGCONT');
      await Promise.race([p.stop(), new Promise((r) => setTimeout(r, 20_000))]);
      await p.kill9();
    }
  });
  after(async () => {
    for (const p of procs) await p.kill9();
    await f?.stop();
  });

  test('apiserver killed (-9) while 500 Networks are reconciled: informers reconnect, nothing is missed', async () => {
    const ns = await namespace();
    // A renew deadline longer than the outage: the apiserver has taken 8.5 s to come back on this
    // machine, and client-go's default deadline (10 s, counted from the last renewal) would be a
    // coin toss here. Losing the lease to an outage is covered by the lease tests.
    const op = await operator('a', [
      '--lease-duration',
      '40s',
      '--renew-deadline',
      '30s',
      '--retry-period',
      '2s',
    ]);
    await op.waitReady();
    const cidrs = distinctCidrs(500);
    // Every tenth Network overlaps the one before it: verdicts, not just creations, must survive.
    const items = cidrs.map((cidr, i) => ({ name: `n-${i}`, cidr: i % 10 === 9 ? cidrs[i - 1]! : cidr }));
    const firstBatch = createNetworks(f, ns, items.slice(0, 300));
    // Mid-reconcile by what the operator has done, not by the clock: a fast machine could
    // otherwise converge first and the outage would hit an idle operator.
    const done = await midReconcile(f, ns, 300);
    console.log(`# apiserver killed with ${done} of 300 Networks reconciled`);
    const outage = Date.now();
    await f.cluster.local!.restartComponent('kube-apiserver', { downMs: 1000 });
    console.log(`# apiserver back after ${((Date.now() - outage) / 1000).toFixed(1)} s`);
    await firstBatch;
    await createNetworks(f, ns, items.slice(300));
    const started = Date.now();
    const v = await assertConverged(f, ns);
    console.log(
      `# converged ${((Date.now() - started) / 1000).toFixed(1)} s after the last create: ${v.ready.size} Ready, ${v.notReady.size} Overlap`,
    );
    assert.equal(v.ready.size, 450);
    alive(op);
    await stopAll();
  });

  test('watch history gone (410 after an etcd compaction): the informer re-lists and converges, no duplicate writes', async () => {
    const ns = await namespace();
    // The operator is frozen (SIGSTOP) while the cluster moves on: a long lease keeps it leader.
    const op = await operator('b', [
      '--lease-duration',
      '60s',
      '--renew-deadline',
      '50s',
      '--retry-period',
      '2s',
    ]);
    await op.waitReady();
    const cidrs = distinctCidrs(100, 1000);
    await createNetworks(
      f,
      ns,
      cidrs.slice(0, 50).map((cidr, i) => ({ name: `w-${i}`, cidr })),
    );
    await assertConverged(f, ns);
    const seen = (
      (await f.custom.listNamespacedCustomObject({
        group: GROUP,
        version: 'v1',
        namespace: ns,
        plural: 'networks',
      })) as {
        metadata: { resourceVersion: string };
      }
    ).metadata.resourceVersion;
    let since = '';
    op.child.kill('SIGSTOP');
    try {
      // While it sleeps: 30 new Networks, 10 deleted, 10 edited.
      await createNetworks(
        f,
        ns,
        cidrs.slice(50, 80).map((cidr, i) => ({ name: `w-${50 + i}`, cidr })),
      );
      for (let i = 0; i < 10; i++)
        await f.custom.deleteNamespacedCustomObject({
          group: GROUP,
          version: 'v1',
          namespace: ns,
          plural: 'networks',
          name: `w-${i}`,
        });
      for (let i = 10; i < 20; i++)
        await f.custom.patchNamespacedCustomObject(
          {
            group: GROUP,
            version: 'v1',
            namespace: ns,
            plural: 'networks',
            name: `w-${i}`,
            body: { spec: { cidr: cidrs[80 + i - 10]! } },
          },
          k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
        );
      // History up to now is gone, and the apiserver's watch cache with it: a watch resumed from
      // the operator's last resourceVersion can only get 410 Gone.
      await compactEtcd(f);
      await f.cluster.local!.restartComponent('kube-apiserver');
      // Proof that the history is really gone: a watch from what the operator last saw is 410.
      // (The restarted apiserver answers 429 until its watch cache has initialised.)
      const watch = await eventually('the watch cache up', async () => {
        const w = await watchStatus(f, ns, seen);
        return /^HTTP 429/.test(w) ? undefined : w;
      });
      assert.match(watch, /410|Expired|too old/, `a watch from resourceVersion ${seen}: ${watch}`);
    } finally {
      // Taken before the operator resumes: every write it makes from here on is counted.
      since = new Date().toISOString();
      op.child.kill('SIGCONT');
    }
    const before = await apiserverWrites(f, 'configmaps');
    await assertConverged(f, ns);
    // The audit log says who wrote which ConfigMap: the apiserver's own counter also moves with
    // the restarted apiserver's and the controller manager's writes elsewhere in the cluster.
    const audited = auditLog(f.cluster.kubeconfigPath)
      ?.read()
      .filter(
        (e) =>
          e.stage === 'ResponseComplete' &&
          e.objectRef?.resource === 'configmaps' &&
          e.objectRef.namespace === ns &&
          e.objectRef.name !== 'kube-root-ca.crt' &&
          e.requestReceivedTimestamp >= since,
      );
    const writes = audited?.length ?? (await apiserverWrites(f, 'configmaps')) - before;
    // Which objects were written more than the one write their change needs, and whether any of
    // the 30 that did not change (w-20..w-49) was written at all: a relist that rewrites what it
    // re-lists would show there.
    const perObject = new Map<string, number>();
    for (const e of audited ?? []) {
      const key = `${e.verb} ${e.objectRef?.name}${(e.responseStatus?.code ?? 200) >= 400 ? ` (${e.responseStatus?.code})` : ''}`;
      perObject.set(key, (perObject.get(key) ?? 0) + 1);
    }
    const unchangedWritten = (audited ?? []).filter((e) =>
      /^w-(2\d|3\d|4\d)-cni$/.test(e.objectRef?.name ?? ''),
    );
    const failed = (audited ?? []).filter((e) => (e.responseStatus?.code ?? 200) >= 400).length;
    const repeated = [...perObject].filter(([, n]) => n > 1);
    console.log(
      `# after the relist: ${writes} ConfigMap writes in the namespace for 50 changes (${failed} refused)${repeated.length ? `; repeated: ${repeated.map(([k, n]) => `${k} x${n}`).join(', ')}` : ''}`,
    );
    assert.deepEqual(
      unchangedWritten.map((e) => `${e.verb} ${e.objectRef?.name}`),
      [],
      'the relist wrote none of the ConfigMaps whose Network did not change',
    );
    // 30 creates, 10 edits and 10 deletes (by the garbage collector) need one write each. Runs
    // have measured 50 to 72: a changed object is sometimes written twice while the Network and
    // ConfigMap informers re-list at different moments (see the repeated list above).
    assert.ok(writes <= 100, `${writes} ConfigMap writes after the relist`);
    alive(op);
    await stopAll();
  });

  test('leader killed (-9) mid-reconcile: the standby takes over within the lease duration, nothing orphaned', async () => {
    const ns = await namespace();
    const a = await operator('leader-a');
    await a.waitReady();
    const b = await operator('standby-b');
    await b.waitReady();
    const items = distinctCidrs(300, 2000).map((cidr, i) => ({ name: `l-${i}`, cidr }));
    const creating = createNetworks(f, ns, items);
    const done = await midReconcile(f, ns, 300);
    console.log(`# leader killed with ${done} of 300 Networks reconciled`);
    await a.kill9();
    procs.splice(procs.indexOf(a), 1);
    const killed = Date.now();
    // Watched while the creates go on, so finishing them is not counted in the takeover.
    const coordination = f.kc.makeApiClient(k8s.CoordinationV1Api);
    const tookOver = eventually(
      `the standby holds the Lease (log ${b.logFile})`,
      async () => {
        const lease = await coordination.readNamespacedLease({
          namespace: 'netmesh-system',
          name: 'netmesh-operator',
        });
        return lease.spec?.holderIdentity === 'standby-b';
      },
      { intervalMs: 100 },
    ).then(() => (Date.now() - killed) / 1000);
    await creating;
    const takeover = await tookOver;
    console.log(`# standby took over ${takeover.toFixed(1)} s after the kill -9`);
    // The lease (4 s) from the standby's sight of the last renewal, up to two jittered retry
    // periods around it (500 ms × (1 + 1.2 × jitter): 1.1 s at most) and round trips on a loaded
    // machine.
    assert.ok(takeover < 4 + 2 * 1.1 + 2.5, `takeover in ${takeover} s (lease 4 s)`);
    await assertConverged(f, ns);
    // Delete a third; their ConfigMaps must go too (owner references), none left behind.
    for (let i = 0; i < 100; i++)
      await f.custom.deleteNamespacedCustomObject({
        group: GROUP,
        version: 'v1',
        namespace: ns,
        plural: 'networks',
        name: `l-${i}`,
      });
    await eventually(
      'the deleted Networks gone',
      async () =>
        (
          (await f.custom.listNamespacedCustomObject({
            group: GROUP,
            version: 'v1',
            namespace: ns,
            plural: 'networks',
          })) as { items: unknown[] }
        ).items.length === 200,
      { timeoutMs: 60_000 },
    );
    await eventually(
      'their ConfigMaps collected',
      async () => {
        try {
          await assertConverged(f, ns, 5000);
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 60_000 },
    );
    alive(b);
    await stopAll();
  });

  test("a concurrent writer's labels and annotations are never overwritten; conflicts are retried", async () => {
    const ns = await namespace();
    const op = await operator('c');
    await op.waitReady();
    const items = distinctCidrs(40, 3000).map((cidr, i) => ({ name: `c-${i}`, cidr }));
    const creating = createNetworks(f, ns, items);
    let stop = false;
    let patches = 0;
    const writer = (async () => {
      await creating;
      // 15 s, and at least one label on each Network however slow the machine (two kubectl
      // processes per round).
      for (let round = 0; !stop || round < 40; round++) {
        // kubectl as a second field manager: labels, annotations, and a gateway edit now and then.
        const name = `c-${round % 40}`;
        const args = ['-n', ns, 'label', '--overwrite', 'network', name, `team=t${round}`];
        await kubectlAsync(f.cluster.kubeconfigPath, args).catch(() => {});
        await kubectlAsync(f.cluster.kubeconfigPath, [
          '-n',
          ns,
          'annotate',
          '--overwrite',
          'network',
          name,
          `owner.example.com/round=${round}`,
        ]).catch(() => {});
        patches += 2;
      }
    })();
    await new Promise((r) => setTimeout(r, 15_000));
    stop = true;
    await writer;
    await assertConverged(f, ns);
    const list = (await f.custom.listNamespacedCustomObject({
      group: GROUP,
      version: 'v1',
      namespace: ns,
      plural: 'networks',
    })) as {
      items: k8s.KubernetesObject[];
    };
    let labelled = 0;
    for (const n of list.items) {
      if (!n.metadata?.labels?.['team']) continue;
      labelled++;
      const kubectlOwns = n.metadata.managedFields?.some(
        (m) => m.manager?.startsWith('kubectl') && JSON.stringify(m.fieldsV1).includes('"f:team"'),
      );
      const operatorOwns = n.metadata.managedFields?.some(
        (m) => m.manager === 'netmesh-operator' && JSON.stringify(m.fieldsV1).includes('"f:team"'),
      );
      assert.ok(kubectlOwns && !operatorOwns, `${n.metadata.name}: the label stays kubectl's`);
      assert.ok(
        n.metadata.annotations?.['owner.example.com/round'],
        `${n.metadata.name}: the annotation survived`,
      );
    }
    console.log(`# ${patches} patches by the second writer; ${labelled} Networks carry its fields`);
    assert.ok(labelled >= 20);
    alive(op);
    await stopAll();
  });
  test('quiet watch stall (connections stop forwarding, nothing closes): the watch restarts within its timeout, nothing is missed', async () => {
    const ns = await namespace();
    const server = new URL(f.cluster.local!.server);
    const proxy = await startStallingProxy({ host: server.hostname, port: Number(server.port) });
    const dir = mkdtempSync(join(tmpdir(), 'netmesh-stall-'));
    try {
      // The operator's identity, through the proxy (127.0.0.1 is in the apiserver's certificate).
      const kubeconfig = join(dir, 'kubeconfig');
      writeFileSync(
        kubeconfig,
        readFileSync(f.identity, 'utf8').replace(f.cluster.local!.server, `https://127.0.0.1:${proxy.port}`),
        { mode: 0o600 },
      );
      // A long lease: a stalled renewal must fail over to a fresh connection, not cost the lease.
      const op = await operator(
        'd',
        ['--lease-duration', '60s', '--renew-deadline', '50s', '--retry-period', '2s'],
        kubeconfig,
      );
      await op.waitReady();
      const cidrs = distinctCidrs(60, 4000);
      await createNetworks(
        f,
        ns,
        cidrs.slice(0, 20).map((cidr, i) => ({ name: `s-${i}`, cidr })),
      );
      await assertConverged(f, ns);
      const frozen = proxy.stall();
      const stalled = Date.now();
      // The cluster moves on where the operator cannot see it (the admin client is direct).
      await createNetworks(
        f,
        ns,
        cidrs.slice(20, 50).map((cidr, i) => ({ name: `s-${20 + i}`, cidr })),
      );
      for (let i = 0; i < 5; i++)
        await f.custom.deleteNamespacedCustomObject({
          group: GROUP,
          version: 'v1',
          namespace: ns,
          plural: 'networks',
          name: `s-${i}`,
        });
      await assertConverged(f, ns, 300_000);
      const seconds = (Date.now() - stalled) / 1000;
      console.log(
        `# ${frozen} connections stalled; converged ${seconds.toFixed(0)} s later through ${proxy.connections()} connections`,
      );
      // The watch's inactivity timeout (2 minutes, above the apiserver's 1-minute bookmarks) or
      // the watchdog restarts it; either way well before the watchdog's 5 minutes.
      assert.ok(seconds < 200, `recovered in ${seconds} s`);
      assert.ok(proxy.connections() > frozen, 'the operator opened new connections');
      alive(op);
      await stopAll();
    } finally {
      await proxy.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
