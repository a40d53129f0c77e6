/**
 * Certificates of the self-managed mode, as pure functions: what to generate, how it is stored
 * in the shared Secret, what the caBundle must hold, and when to rotate. cert-source.ts is the
 * thin shell that reads and writes the Secret and the webhook configuration.
 *
 * Rotation replaces the CA and the serving certificate together, without a moment in which the
 * apiserver distrusts the certificate a replica serves:
 *   1. stage: a new CA + serving cert are stored next to the current ones ("next"), and the
 *      caBundle becomes current CA + next CA; replicas keep serving the current cert;
 *   2. promote: once the bundle holding both is in the webhook configuration and the apiserver
 *      had time to load it (propagation delay), next becomes current and the old CA is kept in
 *      the bundle as "previous" until the end of the overlap window; replicas switch on their
 *      next re-read of the Secret, which must come before the window ends;
 *   3. drop: after the window the old CA leaves the bundle and the Secret.
 * Every step is a compare-and-swap on the Secret (resourceVersion), so replicas that plan the
 * same step at the same time do it once.
 */
import type { CertificateAuthority, IssuedCert } from '../lib/pki.ts';
import {
  createCertificateAuthority,
  inspectCertificate,
  isSignedBy,
  issueCertificate,
  splitPemBundle,
} from '../lib/pki.ts';

export interface CertBundle {
  ca: CertificateAuthority;
  serving: IssuedCert;
}

export interface CertState {
  current: CertBundle;
  /** Staged by a rotation; in the caBundle but not served yet. */
  next?: { bundle: CertBundle; stagedAt: Date } | undefined;
  /** The CA replaced by the last rotation; stays in the caBundle until dropAfter. */
  previous?: { caPem: string; dropAfter: Date } | undefined;
}

export interface ServingNames {
  dnsNames: string[];
  ipAddresses: string[];
}

export interface RotationTimings {
  /** Validity of generated CAs and serving certificates. */
  validityMs: number;
  /** Rotate when less than this is left of the serving cert or the CA (default validity / 3). */
  rotateBeforeMs: number;
  /** How long the replaced CA stays in the caBundle after the switch. */
  overlapMs: number;
  /** Wait between the caBundle patch and serving the new cert (apiserver reload). */
  propagationMs: number;
  /** How often every replica re-reads the Secret; must be well below overlapMs. */
  resyncMs: number;
}

export const SECRET_KEYS = {
  caCert: 'ca.crt',
  caKey: 'ca.key',
  tlsCert: 'tls.crt',
  tlsKey: 'tls.key',
  nextCaCert: 'next-ca.crt',
  nextCaKey: 'next-ca.key',
  nextTlsCert: 'next-tls.crt',
  nextTlsKey: 'next-tls.key',
  previousCaCert: 'previous-ca.crt',
} as const;

export const NEXT_STAGED_AT_ANNOTATION = 'netmesh.io/next-staged-at';
export const PREVIOUS_DROP_AFTER_ANNOTATION = 'netmesh.io/previous-ca-drop-after';
export const DEFAULT_TLS_SECRET_NAME = 'netmesh-webhook-tls';
export const DEFAULT_SERVICE_NAME = 'netmesh-webhook';
export const DEFAULT_CERT_VALIDITY_MS = 365 * 24 * 3600 * 1000;

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));

/** Defaults scale with the validity so tests can run a whole rotation with minutes of validity. */
export function rotationTimings(
  validityMs: number,
  overrides: Partial<RotationTimings> = {},
): RotationTimings {
  const resyncMs = overrides.resyncMs ?? clamp(validityMs / 60, 1000, 60_000);
  return {
    validityMs,
    rotateBeforeMs: overrides.rotateBeforeMs ?? validityMs / 3,
    overlapMs: overrides.overlapMs ?? clamp(validityMs / 12, 5 * resyncMs, 3_600_000),
    propagationMs: overrides.propagationMs ?? clamp(validityMs / 60, 1000, 5000),
    resyncMs,
  };
}

