// What a benchmark area (internals, webhook, later operator) gives bench/run.ts: tables to
// print, targets to check, figures for bench/results.json and charts to write. An area measures
// with its own baseline in the same run, so its ratios hold on a shared, noisy machine.
import type { TestCluster } from '../../cluster/target.ts';
import type { Table } from './table.ts';

export interface BenchContext {
  /** Short runs and small N through the same code paths; targets are reported, not enforced. */
  quick: boolean;
  /** Progress for the person watching (stderr); results go in the tables. */
  progress: (line: string) => void;
  /** A scratch directory for this run (removed afterwards). */
  workDir: string;
  /**
   * bin/netmesh.js of the product bundled to JavaScript as the image ships it
   * (deploy/image/bundle.ts), built once per run: the processes measured are what users run,
   * without the memory of Node's run-time type stripping.
   */
  netmeshBin: string;
  /** The Node options the image's ENTRYPOINT gives before bin/netmesh.js (deploy/Dockerfile). */
  netmeshNodeArgs: string[];
  /** When set, areas that can write CPU profiles of what they measure put them here. */
  profileDir?: string;
  /**
   * The apiserver the areas of this run share (cluster/target.ts without a node: the local
   * control plane, started once on first use, or the cluster the environment names). Its
   * `stop()` does nothing: run.ts stops it after the last area. `owned` is true when this run
   * started it (and it goes as a whole afterwards, so an area need not clean up inside it).
   */
  cluster(): Promise<TestCluster>;
}

export interface Target {
  area: string;
  what: string;
  measured: number;
  /** 'min': measured must be at least `limit`; 'max': at most. */
  kind: 'min' | 'max';
  limit: number;
  /** How to show the numbers (e.g. ratio, MB). */
  unit: string;
}

export function targetMet(t: Target): boolean {
  return t.kind === 'min' ? t.measured >= t.limit : t.measured <= t.limit;
}

export interface Chart {
  /** File name under bench/ (quick runs insert `.quick` before the extension). */
  file: string;
  svg: string;
}

export interface AreaResult {
  tables: Table[];
  targets: Target[];
  /** This area's figures in bench/results.json. */
  results: Record<string, unknown>;
  charts: Chart[];
}

export interface BenchArea {
  name: string;
  summary: string;
  /** Measures against an apiserver (ctx.cluster()): skipped, and said so, where none can run. */
  needsCluster?: boolean;
  run(ctx: BenchContext): Promise<AreaResult>;
}
