// The decisions of `netmesh check`, apart from the reading: what a Lease, a /readyz answer, a
// certificate or a list of Pods means for the installation, and how results are printed.
// Pure (time is a parameter), so every verdict is unit-tested without a cluster.
import type { V1Lease, V1Pod, V1ResourceAttributes } from '@kubernetes/client-node';
import {
  MIRROR_POD_ANNOTATION,
  NAMESPACE_INJECTION_ENABLED,
  NAMESPACE_INJECTION_LABEL,
  POD_INJECT_LABEL,
  STATUS_ANNOTATION,
  SYSTEM_NAMESPACES,
} from '../webhook/core/contract.ts';

export type CheckStatus = 'ok' | 'fail' | 'warn' | 'skip';

export interface CheckResult {
  /** Short and stable: what is checked. */
  name: string;
  status: CheckStatus;
  message: string;
  hint?: string;
}

export const MARKS: Readonly<Record<CheckStatus, string>> = { ok: '✔', fail: '✖', warn: '‼', skip: '-' };

export function renderChecks(results: readonly CheckResult[], header: string): string {
  const lines = [header, ''];
  for (const r of results) {
    lines.push(`${MARKS[r.status]} ${r.name}: ${r.message}`);
    if (r.hint && r.status !== 'ok') lines.push(`    hint: ${r.hint}`);
  }
  const count = (s: CheckStatus) => results.filter((r) => r.status === s).length;
  lines.push(
    '',
    `${results.length} checks: ${count('ok')} passed, ${count('fail')} failed, ${count('warn')} warnings, ${count('skip')} skipped`,
  );
  return lines.join('\n');
}

/** client-go's MicroTime/Time strings (or Dates, whatever the client handed back) as ms. */
function timeMs(v: unknown): number | undefined {
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'string' && v !== '') {
    const t = Date.parse(v);
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}

/**
 * Whether the Lease has a live holder: a holderIdentity, renewed within leaseDurationSeconds
 * (plus `skewMs` for the clock difference between this machine and the leader's).
 */
export function leaseVerdict(
  lease: V1Lease,
  nowMs: number,
  skewMs = 5_000,
): { ok: boolean; holder?: string; message: string } {
  const spec = lease.spec ?? {};
  const holder = spec.holderIdentity || undefined;
  if (!holder)
    return {
      ok: false,
      message: 'no holder: no replica leads (netmesh not running, or it released the lease)',
    };
  const renew = timeMs(spec.renewTime);
  const durationMs = (spec.leaseDurationSeconds ?? 15) * 1000;
  if (renew === undefined) return { ok: false, holder, message: `held by ${holder} but never renewed` };
  const age = nowMs - renew;
  if (age > durationMs + skewMs) {
    return {
      ok: false,
      holder,
      message: `held by ${holder}, last renewed ${Math.round(age / 1000)}s ago (lease duration ${durationMs / 1000}s): the leader is gone`,
    };
  }
  return {
    ok: true,
    holder,
    message: `held by ${holder}, renewed ${Math.max(0, Math.round(age / 1000))}s ago`,
  };
}

export interface ReadyzCheck {
  name: string;
  ok: boolean;
  detail?: string;
}

/** The apiserver-style `?verbose` body of runtime/health-server.ts: `[+]name ok: detail` / `[-]name failed: reason`. */
export function parseReadyz(body: string): ReadyzCheck[] {
  const out: ReadyzCheck[] = [];
  for (const line of body.split('\n')) {
    const m = /^\[([+-])\](\S+) (?:ok|failed)(?:: (.*))?$/.exec(line.trim());
    if (!m) continue;
    out.push({ name: m[2]!, ok: m[1] === '+', ...(m[3] ? { detail: m[3] } : {}) });
  }
  return out;
}

/**
 * What `netmesh run` says of its operator in /readyz. Its operator check always passes (every
 * replica keeps serving the webhook, whatever the controller does), so the state is in the
 * detail: one of these, or why the leader is not working.
 */
export const RUN_OPERATOR_DETAIL = { working: 'leader, working', standby: 'standby' } as const;