/** `<service>.<namespace>.svc` and its cluster.local form, plus loopback names for local runs. */
export function servingNames(opts: {
  serviceName: string;
  namespace: string;
  local?: boolean;
  extraDnsNames?: string[];
  extraIpAddresses?: string[];
}): ServingNames {
  const dns = [
    `${opts.serviceName}.${opts.namespace}.svc`,
    `${opts.serviceName}.${opts.namespace}.svc.cluster.local`,
  ];
  const ips: string[] = [];
  if (opts.local) {
    dns.push('localhost');
    ips.push('127.0.0.1');
  }
  dns.push(...(opts.extraDnsNames ?? []));
  ips.push(...(opts.extraIpAddresses ?? []));
  return { dnsNames: [...new Set(dns)], ipAddresses: [...new Set(ips)] };
}

export function mergeNames(a: ServingNames, b: ServingNames): ServingNames {
  return {
    dnsNames: [...new Set([...a.dnsNames, ...b.dnsNames])],
    ipAddresses: [...new Set([...a.ipAddresses, ...b.ipAddresses])],
  };
}

/** node-forge writes CRLF; Kubernetes tools and humans expect LF, and bundles compare as text. */
export function lf(pem: string): string {
  return pem.replace(/\r\n/g, '\n');
}

function lfPair<T extends { certPem: string; keyPem: string }>(pair: T): T {
  return { ...pair, certPem: lf(pair.certPem), keyPem: lf(pair.keyPem) };
}

export function issueServing(
  ca: CertificateAuthority,
  names: ServingNames,
  validityMs: number,
  now: Date,
): IssuedCert {
  const cert = issueCertificate(ca, {
    commonName: names.dnsNames[0] ?? names.ipAddresses[0] ?? 'netmesh-webhook',
    dnsNames: names.dnsNames,
    ipAddresses: names.ipAddresses,
    usage: 'server',
    // Valid from a minute ago (clock skew between replicas and the apiserver) until now + validity.
    validForMs: validityMs + 60_000,
    notBefore: new Date(now.getTime() - 60_000),
  });
  return lfPair(cert);
}

export function generateCertBundle(names: ServingNames, validityMs: number, now: Date): CertBundle {
  const notBefore = new Date(now.getTime() - 60_000);
  // The CN is encoded as a PrintableString: letters, digits and ' ()+,-./:=?' only (no '@').
  const ca = createCertificateAuthority(`netmesh-webhook-ca-${Math.floor(now.getTime() / 1000)}`, {
    // The CA outlives its serving cert by a minute, so the cert never chains to an expired CA.
    validForMs: validityMs + 120_000,
    notBefore,
  });
  return { ca: lfPair(ca), serving: issueServing(ca, names, validityMs, now) };
}

/** The PEM caBundle for a state: previous CA (during the overlap), current CA, staged CA. */
export function caBundleFor(state: CertState): string {
  const pems = [state.previous?.caPem, state.current.ca.certPem, state.next?.bundle.ca.certPem]
    .filter((p): p is string => p !== undefined)
    .flatMap((p) => splitPemBundle(lf(p)));
  return [...new Set(pems)].join('');
}

/** The certificates of a PEM bundle, normalised for comparison. */
export function bundleCerts(bundle: string): string[] {
  return splitPemBundle(bundle.replace(/\r\n/g, '\n'));
}

export function bundleContains(bundle: string, caPem: string): boolean {
  const want = bundleCerts(caPem)[0];
  return want !== undefined && bundleCerts(bundle).includes(want);
}

export function sameBundle(a: string, b: string): boolean {
  const x = bundleCerts(a);
  const y = bundleCerts(b);
  return x.length === y.length && x.every((c, i) => c === y[i]);
}

function namesCovered(certPem: string, names: ServingNames): boolean {
  const info = inspectCertificate(certPem);
  return (
    names.dnsNames.every((n) => info.dnsNames.includes(n)) &&
    names.ipAddresses.every((n) => info.ipAddresses.includes(n))
  );
}

export function certNames(certPem: string): ServingNames {
  const info = inspectCertificate(certPem);
  return { dnsNames: info.dnsNames, ipAddresses: info.ipAddresses };
}

export type CertAction =
  | { kind: 'create'; reason: string }
  | { kind: 'reissue-serving'; reason: string }
  | { kind: 'stage'; reason: string }
  | { kind: 'promote' }
  | { kind: 'wait-propagation'; until: Date }
  | { kind: 'drop-previous' }
  | { kind: 'none' };

