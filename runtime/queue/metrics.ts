import type { Registry } from 'prom-client';
import { Counter, Gauge, Histogram } from 'prom-client';
import { registerOnce } from '../metrics.ts';
import type { Clock } from './clock.ts';

export interface GaugeMetric {
  inc(): void;
  dec(): void;
}

export interface CounterMetric {
  inc(): void;
}

export interface HistogramMetric {
  /** Seconds. */
  observe(value: number): void;
}

/** Stops a provider from polling a callback registered with it. */
export type Unregister = () => void;

/**
 * Creates the metrics of one named queue (client-go's workqueue.MetricsProvider).
 * Unfinished-work and longest-running-processor values are pulled: the provider calls `read`
 * whenever it exports (e.g. on a Prometheus scrape), so the queue needs no update timer.
 */
export interface QueueMetricsProvider {
  newDepthMetric(name: string): GaugeMetric;
  newAddsMetric(name: string): CounterMetric;
  newLatencyMetric(name: string): HistogramMetric;
  newWorkDurationMetric(name: string): HistogramMetric;
  newRetriesMetric(name: string): CounterMetric;
  /** `read` returns the seconds of work in progress not yet observed by work duration. */
  newUnfinishedWorkSecondsMetric(name: string, read: () => number): Unregister;
  /** `read` returns the seconds the longest-running item has been processing. */
  newLongestRunningProcessorSecondsMetric(name: string, read: () => number): Unregister;
}

const noopMetric = { inc() {}, dec() {}, observe() {} };
const noopUnregister: Unregister = () => {};

export const noopQueueMetricsProvider: QueueMetricsProvider = {
  newDepthMetric: () => noopMetric,
  newAddsMetric: () => noopMetric,
  newLatencyMetric: () => noopMetric,
  newWorkDurationMetric: () => noopMetric,
  newRetriesMetric: () => noopMetric,
  newUnfinishedWorkSecondsMetric: () => noopUnregister,
  newLongestRunningProcessorSecondsMetric: () => noopUnregister,
};

/** What a queue reports to; one per queue. */
export interface QueueMetrics<T> {
  add(item: T): void;
  get(item: T): void;
  done(item: T): void;
  retry(): void;
  unfinishedWorkSeconds(): number;
  longestRunningProcessorSeconds(): number;
  /** Idempotent; the queue calls it once nothing can be in progress any more. */
  stop(): void;
}

const noopQueueMetrics: QueueMetrics<never> = {
  add() {},
  get() {},
  done() {},
  retry() {},
  unfinishedWorkSeconds: () => 0,
  longestRunningProcessorSeconds: () => 0,
  stop() {},
};

/** client-go's newQueueMetrics: unnamed queues and the no-op provider record nothing. */
export function newQueueMetrics<T>(
  provider: QueueMetricsProvider,
  name: string,
  clock: Clock,
): QueueMetrics<T> {
  if (name === '' || provider === noopQueueMetricsProvider) return noopQueueMetrics;
  return new DefaultQueueMetrics<T>(provider, name, clock);
}

class DefaultQueueMetrics<T> implements QueueMetrics<T> {
  readonly #clock: Clock;
  readonly #depth: GaugeMetric;
  readonly #adds: CounterMetric;
  readonly #latency: HistogramMetric;
  readonly #workDuration: HistogramMetric;
  readonly #retries: CounterMetric;
  readonly #addTimes = new Map<T, number>();
  readonly #processingStartTimes = new Map<T, number>();
  #unregister: Unregister[];

  constructor(provider: QueueMetricsProvider, name: string, clock: Clock) {
    this.#clock = clock;
    this.#depth = provider.newDepthMetric(name);
    this.#adds = provider.newAddsMetric(name);
    this.#latency = provider.newLatencyMetric(name);
    this.#workDuration = provider.newWorkDurationMetric(name);
    this.#retries = provider.newRetriesMetric(name);
    this.#unregister = [
      provider.newUnfinishedWorkSecondsMetric(name, () => this.unfinishedWorkSeconds()),
      provider.newLongestRunningProcessorSecondsMetric(name, () => this.longestRunningProcessorSeconds()),
    ];
  }

  add(item: T): void {
    this.#adds.inc();
    this.#depth.inc();
    if (!this.#addTimes.has(item)) this.#addTimes.set(item, this.#clock.now());
  }

  get(item: T): void {
    this.#depth.dec();
    const now = this.#clock.now();
    this.#processingStartTimes.set(item, now);
    const addedAt = this.#addTimes.get(item);
    if (addedAt !== undefined) {
      this.#latency.observe((now - addedAt) / 1000);
      this.#addTimes.delete(item);
    }
  }

  done(item: T): void {
    const startedAt = this.#processingStartTimes.get(item);
    if (startedAt !== undefined) {
      this.#workDuration.observe((this.#clock.now() - startedAt) / 1000);
      this.#processingStartTimes.delete(item);
    }
  }

  retry(): void {
    this.#retries.inc();
  }

  unfinishedWorkSeconds(): number {
    const now = this.#clock.now();
    let total = 0;
    for (const startedAt of this.#processingStartTimes.values()) total += (now - startedAt) / 1000;
    return total;
  }

  longestRunningProcessorSeconds(): number {
    const now = this.#clock.now();
    let oldest = 0;
    for (const startedAt of this.#processingStartTimes.values()) {
      const age = (now - startedAt) / 1000;
      if (age > oldest) oldest = age;
    }
    return oldest;
  }

  stop(): void {
    for (const unregister of this.#unregister) unregister();
    this.#unregister = [];
  }
}

// client-go (k8s.io/component-base/metrics/prometheus/workqueue): ExponentialBuckets(10e-9, 10, 10).
const DURATION_BUCKETS = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10];

interface Reader {
  readonly name: string;
  readonly read: () => number;
}

interface PulledGauge {
  readonly gauge: Gauge<'name'>;
  readonly readers: Set<Reader>;
  /** Several live queues may share a name; their values are combined, not overwritten. */
  readonly combine: (values: number[]) => number;
}

// Keyed by the gauge so every provider on a registry shares the readers of the gauge it reuses.
const pulledGauges = new WeakMap<Gauge<'name'>, PulledGauge>();

const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);
const max = (values: number[]): number => values.reduce((a, b) => Math.max(a, b), 0);

