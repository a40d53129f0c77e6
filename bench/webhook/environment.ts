// What a real `netmesh webhook` process needs around it: an apiserver (the cluster the tests
// would use, cluster/target.ts; a local control plane without a node by default), its own
// namespace holding the chart's default sidecar template, and the namespace the captured Pods
// were created in, labelled for injection, so that the namespace cache answers from memory as
// it does in production.
import { readFileSync } from 'node:fs';
import { CoreV1Api } from '@kubernetes/client-node';
import { parse } from 'yaml';
import type { TestCluster } from '../../cluster/target.ts';
import {
  NAMESPACE_INJECTION_ENABLED,
  NAMESPACE_INJECTION_LABEL,
  TEMPLATE_CONFIGMAP_KEY,
  TEMPLATE_CONFIGMAP_NAME,
} from '../../webhook/core/contract.ts';
import { BENCH_NAMESPACE } from '../fixtures/workloads.ts';

export interface WebhookEnvironment {
  description: string;
  kubeconfigPath: string;
  /** netmesh's own namespace: the template ConfigMap and the TLS Secret. */
  systemNamespace: string;
  tlsSecret: string;
  /** CA, certificate and key netmesh created in its Secret (the baseline serves the same pair). */
  readServingMaterial(): Promise<{ caPem: string; certPem: string; keyPem: string }>;
  close(): Promise<void>;
}

/** The sidecar template the chart installs by default: what a production webhook injects. */
export function chartDefaultTemplate(): string {
  const values = parse(
    readFileSync(new URL('../../charts/netmesh/values.yaml', import.meta.url), 'utf8'),
  ) as {
    template?: { config?: string };
  };
  const config = values.template?.config;
  if (!config) throw new Error('charts/netmesh/values.yaml has no template.config');
  return config;
}

function statusOf(err: unknown): number | undefined {
  return (err as { code?: number })?.code;
}

export async function prepareWebhookEnvironment(cluster: TestCluster): Promise<WebhookEnvironment> {
  const core = cluster.kc.makeApiClient(CoreV1Api);
  const systemNamespace = `netmesh-bench-${process.pid}`;
  const tlsSecret = 'netmesh-bench-tls';
  const created: string[] = [];
  const close = async (): Promise<void> => {
    for (const name of created.reverse()) await core.deleteNamespace({ name }).catch(() => {});
    await cluster.stop();
  };
  try {
    const read = () =>
      core.readNamespace({ name: BENCH_NAMESPACE }).catch((err: unknown) => {
        if (statusOf(err) === 404) return undefined;
        throw err;
      });
    let app = await read();
    // A namespace being deleted (by the previous run) would vanish under the webhook's cache
    // mid-run: wait until it is gone, then create it again.
    for (const deadline = Date.now() + 120_000; app?.metadata?.deletionTimestamp; app = await read()) {
      if (Date.now() > deadline) throw new Error(`namespace ${BENCH_NAMESPACE} is still being deleted`);
      await new Promise((r) => setTimeout(r, 500));
    }
    if (!app) {
      await core.createNamespace({
        body: {
          metadata: {
            name: BENCH_NAMESPACE,
            labels: { [NAMESPACE_INJECTION_LABEL]: NAMESPACE_INJECTION_ENABLED },
          },
        },
      });
      created.push(BENCH_NAMESPACE);
    } else if (app.metadata?.labels?.[NAMESPACE_INJECTION_LABEL] !== NAMESPACE_INJECTION_ENABLED) {
      throw new Error(
        `namespace ${BENCH_NAMESPACE} exists without ${NAMESPACE_INJECTION_LABEL}=${NAMESPACE_INJECTION_ENABLED}; the captured Pods would not be injected`,
      );
    }
    await core.createNamespace({ body: { metadata: { name: systemNamespace } } });
    created.push(systemNamespace);
    await core.createNamespacedConfigMap({
      namespace: systemNamespace,
      body: {
        metadata: { name: TEMPLATE_CONFIGMAP_NAME },
        data: { [TEMPLATE_CONFIGMAP_KEY]: chartDefaultTemplate() },
      },
    });
  } catch (err) {
    await close();
    throw err;
  }
  return {
    description: cluster.description,
    kubeconfigPath: cluster.kubeconfigPath,
    systemNamespace,
    tlsSecret,
    async readServingMaterial() {
      const secret = await core.readNamespacedSecret({ name: tlsSecret, namespace: systemNamespace });
      const field = (key: string): string => {
        const value = secret.data?.[key];
        if (!value) throw new Error(`Secret ${systemNamespace}/${tlsSecret} has no ${key}`);
        return Buffer.from(value, 'base64').toString('utf8');
      };
      return { caPem: field('ca.crt'), certPem: field('tls.crt'), keyPem: field('tls.key') };
    },
    close,
  };
}
