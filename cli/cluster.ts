// The cluster a command talks to, resolved once per process, and remembered so that an error
// escaping a command can be printed with the server it went to (fetch errors do not say).
import { UserFacingError } from '../lib/errors.ts';
import { describeSource, type ResolvedKubeConfig, resolveKubeConfig } from '../lib/kube.ts';
import { describeKubeError } from '../lib/kube-errors.ts';

export const errorContext: { server?: string } = {};

export function connect(values: {
  kubeconfig?: string | undefined;
  context?: string | undefined;
}): ResolvedKubeConfig {
  const resolved = resolveKubeConfig({ kubeconfig: values.kubeconfig, context: values.context });
  errorContext.server = resolved.server;
  return resolved;
}

/** Fields for the daemons' first log line: which configuration, context and server. */
export function clusterLogFields(r: ResolvedKubeConfig): Record<string, string> {
  return {
    kubeconfig: describeSource(r.source),
    ...(r.context ? { context: r.context } : {}),
    server: r.server,
  };
}

/** A failed Kubernetes call as the one line the CLI prints: what, where, and the hint. */
export function kubeFailure(err: unknown, action: string): UserFacingError {
  const info = describeKubeError(err, {
    action,
    ...(errorContext.server ? { server: errorContext.server } : {}),
  });
  return new UserFacingError(info.message, info.hint);
}