export interface PlanInput {
  /** The Secret's content; undefined when absent or unreadable. */
  state: CertState | undefined;
  now: Date;
  timings: RotationTimings;
  names: ServingNames;
  /** Whether the caBundle in the webhook configuration holds the staged CA (true when there is no configuration). */
  bundleHasNext: boolean;
  /** An explicit request (rotateNow, tests) to rotate regardless of the remaining validity. */
  forceRotate?: boolean;
}

/** What to do next with the shared certificates; one step at a time, re-planned after each write. */
export function planCertificates(input: PlanInput): CertAction {
  const { state, now, timings } = input;
  if (state === undefined) return { kind: 'create', reason: 'no certificates yet' };
  const serving = inspectCertificate(state.current.serving.certPem);
  const ca = inspectCertificate(state.current.ca.certPem);
  const t = now.getTime();
  if (serving.notAfter.getTime() <= t || ca.notAfter.getTime() <= t) {
    // Nothing trusts an expired certificate anyway: no overlap to preserve.
    return { kind: 'create', reason: 'the serving certificate or its CA has expired' };
  }
  if (!isSignedBy(state.current.serving.certPem, state.current.ca.certPem)) {
    return { kind: 'reissue-serving', reason: 'the serving certificate is not signed by the stored CA' };
  }
  if (!namesCovered(state.current.serving.certPem, input.names)) {
    return { kind: 'reissue-serving', reason: 'the serving certificate lacks required SANs' };
  }
  if (state.next) {
    const until = new Date(state.next.stagedAt.getTime() + timings.propagationMs);
    if (input.bundleHasNext && t >= until.getTime()) return { kind: 'promote' };
    return { kind: 'wait-propagation', until };
  }
  if (state.previous) {
    if (t >= state.previous.dropAfter.getTime()) return { kind: 'drop-previous' };
    // A new rotation waits for the previous one's window, so the bundle never holds three CAs.
    return { kind: 'none' };
  }
  if (input.forceRotate) return { kind: 'stage', reason: 'rotation requested' };
  const left = Math.min(serving.notAfter.getTime(), ca.notAfter.getTime()) - t;
  if (left < timings.rotateBeforeMs) {
    return {
      kind: 'stage',
      reason: `the serving certificate expires at ${serving.notAfter.toISOString()} (less than ${Math.round(timings.rotateBeforeMs / 1000)} s left)`,
    };
  }
  return { kind: 'none' };
}

/** The state after an action (pure; generation is injected so tests stay fast). */
export function applyCertAction(
  state: CertState | undefined,
  action: CertAction,
  ctx: { now: Date; timings: RotationTimings; names: ServingNames; generate?: typeof generateCertBundle },
): CertState | undefined {
  const generate = ctx.generate ?? generateCertBundle;
  switch (action.kind) {
    case 'create':
      return { current: generate(ctx.names, ctx.timings.validityMs, ctx.now) };
    case 'reissue-serving': {
      if (!state) return undefined;
      const names = mergeNames(certNames(state.current.serving.certPem), ctx.names);
      return {
        ...state,
        current: {
          ca: state.current.ca,
          serving: issueServing(state.current.ca, names, ctx.timings.validityMs, ctx.now),
        },
      };
    }
    case 'stage': {
      if (!state) return undefined;
      const names = mergeNames(certNames(state.current.serving.certPem), ctx.names);
      return {
        ...state,
        next: { bundle: generate(names, ctx.timings.validityMs, ctx.now), stagedAt: ctx.now },
      };
    }
    case 'promote':
      if (!state?.next) return state;
      return {
        current: state.next.bundle,
        previous: {
          caPem: state.current.ca.certPem,
          dropAfter: new Date(ctx.now.getTime() + ctx.timings.overlapMs),
        },
      };
    case 'drop-previous':
      if (!state) return undefined;
      return { current: state.current, next: state.next };
    default:
      return state;
  }
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined): string | undefined =>
  s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8');

export interface SecretContent {
  /** base64 values, as in a Secret's `data`; null deletes a key in a merge patch. */
  data: Record<string, string | null>;
  annotations: Record<string, string | null>;
}

