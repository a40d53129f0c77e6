/**
 * Registering the webhook for local runs and tests (`netmesh webhook --register-url`): server-
 * side apply of the configuration built by webhook-config.ts, and its removal on a clean exit.
 * In a cluster the Helm chart owns the configuration and this file is not used.
 *
 * A local run only ever updates and deletes a configuration it registered itself, recognised by
 * its label: one of the same name installed by Helm (or by anyone else) is refused before
 * anything is changed, since applying over it would take it over and the clean exit would then
 * delete it.
 */
import type {
  AdmissionregistrationV1Api,
  KubeConfig,
  V1MutatingWebhookConfiguration,
} from '@kubernetes/client-node';
import { PatchStrategy, setHeaderOptions, VersionApi } from '@kubernetes/client-node';
import { UserFacingError } from '../lib/errors.ts';
import { supportsMatchConditions } from './webhook-config.ts';

export const FIELD_MANAGER = 'netmesh-webhook';

/** Set on every configuration registered by --register-url: what a later run may update. */
export const REGISTERED_BY_LABEL = 'netmesh.io/registered-by';
export const REGISTERED_BY_VALUE = 'netmesh-webhook';
export const LOCAL_REGISTRATION_LABELS: Readonly<Record<string, string>> = {
  [REGISTERED_BY_LABEL]: REGISTERED_BY_VALUE,
};

/**
 * Pure: why an existing configuration of that name must not be taken over by a local run, or
 * undefined when there is none or it carries our label and not Helm's (an earlier run's, which
 * we update).
 */
export function registrationConflict(
  existing: V1MutatingWebhookConfiguration | undefined,
): string | undefined {
  if (existing === undefined) return undefined;
  const labels = existing.metadata?.labels ?? {};
  const name = existing.metadata?.name ?? '';
  // Helm's first, whatever other labels say: deleting a release's object on exit is never right.
  if (labels['app.kubernetes.io/managed-by'] === 'Helm') {
    const annotations = existing.metadata?.annotations ?? {};
    const release = annotations['meta.helm.sh/release-name'];
    const ns = annotations['meta.helm.sh/release-namespace'];
    const owner = release
      ? `belongs to Helm release ${release}${ns ? ` in namespace ${ns}` : ''}`
      : 'is managed by Helm';
    return `MutatingWebhookConfiguration ${name} ${owner}; --register-url would take it over and delete it on exit`;
  }
  if (labels[REGISTERED_BY_LABEL] === REGISTERED_BY_VALUE) return undefined;
  return `MutatingWebhookConfiguration ${name} already exists and was not registered by a local netmesh webhook (no label ${REGISTERED_BY_LABEL}=${REGISTERED_BY_VALUE}); --register-url would take it over and delete it on exit`;
}

async function readExisting(
  admission: AdmissionregistrationV1Api,
  name: string,
): Promise<V1MutatingWebhookConfiguration | undefined> {
  try {
    return await admission.readMutatingWebhookConfiguration({ name });
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

/** Throws a UserFacingError when `name` is someone else's configuration (see registrationConflict). */
export async function assertRegistrable(admission: AdmissionregistrationV1Api, name: string): Promise<void> {
  const conflict = registrationConflict(await readExisting(admission, name));
  if (conflict !== undefined) {
    throw new UserFacingError(
      conflict,
      `pick a name of its own for the local registration with --webhook-config-name (e.g. ${name}-local)`,
    );
  }
}

/**
 * Applies `config` (which must carry LOCAL_REGISTRATION_LABELS) after checking that the name is
 * free or ours. The check and the apply are not atomic; the window is one round trip.
 */
export async function applyWebhookConfiguration(
  admission: AdmissionregistrationV1Api,
  config: V1MutatingWebhookConfiguration,
): Promise<V1MutatingWebhookConfiguration> {
  const name = config.metadata!.name!;
  await assertRegistrable(admission, name);
  return admission.patchMutatingWebhookConfiguration(
    { name, body: config, fieldManager: FIELD_MANAGER, force: true },
    setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
  );
}

/** Deletes the configuration we applied, and only that one (uid precondition). */
export async function deleteWebhookConfiguration(
  admission: AdmissionregistrationV1Api,
  name: string,
  uid: string | undefined,
): Promise<void> {
  try {
    await admission.deleteMutatingWebhookConfiguration({
      name,
      ...(uid ? { body: { preconditions: { uid } } } : {}),
    });
  } catch (err) {
    const code = (err as { code?: number }).code;
    // 404: already gone; 409: replaced by someone else since, which is theirs now.
    if (code === 404 || code === 409) return;
    throw err;
  }
}

export async function detectMatchConditionsSupport(kc: KubeConfig): Promise<boolean> {
  try {
    const version = await kc.makeApiClient(VersionApi).getCode();
    return supportsMatchConditions(version);
  } catch {
    return false;
  }
}
