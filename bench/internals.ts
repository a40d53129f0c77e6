// The `internals` area: in-process micro-benchmarks of the pure cores, each against a baseline
// measured in the same process (so the ratio holds on any machine).
//
//   overlap index   query cost at 10,000 Networks / at 100 Networks   (target: < 4, no O(n) scan)
//                   index query / brute-force scan, both at 10,000     (target: < 0.05)
//   injection       planning a Pod / structuredClone of the same Pod   (reported)
//   work queue      add+get+done / Map set+delete of the same keys     (reported)
//   memory          heap per cached Network with the index, 10,000     (target: 10,000 < 50 MB)
import { performance } from 'node:perf_hooks';
import { overlaps, parseCidr } from '../operator/network/cidr.ts';
import { OverlapIndex } from '../operator/network/overlap-index.ts';
import { RateLimitingQueue } from '../runtime/queue/index.ts';
import { planEncodedInjection, planInjection } from '../webhook/core/inject.ts';
import { parseTemplate } from '../webhook/core/template.ts';
import type { AreaResult, BenchArea, BenchContext, Target } from './lib/area.ts';

/** Median ns per call over `rounds` rounds of `n` calls. */
function measure(n: number, fn: (i: number) => unknown, rounds: number): number {
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    for (let i = 0; i < n; i++) fn(i);
    samples.push(((performance.now() - t) * 1e6) / n);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

function randomCidrs(count: number, seed: number): string[] {
  let s = seed;
  const rnd = () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s;
  };
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(`${10 + (rnd() % 100)}.${rnd() % 256}.${rnd() % 256}.0/24`);
  return out;
}

function buildIndex(cidrs: string[]): OverlapIndex {
  const idx = new OverlapIndex();
  cidrs.forEach((c, i) => {
    idx.upsert(`ns/n${i}`, parseCidr(c), {
      creationTimestamp: new Date(1_700_000_000_000 + i * 1000).toISOString(),
      key: `ns/n${i}`,
    });
  });
  return idx;
}

const ns = (v: number) => `${v.toFixed(0)} ns`;
const us = (v: number) => `${(v / 1000).toFixed(1)} µs`;

