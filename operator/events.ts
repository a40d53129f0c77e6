// core/v1 Events for Networks, so `kubectl describe network` tells the story of each transition.
// An Event that cannot be written is logged and dropped: Events are best effort and must never
// fail or block a reconcile.
import { randomBytes } from 'node:crypto';
import type { CoreV1Api, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { requestOptions } from '../runtime/request.ts';

export interface EventRecorderOptions {
  core: CoreV1Api;
  component: string;
  instance: string;
  log: Logger;
}

export class EventRecorder {
  readonly #opts: EventRecorderOptions;
  constructor(opts: EventRecorderOptions) {
    this.#opts = opts;
  }

  /** `signal` cancels the request (leadership lost, shutdown, timeout). */
  async record(
    obj: KubernetesObject,
    event: { type: 'Normal' | 'Warning'; reason: string; message: string },
    signal?: AbortSignal,
  ): Promise<void> {
    const namespace = obj.metadata?.namespace ?? 'default';
    const now = new Date();
    try {
      await this.#opts.core.createNamespacedEvent(
        {
          namespace,
          body: {
            metadata: {
              name: eventName(obj.metadata?.name ?? 'object', now),
              namespace,
            },
            involvedObject: {
              apiVersion: obj.apiVersion,
              kind: obj.kind,
              name: obj.metadata?.name,
              namespace,
              uid: obj.metadata?.uid,
              resourceVersion: obj.metadata?.resourceVersion,
            },
            type: event.type,
            reason: event.reason,
            message: event.message.slice(0, 1024),
            source: { component: this.#opts.component },
            reportingComponent: this.#opts.component,
            reportingInstance: this.#opts.instance,
            firstTimestamp: now,
            lastTimestamp: now,
            count: 1,
          },
        },
        requestOptions({ signal }),
      );
    } catch (err) {
      this.#opts.log.warn({ err: (err as Error).message, reason: event.reason }, 'could not record Event');
    }
  }
}

/**
 * `<object>.<time><random>` as client-go names Events, with the object's name cut so the whole
 * stays within the 253 characters of an object name (a Network's name may itself have 253).
 */
export function eventName(objectName: string, now: Date): string {
  const suffix = `.${now.getTime().toString(16)}${randomBytes(3).toString('hex')}`;
  return `${objectName.slice(0, 253 - suffix.length).replace(/[.-]+$/, '')}${suffix}`;
}
