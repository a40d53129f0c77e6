/**
 * The names users see (README.md, "Sidecar injection" and "Writing a sidecar template").
 * Kept in one place so the webhook, the offline injector, the chart and the docs cannot drift
 * apart.
 */

/** Namespace label that opts every Pod of the namespace in. */
export const NAMESPACE_INJECTION_LABEL = 'netmesh.io/injection';
export const NAMESPACE_INJECTION_ENABLED = 'enabled';

/** Pod label: "true" opts in, "false" opts out everywhere. A label so the apiserver can filter. */
export const POD_INJECT_LABEL = 'netmesh.io/inject';

/** The course's Initializer-era annotation, still honoured as an opt-in. */
export const LEGACY_INJECT_ANNOTATION = 'initializer.kubernetes.io/envoy';

/** Written on every injected Pod: what was added and the hash of the template used. */
export const STATUS_ANNOTATION = 'netmesh.io/status';
export const STATUS_VERSION = 1;

/** Kubelet sets this on mirror pods of static pods; the apiserver ignores mutations of them. */
export const MIRROR_POD_ANNOTATION = 'kubernetes.io/config.mirror';

/** Injecting here can deadlock the control plane's own add-ons. */
export const SYSTEM_NAMESPACES: readonly string[] = ['kube-system', 'kube-public', 'kube-node-lease'];

/** Where the chart installs the product (its own pods must never wait on itself). */
export const DEFAULT_WEBHOOK_NAMESPACE = 'netmesh-system';

/** ConfigMap holding the sidecar template, and its key. */
export const TEMPLATE_CONFIGMAP_NAME = 'envoy-initializer';
export const TEMPLATE_CONFIGMAP_KEY = 'config';

/**
 * The Envoy bootstrap copier's mark (webhook/bootstrap-copier.ts): a copy is netmesh's only
 * with this label set to "true" and the annotation naming its source `<namespace>/<name>`.
 */
export const BOOTSTRAP_COPY_LABEL = 'netmesh.io/bootstrap-copy';
export const COPIED_FROM_ANNOTATION = 'netmesh.io/copied-from';
