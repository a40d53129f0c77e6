// The cluster a command talks to, resolved once per process, and remembered so that an error
// escaping a command can be printed with the server it went to (fetch errors do not say).
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

/**
 * A failed Kubernetes call and what was being done. main.ts prints it as one line (what, where,
 * the hint) after looking at the certificate when it was an x509 failure.
 */
export class KubeCallError extends Error {
  override name = 'KubeCallError';
  readonly action: string;
  constructor(action: string, cause: unknown) {
    super(describeKubeError(cause, { action }).message, { cause });
    this.action = action;
  }
}

export function kubeFailure(err: unknown, action: string): KubeCallError {
  return new KubeCallError(action, err);
}
