import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Registry, register } from 'prom-client';
import { FakeClock } from './clock.ts';
import type { QueueMetricsProvider } from './metrics.ts';
import { noopQueueMetricsProvider, PrometheusQueueMetricsProvider } from './metrics.ts';
import { ItemExponentialFailureRateLimiter } from './rate-limiters.ts';
import { RateLimitingQueue, WorkQueue } from './workqueue.ts';

// Histograms name each sample (_bucket, _sum, _count); prom-client does not export that type.
const sampleNameOf = (v: object, fallback: string): string =>
  'metricName' in v && typeof v.metricName === 'string' ? v.metricName : fallback;

/** The value of one sample of a metric for one queue name (undefined if not exported). */
async function sample(
  registry: Registry,
  metric: string,
  queueName: string,
  sampleName = metric,
): Promise<number | undefined> {
  const m = registry.getSingleMetric(metric);
  assert.ok(m, `${metric} is registered`);
  const data = await m.get();
  const found = data.values.find(
    (v) => v.labels['name'] === queueName && sampleNameOf(v, metric) === sampleName,
  );
  return found?.value;
}

function setup(name = 'test') {
  const registry = new Registry();
  const clock = new FakeClock();
  const queue = new RateLimitingQueue({
    name,
    clock,
    metrics: new PrometheusQueueMetricsProvider(registry),
    rateLimiter: new ItemExponentialFailureRateLimiter<string>(10, 1000),
  });
  return { registry, clock, queue };
}

