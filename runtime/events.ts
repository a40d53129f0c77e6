// core/v1 Events with client-go's EventRecorder semantics, for every part of netmesh that
// tells users what it did (Networks, the sidecar template, injected workloads):
//   - spam filter: a token bucket per (source, object): a burst of 25, then one per 5 minutes;
//   - aggregation: more than 10 distinct messages for the same (object, type, reason) within
//     10 minutes collapse into one Event "(combined from similar events): <latest message>";
//   - deduplication: an Event identical to one already written (same object, type, reason,
//     message) updates that Event's count and lastTimestamp by PATCH instead of adding one.
// So a flapping object, or a 1,000-replica rollout, produces a bounded number of Events.
// The decisions (EventCorrelator) are pure, with the clock as a parameter; EventRecorder
// writes them in the background and never throws or blocks its caller: Events are best effort.
import { randomBytes } from 'node:crypto';
import type { CoreV1Api, CoreV1Event } from '@kubernetes/client-node';
import { PatchStrategy } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { hasStatus } from '../lib/kube-errors.ts';
import { deadline, requestOptions } from './request.ts';

export type EventType = 'Normal' | 'Warning';

/** The object an Event is about (what `kubectl describe` lists it under). */
export interface EventTarget {
  apiVersion?: string | undefined;
  kind?: string | undefined;
  metadata?: {
    name?: string | undefined;
    namespace?: string | undefined;
    uid?: string | undefined;
    resourceVersion?: string | undefined;
  };
}

export interface EventInput {
  type: EventType;
  reason: string;
  message: string;
  /** What the component did (events.k8s.io `action`), e.g. Inject, Reconcile. */
  action?: string;
}

export interface CorrelatorOptions {
  /** Distinct messages per (object, type, reason) within `aggregateWindowMs` before aggregating. */
  aggregateMaxEvents?: number;
  aggregateWindowMs?: number;
  /** Token bucket per (source, object). */
  spamBurst?: number;
  spamRefillMs?: number;
  /** Entries kept in each cache (least recently used evicted). */
  cacheSize?: number;
}

/** What to do with one recorded event. */
export type Decision =
  | { action: 'drop' }
  | { action: 'create'; key: string; event: ResolvedEvent }
  | { action: 'update'; key: string; name: string; namespace: string; count: number; event: ResolvedEvent };

export interface ResolvedEvent {
  target: EventTarget;
  /** A name chosen by the caller; otherwise `<object>.<time><random>`. */
  name?: string;
  type: EventType;
  reason: string;
  message: string;
  action?: string;
  firstTimestamp: Date;
  lastTimestamp: Date;
}

const MESSAGE_LIMIT = 1024;
export const COMBINED_PREFIX = '(combined from similar events): ';

/** A tiny LRU over Map insertion order. */
class Lru<V> {
  readonly #max: number;
  readonly #map = new Map<string, V>();
  constructor(max: number) {
    this.#max = max;
  }
  get(key: string): V | undefined {
    const v = this.#map.get(key);
    if (v !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }
  set(key: string, v: V): void {
    this.#map.delete(key);
    this.#map.set(key, v);
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value as string);
  }
  get size(): number {
    return this.#map.size;
  }
}

function objectKey(t: EventTarget): string {
  const m = t.metadata ?? {};
  return [t.apiVersion ?? '', t.kind ?? '', m.namespace ?? '', m.name ?? '', m.uid ?? ''].join('\u0000');
}

/**
 * Pure event correlation (client-go's EventCorrelator): each call says whether to drop the
 * event, create a new Event, or update an existing one (count + 1). `written` tells it the
 * name an Event got once created, so later duplicates update that one.
 */
export class EventCorrelator {
  readonly #opts: Required<CorrelatorOptions>;
  readonly #buckets: Lru<{ tokens: number; at: number }>;
  readonly #aggregates: Lru<{ messages: Set<string>; since: number }>;
  readonly #seen: Lru<{ name?: string; namespace: string; count: number; firstTimestamp: Date }>;

