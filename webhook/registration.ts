/**
 * Registering the webhook for local runs and tests (`netmesh webhook --register-url`): server-
 * side apply of the configuration built by webhook-config.ts, and its removal on a clean exit.
 * In a cluster the Helm chart owns the configuration and this file is not used.
 */
import type {
  AdmissionregistrationV1Api,
  KubeConfig,
  V1MutatingWebhookConfiguration,
} from '@kubernetes/client-node';
import { PatchStrategy, setHeaderOptions, VersionApi } from '@kubernetes/client-node';
import { supportsMatchConditions } from './webhook-config.ts';

export const FIELD_MANAGER = 'netmesh-webhook';

export async function applyWebhookConfiguration(
  admission: AdmissionregistrationV1Api,
  config: V1MutatingWebhookConfiguration,
): Promise<V1MutatingWebhookConfiguration> {
  return admission.patchMutatingWebhookConfiguration(
    { name: config.metadata!.name!, body: config, fieldManager: FIELD_MANAGER, force: true },
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
