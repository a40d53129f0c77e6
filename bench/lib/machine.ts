// What the figures were measured on, for bench/results.json and the README.
import { execFileSync } from 'node:child_process';
import { availableParallelism, cpus, release, totalmem } from 'node:os';

function firstLine(cmd: string, args: string[]): string | undefined {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return out.split('\n')[0]?.trim() || undefined;
  } catch (err) {
    // wrk --version prints its banner and exits 1.
    const stdout = (err as { stdout?: string }).stdout;
    return stdout?.split('\n')[0]?.trim() || undefined;
  }
}

export interface Machine {
  cpu: string;
  cpus: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  wrk: string | undefined;
  go: string | undefined;
}

export function describeMachine(): Machine {
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cpus: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: `Linux ${release()}`,
    node: process.version,
    wrk: firstLine('wrk', ['--version'])?.replace(/\s+Copyright.*$/, ''),
    go: firstLine(process.env['GO'] ?? 'go', ['env', 'GOVERSION']),
  };
}

export function machineLine(m: Machine): string {
  return `${m.cpus} × ${m.cpu}, ${m.memoryGiB} GiB, ${m.kernel}, Node ${m.node}${m.wrk ? `, ${m.wrk}` : ''}${m.go ? `, ${m.go}` : ''}`;
}