  constructor(opts: CorrelatorOptions = {}) {
    this.#opts = {
      aggregateMaxEvents: 10,
      aggregateWindowMs: 10 * 60_000,
      spamBurst: 25,
      spamRefillMs: 5 * 60_000,
      cacheSize: 4096,
      ...opts,
    };
    this.#buckets = new Lru(this.#opts.cacheSize);
    this.#aggregates = new Lru(this.#opts.cacheSize);
    this.#seen = new Lru(this.#opts.cacheSize);
  }

  #refilled(objKey: string, now: number): number {
    const { spamBurst, spamRefillMs } = this.#opts;
    const b = this.#buckets.get(objKey) ?? { tokens: spamBurst, at: now };
    return Math.min(spamBurst, b.tokens + (now - b.at) / spamRefillMs);
  }

  #allow(objKey: string, now: number): boolean {
    const refilled = this.#refilled(objKey, now);
    if (refilled < 1) {
      this.#buckets.set(objKey, { tokens: refilled, at: now });
      return false;
    }
    this.#buckets.set(objKey, { tokens: refilled - 1, at: now });
    return true;
  }

  /**
   * Whether the spam filter would drop an event about `target` at `now` (its bucket has no
   * whole token), without taking a token: lets a busy caller skip building what would be
   * dropped. Only time refills a bucket, so until then the filter drops what this says it will.
   */
  spamFiltered(target: EventTarget, now: Date): boolean {
    return this.#refilled(objectKey(target), now.getTime()) < 1;
  }

  /**
   * `name`, when given, is the Event's own name (see EventRecorder.record): part of its
   * identity, so only the same named Event is counted up.
   */
  correlate(target: EventTarget, input: EventInput, now: Date, name?: string): Decision {
    const t = now.getTime();
    const objKey = objectKey(target);
    if (!this.#allow(objKey, t)) return { action: 'drop' };
    let message = input.message.slice(0, MESSAGE_LIMIT);
    // Aggregation: too many distinct messages for one (object, type, reason) become one Event.
    const aggKey = [objKey, input.type, input.reason].join('\u0001');
    const agg = this.#aggregates.get(aggKey);
    const fresh = !agg || t - agg.since > this.#opts.aggregateWindowMs;
    const record = fresh ? { messages: new Set<string>(), since: t } : agg;
    record.messages.add(message);
    this.#aggregates.set(aggKey, record);
    let dedupKey = [aggKey, message, name ?? ''].join('\u0002');
    if (record.messages.size >= this.#opts.aggregateMaxEvents) {
      message = `${COMBINED_PREFIX}${message}`.slice(0, MESSAGE_LIMIT);
      dedupKey = [aggKey, COMBINED_PREFIX, name ?? ''].join('\u0002');
    }
    const event: ResolvedEvent = {
      target,
      ...(name ? { name } : {}),
      type: input.type,
      reason: input.reason,
      message,
      ...(input.action ? { action: input.action } : {}),
      firstTimestamp: now,
      lastTimestamp: now,
    };
    const seen = this.#seen.get(dedupKey);
    if (seen?.name) {
      seen.count++;
      return {
        action: 'update',
        key: dedupKey,
        name: seen.name,
        namespace: seen.namespace,
        count: seen.count,
        event: { ...event, firstTimestamp: seen.firstTimestamp },
      };
    }
    this.#seen.set(dedupKey, {
      namespace: target.metadata?.namespace ?? 'default',
      count: 1,
      firstTimestamp: now,
    });
    return { action: 'create', key: dedupKey, event };
  }

  /** The Event written for `key` is called `name` (later duplicates update it). */
  written(key: string, name: string): void {
    const s = this.#seen.get(key);
    if (s) s.name = name;
  }

  /** The Event for `key` is gone (e.g. expired by the apiserver's TTL): the next one is new. */
  forget(key: string): void {
    const s = this.#seen.get(key);
    if (s) {
      delete s.name;
      s.count = 1;
    }
  }
}

export interface EventRecorderOptions {
  core: CoreV1Api;
  /** Who reports (source.component / reportingComponent), e.g. netmesh-operator. */
  component: string;
  /** Which replica (reportingInstance), e.g. the Pod name. */
  instance: string;
  log: Logger;
  correlator?: CorrelatorOptions;
  now?: () => Date;
}

/** No Event write may hang a caller's queue. */
const WRITE_TIMEOUT_MS = 10_000;

/**
 * `<object>.<time><random>` as client-go names Events, with the object's name cut so the whole
 * stays within the 253 characters of an object name (a Network's name may itself have 253).
 */
export function eventName(objectName: string, now: Date): string {
  const suffix = `.${now.getTime().toString(16)}${randomBytes(3).toString('hex')}`;
  return `${objectName.slice(0, 253 - suffix.length).replace(/[.-]+$/, '')}${suffix}`;
}