async function run(ctx: BenchContext): Promise<AreaResult> {
  const scale = ctx.quick ? 0.2 : 1;
  const rounds = ctx.quick ? 3 : 7;
  const n = (full: number) => Math.max(10, Math.round(full * scale));
  const rows: string[][] = [];
  const targets: Target[] = [];
  const results: Record<string, unknown> = {};

  ctx.progress('internals: overlap index');
  {
    const small = buildIndex(randomCidrs(100, 1));
    const large = buildIndex(randomCidrs(10_000, 2));
    const q = (idx: OverlapIndex, size: number) => (i: number) => idx.blockerFor(`ns/n${i % size}`);
    const smallNs = measure(n(20_000), q(small, 100), rounds);
    const largeNs = measure(n(20_000), q(large, 10_000), rounds);
    const parsed = randomCidrs(10_000, 2).map((c) => parseCidr(c));
    const bruteNs = measure(
      n(200),
      (i) => {
        const me = parsed[i % parsed.length]!;
        let hit = 0;
        for (const other of parsed) if (other !== me && overlaps(me, other)) hit++;
        return hit;
      },
      rounds,
    );
    rows.push(
      [
        'overlap query, 10,000 vs 100 Networks',
        ns(largeNs),
        ns(smallNs),
        (largeNs / smallNs).toFixed(2),
        '< 4',
      ],
      [
        'overlap query vs brute-force scan, 10,000',
        ns(largeNs),
        ns(bruteNs),
        (largeNs / bruteNs).toFixed(4),
        '< 0.05',
      ],
    );
    targets.push(
      {
        area: 'internals',
        what: 'overlap query cost, 10,000 / 100 Networks',
        measured: largeNs / smallNs,
        kind: 'max',
        limit: 4,
        unit: 'ratio',
      },
      {
        area: 'internals',
        what: 'overlap index / brute-force scan at 10,000',
        measured: largeNs / bruteNs,
        kind: 'max',
        limit: 0.05,
        unit: 'ratio',
      },
    );
    results['overlapIndex'] = {
      queryNsAt100: smallNs,
      queryNsAt10000: largeNs,
      bruteForceNsAt10000: bruteNs,
    };
  }

  ctx.progress('internals: injection planning');
  {
    const parsed = parseTemplate(`containers:
  - name: envoy
    image: envoyproxy/envoy:v1.36.2
    volumeMounts: [{name: envoy-conf, mountPath: /etc/envoy}]
volumes:
  - name: envoy-conf
    configMap: {name: envoy}
`);
    if (!parsed.ok) throw new Error(parsed.error);
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'myapp-pod',
        namespace: 'demo',
        labels: { app: 'myapp' },
        annotations: { 'a/b': 'c' },
      },
      spec: {
        containers: [{ name: 'myapp-container', image: 'busybox', command: ['sh', '-c', 'sleep 3600'] }],
      },
    };
    const options = { templateHash: parsed.hash };
    const planNs = measure(n(5_000), () => planInjection(pod, parsed.template, options), rounds);
    const encodedNs = measure(n(5_000), () => planEncodedInjection(pod, parsed.template, options), rounds);
    const cloneNs = measure(n(5_000), () => structuredClone(pod), rounds);
    rows.push(
      [
        'planInjection (CLI, fresh objects) vs structuredClone(Pod)',
        us(planNs),
        us(cloneNs),
        (planNs / cloneNs).toFixed(1),
        '',
      ],
      [
        'planEncodedInjection (webhook) vs structuredClone(Pod)',
        us(encodedNs),
        us(cloneNs),
        (encodedNs / cloneNs).toFixed(1),
        '',
      ],
    );
    results['injection'] = {
      planInjectionNs: planNs,
      planEncodedInjectionNs: encodedNs,
      structuredCloneNs: cloneNs,
    };
  }

  ctx.progress('internals: work queue');
  {
    const keys = Array.from({ length: n(10_000) }, (_, i) => `ns/n${i}`);
    const queue = new RateLimitingQueue<string>({ name: 'bench' });
    const t0 = performance.now();
    for (const k of keys) queue.add(k);
    for (let i = 0; i < keys.length; i++) {
      const { item } = await queue.get();
      queue.done(item!);
    }
    const queueNs = ((performance.now() - t0) * 1e6) / keys.length;
    queue.shutDown();
    const m = new Map<string, number>();
    const mapNs =
      measure(
        1,
        () => {
          for (const k of keys) m.set(k, 1);
          for (const k of keys) m.delete(k);
        },
        rounds,
      ) / keys.length;
    rows.push([
      'work queue add+get+done vs Map set+delete',
      ns(queueNs),
      ns(mapNs),
      (queueNs / mapNs).toFixed(1),
      '',
    ]);
    results['workQueue'] = { addGetDoneNs: queueNs, mapSetDeleteNs: mapNs };
  }

  ctx.progress('internals: memory');
  {
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const before = process.memoryUsage().heapUsed;
    const count = 10_000;
    const cidrs = randomCidrs(count, 3);
    const cache = new Map<string, unknown>();
    const idx = new OverlapIndex();
    cidrs.forEach((c, i) => {
      const created = new Date().toISOString();
      cache.set(`bench/n${i}`, {
        apiVersion: 'netmesh.io/v1',
        kind: 'Network',
        metadata: {
          name: `n${i}`,
          namespace: 'bench',
          uid: crypto.randomUUID(),
          resourceVersion: String(1000 + i),
          generation: 1,
          creationTimestamp: created,
          finalizers: ['netmesh.io/network-cleanup'],
        },
        spec: { cidr: c },
        status: {
          observedGeneration: 1,
          phase: 'Ready',
          gateway: c.replace('.0/24', '.1'),
          usableAddresses: '254',
          conditions: [
            {
              type: 'Ready',
              status: 'True',
              reason: 'Materialized',
              message: `materialized as ConfigMap bench/n${i}-cni`,
              lastTransitionTime: created,
              observedGeneration: 1,
            },
          ],
        },
      });
      idx.upsert(`bench/n${i}`, parseCidr(c), { creationTimestamp: created, key: `bench/n${i}` });
    });
    gc?.();
    const mb = (process.memoryUsage().heapUsed - before) / 1e6;
    if (cache.size !== count || idx.size !== count) throw new Error('unexpected sizes');
    rows.push([
      `heap of 10,000 cached Networks + overlap index${gc ? '' : ' (no --expose-gc: approximate)'}`,
      `${mb.toFixed(1)} MB`,
      '',
      '',
      '< 50 MB',
    ]);
    targets.push({
      area: 'internals',
      what: 'heap of 10,000 cached Networks + index',
      measured: mb,
      kind: 'max',
      limit: 50,
      unit: 'MB',
    });
    results['memory'] = { heapMbFor10000Networks: mb };
  }

  return {
    tables: [
      {
        title: 'internals: in-process micro-benchmarks (medians; baseline measured in the same process)',
        columns: ['measurement', 'netmesh', 'baseline', 'ratio', 'target'],
        rows,
      },
    ],
    targets,
    results,
    charts: [],
  };
}

export const internalsArea: BenchArea = {
  name: 'internals',
  summary: 'overlap index, injection planning, work queue, memory per Network (in process)',
  run,
};
