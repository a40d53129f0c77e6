// The subcommands, loaded on use. Separate from main.ts so that `netmesh completion` can list
// them without running the dispatcher.
import type { FlagSpec } from './flags.ts';

export interface CommandModule {
  run(argv: string[]): Promise<number | undefined>;
  /** For shell completion. */
  flags: Record<string, FlagSpec>;
}

export const commands: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
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
    summary: 'add the sidecar to manifests offline, as the webhook would (-f file|dir|-)',
    load: () => import('./commands/inject.ts'),
  },
  explain: {
    summary: 'whether and why new Pods will be injected (deploy/NAME live, or -f manifests)',
    load: () => import('./commands/explain.ts'),
  },
  check: {
    summary: 'check an installation on a live cluster: CRD, webhook, certificates, leader, RBAC',
    load: () => import('./commands/check.ts'),
  },
  version: {
    summary: 'print the version, commit, Node and Kubernetes client versions',
    load: () => import('./commands/version.ts'),
  },
  completion: {
    summary: 'print a shell completion script (bash or zsh)',
    load: () => import('./commands/completion.ts'),
  },
};
