/**
 * Templates for the offline commands (`netmesh inject`, `netmesh explain`): from a file (a
 * ConfigMap manifest like the course's, or the bare `config` text) or from the cluster.
 */
import { CoreV1Api, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { UserFacingError } from '../lib/errors.ts';
import type { LoadedTemplate } from './admission.ts';
import { TEMPLATE_CONFIGMAP_KEY } from './core/contract.ts';
import { isPlainObject, parseTemplate } from './core/template.ts';

function parseOrThrow(text: string, where: string): LoadedTemplate {
  const result = parseTemplate(text);
  if (!result.ok) {
    throw new UserFacingError(
      `invalid sidecar template in ${where}: ${result.error}`,
      'fix the template and retry',
    );
  }
  return { template: result.template, hash: result.hash };
}

/** A ConfigMap manifest (its data.config), or the template text itself. */
export function templateFromText(text: string, where: string): LoadedTemplate {
  const docs = parseAllDocuments(text);
  const objects = (Array.isArray(docs) ? docs : []).map((d) => d.toJS() as unknown).filter((o) => o != null);
  const configMap = objects.find((o) => isPlainObject(o) && o['kind'] === 'ConfigMap');
  if (isPlainObject(configMap)) {
    const data = configMap['data'];
    const config = isPlainObject(data) ? data[TEMPLATE_CONFIGMAP_KEY] : undefined;
    if (typeof config !== 'string') {
      throw new UserFacingError(
        `the ConfigMap in ${where} has no data.${TEMPLATE_CONFIGMAP_KEY}`,
        'put the sidecar template under data.config',
      );
    }
    return parseOrThrow(config, `${where} (data.${TEMPLATE_CONFIGMAP_KEY})`);
  }
  return parseOrThrow(text, where);
}

export async function templateFromCluster(
  kc: KubeConfig,
  namespace: string,
  name: string,
): Promise<LoadedTemplate> {
  const core = kc.makeApiClient(CoreV1Api);
  let configMap: V1ConfigMap;
  try {
    configMap = await core.readNamespacedConfigMap({ name, namespace });
  } catch (err) {
    if ((err as { code?: number }).code === 404) {
      throw new UserFacingError(
        `ConfigMap ${namespace}/${name} not found`,
        'pass --template <file>, or --namespace where the template lives',
      );
    }
    // Unchanged, so the caller can say what failed underneath (connection refused at ..., which
    // certificate): `fetch failed` alone tells a user nothing.
    throw err;
  }
  const config = configMap.data?.[TEMPLATE_CONFIGMAP_KEY];
  if (config === undefined) {
    throw new UserFacingError(`ConfigMap ${namespace}/${name} has no key ${TEMPLATE_CONFIGMAP_KEY}`);
  }
  return parseOrThrow(config, `ConfigMap ${namespace}/${name}`);
}

/** `k=v,k2=v2` as used by --namespace-labels. */
export function parseLabelList(value: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of value
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0)
      throw new UserFacingError(
        `label ${JSON.stringify(part)} is not key=value`,
        'e.g. --namespace-labels netmesh.io/injection=enabled',
      );
    labels[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return labels;
}
