// The course's manifests in this folder, for the tests and the demo (never the product).
import { readFileSync } from 'node:fs';
import type { V1ConfigMap, V1Pod } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { parseTemplate, type SidecarTemplate } from '../webhook/core/template.ts';

const read = (name: string): string => readFileSync(new URL(name, import.meta.url), 'utf8');

export const COURSE_EXAMPLES_DIR = new URL('./', import.meta.url);
export const COURSE_CONFIGMAP_YAML = read('seed-envoy-initializer-configmap.yaml');
export const COURSE_POD_YAML = read('seed-myapp-pod.yaml');
export const COURSE_NETWORK_YAML = read('seed-example-network.yaml');

export function courseConfigMap(): V1ConfigMap {
  return parse(COURSE_CONFIGMAP_YAML) as V1ConfigMap;
}

/** The template text (the ConfigMap's `config` key). */
export function courseTemplateText(): string {
  const text = courseConfigMap().data?.['config'];
  if (!text) throw new Error('the course ConfigMap has no config key');
  return text;
}

export function coursePod(): V1Pod {
  return parse(COURSE_POD_YAML) as V1Pod;
}

/** The course's template, parsed by the webhook's own parser (for the tests). */
export function courseTemplate(): { template: SidecarTemplate; hash: string } {
  const result = parseTemplate(courseTemplateText());
  if (!result.ok) throw new Error(`course template does not parse: ${result.error}`);
  return { template: result.template, hash: result.hash };
}
