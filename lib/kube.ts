// Loading the client configuration the way operators do: an explicit kubeconfig when given,
// otherwise the in-cluster ServiceAccount. Never the user's current context by accident.
import { KubeConfig } from '@kubernetes/client-node';
import { UserFacingError } from './errors.ts';

export function loadKubeConfig(kubeconfigPath: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath) {
    try {
      kc.loadFromFile(kubeconfigPath);
    } catch (err) {
      throw new UserFacingError(
        `cannot load kubeconfig ${kubeconfigPath}: ${(err as Error).message}`,
        'check the --kubeconfig path',
      );
    }
    return kc;
  }
  if (!process.env['KUBERNETES_SERVICE_HOST']) {
    throw new UserFacingError(
      'no --kubeconfig given and not running inside a cluster',
      'pass --kubeconfig <path> (or NETMESH_KUBECONFIG), or run netmesh in a Pod',
    );
  }
  kc.loadFromCluster();
  return kc;
}
