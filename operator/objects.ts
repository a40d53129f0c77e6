// The writes the controller makes to the objects it materialises (ConfigMap, or Multus
// NetworkAttachmentDefinition), through client-node's typed APIs so that every request can
// carry an AbortSignal. Nothing here decides anything: controller.ts chooses what to call.
import * as k8s from '@kubernetes/client-node';
import { statusCode as httpCode } from '../lib/kube-errors.ts';
import { requestOptions } from '../runtime/request.ts';
import { FIELD_MANAGER, type MaterializeMode, NAD_GROUP, NAD_PLURAL } from './model.ts';

/** A materialised object as read or written. */
export type Owned = k8s.KubernetesObject & { data?: Record<string, string>; spec?: { config?: string } };

export interface ObjectClient {
  readonly kind: MaterializeMode;
  /** POST: fails with 409 AlreadyExists when the name is taken (by anyone). */
  create(obj: Owned, signal?: AbortSignal): Promise<Owned>;
  /** undefined when absent. */
  get(namespace: string, name: string, signal?: AbortSignal): Promise<Owned | undefined>;
  /**
   * Server-side apply (field manager netmesh-operator, force). `obj.metadata.resourceVersion`
   * makes it conditional: the apiserver answers 409 if the object changed since it was read.
   */
  apply(obj: Owned, signal?: AbortSignal): Promise<Owned>;
  /** DELETE with uid and resourceVersion preconditions; a missing object is not an error. */
  delete(
    namespace: string,
    name: string,
    preconditions: k8s.V1Preconditions,
    signal?: AbortSignal,
  ): Promise<void>;
}

const notFound = (err: unknown): undefined => {
  if (httpCode(err) === 404) return undefined;
  throw err;
};

/** The server-side apply of a whole object as netmesh's field manager, taking over conflicting fields. */
function applyParams(obj: Owned): {
  namespace: string;
  name: string;
  body: Owned;
  fieldManager: string;
  force: true;
} {
  return {
    namespace: obj.metadata!.namespace!,
    name: obj.metadata!.name!,
    body: obj,
    fieldManager: FIELD_MANAGER,
    force: true,
  };
}

function applyOptions(signal: AbortSignal | undefined): ReturnType<typeof requestOptions> {
  return requestOptions({ signal, contentType: k8s.PatchStrategy.ServerSideApply });
}

export function configMapClient(core: k8s.CoreV1Api): ObjectClient {
  return {
    kind: 'ConfigMap',
    create: (obj, signal) =>
      core.createNamespacedConfigMap(
        { namespace: obj.metadata!.namespace!, body: obj as k8s.V1ConfigMap, fieldManager: FIELD_MANAGER },
        requestOptions({ signal }),
      ) as Promise<Owned>,
    get: (namespace, name, signal) =>
      (core.readNamespacedConfigMap({ namespace, name }, requestOptions({ signal })) as Promise<Owned>).catch(
        notFound,
      ),
    apply: (obj, signal) =>
      core.patchNamespacedConfigMap(applyParams(obj), applyOptions(signal)) as Promise<Owned>,
    delete: async (namespace, name, preconditions, signal) => {
      await core
        .deleteNamespacedConfigMap({ namespace, name, body: { preconditions } }, requestOptions({ signal }))
        .catch(notFound);
    },
  };
}

export function nadClient(custom: k8s.CustomObjectsApi): ObjectClient {
  const api = { group: NAD_GROUP, version: 'v1', plural: NAD_PLURAL };
  return {
    kind: 'NetworkAttachmentDefinition',
    create: (obj, signal) =>
      custom.createNamespacedCustomObject(
        { ...api, namespace: obj.metadata!.namespace!, body: obj, fieldManager: FIELD_MANAGER },
        requestOptions({ signal }),
      ) as Promise<Owned>,
    get: (namespace, name, signal) =>
      (
        custom.getNamespacedCustomObject(
          { ...api, namespace, name },
          requestOptions({ signal }),
        ) as Promise<Owned>
      ).catch(notFound),
    apply: (obj, signal) =>
      custom.patchNamespacedCustomObject(
        { ...api, ...applyParams(obj) },
        applyOptions(signal),
      ) as Promise<Owned>,
    delete: async (namespace, name, preconditions, signal) => {
      await custom
        .deleteNamespacedCustomObject(
          { ...api, namespace, name, body: { preconditions } },
          requestOptions({ signal }),
        )
        .catch(notFound);
    },
  };
}
