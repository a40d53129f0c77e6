/**
 * Test fixtures: copies of the course's manifests (/work/shared/examples) so the unit tests
 * do not depend on files outside the repository. template.test.ts checks the copies against
 * the originals when those are present.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { parseTemplate, type SidecarTemplate } from './template.ts';

export const COURSE_EXAMPLES_DIR = new URL('../../../shared/examples/', import.meta.url);

export const COURSE_CONFIGMAP_YAML = `# The seed's sidecar template, verbatim: data.config is a fragment of a Pod spec
# (containers + volumes) to merge into every selected Pod.
apiVersion: v1
kind: ConfigMap
metadata:
  name: envoy-initializer
data:
  config: |
    containers:
      - name: envoy
        image: lyft/envoy:845747db88f102c0fd262ab234308e9e22f693a1
        command: ["/usr/local/bin/envoy"]
        args:
          - "--concurrency 4"
          - "--config-path /etc/envoy/envoy.json"
          - "--mode serve"
        ports:
          - containerPort: 80
            protocol: TCP
        resources:
          limits:
            cpu: "1000m"
            memory: "512Mi"
          requests:
            cpu: "100m"
            memory: "64Mi"
        volumeMounts:
          - name: envoy-conf
            mountPath: /etc/envoy
    volumes:
      - name: envoy-conf
        configMap:
          name: envoy
`;

export const COURSE_POD_YAML = `# The seed's application Pod: one user container. After injection it must hold
# myapp-container and envoy, and the envoy-conf volume.
apiVersion: v1
kind: Pod
metadata:
  name: myapp-pod
  labels:
    app: myapp
spec:
  containers:
    - name: myapp-container
      image: busybox
      command: ['sh', '-c', 'echo Hello Kubernetes! && sleep 3600']
`;

export function courseTemplateText(): string {
  const configMap = parse(COURSE_CONFIGMAP_YAML) as { data: { config: string } };
  return configMap.data.config;
}

export function courseTemplate(): { template: SidecarTemplate; hash: string } {
  const result = parseTemplate(courseTemplateText());
  if (!result.ok) throw new Error(`course template does not parse: ${result.error}`);
  return { template: result.template, hash: result.hash };
}

export function coursePod(): V1Pod {
  return parse(COURSE_POD_YAML) as V1Pod;
}