function refresh(pulled: PulledGauge, name: string): void {
  const values: number[] = [];
  for (const reader of pulled.readers) if (reader.name === name) values.push(reader.read());
  pulled.gauge.set({ name }, pulled.combine(values));
}

/**
 * Exports queue metrics with client-go's names, labelled by queue name, to an explicit
 * registry. Several providers (or queues) may share a registry: metrics already registered
 * under these names are reused.
 */
export class PrometheusQueueMetricsProvider implements QueueMetricsProvider {
  readonly registry: Registry;

  constructor(registry: Registry) {
    this.registry = registry;
  }

  newDepthMetric(name: string): GaugeMetric {
    const gauge = this.#gauge('workqueue_depth', 'Current depth of workqueue');
    // Creates the series at 0 so it is exported before the first add.
    gauge.inc({ name }, 0);
    return gauge.labels({ name });
  }

  newAddsMetric(name: string): CounterMetric {
    const counter = this.#counter('workqueue_adds_total', 'Total number of adds handled by workqueue');
    counter.inc({ name }, 0);
    return counter.labels({ name });
  }

  newLatencyMetric(name: string): HistogramMetric {
    return this.#histogram(
      'workqueue_queue_duration_seconds',
      'How long in seconds an item stays in workqueue before being requested.',
    ).labels({ name });
  }

  newWorkDurationMetric(name: string): HistogramMetric {
    return this.#histogram(
      'workqueue_work_duration_seconds',
      'How long in seconds processing an item from workqueue takes.',
    ).labels({ name });
  }

  newRetriesMetric(name: string): CounterMetric {
    const counter = this.#counter('workqueue_retries_total', 'Total number of retries handled by workqueue');
    counter.inc({ name }, 0);
    return counter.labels({ name });
  }

  newUnfinishedWorkSecondsMetric(name: string, read: () => number): Unregister {
    return this.#pulled(
      'workqueue_unfinished_work_seconds',
      "How many seconds of work has done that is in progress and hasn't been observed by work_duration. " +
        'Large values indicate stuck threads. One can deduce the number of stuck threads by observing ' +
        'the rate at which this increases.',
      sum,
      name,
      read,
    );
  }

  newLongestRunningProcessorSecondsMetric(name: string, read: () => number): Unregister {
    return this.#pulled(
      'workqueue_longest_running_processor_seconds',
      'How many seconds has the longest running processor for workqueue been running.',
      max,
      name,
      read,
    );
  }

  #gauge(metricName: string, help: string): Gauge<'name'> {
    return registerOnce<Gauge<'name'>>(
      this.registry,
      metricName,
      Gauge,
      () => new Gauge({ name: metricName, help, labelNames: ['name'], registers: [this.registry] }),
    );
  }

  #counter(metricName: string, help: string): Counter<'name'> {
    return registerOnce<Counter<'name'>>(
      this.registry,
      metricName,
      Counter,
      () => new Counter({ name: metricName, help, labelNames: ['name'], registers: [this.registry] }),
    );
  }

  #histogram(metricName: string, help: string): Histogram<'name'> {
    return registerOnce<Histogram<'name'>>(
      this.registry,
      metricName,
      Histogram,
      () =>
        new Histogram({
          name: metricName,
          help,
          labelNames: ['name'],
          buckets: DURATION_BUCKETS,
          registers: [this.registry],
        }),
    );
  }

  #pulled(
    metricName: string,
    help: string,
    combine: (values: number[]) => number,
    name: string,
    read: () => number,
  ): Unregister {
    const gauge = registerOnce<Gauge<'name'>>(this.registry, metricName, Gauge, () => {
      const readers = new Set<Reader>();
      const created: Gauge<'name'> = new Gauge({
        name: metricName,
        help,
        labelNames: ['name'],
        registers: [this.registry],
        collect: () => {
          const names = new Set<string>();
          for (const reader of readers) names.add(reader.name);
          for (const n of names) refresh(pulledGauges.get(created)!, n);
        },
      });
      pulledGauges.set(created, { gauge: created, readers, combine });
      return created;
    });
    const pulled = pulledGauges.get(gauge);
    if (pulled === undefined) {
      throw new Error(`metric ${metricName} is already registered by code that does not feed it`);
    }
    const target = pulled;
    const reader: Reader = { name, read };
    target.readers.add(reader);
    refresh(target, name);
    return () => {
      if (!target.readers.delete(reader)) return;
      // Leaves the value of the queues still reporting under this name (0 if none) instead of
      // freezing the last scraped value.
      refresh(target, name);
    };
  }
}