describe('PrometheusQueueMetricsProvider', () => {
  it("registers client-go's metric names, labelled by queue name", async () => {
    const { registry } = setup('controller');
    const names = registry
      .getMetricsAsArray()
      .map((m) => m.name)
      .sort();
    assert.deepEqual(names, [
      'workqueue_adds_total',
      'workqueue_depth',
      'workqueue_longest_running_processor_seconds',
      'workqueue_queue_duration_seconds',
      'workqueue_retries_total',
      'workqueue_unfinished_work_seconds',
      'workqueue_work_duration_seconds',
    ]);
    assert.equal(await sample(registry, 'workqueue_depth', 'controller'), 0);
    assert.equal(await sample(registry, 'workqueue_adds_total', 'controller'), 0);
    assert.equal(await sample(registry, 'workqueue_retries_total', 'controller'), 0);
    assert.match(
      await registry.getSingleMetricAsString('workqueue_depth'),
      /# TYPE workqueue_depth gauge\nworkqueue_depth\{name="controller"\} 0/,
    );
    assert.match(
      await registry.getSingleMetricAsString('workqueue_queue_duration_seconds'),
      /# TYPE workqueue_queue_duration_seconds histogram/,
    );
  });

  it('counts depth and adds; deduped adds are not counted', async () => {
    const { registry, queue } = setup();
    queue.add('a');
    queue.add('b');
    queue.add('a');
    assert.equal(await sample(registry, 'workqueue_depth', 'test'), 2);
    assert.equal(await sample(registry, 'workqueue_adds_total', 'test'), 2);
    await queue.get();
    assert.equal(await sample(registry, 'workqueue_depth', 'test'), 1);
    assert.equal(await sample(registry, 'workqueue_adds_total', 'test'), 2);
  });

  it('counts an add during processing in depth until it is handed out again', async () => {
    const { registry, queue } = setup();
    queue.add('a');
    await queue.get();
    queue.add('a');
    assert.equal(queue.len(), 0);
    assert.equal(await sample(registry, 'workqueue_depth', 'test'), 1);
    assert.equal(await sample(registry, 'workqueue_adds_total', 'test'), 2);
    queue.done('a');
    assert.equal(await sample(registry, 'workqueue_depth', 'test'), 1);
    await queue.get();
    assert.equal(await sample(registry, 'workqueue_depth', 'test'), 0);
  });

  it('counts retries for addRateLimited (and any addAfter, as client-go does)', async () => {
    const { registry, clock, queue } = setup();
    queue.addRateLimited('a');
    queue.addRateLimited('a');
    queue.addAfter('b', 0);
    assert.equal(await sample(registry, 'workqueue_retries_total', 'test'), 3);
    assert.equal(await sample(registry, 'workqueue_adds_total', 'test'), 1, 'b only; a is still waiting');
    clock.step(10);
    assert.equal(await sample(registry, 'workqueue_adds_total', 'test'), 2);
    assert.equal(await sample(registry, 'workqueue_depth', 'test'), 2);
  });

  it('observes queue duration (add to get) and work duration (get to done) in seconds', async () => {
    const { registry, clock, queue } = setup();
    const queued = 'workqueue_queue_duration_seconds';
    const work = 'workqueue_work_duration_seconds';
    queue.add('a');
    clock.step(250);
    // A re-add while queued keeps the first add time.
    queue.add('a');
    clock.step(250);
    await queue.get();
    assert.equal(await sample(registry, queued, 'test', `${queued}_count`), 1);
    assert.equal(await sample(registry, queued, 'test', `${queued}_sum`), 0.5);
    clock.step(1500);
    queue.done('a');
    assert.equal(await sample(registry, work, 'test', `${work}_count`), 1);
    assert.equal(await sample(registry, work, 'test', `${work}_sum`), 1.5);
    const buckets = (await registry.getSingleMetric(work)!.get()).values.filter(
      (v) => sampleNameOf(v, work) === `${work}_bucket`,
    );
    assert.deepEqual(
      buckets.map((b) => b.labels['le']),
      [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10, '+Inf'],
    );
  });

  it('reports unfinished work and the longest running processor at collection time', async () => {
    const { registry, clock, queue } = setup();
    const unfinished = 'workqueue_unfinished_work_seconds';
    const longest = 'workqueue_longest_running_processor_seconds';
    queue.add('a');
    queue.add('b');
    await queue.get();
    clock.step(1000);
    await queue.get();
    clock.step(2000);
    assert.equal(await sample(registry, unfinished, 'test'), 5);
    assert.equal(await sample(registry, longest, 'test'), 3);
    queue.done('a');
    assert.equal(await sample(registry, unfinished, 'test'), 2);
    assert.equal(await sample(registry, longest, 'test'), 2);
    queue.done('b');
    assert.equal(await sample(registry, unfinished, 'test'), 0);
    assert.equal(await sample(registry, longest, 'test'), 0);
  });

  it('leaves the gauges at 0, not at a stale value, once a drained queue stops reporting', async () => {
    const { registry, clock, queue } = setup();
    const unfinished = 'workqueue_unfinished_work_seconds';
    queue.add('a');
    await queue.get();
    clock.step(4000);
    assert.equal(await sample(registry, unfinished, 'test'), 4);
    const drained = queue.shutDownWithDrain();
    clock.step(1000);
    assert.equal(await sample(registry, unfinished, 'test'), 5, 'still reporting while draining');
    queue.done('a');
    await drained;
    assert.equal(await sample(registry, unfinished, 'test'), 0);
    assert.equal(await sample(registry, 'workqueue_longest_running_processor_seconds', 'test'), 0);
  });

  it('shares one registry between queues (and providers) with different names', async () => {
    const registry = new Registry();
    const clock = new FakeClock();
    const provider = new PrometheusQueueMetricsProvider(registry);
    const one = new WorkQueue({ name: 'one', clock, metrics: provider });
    const two = new WorkQueue({ name: 'two', clock, metrics: new PrometheusQueueMetricsProvider(registry) });
    one.add('a');
    two.add('a');
    two.add('b');
    await one.get();
    clock.step(1000);
    assert.equal(await sample(registry, 'workqueue_adds_total', 'one'), 1);
    assert.equal(await sample(registry, 'workqueue_adds_total', 'two'), 2);
    assert.equal(await sample(registry, 'workqueue_depth', 'one'), 0);
    assert.equal(await sample(registry, 'workqueue_depth', 'two'), 2);
    assert.equal(await sample(registry, 'workqueue_unfinished_work_seconds', 'one'), 1);
    assert.equal(await sample(registry, 'workqueue_unfinished_work_seconds', 'two'), 0);
    assert.equal(registry.getMetricsAsArray().length, 7);
  });

  it('combines live queues that share a name instead of overwriting', async () => {
    const registry = new Registry();
    const clock = new FakeClock();
    const metrics = new PrometheusQueueMetricsProvider(registry);
    const first = new WorkQueue({ name: 'same', clock, metrics });
    const second = new WorkQueue({ name: 'same', clock, metrics });
    first.add('a');
    await first.get();
    clock.step(3000);
    second.add('a');
    await second.get();
    clock.step(1000);
    assert.equal(await sample(registry, 'workqueue_unfinished_work_seconds', 'same'), 5);
    assert.equal(await sample(registry, 'workqueue_longest_running_processor_seconds', 'same'), 4);
    assert.equal(await sample(registry, 'workqueue_adds_total', 'same'), 2);
  });

  it('refuses to reuse a metric of the wrong type', () => {
    const registry = new Registry();
    new Counter({
      name: 'workqueue_depth',
      help: 'not a gauge',
      labelNames: ['name'],
      registers: [registry],
    });
    assert.throws(() => new WorkQueue({ name: 'q', metrics: new PrometheusQueueMetricsProvider(registry) }), {
      message: /workqueue_depth.*not a Gauge/,
    });
  });

  it('records nothing for an unnamed queue', async () => {
    const registry = new Registry();
    const queue = new WorkQueue({ metrics: new PrometheusQueueMetricsProvider(registry) });
    queue.add('a');
    assert.deepEqual(registry.getMetricsAsArray(), []);
  });
});

