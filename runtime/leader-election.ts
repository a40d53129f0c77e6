/**
 * Leader election on a coordination.k8s.io/v1 Lease, with client-go's tools/leaderelection
 * semantics (the decisions live in lease-decision.ts):
 *
 * - Candidates read the Lease every retryPeriod (jittered by up to 1.2x, as client-go's
 *   JitterUntil), create it when absent (409: somebody else won the race), and take it over
 *   with a replace carrying the resourceVersion they read, so that of several concurrent
 *   takeovers exactly one succeeds and the others get 409. Takeover needs the lease released
 *   or expired, where expiry is measured on the local clock from when we observed the record
 *   last change (never from the holder's renewTime).
 * - The leader renews every retryPeriod, first optimistically with its cached resourceVersion,
 *   then by read + replace. If no renewal succeeded for renewDeadline (counted from the start
 *   of the last successful attempt, and enforced by a timer so a hung request cannot delay it)
 *   it stops leading: the signal given to onStartedLeading is aborted and onStoppedLeading is
 *   called. It then keeps campaigning like any candidate.
 * - Unlike client-go, a leader that reads the Lease and finds another holder in it (a forced
 *   takeover, or renewals that never landed) stops leading at once instead of at the renew
 *   deadline: its work must stop writing (the signal) as soon as it can know it lost.
 * - release() stops, then writes an empty holder with leaseDurationSeconds 1 so a standby
 *   takes over at its next attempt. stop() stops without releasing: the lease then expires
 *   leaseDuration after the others last saw it renewed.
 *
 * MicroTime: client-node 2.0.1 serialises a V1MicroTime with six fractional digits, which the
 * apiserver requires, but a plain Date with three (rejected with 400); and it hands the times
 * of a read Lease back as the raw strings, whatever the typings say. Records here keep times
 * as those strings and send them back unchanged.
 */
import type { ConfigurationOptions, KubeConfig, V1Lease, V1MicroTime } from '@kubernetes/client-node';
import { CoordinationV1Api, Observable } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { hasStatus } from '../lib/kube-errors.ts';
import { acquireRetryDelayMs } from './backoff.ts';
import {
  canRenewOptimistically,
  decideLeaseAction,
  type LeaseDecision,
  type LeaseRecord,
  type ObservedLease,
  observeLease,
  recordFromSpec,
  releasedRecord,
  validateTimings,
} from './lease-decision.ts';
import { type Clock, realClock, type TimerHandle } from './queue/index.ts';

/** Why onStoppedLeading was called. */
export interface StoppedLeadingInfo {
  /** lost: renewDeadline passed without a renewal; released: release(); stopped: stop(). */
  reason: 'lost' | 'released' | 'stopped';
}

/** The three Lease calls the elector needs. A seam for unit tests. */
export interface LeaseClient {
  /** undefined when the Lease does not exist. */
  read(signal: AbortSignal): Promise<V1Lease | undefined>;
  create(body: V1Lease, signal: AbortSignal): Promise<V1Lease>;
  /** Replace; must fail with code 409 when body.metadata.resourceVersion is stale. */
  replace(body: V1Lease, signal: AbortSignal): Promise<V1Lease>;
}

export interface LeaderElectorOptions {
  kc: KubeConfig;
  namespace: string;
  name: string;
  /** Unique per candidate (pod name). */
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /**
   * Called when this candidate becomes leader. Stop leading work when `signal` aborts. If it
   * returns a promise, release() waits (up to renewDeadline) for it to settle before handing
   * the lease over.
   */
  onStartedLeading(signal: AbortSignal): unknown;
  /** Called once after each leadership period ends (never when we did not lead). */
  onStoppedLeading(info: StoppedLeadingInfo): void;
  /** Called whenever the observed holder changes to a non-empty identity (ours included). */
  onNewLeader?(identity: string): void;
  log: Logger;
  clock?: Clock;
  random?: () => number;
  /** Per-request timeout. Default: two retry periods, at most half of renewDeadline, at least 1 s. */
  requestTimeoutMs?: number;
  client?: LeaseClient;
}

interface Leading {
  controller: AbortController;
  task: Promise<void>;
  deadline: TimerHandle | undefined;
}

export function isConflict(err: unknown): boolean {
  return hasStatus(err, 409);
}

export function isNotFound(err: unknown): boolean {
  return hasStatus(err, 404);
}

