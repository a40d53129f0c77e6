// Fault suite, resource pressure: `netmesh run` (operator and webhook in one process, as the
// chart runs it) with 10,000 Networks and 5,000 namespaces in its caches; its RSS and heap
// measured after a forced GC, then a churn loop (Networks and namespaces created and deleted)
// for NETMESH_FAULT_CHURN_MINUTES (default 10); memory at the end must not have grown beyond
// noise. Figures are printed for the README's reliability section.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { hostRunArgs, installChart } from '../../cluster/chart.ts';
import { freePort } from '../../cluster/controlplane.ts';
import { Inspector, type Memory, mb } from '../../cluster/inspector.ts';
import { type NetmeshProcess, startNetmesh } from '../../cluster/netmesh-process.ts';
import { deleteNamespace, eventually } from '../support.ts';
import {
  assertConverged,
  createNetworks,
  distinctCidrs,
  type FaultCluster,
  ownControlPlane,
  SYSTEM_NS,
} from './harness.ts';

const NETWORKS = Number(process.env['NETMESH_FAULT_NETWORKS'] ?? 10_000);
const NAMESPACES = Number(process.env['NETMESH_FAULT_NAMESPACES'] ?? 5_000);
const CHURN_MINUTES = Number(process.env['NETMESH_FAULT_CHURN_MINUTES'] ?? 10);

async function inBatches<T>(items: T[], concurrency: number, fn: (t: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

describe('faults: resource pressure', { timeout: (CHURN_MINUTES + 25) * 60_000 }, () => {
  let f: FaultCluster;
  let netmesh: NetmeshProcess;
  let inspector: Inspector;

  before(async () => {
    f = await ownControlPlane({ release: 'netmesh' });
    const port = await freePort();
    // The same release, now with the webhook, pointed at netmesh on this host.
    const chart = installChart(f.cluster.kubeconfigPath, 'netmesh', SYSTEM_NS, {
      'webhook.localRunURL': `https://127.0.0.1:${port}/mutate`,
      replicaCount: 1,
    });
    const inspectPort = await freePort();
    netmesh = await startNetmesh('run', hostRunArgs(chart, f.identity, port), {
      NODE_OPTIONS: `--inspect=127.0.0.1:${inspectPort}`,
      NETMESH_LOG_LEVEL: 'warn',
    });
    await netmesh.waitReady(60_000);
    inspector = await Inspector.connect(inspectPort);
  });
  after(async () => {
    inspector?.close();
    await netmesh?.stop();
    await f?.stop();
  });

  test(`${NETWORKS} Networks and ${NAMESPACES} namespaces cached, then ${CHURN_MINUTES} minutes of churn: no unbounded growth`, {
    timeout: (CHURN_MINUTES + 25) * 60_000,
  }, async () => {
    const idle = await inspector.memoryAfterGc();
    console.log(`# idle: rss ${mb(idle.rss)}, heap ${mb(idle.heapUsed)}`);
    const started = Date.now();
    const nsNames = Array.from({ length: NAMESPACES }, (_, i) => `p-${i}`);
    await inBatches(nsNames, 16, (name) =>
      f.core.createNamespace({
        body: { metadata: { name, labels: i(name) % 2 === 0 ? { 'netmesh.io/injection': 'enabled' } : {} } },
      }),
    );
    // Networks in 100 of those namespaces, none overlapping.
    const cidrs = distinctCidrs(NETWORKS);
    const perNs = Math.ceil(NETWORKS / 100);
    for (let n = 0; n < 100; n++) {
      const slice = cidrs.slice(n * perNs, (n + 1) * perNs);
      if (slice.length)
        await createNetworks(
          f,
          `p-${n}`,
          slice.map((cidr, k) => ({ name: `net-${k}`, cidr })),
        );
    }
    await eventually(
      'every Network Ready',
      async () => {
        const text = await (await fetch(`http://127.0.0.1:${netmesh.healthPort}/metrics`)).text();
        const depth = /^workqueue_depth\{name="network"\} (\d+)/m.exec(text)?.[1];
        return depth === '0';
      },
      { timeoutMs: 20 * 60_000, intervalMs: 2000 },
    );
    for (const n of [0, 50, 99]) await assertConverged(f, `p-${n}`, 300_000);
    console.log(
      `# ${NETWORKS} Networks Ready in ${NAMESPACES} namespaces after ${((Date.now() - started) / 1000).toFixed(0)} s`,
    );
    const loaded = await inspector.memoryAfterGc();
    console.log(`# loaded: rss ${mb(loaded.rss)}, heap ${mb(loaded.heapUsed)}`);

    // Churn: each cycle creates a namespace with 50 Networks, waits for them, deletes it.
    const samples: Memory[] = [loaded];
    const churnUntil = Date.now() + CHURN_MINUTES * 60_000;
    let cycles = 0;
    while (Date.now() < churnUntil) {
      const ns = `churn-${cycles++}`;
      await f.core.createNamespace({
        body: { metadata: { name: ns, labels: { 'netmesh.io/injection': 'enabled' } } },
      });
      await createNetworks(
        f,
        ns,
        distinctCidrs(50, 20_000 + (cycles % 5) * 50).map((cidr, k) => ({ name: `c-${k}`, cidr })),
      );
      await assertConverged(f, ns, 120_000);
      await deleteNamespace({ core: f.core } as never, ns);
      if (cycles % 10 === 0) samples.push(await inspector.memoryAfterGc());
    }
    await eventually(
      'the churn namespaces gone',
      async () => (await f.core.listNamespace()).items.every((n) => !n.metadata?.name?.startsWith('churn-')),
      { timeoutMs: 300_000, intervalMs: 2000 },
    );
    const end = await inspector.memoryAfterGc();
    console.log(
      `# after ${cycles} churn cycles (${CHURN_MINUTES} min): rss ${mb(end.rss)}, heap ${mb(end.heapUsed)} (loaded: ${mb(loaded.rss)}, ${mb(loaded.heapUsed)}); heap samples ${samples.map((s) => mb(s.heapUsed)).join(' ')}`,
    );
    // What the churn created is gone: the heap must be back near where it started.
    assert.ok(
      end.heapUsed < loaded.heapUsed * 1.1 + 8 * 1024 * 1024,
      `heap ${mb(end.heapUsed)} vs ${mb(loaded.heapUsed)}`,
    );
    assert.ok(end.rss < loaded.rss * 1.25 + 32 * 1024 * 1024, `rss ${mb(end.rss)} vs ${mb(loaded.rss)}`);
    assert.equal(netmesh.child.exitCode, null, 'netmesh still running');
  });
});

function i(name: string): number {
  return Number(name.slice(name.indexOf('-') + 1));
}
