// Latency at a fixed offered rate: the open-loop Go client (bench/loadgen), which measures every
// request from its intended send time and takes the servers in short alternating slices,
// pooling each one's samples. Parsing is pure; the binary is built once and cached.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ensureGoTool } from '../lib/go-tool.ts';

export interface LoadgenResult {
  rate: number;
  sent: number;
  ok: number;
  errors: number;
  errorSample: string[];
  seconds: number;
  /** [quantile, microseconds], for the quantiles the run resolves (>= 10 samples beyond). */
  quantiles: [number, number][];
  percentilesMicros: { p50: number; p90: number; p99: number; p999: number };
  maxMicros: number;
  meanMicros: number;
  /** How late the client itself sent (timer and scheduling); part of every latency. */
  sendLatenessMicros: { p50: number; p99: number };
  responseBytes: number;
}

/** Per target name, its pooled figures. */
export function parseLoadgenOutput(stdout: string): Record<string, LoadgenResult> {
  const j = JSON.parse(stdout) as {
    rate: number;
    targets: Record<string, Omit<LoadgenResult, 'rate'> & { quantiles: [number, number][] | null }>;
  };
  return Object.fromEntries(
    Object.entries(j.targets).map(([name, p]) => [
      name,
      { rate: j.rate, ...p, quantiles: p.quantiles ?? [] },
    ]),
  );
}

const sourceDir = fileURLToPath(new URL('../loadgen/', import.meta.url));

/** Builds the load generator if needed; returns the binary's path. */
export function loadgenBinary(): string {
  return ensureGoTool(sourceDir, 'loadgen');
}

export function runLoadgen(opts: {
  binary: string;
  targets: { name: string; url: string }[];
  caFile: string;
  bodyFile: string;
  rate: number;
  /** Measured seconds per target. */
  seconds: number;
  /** Length of each target's turn. */
  sliceSeconds: number;
  warmupSeconds: number;
  connections: number;
  pin: string[];
}): Promise<Record<string, LoadgenResult>> {
  const [bin, ...args] = [
    ...opts.pin,
    opts.binary,
    ...opts.targets.map((t) => `-target=${t.name}=${t.url}`),
    `-slice=${opts.sliceSeconds}s`,
    `-ca=${opts.caFile}`,
    `-body=${opts.bodyFile}`,
    `-rate=${opts.rate}`,
    `-duration=${opts.seconds}s`,
    `-warmup=${opts.warmupSeconds}s`,
    `-conns=${opts.connections}`,
  ];
  return new Promise((resolve, reject) => {
    execFile(bin!, args, { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`loadgen failed: ${err.message}\n${stderr}`));
        return;
      }
      try {
        resolve(parseLoadgenOutput(stdout));
      } catch (e) {
        reject(e);
      }
    });
  });
}
