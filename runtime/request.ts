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
