// Kubeconfig documents for the clients netmesh creates itself: the admin of the test control
// plane (client certificate) and the chart's ServiceAccount identity (bearer token).
import { stringify } from 'yaml';

export interface KubeconfigOptions {
  server: string;
  caPem: string;
  user: { clientCertPem: string; clientKeyPem: string } | { token: string };
  clusterName?: string;
  userName?: string;
  namespace?: string;
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

export function buildKubeconfig(opts: KubeconfigOptions): string {
  const clusterName = opts.clusterName ?? 'netmesh';
  const userName = opts.userName ?? 'netmesh-admin';
  const user =
    'token' in opts.user
      ? { token: opts.user.token }
      : {
          'client-certificate-data': b64(opts.user.clientCertPem),
          'client-key-data': b64(opts.user.clientKeyPem),
        };
  const context: Record<string, string> = { cluster: clusterName, user: userName };
  if (opts.namespace) context['namespace'] = opts.namespace;
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name: clusterName, cluster: { server: opts.server, 'certificate-authority-data': b64(opts.caPem) } },
    ],
    users: [{ name: userName, user }],
    contexts: [{ name: clusterName, context }],
    'current-context': clusterName,
    preferences: {},
  });
}
