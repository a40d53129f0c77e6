// Summaries for measurements taken on a shared, noisy machine: medians over interleaved rounds,
// and ratios against a baseline taken round by round (each pair ran minutes apart at most, so
// the machine's load shifts both). Pure.

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Per-round ratios a[i]/b[i] and their median: robust to drift that affects a round as a whole. */
export function pairedRatio(
  a: readonly number[],
  b: readonly number[],
): { perRound: number[]; median: number } {
  if (a.length !== b.length)
    throw new Error(`paired samples of different lengths (${a.length}, ${b.length})`);
  const perRound = a.map((x, i) => x / b[i]!);
  return { perRound, median: median(perRound) };
}

/** For each quantile present in every run, the median across runs of its value. */
export function medianCurve(runs: readonly (readonly [number, number][])[]): [number, number][] {
  if (runs.length === 0) return [];
  const sets = runs.map((run) => new Set(run.map(([q]) => q)));
  const common = runs[0]!.map(([q]) => q).filter((q) => sets.every((s) => s.has(q)));
  return common
    .sort((a, b) => a - b)
    .map((q) => [q, median(runs.map((run) => run.find(([x]) => x === q)![1]))]);
}
