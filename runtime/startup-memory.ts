/**
 * Gives back the memory a process's start left behind, once, before it reports ready.
 *
 * Why: starting is the busiest allocation a netmesh process does while it holds little (loading
 * the bundle, the informers' first lists, certificates), and V8 grows its young generation to
 * the maximum for it (16 MB of semi-spaces with the image's --max-semi-space-size=8). Nothing
 * shrinks it afterwards: V8's memory reducer only starts after a full collection, which an idle
 * webhook never needs, so the pages stayed resident for the life of the process. One
 * last-resort collection (the one V8 runs on a low-memory notification: full, compacting, and
 * returning its pooled pages to the system) took the idle webhook from 130 to 112 MB, in about
 * 160 ms on this machine. It runs before readiness, so no request waits for it.
 *
 * It needs `gc`, which Node exposes with --expose-gc (the image's ENTRYPOINT gives it). Without
 * it, nothing happens: a local `npx netmesh` keeps the memory, which is harmless.
 */

export interface StartupMemoryRelease {
  ms: number;
  rssBefore: number;
  rssAfter: number;
  heapBefore: number;
  heapAfter: number;
}

/** The options of V8's gc extension (what --expose-gc puts on globalThis.gc). */
type GcFunction = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

function exposedGc(): GcFunction | undefined {
  const gc = (globalThis as { gc?: unknown }).gc;
  return typeof gc === 'function' ? (gc as GcFunction) : undefined;
}

/** Runs the collection when `gc` is exposed; undefined when it is not. */
export function releaseStartupMemory(
  gc: GcFunction | undefined = exposedGc(),
): StartupMemoryRelease | undefined {
  if (gc === undefined) return undefined;
  const before = process.memoryUsage();
  const t0 = performance.now();
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  const ms = performance.now() - t0;
  const after = process.memoryUsage();
  return {
    ms,
    rssBefore: before.rss,
    rssAfter: after.rss,
    heapBefore: before.heapTotal,
    heapAfter: after.heapTotal,
  };
}