/** The operator's readiness as the leader's /readyz reports it. */
export function operatorReadiness(body: string): { ok: boolean; message: string } {
  const checks = parseReadyz(body);
  const operator = checks.find((c) => c.name === 'operator');
  if (!operator)
    return {
      ok: false,
      message: `no "operator" check in /readyz (${checks.map((c) => c.name).join(', ') || 'no checks'})`,
    };
  if (!operator.ok) return { ok: false, message: `leader not ready: ${operator.detail ?? 'failed'}` };
  // `netmesh operator` passes with no detail; `netmesh run` passes and says its state.
  if (operator.detail === RUN_OPERATOR_DETAIL.standby)
    return { ok: false, message: 'the Lease holder reports itself a standby (the Lease is changing hands?)' };
  if (operator.detail !== undefined && operator.detail !== RUN_OPERATOR_DETAIL.working)
    return { ok: false, message: `leader not ready: ${operator.detail}` };
  const others = checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail ?? 'failed'}`);
  return {
    ok: true,
    message: `caches synced and workers running${others.length ? ` (other checks failing: ${others.join('; ')})` : ''}`,
  };
}

/** One permission netmesh's ServiceAccount needs, as a SubjectAccessReview asks it. */
export interface Permission {
  attributes: V1ResourceAttributes;
  why: string;
}

/** charts/netmesh/templates/rbac.yaml, as requirements. */
export function requiredPermissions(opts: {
  namespace: string;
  fullname: string;
  tlsSecret: string;
  selfManagedCerts: boolean;
}): Permission[] {
  const p = (
    verb: string,
    resource: string,
    why: string,
    more: Partial<V1ResourceAttributes> = {},
  ): Permission => ({ attributes: { verb, resource, ...more }, why });
  const out: Permission[] = [
    ...['get', 'list', 'watch', 'patch'].map((v) =>
      p(v, 'networks', 'reconcile Networks', { group: 'netmesh.io' }),
    ),
    p('patch', 'networks', 'write Network status', { group: 'netmesh.io', subresource: 'status' }),
    p('update', 'networks', 'set blockOwnerDeletion on what a Network owns', {
      group: 'netmesh.io',
      subresource: 'finalizers',
    }),
    ...['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'].map((v) =>
      p(v, 'configmaps', 'materialise Networks and copy the Envoy bootstrap'),
    ),
    ...['create', 'patch'].map((v) => p(v, 'events', 'record Events')),
    ...['get', 'list', 'watch'].map((v) => p(v, 'namespaces', 'read namespace labels')),
    p('get', 'replicasets', "put injection Events on a Pod's Deployment", { group: 'apps' }),
    ...['get', 'update', 'patch'].map((v) =>
      p(v, 'leases', 'leader election', {
        group: 'coordination.k8s.io',
        namespace: opts.namespace,
        name: `${opts.fullname}-operator`,
      }),
    ),
  ];
  // Read in both certificate modes: the configuration owns the Envoy bootstrap copies.
  out.push(
    p('get', 'mutatingwebhookconfigurations', 'own the Envoy bootstrap copies', {
      group: 'admissionregistration.k8s.io',
      name: opts.fullname,
    }),
  );
  if (opts.selfManagedCerts) {
    out.push(
      ...['get', 'patch'].map((v) =>
        p(v, 'secrets', 'keep the webhook CA and certificate', {
          namespace: opts.namespace,
          name: opts.tlsSecret,
        }),
      ),
      p('patch', 'mutatingwebhookconfigurations', 'patch the caBundle', {
        group: 'admissionregistration.k8s.io',
        name: opts.fullname,
      }),
    );
  }
  return out;
}

export function permissionText(a: V1ResourceAttributes): string {
  const resource = `${a.resource}${a.subresource ? `/${a.subresource}` : ''}${a.group ? `.${a.group}` : ''}`;
  return `${a.verb} ${resource}${a.name ? ` ${a.name}` : ''}${a.namespace ? ` in ${a.namespace}` : ''}`;
}

/**
 * Pods of a labelled namespace that should carry the sidecar and do not: not opted out, not
 * hostNetwork, not mirror pods, not finished.
 */
export function uninjectedPods(pods: readonly V1Pod[]): V1Pod[] {
  return pods.filter((p) => {
    const annotations = p.metadata?.annotations ?? {};
    if (Object.hasOwn(annotations, STATUS_ANNOTATION)) return false;
    if (Object.hasOwn(annotations, MIRROR_POD_ANNOTATION)) return false;
    if (p.metadata?.labels?.[POD_INJECT_LABEL] === 'false') return false;
    if (p.spec?.hostNetwork === true) return false;
    if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') return false;
    if (p.metadata?.deletionTimestamp) return false;
    return true;
  });
}

/**
 * `netmesh check -n NS`: undefined when NS's Pods are to be looked at, else the verdict saying
 * why they are not expected to have the sidecar. labels undefined: the namespace does not
 * exist, a failure (most likely a typo in -n).
 */
export function podNamespaceVerdict(
  ns: string,
  labels: Readonly<Record<string, string>> | undefined,
  opts: { netmeshNamespace: string; excludedByConfig: readonly string[] },
): Omit<CheckResult, 'name'> | undefined {
  if (labels === undefined) {
    return { status: 'fail', message: `namespace ${ns} not found`, hint: 'check -n/--namespace' };
  }
  const why = SYSTEM_NAMESPACES.includes(ns)
    ? 'a system namespace'
    : ns === opts.netmeshNamespace
      ? 'the namespace netmesh is installed in'
      : opts.excludedByConfig.includes(ns)
        ? 'excluded by the webhook configuration'
        : undefined;
  if (why) return { status: 'skip', message: `namespace ${ns} is never injected (${why})` };
  if (labels[NAMESPACE_INJECTION_LABEL] !== NAMESPACE_INJECTION_ENABLED) {
    return {
      status: 'skip',
      message: `namespace ${ns} is not labelled ${NAMESPACE_INJECTION_LABEL}=${NAMESPACE_INJECTION_ENABLED}: its Pods are not injected`,
      hint: `to inject its new Pods: kubectl label namespace ${ns} ${NAMESPACE_INJECTION_LABEL}=${NAMESPACE_INJECTION_ENABLED}`,
    };
  }
  return undefined;
}

/** "deploy/web" for a Pod of a ReplicaSet of a Deployment (by naming), else its owner kind/name. */
export function restartTarget(p: V1Pod): string | undefined {
  const owner = p.metadata?.ownerReferences?.find((o) => o.controller);
  if (!owner) return undefined;
  if (owner.kind === 'ReplicaSet') {
    const hash = p.metadata?.labels?.['pod-template-hash'];
    if (hash && owner.name.endsWith(`-${hash}`)) return `deploy/${owner.name.slice(0, -hash.length - 1)}`;
    return `rs/${owner.name}`;
  }
  const short: Record<string, string> = { StatefulSet: 'sts', DaemonSet: 'ds', Job: 'job' };
  return `${short[owner.kind] ?? owner.kind.toLowerCase()}/${owner.name}`;
}

/** "15d", "3h", "20m": how far away an expiry is, for check messages. */
export function humanDuration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs >= 2 * 86_400_000) return `${Math.floor(abs / 86_400_000)}d`;
  if (abs >= 2 * 3_600_000) return `${Math.floor(abs / 3_600_000)}h`;
  if (abs >= 120_000) return `${Math.floor(abs / 60_000)}m`;
  return `${Math.floor(abs / 1000)}s`;
}

export interface EndpointTarget {
  host: string;
  port: number;
}

/**
 * The ready addresses behind a Service port, from its EndpointSlices: the slice port named like
 * the Service port (or the only one), endpoints whose `ready` condition is not false.
 */
export function readyEndpoints(
  servicePort: { name?: string | undefined; port: number },
  slices: readonly {
    ports?: { name?: string | undefined; port?: number | undefined }[] | undefined;
    endpoints?:
      | { addresses: string[]; conditions?: { ready?: boolean | undefined } | undefined }[]
      | undefined;
  }[],
): EndpointTarget[] {
  const out: EndpointTarget[] = [];
  for (const slice of slices) {
    const ports = slice.ports ?? [];
    // A named Service port is matched by name; an unnamed one (single-port Service) by absence of name.
    const port = ports.find((p) => (p.name ?? '') === (servicePort.name ?? ''));
    if (port?.port === undefined) continue;
    for (const e of slice.endpoints ?? []) {
      if (e.conditions?.ready === false) continue;
      for (const host of e.addresses) out.push({ host, port: port.port });
    }
  }
  return out;
}
