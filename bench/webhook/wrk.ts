// Maximum throughput: wrk (Debian's) on the client core, keep-alive connections over TLS,
// POSTing one AdmissionReview for a fixed time. The figures come from wrk.lua's done() as one
// JSON line; parsing is pure.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface WrkResult {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  /** connect + read + write + timeout errors, and non-2xx/3xx answers. */
  errors: number;
  errorDetail: Record<string, number>;
  latencyMicros: { p50: number; p99: number; p999: number; max: number; mean: number };
}

interface WrkJson {
  requests: number;
  durationMicros: number;
  bytes: number;
  errors: Record<string, number>;
  latencyMicros: WrkResult['latencyMicros'];
}

export function parseWrkOutput(stdout: string): WrkResult {
  const line = stdout.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (!line) throw new Error(`wrk printed no result line:\n${stdout.slice(-2000)}`);
  const j = JSON.parse(line.slice('WRK_JSON '.length)) as WrkJson;
  const errors = Object.values(j.errors).reduce((a, b) => a + b, 0);
  const seconds = j.durationMicros / 1e6;
  return {
    requests: j.requests,
    seconds,
    requestsPerSecond: seconds > 0 ? j.requests / seconds : 0,
    errors,
    errorDetail: j.errors,
    latencyMicros: j.latencyMicros,
  };
}

const script = fileURLToPath(new URL('./wrk.lua', import.meta.url));

export function runWrk(opts: {
  url: string;
  bodyFile: string;
  connections: number;
  seconds: number;
  pin: string[];
}): Promise<WrkResult> {
  const args = [
    'wrk',
    '-t1',
    `-c${opts.connections}`,
    `-d${opts.seconds}s`,
    // wrk's default 2 s timeout would count a slow answer as an error; the apiserver waits 10 s.
    '--timeout=10s',
    `-s${script}`,
    opts.url,
  ];
  const [bin, ...rest] = [...opts.pin, ...args];
  return new Promise((resolve, reject) => {
    execFile(
      bin!,
      rest,
      { env: { ...process.env, NETMESH_BENCH_BODY: opts.bodyFile }, maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`wrk failed: ${err.message}\n${stderr}`));
          return;
        }
        try {
          resolve(parseWrkOutput(stdout));
        } catch (e) {
          reject(e);
        }
      },
    );
  });
}
