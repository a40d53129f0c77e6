// `netmesh` command dispatcher. Each subcommand lives in cli/commands/<name>.ts and is loaded
// only when used, so `netmesh inject` does not pay for the operator's imports.
import { UserFacingError } from '../lib/errors.ts';
import { describeKubeError, formatKubeError } from '../lib/kube-errors.ts';
import { errorContext, KubeCallError } from './cluster.ts';
import { commands } from './registry.ts';

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    'netmesh: Kubernetes Network operator and Envoy sidecar injector',
    '',
    'usage: netmesh <command> [flags]',
    '',
    'commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `netmesh <command> --help` for its flags.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return 0;
  }
  if (name === '--version') return (await import('./commands/version.ts')).run([]);
  const cmd = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!cmd) {
    console.error(`netmesh: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  return (await (await cmd.load()).run(rest)) ?? 0;
}

/** The one line printed for an error from the cluster, saying which certificate on x509 errors. */
async function kubeErrorLine(err: unknown, action?: string): Promise<string | undefined> {
  const info = describeKubeError(err, {
    ...(errorContext.server ? { server: errorContext.server } : {}),
    ...(action ? { action } : {}),
  });
  if (info.category === 'unknown') return undefined;
  if (info.category === 'tls' && errorContext.server && info.reason !== 'ERR_TLS_CERT_ALTNAME_INVALID') {
    // fetch's x509 errors carry no certificate: fetch it to say which one was refused.
    const { probeTls, hostPort } = await import('../lib/tls-probe.ts');
    const { describeCert, summarizeCert } = await import('../lib/tls-verify.ts');
    const presented = await probeTls({ ...hostPort(errorContext.server), timeoutMs: 3_000 }).then(
      (p) => describeCert(summarizeCert(p.chain[0]!)),
      () => undefined,
    );
    if (presented) info.message += ` (server certificate: ${presented})`;
  }
  return formatKubeError(info);
}

// Long-running commands exit explicitly once they have shut down (or failed to start): timers
// and sockets of a half-started component must not keep a dead process up and looking healthy.
const DAEMONS = new Set(['run', 'operator', 'webhook']);
const argv = process.argv.slice(2);
try {
  const code = await main(argv);
  process.exitCode = code;
  if (DAEMONS.has(argv[0] ?? '')) process.exit(code);
} catch (err) {
  if (err instanceof UserFacingError) {
    console.error(`netmesh: ${err.oneLine()}`);
    process.exit(1);
  } else if (err instanceof Error && err.name === 'FlagError') {
    console.error(`netmesh: ${err.message}`);
    process.exit(2);
  }
  const line = await (err instanceof KubeCallError
    ? kubeErrorLine(err.cause, err.action)
    : kubeErrorLine(err)
  ).catch(() => undefined);
  if (line !== undefined) console.error(`netmesh: ${line}`);
  else if (err instanceof KubeCallError) console.error(`netmesh: ${err.message}`);
  // A bug, not a cluster problem: the stack is what finds it.
  else console.error(err);
  process.exit(1);
}