describe('QueueMetricsProvider', () => {
  it('defaults to the no-op provider and never touches the global registry', async () => {
    const queue = new WorkQueue({ name: 'quiet' });
    queue.add('a');
    await queue.get();
    queue.done('a');
    const explicit = new WorkQueue({ name: 'quiet', metrics: noopQueueMetricsProvider });
    explicit.add('a');
    assert.equal(explicit.len(), 1);
    assert.equal(register.getSingleMetric('workqueue_depth'), undefined);
    assert.equal(register.getSingleMetric('workqueue_adds_total'), undefined);
  });

  it('can be implemented by hand; values are pulled through the read callbacks', async () => {
    const events: string[] = [];
    const reads = new Map<string, () => number>();
    const provider: QueueMetricsProvider = {
      newDepthMetric: (name) => ({
        inc: () => events.push(`${name} depth+`),
        dec: () => events.push(`${name} depth-`),
      }),
      newAddsMetric: (name) => ({ inc: () => events.push(`${name} add`) }),
      newLatencyMetric: (name) => ({ observe: (s) => events.push(`${name} latency ${s}`) }),
      newWorkDurationMetric: (name) => ({ observe: (s) => events.push(`${name} work ${s}`) }),
      newRetriesMetric: (name) => ({ inc: () => events.push(`${name} retry`) }),
      newUnfinishedWorkSecondsMetric: (_name, read) => {
        reads.set('unfinished', read);
        return () => {
          reads.delete('unfinished');
          events.push('unregistered');
        };
      },
      newLongestRunningProcessorSecondsMetric: (_name, read) => {
        reads.set('longest', read);
        return () => reads.delete('longest');
      },
    };
    const clock = new FakeClock();
    const queue = new RateLimitingQueue({ name: 'q', clock, metrics: provider });
    queue.add('a');
    clock.step(100);
    await queue.get();
    clock.step(2000);
    assert.equal(reads.get('unfinished')!(), 2);
    assert.equal(reads.get('longest')!(), 2);
    queue.done('a');
    queue.addAfter('b', 0);
    await queue.get();
    queue.done('b');
    queue.shutDown();
    assert.deepEqual(events, [
      'q add',
      'q depth+',
      'q depth-',
      'q latency 0.1',
      'q work 2',
      'q retry',
      'q add',
      'q depth+',
      'q depth-',
      'q latency 0',
      'q work 0',
      'unregistered',
    ]);
    assert.equal(reads.size, 0);
  });
});
