/**
 * What the injector decided, as Events on the workload a person looks at (issue 11): `Injected`
 * and `InjectionSkipped` (both Normal; the skip with its reason) on the Pod's owner: the
 * Deployment behind a ReplicaSet, else the StatefulSet, DaemonSet, Job or ReplicaSet itself, else
 * the Pod when it has no owner. A skip is otherwise only an admission warning, which nobody
 * sees for Pods a controller creates.
 *
 * Through the shared EventRecorder (runtime/events.ts), so the Events are aggregated: every Pod
 * of a rollout gets the same message, and the recorder counts them up on one Event instead of
 * writing one per Pod (its spam filter bounds the writes per workload).
 *
 * Never in the way of the answer: note() only appends to a bounded queue (a full queue drops
 * the newest, counted in the log) and returns; the owner lookup (one GET per ReplicaSet, cached)
 * and the write happen afterwards, one at a time. Dry-run requests record nothing (the
 * configuration says sideEffects: NoneOnDryRun).
 */
import type { AppsV1Api, V1OwnerReference } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { EventRecorder, EventTarget } from '../runtime/events.ts';
import { deadline, requestOptions } from '../runtime/request.ts';
import type { AdmissionRequest, AdmitResult } from './admission.ts';
import { isPlainObject } from './core/template.ts';

/** Skips that are not news: a reinvocation of a Pod we injected, an update. */
const QUIET_REASONS = new Set(['AlreadyInjected', 'NotCreate']);

const FAILED_LOOKUP_CACHE_MS = 30_000;

export type EventPlacement =
  | { target: EventTarget }
  /** The Pod's controller is a ReplicaSet: its own owner (a Deployment) is the target, if any. */
  | { replicaSet: { name: string; namespace: string; uid: string | undefined } };

/**
 * Pure: where the Event for this Pod goes, or undefined when there is nowhere to put it (a Pod
 * with neither an owner nor a name yet).
 */
export function eventPlacement(
  pod: unknown,
  namespace: string,
  requestName?: string,
): EventPlacement | undefined {
  const metadata = isPlainObject(pod) && isPlainObject(pod['metadata']) ? pod['metadata'] : {};
  const owners = Array.isArray(metadata['ownerReferences'])
    ? (metadata['ownerReferences'] as V1OwnerReference[])
    : [];
  const owner = owners.find((o) => isPlainObject(o) && o.controller === true) ?? owners[0];
  if (owner && typeof owner.kind === 'string' && typeof owner.name === 'string' && owner.name !== '') {
    if (owner.kind === 'ReplicaSet' && owner.apiVersion === 'apps/v1') {
      return { replicaSet: { name: owner.name, namespace, uid: owner.uid } };
    }
    return {
      target: {
        apiVersion: owner.apiVersion,
        kind: owner.kind,
        metadata: { name: owner.name, namespace, uid: owner.uid },
      },
    };
  }
  const name =
    typeof metadata['name'] === 'string' && metadata['name'] !== '' ? metadata['name'] : requestName;
  if (!name) return undefined; // generateName and no owner: the Pod has no name to point at yet
  return {
    target: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace,
        ...(typeof metadata['uid'] === 'string' ? { uid: metadata['uid'] } : {}),
      },
    },
  };
}

/** Pure: the Event for one decision, or undefined when it deserves none. */
export function injectionEvent(
  request: Pick<AdmissionRequest, 'dryRun'>,
  result: Pick<AdmitResult, 'outcome' | 'reason' | 'message'>,
  templateHash: string | undefined,
): { reason: 'Injected' | 'InjectionSkipped'; message: string } | undefined {
  if (request.dryRun === true) return undefined;
  if (result.outcome === 'injected') {
    // The same for every Pod of a workload and template, so that the recorder counts them up.
    return {
      reason: 'Injected',
      message: `Envoy sidecar injected into new Pods (template ${templateHash ?? 'unknown'}; ${result.message})`,
    };
  }
  if ((result.outcome === 'skipped' || result.outcome === 'error') && !QUIET_REASONS.has(result.reason)) {
    return {
      reason: 'InjectionSkipped',
      message: `sidecar not injected (${result.reason}): ${result.message}`,
    };
  }
  return undefined;
}

/** The owners cache's key for a ReplicaSet. */
function ownerKey(rs: { namespace: string; name: string }): string {
  return `${rs.namespace}/${rs.name}`;
}

export interface InjectionEventsOptions {
  recorder: Pick<EventRecorder, 'record' | 'flush' | 'spamFiltered'>;
  /** Reads ReplicaSets to find their Deployment. */
  apps: Pick<AppsV1Api, 'readNamespacedReplicaSet'>;
  log: Logger;
  /** Decisions waiting to be written; beyond this the newest are dropped (default 1000). */
  maxPending?: number;
  /** How long a ReplicaSet's owner is remembered (default 10 min). */
  ownerCacheMs?: number;
  ownerCacheSize?: number;
  /** Deadline of the ReplicaSet GET (default 5 s). */
  requestTimeoutMs?: number;
  now?: () => number;
}

interface Pending {
  placement: EventPlacement;
  reason: 'Injected' | 'InjectionSkipped';
  message: string;
}

