// Per-request options for client-node's generated APIs: an AbortSignal (cancellation and
// timeouts) and, for patches, the Content-Type that selects the patch strategy.
import type { ConfigurationOptions } from '@kubernetes/client-node';
import { Observable } from '@kubernetes/client-node';

export interface RequestOptions {
  /** Aborts the request (and its socket) when it fires. */
  signal?: AbortSignal | undefined;
  /** Content-Type header, e.g. PatchStrategy.ServerSideApply or MergePatch. */
  contentType?: string | undefined;
}

/**
 * The ObjectParam APIs (what makeApiClient returns) expect Observable-style middleware,
 * although the package's exported `Middleware` type is the Promise-style one; a Promise-style
 * middleware fails at run time with "toPromise is not a function". One middleware sets both
 * the signal and the header so that neither overrides the other.
 */
export function requestOptions(opts: RequestOptions): ConfigurationOptions {
  return {
    middleware: [
      {
        pre: (ctx) => {
          if (opts.signal) ctx.setSignal(opts.signal);
          if (opts.contentType) ctx.setHeaderParam('Content-Type', opts.contentType);
          return new Observable(Promise.resolve(ctx));
        },
        post: (ctx) => new Observable(Promise.resolve(ctx)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

/**
 * A signal that fires when `context` does (leadership lost, shutdown) or after `timeoutMs`,
 * whichever comes first: no request may outlive the work it belongs to, nor hang forever.
 */
export function deadline(context: AbortSignal, timeoutMs: number): AbortSignal {
  return AbortSignal.any([context, AbortSignal.timeout(timeoutMs)]);
}

/** HTTP status of an ApiException (or similar), if any. */
export function httpCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown };
  return typeof e?.code === 'number' ? e.code : typeof e?.statusCode === 'number' ? e.statusCode : undefined;
}

/** The `reason` of the apiserver's Status in an ApiException's body (e.g. AlreadyExists). */
export function statusReason(err: unknown): string | undefined {
  return statusOf(err)?.reason;
}

/** The `message` of the apiserver's Status in an ApiException's body. */
export function statusMessage(err: unknown): string | undefined {
  return statusOf(err)?.message;
}

function statusOf(err: unknown): { reason?: string; message?: string } | undefined {
  let body = (err as { body?: unknown })?.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  if (body === null || typeof body !== 'object') return undefined;
  const s = body as { reason?: unknown; message?: unknown };
  return {
    ...(typeof s.reason === 'string' ? { reason: s.reason } : {}),
    ...(typeof s.message === 'string' ? { message: s.message } : {}),
  };
}