/**
 * Records Events in order, never throwing. `record` may be awaited (the Event written, merged
 * or dropped) or not; `flush` waits for everything recorded so far. A `signal` (leadership lost,
 * shutdown) cancels the write, so an old leader's Event never lands after a new leader's work.
 */
export class EventRecorder {
  readonly #opts: EventRecorderOptions;
  readonly #correlator: EventCorrelator;
  #tail: Promise<void> = Promise.resolve();

  constructor(opts: EventRecorderOptions) {
    this.#opts = opts;
    this.#correlator = new EventCorrelator(opts.correlator);
  }

  /**
   * `name` gives the Event a name of the caller's, derived from what it is about (e.g. a
   * ConfigMap's uid and resourceVersion), so that replicas that all notice the same thing
   * write it once: a create that finds it already there (409) counts as written.
   */
  record(
    target: EventTarget,
    input: EventInput,
    opts: { signal?: AbortSignal; name?: string } = {},
  ): Promise<void> {
    const at = (this.#opts.now ?? (() => new Date()))();
    // Correlate in turn, after the writes before it: a duplicate recorded while the first
    // Event is still being created then updates it instead of creating a second one.
    this.#tail = this.#tail.then(() => {
      if (opts.signal?.aborted) return;
      const decision = this.#correlator.correlate(target, input, at, opts.name);
      if (decision.action === 'drop') {
        this.#opts.log.debug({ reason: input.reason }, 'event dropped by the spam filter');
        return;
      }
      return this.#write(decision, deadline(opts.signal ?? new AbortController().signal, WRITE_TIMEOUT_MS));
    });
    return this.#tail;
  }

  flush(): Promise<void> {
    return this.#tail;
  }

  /** The correlator's spamFiltered, now: an Event about `target` recorded now would be dropped. */
  spamFiltered(target: EventTarget): boolean {
    return this.#correlator.spamFiltered(target, (this.#opts.now ?? (() => new Date()))());
  }

  async #write(d: Exclude<Decision, { action: 'drop' }>, signal: AbortSignal): Promise<void> {
    const e = d.event;
    try {
      if (d.action === 'update' && (await this.#countUp(d, signal))) return;
      const name = e.name ?? eventName(e.target.metadata?.name ?? 'object', e.lastTimestamp);
      const created = await this.#opts.core
        .createNamespacedEvent(
          { namespace: e.target.metadata?.namespace ?? 'default', body: this.#eventBody(e, name) },
          requestOptions({ signal }),
        )
        .catch((err: unknown) => {
          // Another replica wrote the Event of that name: the same fact, recorded once.
          if (e.name && hasStatus(err, 409)) return undefined;
          throw err;
        });
      this.#correlator.written(d.key, created?.metadata?.name ?? name);
    } catch (err) {
      this.#opts.log.warn(
        { err, reason: e.reason, object: e.target.metadata?.name },
        'could not record Event',
      );
    }
  }

  /** count and lastTimestamp of the Event already written; false when it has expired (404). */
  async #countUp(d: Extract<Decision, { action: 'update' }>, signal: AbortSignal): Promise<boolean> {
    const e = d.event;
    try {
      await this.#opts.core.patchNamespacedEvent(
        {
          namespace: d.namespace,
          name: d.name,
          body: { count: d.count, lastTimestamp: e.lastTimestamp, message: e.message },
        },
        requestOptions({ signal, contentType: PatchStrategy.MergePatch }),
      );
      return true;
    } catch (err) {
      if (!hasStatus(err, 404)) throw err;
      // Expired (Events have a TTL): write it anew.
      this.#correlator.forget(d.key);
      return false;
    }
  }

  #eventBody(e: ResolvedEvent, name: string): CoreV1Event {
    const { component, instance } = this.#opts;
    const namespace = e.target.metadata?.namespace ?? 'default';
    return {
      metadata: { name, namespace },
      involvedObject: {
        apiVersion: e.target.apiVersion,
        kind: e.target.kind,
        name: e.target.metadata?.name,
        namespace: e.target.metadata?.namespace,
        uid: e.target.metadata?.uid,
        resourceVersion: e.target.metadata?.resourceVersion,
      },
      type: e.type,
      reason: e.reason,
      message: e.message,
      ...(e.action ? { action: e.action } : {}),
      source: { component },
      reportingComponent: component,
      reportingInstance: instance,
      firstTimestamp: e.firstTimestamp,
      lastTimestamp: e.lastTimestamp,
      count: 1,
    };
  }
}