/**
 * Per-request options that attach an AbortSignal. The ObjectParam API (what makeApiClient
 * returns) expects Observable-style middleware, although the package's exported `Middleware`
 * type is the Promise-style one; a Promise-style middleware fails at run time with
 * "toPromise is not a function".
 */
export function withSignal(signal: AbortSignal): ConfigurationOptions {
  return {
    middleware: [
      {
        pre: (ctx) => {
          ctx.setSignal(signal);
          return new Observable(Promise.resolve(ctx));
        },
        post: (ctx) => new Observable(Promise.resolve(ctx)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

export function coordinationLeaseClient(kc: KubeConfig, namespace: string, name: string): LeaseClient {
  const api = kc.makeApiClient(CoordinationV1Api);
  return {
    read: (signal) =>
      api.readNamespacedLease({ namespace, name }, withSignal(signal)).catch((err: unknown) => {
        if (isNotFound(err)) return undefined;
        throw err;
      }),
    create: (body, signal) => api.createNamespacedLease({ namespace, body }, withSignal(signal)),
    replace: (body, signal) => api.replaceNamespacedLease({ namespace, name, body }, withSignal(signal)),
  };
}

export class LeaderElector {
  readonly identity: string;
  readonly #opts: LeaderElectorOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #client: LeaseClient;
  readonly #leaseDurationMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;
  readonly #requestTimeoutMs: number;
  #running = false;
  #stopController = new AbortController();
  #loopTimer: TimerHandle | undefined;
  #inflight: Promise<void> | undefined;
  #observed: ObservedLease | undefined;
  /** The Lease object last read or written: its metadata (resourceVersion) goes into updates. */
  #lease: V1Lease | undefined;
  #leading: Leading | undefined;
  #reportedLeader: string | undefined;
  #done: Promise<void> | undefined;
  #resolveDone: (() => void) | undefined;

  constructor(opts: LeaderElectorOptions) {
    if (!opts.identity) throw new RangeError('leader election identity must not be empty');
    this.#opts = opts;
    this.identity = opts.identity;
    this.#leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.#renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.#retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    validateTimings({
      leaseDurationMs: this.#leaseDurationMs,
      renewDeadlineMs: this.#renewDeadlineMs,
      retryPeriodMs: this.#retryPeriodMs,
    });
    // Short enough that a request stuck on a dead connection (a stalled keep-alive socket in
    // the shared pool, which only its timeout frees) costs one retry period or two, not half the
    // renew deadline: the next try gets another connection well before the deadline.
    this.#requestTimeoutMs =
      opts.requestTimeoutMs ??
      Math.max(1_000, Math.min(Math.floor(this.#renewDeadlineMs / 2), 2 * this.#retryPeriodMs));
    this.#log = opts.log.child({ lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
    this.#clock = opts.clock ?? realClock;
    this.#random = opts.random ?? Math.random;
    this.#client = opts.client ?? coordinationLeaseClient(opts.kc, opts.namespace, opts.name);
  }

  /** True while leading: between onStartedLeading and the abort of its signal. */
  isLeader(): boolean {
    return this.#leading !== undefined;
  }

  /** The holder in the Lease as last observed; undefined when unknown or released. */
  leader(): string | undefined {
    return this.#observed?.record.holderIdentity || undefined;
  }

  /** Starts campaigning. Resolves once stop() or release() has completed. */
  run(): Promise<void> {
    if (this.#running && this.#done) return this.#done;
    this.#running = true;
    this.#stopController = new AbortController();
    this.#done = new Promise<void>((resolve) => {
      this.#resolveDone = resolve;
    });
    this.#schedule(0);
    return this.#done;
  }

  /** run() without waiting. */
  start(): void {
    void this.run();
  }

  /** Stops campaigning and renewing, and hands the lease over if we hold it. */
  release(): Promise<void> {
    return this.#shutdown(true);
  }

  /**
   * Stops campaigning and renewing without releasing: the lease expires leaseDuration after
   * the other candidates last saw it renewed (what a crashed leader looks like).
   */
  stop(): Promise<void> {
    return this.#shutdown(false);
  }

  #schedule(ms: number): void {
    if (this.#loopTimer) this.#clock.clearTimeout(this.#loopTimer);
    this.#loopTimer = this.#clock.setTimeout(() => {
      this.#loopTimer = undefined;
      this.#tick();
    }, ms);
  }

  #tick(): void {
    if (!this.#running) return;
    const attemptStart = this.#clock.now();
    this.#inflight = this.#tryAcquireOrRenew()
      .catch((err: unknown) => {
        this.#log.error({ err }, 'leader election attempt failed unexpectedly');
        return false;
      })
      .then((ok) => {
        this.#inflight = undefined;
        this.#afterAttempt(ok, attemptStart);
      });
  }

  #afterAttempt(ok: boolean, attemptStart: number): void {
    if (!this.#running) return;
    if (ok) {
      if (!this.#leading) this.#becomeLeader();
      this.#armRenewDeadline(attemptStart);
      this.#schedule(this.#retryPeriodMs);
    } else {
      this.#schedule(
        this.#leading ? this.#retryPeriodMs : acquireRetryDelayMs(this.#retryPeriodMs, this.#random),
      );
    }
  }

  #signal(): AbortSignal {
    return AbortSignal.any([this.#stopController.signal, AbortSignal.timeout(this.#requestTimeoutMs)]);
  }

  #decide(observed: ObservedLease | undefined): LeaseDecision {
    return decideLeaseAction(observed, this.#clock.now(), this.identity, {
      leaseDurationMs: this.#leaseDurationMs,
      wallNowMs: Date.now(),
    });
  }

  /** One round, as client-go's tryAcquireOrRenew: true when we hold the lease afterwards. */
  async #tryAcquireOrRenew(): Promise<boolean> {
    if (await this.#renewOptimistically()) return true;
    let lease: V1Lease | undefined;
    try {
      lease = await this.#client.read(this.#signal());
    } catch (err) {
      this.#log.warn({ err }, 'cannot read the lease');
      return false;
    }
    if (!lease) return this.#create();
    this.#observe(lease);
    const d = this.#decide(this.#observed);
    if (d.action === 'wait') this.#noticeHolder(d.holder);
    if (d.action !== 'update') return false;
    try {
      this.#observe(await this.#client.replace(this.#body(lease, d.record), this.#signal()));
      if (d.takeover) {
        this.#log.info(
          { previousHolder: recordFromSpec(lease.spec).holderIdentity || undefined },
          'acquired the lease',
        );
      }
      return true;
    } catch (err) {
      if (isConflict(err)) this.#log.debug('lease changed while updating it; will retry');
      else this.#log.warn({ err }, 'cannot update the lease');
      return false;
    }
  }

  /**
   * Fast path: the leader updates its cached lease directly; a conflict means somebody wrote
   * the lease since, and the slow path finds out who.
   */
  async #renewOptimistically(): Promise<boolean> {
    if (!this.#leading || !this.#lease) return false;
    if (!canRenewOptimistically(this.#observed, this.#clock.now(), this.identity)) return false;
    const d = this.#decide(this.#observed);
    if (d.action !== 'update') return false;
    try {
      this.#observe(await this.#client.replace(this.#body(this.#lease, d.record), this.#signal()));
      return true;
    } catch (err) {
      this.#log.debug({ err }, 'optimistic lease renewal failed; re-reading the lease');
      return false;
    }
  }

  async #create(): Promise<boolean> {
    const d = this.#decide(undefined);
    if (d.action !== 'create') return false;
    try {
      this.#observe(await this.#client.create(this.#body(undefined, d.record), this.#signal()));
      this.#log.info('created the lease');
      return true;
    } catch (err) {
      if (isConflict(err)) this.#log.debug('another candidate created the lease first');
      else this.#log.warn({ err }, 'cannot create the lease');
      return false;
    }
  }

  #noticeHolder(holder: string): void {
    this.#log.trace({ holder }, 'lease held by another candidate');
    if (!this.#leading) return;
    // Fencing: the lease names someone else (taken over, or our renewals did not land). We
    // know now that we lost; leading on until the renew deadline would let our work write
    // beside the new leader's for up to renewDeadline.
    this.#log.warn({ holder }, 'the lease is held by another candidate; stopping leading now');
    this.#stepDown('lost');
  }

  #observe(lease: V1Lease): void {
    this.#lease = lease;
    this.#observed = observeLease(this.#observed, recordFromSpec(lease.spec), this.#clock.now());
    const holder = this.#observed.record.holderIdentity;
    if (holder && holder !== this.#reportedLeader) {
      this.#reportedLeader = holder;
      this.#log.info({ leader: holder }, 'new leader observed');
      try {
        this.#opts.onNewLeader?.(holder);
      } catch (err) {
        this.#log.error({ err }, 'onNewLeader failed');
      }
    }
  }

  #body(base: V1Lease | undefined, record: LeaseRecord): V1Lease {
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      // Keep the whole metadata read: resourceVersion makes the replace conditional, and a PUT
      // without labels/annotations/ownerReferences would drop them.
      metadata: base?.metadata
        ? { ...base.metadata }
        : { name: this.#opts.name, namespace: this.#opts.namespace },
      spec: {
        ...base?.spec,
        holderIdentity: record.holderIdentity,
        leaseDurationSeconds: record.leaseDurationSeconds,
        leaseTransitions: record.leaseTransitions,
        // Already in MicroTime wire format; client-node passes strings through as they are.
        acquireTime: record.acquireTime as unknown as V1MicroTime,
        renewTime: record.renewTime as unknown as V1MicroTime,
      },
    };
  }

  #becomeLeader(): void {
    const controller = new AbortController();
    const leading: Leading = { controller, task: Promise.resolve(), deadline: undefined };
    this.#leading = leading;
    this.#log.info('started leading');
    try {
      leading.task = Promise.resolve(this.#opts.onStartedLeading(controller.signal)).then(
        () => {},
        (err: unknown) => {
          this.#log.error({ err }, 'onStartedLeading failed');
        },
      );
    } catch (err) {
      this.#log.error({ err }, 'onStartedLeading failed');
    }
  }

  #armRenewDeadline(attemptStart: number): void {
    const leading = this.#leading;
    if (!leading) return;
    if (leading.deadline) this.#clock.clearTimeout(leading.deadline);
    const due = Math.max(0, attemptStart + this.#renewDeadlineMs - this.#clock.now());
    leading.deadline = this.#clock.setTimeout(() => {
      leading.deadline = undefined;
      if (this.#leading !== leading) return;
      this.#log.error(
        { renewDeadlineMs: this.#renewDeadlineMs },
        'failed to renew the lease in time; stopping leading',
      );
      this.#stepDown('lost');
    }, due);
  }

  #stepDown(reason: StoppedLeadingInfo['reason']): void {
    const leading = this.#leading;
    if (!leading) return;
    this.#leading = undefined;
    if (leading.deadline) this.#clock.clearTimeout(leading.deadline);
    leading.controller.abort(new Error(`leadership ended: ${reason}`));
    this.#log.info({ reason }, 'stopped leading');
    try {
      this.#opts.onStoppedLeading({ reason });
    } catch (err) {
      this.#log.error({ err }, 'onStoppedLeading failed');
    }
  }

  async #shutdown(release: boolean): Promise<void> {
    const wasRunning = this.#running;
    this.#running = false;
    if (this.#loopTimer) {
      this.#clock.clearTimeout(this.#loopTimer);
      this.#loopTimer = undefined;
    }
    // stop() cuts the request in flight short; release() lets it finish so that the
    // resourceVersion it releases with is current.
    if (!release) this.#stopController.abort(new Error('leader elector stopped'));
    await this.#inflight;
    const task = this.#leading?.task;
    this.#stepDown(release ? 'released' : 'stopped');
    if (release) {
      if (task) await this.#settleWithin(task, this.#renewDeadlineMs);
      await this.#releaseLease();
    }
    if (wasRunning) this.#resolveDone?.();
  }

  async #settleWithin(task: Promise<void>, ms: number): Promise<void> {
    let timer: TimerHandle | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = this.#clock.setTimeout(() => resolve('timeout'), ms);
    });
    const r = await Promise.race([task.then(() => 'done' as const), timeout]);
    if (timer) this.#clock.clearTimeout(timer);
    if (r === 'timeout')
      this.#log.warn({ ms }, 'leading work did not stop in time; releasing the lease anyway');
  }

  async #releaseLease(): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const lease = this.#lease;
      const observed = this.#observed;
      if (!lease || observed?.record.holderIdentity !== this.identity) return;
      try {
        const body = this.#body(lease, releasedRecord(observed.record, Date.now()));
        this.#observe(await this.#client.replace(body, AbortSignal.timeout(this.#requestTimeoutMs)));
        this.#log.info('released the lease');
        return;
      } catch (err) {
        if (!isConflict(err) || attempt > 0) {
          this.#log.warn({ err }, 'cannot release the lease');
          return;
        }
      }
      // Conflict: re-read; release only if it is still ours.
      try {
        const current = await this.#client.read(AbortSignal.timeout(this.#requestTimeoutMs));
        if (!current) return;
        this.#observe(current);
      } catch (err) {
        this.#log.warn({ err }, 'cannot release the lease');
        return;
      }
    }
  }
}
