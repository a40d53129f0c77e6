export type { Clock, TimerHandle } from './clock.ts';
export { FakeClock, realClock } from './clock.ts';
export type {
  CounterMetric,
  GaugeMetric,
  HistogramMetric,
  QueueMetrics,
  QueueMetricsProvider,
  Unregister,
} from './metrics.ts';
export { newQueueMetrics, noopQueueMetricsProvider, PrometheusQueueMetricsProvider } from './metrics.ts';
export type { DefaultControllerRateLimiterOptions, RateLimiter } from './rate-limiters.ts';
export {
  BucketRateLimiter,
  defaultControllerRateLimiter,
  ItemExponentialFailureRateLimiter,
  ItemFastSlowRateLimiter,
  MaxOfRateLimiter,
  WithMaxWaitRateLimiter,
} from './rate-limiters.ts';
export type { GetResult, QueueOptions, RateLimitingQueueOptions } from './workqueue.ts';
export { DelayingQueue, RateLimitingQueue, WorkQueue } from './workqueue.ts';
