// Helpers of the operator suites that talk to the real apiserver only: an admission gate (a
// ValidatingWebhookConfiguration served by the test process, to hold or refuse chosen writes
// of the operator the way a slow or conflicting apiserver would), the verdicts a fresh operator
// would compute from the stored Networks, the operator's metrics, and the local control plane's
// audit log.
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { createCertificateAuthority, issueCertificate } from '../lib/pki.ts';
import { keyOf, type Network } from '../operator/model.ts';
import { validateNetworkSpec } from '../operator/network/cidr.ts';
import { OverlapIndex } from '../operator/network/overlap-index.ts';
import { type ClusterHandle, eventually } from './support.ts';

export interface GateRequest {
  /** Local clock, ms. */
  at: number;
  uid: string;
  operation: string;
  resource: string;
  subResource: string;
  namespace: string;
  name: string;
  username: string;
  /** The apiserver closed the connection before the gate answered (its caller gave up). */
  abandoned: boolean;
  answered: boolean;
}

export type GateAnswer =
  | { allowed: true }
  | { allowed: false; code: number; reason: string; message: string };

export type GateHandler = (req: GateRequest, closed: Promise<void>) => GateAnswer | Promise<GateAnswer>;

export interface AdmissionGate {
  readonly name: string;
  /** Requests of the gated webhook (not the readiness probe), oldest first. */
  readonly requests: GateRequest[];
  setHandler(handler: GateHandler): void;
  stop(): Promise<void>;
}

const PROBE_LABEL = 'netmesh-e2e/gate-probe';

/**
 * Registers a ValidatingWebhookConfiguration whose one webhook calls `handler` for the requests
 * matching `rules` and `matchConditions`, and returns once the apiserver calls it (proved by a
 * second, probe-only webhook in the same configuration, which the apiserver loads atomically).
 */