export class InjectionEvents {
  readonly #opts: Required<Omit<InjectionEventsOptions, 'now'>> & { now: () => number };
  readonly #pending: Pending[] = [];
  /** `namespace/name` of a ReplicaSet -> the Event target (its Deployment, or itself). */
  readonly #owners = new Map<string, { target: EventTarget; at: number }>();
  readonly #stop = new AbortController();
  #draining: Promise<void> | undefined;
  #dropped = 0;
  #stopped = false;

  constructor(opts: InjectionEventsOptions) {
    this.#opts = {
      maxPending: 1000,
      ownerCacheMs: 10 * 60_000,
      ownerCacheSize: 1000,
      requestTimeoutMs: 5_000,
      now: Date.now,
      ...opts,
    };
  }

  /** Decisions dropped because the queue was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Queues the Event for one admission decision; O(1), never throws, never waits. */
  note(request: AdmissionRequest, result: AdmitResult, templateHash: string | undefined): void {
    if (this.#stopped) return;
    try {
      const event = injectionEvent(request, result, templateHash);
      if (!event) return;
      const placement = eventPlacement(request.object, result.namespace, request.name);
      if (!placement) return;
      // Past its burst, a workload's Events are dropped by the recorder's spam filter (one per
      // 5 minutes). Where the target is known without I/O, drop them here: queued, each would
      // still cost the admission path several promise turns and, under load, memory (RSS under
      // wrk 298 MB queued against 201 MB dropped here, in one A/B run).
      const known = this.#knownTarget(placement);
      if (known !== undefined && this.#opts.recorder.spamFiltered(known)) return;
      if (this.#pending.length >= this.#opts.maxPending) {
        if (this.#dropped++ === 0) this.#opts.log.warn('injection Events queue full; dropping Events');
        return;
      }
      this.#pending.push({ placement, ...event });
      this.#draining ??= this.#drain().finally(() => {
        this.#draining = undefined;
      });
    } catch (err) {
      this.#opts.log.warn({ err }, 'could not queue an injection Event');
    }
  }

  /** Resolves once everything queued so far is written (or given up on). */
  async flush(): Promise<void> {
    while (this.#draining) await this.#draining;
    await this.#opts.recorder.flush();
  }

  /** Stops taking Events, writes what is queued within `graceMs`, cancels the rest. */
  async stop(graceMs = 2_000): Promise<void> {
    this.#stopped = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.flush(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      }),
    ]);
    clearTimeout(timer);
    this.#stop.abort(new Error('injection events stopping'));
    this.#pending.length = 0;
  }

  async #drain(): Promise<void> {
    // Off the admission path: start after the answer has been written.
    await new Promise((r) => setImmediate(r));
    for (let item = this.#pending.shift(); item; item = this.#pending.shift()) {
      if (this.#stop.signal.aborted) return;
      const target = await this.#target(item.placement);
      await this.#opts.recorder.record(
        target,
        { type: 'Normal', reason: item.reason, message: item.message, action: 'Inject' },
        { signal: this.#stop.signal },
      );
      if (this.#dropped > 0) {
        this.#opts.log.warn({ dropped: this.#dropped }, 'injection Events were dropped (queue full)');
        this.#dropped = 0;
      }
    }
  }

  /** The Event's target when no request is needed to find it: the owner, or a cached lookup. */
  #knownTarget(placement: EventPlacement): EventTarget | undefined {
    if ('target' in placement) return placement.target;
    const hit = this.#owners.get(ownerKey(placement.replicaSet));
    return hit && this.#opts.now() - hit.at < this.#opts.ownerCacheMs ? hit.target : undefined;
  }

  /** The Deployment owning a ReplicaSet (one cached GET per ReplicaSet), else the ReplicaSet. */
  async #target(placement: EventPlacement): Promise<EventTarget> {
    const known = this.#knownTarget(placement);
    if (known !== undefined) return known;
    // (#knownTarget answers every placement with a target of its own; this narrows the type.)
    if (!('replicaSet' in placement)) return placement.target;
    const rs = placement.replicaSet;
    const key = ownerKey(rs);
    const now = this.#opts.now();
    const itself: EventTarget = {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: rs.name, namespace: rs.namespace, uid: rs.uid },
    };
    let target = itself;
    let at = now;
    try {
      const live = await this.#opts.apps.readNamespacedReplicaSet(
        { name: rs.name, namespace: rs.namespace },
        requestOptions({ signal: deadline(this.#stop.signal, this.#opts.requestTimeoutMs) }),
      );
      const owner = live.metadata?.ownerReferences?.find((o) => o.controller === true);
      if (owner?.kind === 'Deployment' && owner.apiVersion === 'apps/v1') {
        target = {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: owner.name, namespace: rs.namespace, uid: owner.uid },
        };
      }
    } catch (err) {
      // No permission or gone: the ReplicaSet itself still says what happened.
      this.#opts.log.debug({ err, replicaSet: key }, 'could not read the ReplicaSet; Event on it');
      // Remembered for a short while only: a transient failure must not pin the wrong target.
      at = now - this.#opts.ownerCacheMs + FAILED_LOOKUP_CACHE_MS;
    }
    this.#owners.delete(key);
    this.#owners.set(key, { target, at });
    if (this.#owners.size > this.#opts.ownerCacheSize) {
      this.#owners.delete(this.#owners.keys().next().value as string);
    }
    return target;
  }
}
