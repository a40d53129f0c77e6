// `netmesh` command dispatcher. Each subcommand lives in cli/commands/<name>.ts and is loaded
// only when used, so `netmesh inject` does not pay for the operator's imports.
import { UserFacingError } from '../lib/errors.ts';

interface CommandModule {
  run(argv: string[]): Promise<number | undefined>;
}

const commands: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
  run: {
    summary: 'webhook on every replica + Network controller on the elected leader',
    load: () => import('./commands/run.ts'),
  },
  operator: { summary: 'the Network controller only', load: () => import('./commands/operator.ts') },
  webhook: {
    summary: 'the Envoy sidecar injector (mutating admission webhook) only',
    load: () => import('./commands/webhook.ts'),
  },
  inject: {
    summary: 'add the sidecar to a manifest offline, as the webhook would (-f file)',
    load: () => import('./commands/inject.ts'),
  },
  version: {
    summary: 'print the version, commit, Node and Kubernetes client versions',
    load: () => import('./commands/version.ts'),
  },
  explain: {
    summary: 'explain whether and why the webhook would inject a Pod (-f pod.yaml)',
    load: () => import('./commands/explain.ts'),
  },
};

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
  const cmd = commands[name];
  if (!cmd) {
    console.error(`netmesh: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  return (await (await cmd.load()).run(rest)) ?? 0;
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
  console.error(err);
  process.exit(1);
}