export async function startAdmissionGate(
  h: ClusterHandle,
  opts: {
    rules: k8s.V1RuleWithOperations[];
    matchConditions: k8s.V1MatchCondition[];
    handler: GateHandler;
    timeoutSeconds?: number;
  },
): Promise<AdmissionGate> {
  const id = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const name = `netmesh-e2e-gate-${id}`;
  const ca = createCertificateAuthority('netmesh-e2e-gate');
  const serving = issueCertificate(ca, { commonName: 'gate', usage: 'server', ipAddresses: ['127.0.0.1'] });
  const requests: GateRequest[] = [];
  let handler = opts.handler;

  const answer = (res: ServerResponse, uid: string, a: GateAnswer): void => {
    const response = a.allowed
      ? { uid, allowed: true }
      : { uid, allowed: false, status: { code: a.code, reason: a.reason, message: a.message } };
    const body = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response });
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  };

  const server = createServer({ key: serving.keyPem, cert: serving.certPem }, (req: IncomingMessage, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      raw += c;
    });
    req.on('end', () => {
      const review = JSON.parse(raw) as { request: Record<string, unknown> & { uid: string } };
      const r = review.request as {
        uid: string;
        operation: string;
        resource: { resource: string };
        subResource?: string;
        namespace?: string;
        name?: string;
        userInfo: { username: string };
        object?: { metadata?: { name?: string; labels?: Record<string, string> } };
      };
      // The apiserver appends ?timeout=<n>s to the configured URL.
      if (new URL(req.url ?? '/', 'https://gate.invalid').pathname === '/probe') {
        answer(res, r.uid, { allowed: false, code: 403, reason: 'Forbidden', message: `gate ${id} ready` });
        return;
      }
      const entry: GateRequest = {
        at: Date.now(),
        uid: r.uid,
        operation: r.operation,
        resource: r.resource.resource,
        subResource: r.subResource ?? '',
        namespace: r.namespace ?? '',
        name: r.name || r.object?.metadata?.name || '',
        username: r.userInfo.username,
        abandoned: false,
        answered: false,
      };
      requests.push(entry);
      const closed = new Promise<void>((resolve) => {
        res.on('close', () => {
          if (!entry.answered) entry.abandoned = true;
          resolve();
        });
      });
      Promise.resolve(handler(entry, closed)).then(
        (a) => {
          if (res.destroyed || res.writableEnded) return;
          entry.answered = true;
          answer(res, r.uid, a);
        },
        () => res.destroy(),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const caBundle = Buffer.from(ca.certPem).toString('base64');
  const admission = h.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
  const stop = async (): Promise<void> => {
    await admission.deleteValidatingWebhookConfiguration({ name }).catch(() => {});
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  try {
    await admission.createValidatingWebhookConfiguration({
      body: {
        metadata: { name },
        webhooks: [
          {
            name: 'gate.netmesh-e2e.io',
            admissionReviewVersions: ['v1'],
            sideEffects: 'None',
            failurePolicy: 'Fail',
            timeoutSeconds: opts.timeoutSeconds ?? 10,
            clientConfig: { url: `https://127.0.0.1:${port}/gate`, caBundle },
            rules: opts.rules,
            matchConditions: opts.matchConditions,
          },
          {
            name: 'probe.netmesh-e2e.io',
            admissionReviewVersions: ['v1'],
            sideEffects: 'None',
            failurePolicy: 'Fail',
            timeoutSeconds: 5,
            clientConfig: { url: `https://127.0.0.1:${port}/probe`, caBundle },
            rules: [
              { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] },
            ],
            objectSelector: { matchLabels: { [PROBE_LABEL]: id } },
          },
        ],
      },
    });
    const core = h.kc.makeApiClient(k8s.CoreV1Api);
    await eventually(`admission gate ${name} called by the apiserver`, async () => {
      try {
        await core.createNamespacedConfigMap({
          namespace: 'default',
          dryRun: 'All',
          body: { metadata: { generateName: 'gate-probe-', labels: { [PROBE_LABEL]: id } } },
        });
        return false;
      } catch (err) {
        const body = (err as { body?: unknown }).body;
        return (typeof body === 'string' ? body : JSON.stringify(body ?? '')).includes(`gate ${id} ready`);
      }
    });
  } catch (err) {
    // Never leave a listening server behind: it would keep the test process alive.
    await stop();
    throw err;
  }
  return {
    name,
    requests,
    setHandler(next) {
      handler = next;
    },
    stop,
  };
}

export type Verdict = 'Ready' | 'Overlap' | 'Invalid';

/**
 * The verdict of every stored Network as a freshly started operator would compute it: valid
 * specs enter the overlap index, a valid Network is Overlap iff an older (or, at the same
 * second, lexically smaller) directly overlapping valid Network exists.
 */
export function freshVerdicts(networks: Network[]): Map<string, Verdict> {
  const index = new OverlapIndex();
  const valid = new Set<string>();
  for (const n of networks) {
    const v = validateNetworkSpec(n.spec);
    if (!v.ok) continue;
    valid.add(keyOf(n));
    index.upsert(keyOf(n), v.cidr, { creationTimestamp: n.metadata?.creationTimestamp, key: keyOf(n) });
  }
  const out = new Map<string, Verdict>();
  for (const n of networks) {
    const key = keyOf(n);
    out.set(key, !valid.has(key) ? 'Invalid' : index.isBlocked(key) ? 'Overlap' : 'Ready');
  }
  return out;
}

/** Waits until every stored Network's status says what a fresh operator would compute. */
export async function expectFreshVerdicts(h: ClusterHandle, timeoutMs = 30_000): Promise<void> {
  let last = '';
  await eventually(
    'the Ready set to be what a fresh operator computes',
    async () => {
      const list = (await h.custom.listClusterCustomObject({
        group: 'netmesh.io',
        version: 'v1',
        plural: 'networks',
      })) as { items: Network[] };
      const live = list.items.filter((n) => !n.metadata?.deletionTimestamp);
      const expected = freshVerdicts(live);
      const wrong: string[] = [];
      for (const n of live) {
        const cond = n.status?.conditions?.find((c) => c.type === 'Ready');
        const current = n.status?.observedGeneration === n.metadata?.generation;
        const want = expected.get(keyOf(n));
        const is = !current ? 'stale' : cond?.status === 'True' ? 'Ready' : cond?.reason;
        if (is !== want) wrong.push(`${keyOf(n)}: ${is}, fresh operator: ${want}`);
      }
      last = wrong.join('; ');
      return wrong.length === 0;
    },
    { timeoutMs },
  ).catch((err: Error) => {
    throw new Error(`${err.message}: ${last}`);
  });
}

/** One sample of a Prometheus text exposition, or 0 when absent. */
export async function metric(
  port: number,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labelText = line.slice(name.length).split(' ')[0] ?? '';
    if (want.every((w) => labelText.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

export interface AuditEvent {
  verb: string;
  user: { username: string };
  objectRef?: { resource?: string; namespace?: string; name?: string; subresource?: string };
  responseStatus?: { code?: number };
  requestReceivedTimestamp: string;
  stageTimestamp: string;
  stage: string;
}

/**
 * The local control plane's audit log (written beside its admin kubeconfig; see
 * cluster/controlplane.ts), or undefined on other targets.
 */
export function auditLog(kubeconfigPath: string): { read(): AuditEvent[] } | undefined {
  const path = join(dirname(kubeconfigPath), 'audit.log');
  if (!existsSync(path)) return undefined;
  return {
    read: () =>
      readFileSync(path, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as AuditEvent),
  };
}