/** The Secret `data` and annotations for a state; absent parts are null (deleted by a merge patch). */
export function secretContent(state: CertState): SecretContent {
  const k = SECRET_KEYS;
  return {
    data: {
      [k.caCert]: b64(state.current.ca.certPem),
      [k.caKey]: b64(state.current.ca.keyPem),
      [k.tlsCert]: b64(state.current.serving.certPem),
      [k.tlsKey]: b64(state.current.serving.keyPem),
      [k.nextCaCert]: state.next ? b64(state.next.bundle.ca.certPem) : null,
      [k.nextCaKey]: state.next ? b64(state.next.bundle.ca.keyPem) : null,
      [k.nextTlsCert]: state.next ? b64(state.next.bundle.serving.certPem) : null,
      [k.nextTlsKey]: state.next ? b64(state.next.bundle.serving.keyPem) : null,
      [k.previousCaCert]: state.previous ? b64(state.previous.caPem) : null,
    },
    annotations: {
      [NEXT_STAGED_AT_ANNOTATION]: state.next ? state.next.stagedAt.toISOString() : null,
      [PREVIOUS_DROP_AFTER_ANNOTATION]: state.previous ? state.previous.dropAfter.toISOString() : null,
    },
  };
}

function isPem(text: string | undefined, kind: 'CERTIFICATE' | 'KEY'): text is string {
  if (text === undefined) return false;
  return kind === 'CERTIFICATE'
    ? /-----BEGIN CERTIFICATE-----/.test(text)
    : /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text);
}

function parseDate(value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/**
 * Reads the state back from a Secret's data and annotations. Returns undefined when the
 * current certificates are missing or unreadable (the Secret is then rewritten); a damaged
 * staged or previous part is dropped rather than trusted.
 */
export function parseSecretContent(
  data: Record<string, string> | undefined,
  annotations: Record<string, string> | undefined,
): CertState | undefined {
  const d = data ?? {};
  const a = annotations ?? {};
  const k = SECRET_KEYS;
  const ca = { certPem: unb64(d[k.caCert]), keyPem: unb64(d[k.caKey]) };
  const serving = { certPem: unb64(d[k.tlsCert]), keyPem: unb64(d[k.tlsKey]) };
  if (!isPem(ca.certPem, 'CERTIFICATE') || !isPem(ca.keyPem, 'KEY')) return undefined;
  if (!isPem(serving.certPem, 'CERTIFICATE') || !isPem(serving.keyPem, 'KEY')) return undefined;
  try {
    inspectCertificate(ca.certPem);
    inspectCertificate(serving.certPem);
  } catch {
    return undefined;
  }
  const state: CertState = {
    current: {
      ca: { certPem: ca.certPem, keyPem: ca.keyPem },
      serving: { certPem: serving.certPem, keyPem: serving.keyPem },
    },
  };
  const next = {
    ca: { certPem: unb64(d[k.nextCaCert]), keyPem: unb64(d[k.nextCaKey]) },
    serving: { certPem: unb64(d[k.nextTlsCert]), keyPem: unb64(d[k.nextTlsKey]) },
    stagedAt: parseDate(a[NEXT_STAGED_AT_ANNOTATION]),
  };
  if (
    isPem(next.ca.certPem, 'CERTIFICATE') &&
    isPem(next.ca.keyPem, 'KEY') &&
    isPem(next.serving.certPem, 'CERTIFICATE') &&
    isPem(next.serving.keyPem, 'KEY') &&
    next.stagedAt !== undefined
  ) {
    state.next = {
      bundle: {
        ca: { certPem: next.ca.certPem, keyPem: next.ca.keyPem },
        serving: { certPem: next.serving.certPem, keyPem: next.serving.keyPem },
      },
      stagedAt: next.stagedAt,
    };
  }
  const previousPem = unb64(d[k.previousCaCert]);
  const dropAfter = parseDate(a[PREVIOUS_DROP_AFTER_ANNOTATION]);
  if (isPem(previousPem, 'CERTIFICATE') && dropAfter !== undefined) {
    state.previous = { caPem: previousPem, dropAfter };
  }
  return state;
}
