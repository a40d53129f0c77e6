// `npm run bench`: performance claims as ratios against a baseline measured in the same
// process, so they hold on any machine. Each line prints the measured numbers and the ratio;
// a claim that does not hold makes the run exit non-zero.
//
//   overlap index   query cost at 10,000 Networks / at 100 Networks   (claim: < 4, i.e. no O(n) scan)
//                   index query / brute-force scan, both at 10,000     (claim: < 0.05)
//   injection       planInjection / structuredClone of the same Pod    (reported)
//   work queue      add+get+done / Map set+delete of the same keys     (reported)
//   memory          heap per cached Network with the index, 10,000     (claim: 10,000 Networks < 50 MB)
import { performance } from 'node:perf_hooks';
import { overlaps, parseCidr } from '../operator/network/cidr.ts';
import { OverlapIndex } from '../operator/network/overlap-index.ts';
import { RateLimitingQueue } from '../runtime/queue/index.ts';
import { planInjection } from '../webhook/core/inject.ts';
import { parseTemplate } from '../webhook/core/template.ts';

let failed = 0;
function claim(what: string, ok: boolean): void {
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failed++;
}

/** Median ns per op over `rounds` rounds of `n` calls. */
function measure(n: number, fn: (i: number) => unknown, rounds = 7): number {
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
  for (let i = 0; i < count; i++) {
    const a = 10 + (rnd() % 100);
    const b = rnd() % 256;
    const c = rnd() % 256;
    out.push(`${a}.${b}.${c}.0/24`);
  }
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

console.log('overlap index');
{
  const small = buildIndex(randomCidrs(100, 1));
  const large = buildIndex(randomCidrs(10_000, 2));
  const q = (idx: OverlapIndex, size: number) => (i: number) => idx.blockerFor(`ns/n${i % size}`);
  const smallNs = measure(20_000, q(small, 100));
  const largeNs = measure(20_000, q(large, 10_000));
  const parsed = randomCidrs(10_000, 2).map((c) => parseCidr(c));
  const bruteNs = measure(200, (i) => {
    const me = parsed[i % parsed.length]!;
    let hit = 0;
    for (const other of parsed) if (other !== me && overlaps(me, other)) hit++;
    return hit;
  });
  console.log(
    `  query at 100: ${smallNs.toFixed(0)} ns, at 10,000: ${largeNs.toFixed(0)} ns, brute-force scan at 10,000: ${bruteNs.toFixed(0)} ns`,
  );
  claim(`cost ratio 10,000/100 = ${(largeNs / smallNs).toFixed(2)} < 4`, largeNs / smallNs < 4);
  claim(`index/brute-force = ${(largeNs / bruteNs).toFixed(4)} < 0.05`, largeNs / bruteNs < 0.05);
}

console.log('injection planning');
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
    metadata: { name: 'myapp-pod', namespace: 'demo', labels: { app: 'myapp' }, annotations: { 'a/b': 'c' } },
    spec: {
      containers: [{ name: 'myapp-container', image: 'busybox', command: ['sh', '-c', 'sleep 3600'] }],
    },
  };
  const planNs = measure(5_000, () => planInjection(pod, parsed.template, { templateHash: parsed.hash }));
  const cloneNs = measure(5_000, () => structuredClone(pod));
  console.log(
    `  planInjection ${(planNs / 1000).toFixed(1)} µs, structuredClone(pod) ${(cloneNs / 1000).toFixed(1)} µs, ratio ${(planNs / cloneNs).toFixed(1)}`,
  );
}

console.log('work queue');
{
  const keys = Array.from({ length: 10_000 }, (_, i) => `ns/n${i}`);
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
    measure(1, () => {
      for (const k of keys) m.set(k, 1);
      for (const k of keys) m.delete(k);
    }) / keys.length;
  console.log(
    `  add+get+done ${queueNs.toFixed(0)} ns/key, Map set+delete ${mapNs.toFixed(0)} ns/key, ratio ${(queueNs / mapNs).toFixed(1)}`,
  );
}

console.log('memory');
{
  global.gc?.();
  const before = process.memoryUsage().heapUsed;
  const cidrs = randomCidrs(10_000, 3);
  const cache = new Map<string, unknown>();
  const idx = new OverlapIndex();
  cidrs.forEach((c, i) => {
    const net = {
      apiVersion: 'netmesh.io/v1',
      kind: 'Network',
      metadata: {
        name: `n${i}`,
        namespace: 'bench',
        uid: crypto.randomUUID(),
        resourceVersion: String(1000 + i),
        generation: 1,
        creationTimestamp: new Date().toISOString(),
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
            lastTransitionTime: new Date().toISOString(),
            observedGeneration: 1,
          },
        ],
      },
    };
    cache.set(`bench/n${i}`, net);
    idx.upsert(`bench/n${i}`, parseCidr(c), {
      creationTimestamp: net.metadata.creationTimestamp,
      key: `bench/n${i}`,
    });
  });
  global.gc?.();
  const mb = (process.memoryUsage().heapUsed - before) / 1e6;
  console.log(
    `  10,000 cached Networks + overlap index: ${mb.toFixed(1)} MB of heap (${((mb * 1e6) / 10_000 / 1000).toFixed(2)} kB each)`,
  );
  claim(`10,000 Networks < 50 MB of heap (${mb.toFixed(1)} MB)`, mb < 50);
  if (cache.size !== 10_000 || idx.size !== 10_000) throw new Error('unexpected sizes');
}

if (failed > 0) {
  console.log(`\n${failed} claim(s) failed`);
  process.exit(1);
}
console.log('\nall claims hold');
