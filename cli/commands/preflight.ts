// Start-up checks of the daemons that turn a configuration that can never work into one clear
// error and a non-zero exit, instead of a process that retries forever with a warning a try.
import { setTimeout as sleep } from 'node:timers/promises';
import { CoordinationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { UserFacingError } from '../../lib/errors.ts';
import { describeKubeError, hasStatus } from '../../lib/kube-errors.ts';

export interface LeasePreflightOptions {
  /** How long a missing Lease that we may not create is waited for (Helm creates it last). */
  waitMs?: number;
  pollMs?: number;
}

/**
 * The leader-election Lease must be readable, and either exist or be creatable. Decided with
 * the apiserver's own answers, so the check needs no permission the elector does not need:
 *   GET the Lease: 200 fine; 403 can never work (wrong namespace, or RBAC);
 *   404: a dry-run create says whether the namespace exists (404) and whether we may create it;
 *   a Lease we may not create is waited for briefly: Helm creates the Deployment before it.
 * Network errors are left to the elector, which retries them.
 */
export async function preflightLease(
  kc: KubeConfig,
  namespace: string,
  name: string,
  opts: LeasePreflightOptions = {},
): Promise<void> {
  const api = kc.makeApiClient(CoordinationV1Api);
  const where = `leader-election Lease ${namespace}/${name}`;
  const fixNamespace = `--netmesh-namespace must be the namespace netmesh is installed in (the chart passes its own) and --lease-name the chart's <release>-operator`;
  const read = async (): Promise<'found' | 'missing' | 'unknown'> => {
    try {
      await api.readNamespacedLease({ namespace, name });
      return 'found';
    } catch (err) {
      if (hasStatus(err, 404)) return 'missing';
      if (hasStatus(err, 403) || hasStatus(err, 401)) {
        throw new UserFacingError(
          `cannot read the ${where}: ${describeKubeError(err).message}`,
          fixNamespace,
        );
      }
      return 'unknown';
    }
  };
  if ((await read()) !== 'missing') return;
  try {
    await api.createNamespacedLease({ namespace, body: { metadata: { name, namespace } }, dryRun: 'All' });
    return; // the elector will create it
  } catch (err) {
    if (hasStatus(err, 404)) {
      throw new UserFacingError(`namespace ${namespace} does not exist (${where})`, fixNamespace);
    }
    if (!hasStatus(err, 403)) return;
  }
  // Forbidden to create: does the namespace exist at all? (The chart's identity may read namespaces.)
  const nsExists = await kc
    .makeApiClient(CoreV1Api)
    .readNamespace({ name: namespace })
    .then(
      () => true,
      (err: unknown) => (hasStatus(err, 404) ? false : undefined),
    );
  if (nsExists === false) {
    throw new UserFacingError(`namespace ${namespace} does not exist (${where})`, fixNamespace);
  }
  const deadline = Date.now() + (opts.waitMs ?? 15_000);
  while (Date.now() < deadline) {
    await sleep(opts.pollMs ?? 1_000);
    if ((await read()) !== 'missing') return;
  }
  throw new UserFacingError(
    `the ${where} does not exist and this identity may not create it`,
    'the chart creates it empty: `helm upgrade` the release to recreate it, or check --lease-name and --netmesh-namespace',
  );
}
