import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inspectCertificate, isSignedBy, splitPemBundle } from '../lib/pki.ts';
import {
  applyCertAction,
  bundleContains,
  type CertState,
  caBundleFor,
  generateCertBundle,
  parseSecretContent,
  planCertificates,
  rotationTimings,
  SECRET_KEYS,
  sameBundle,
  secretContent,
  servingNames,
} from './certs.ts';

const MINUTE = 60_000;
const names = servingNames({ serviceName: 'netmesh-webhook', namespace: 'netmesh-system', local: true });

function decodeData(data: Record<string, string | null>): Record<string, string> {
  return Object.fromEntries(Object.entries(data).filter((e): e is [string, string] => e[1] !== null));
}

describe('certificate generation', () => {
  test('serving names: the service DNS names, plus loopback for local runs', () => {
    assert.deepEqual(names.dnsNames, [
      'netmesh-webhook.netmesh-system.svc',
      'netmesh-webhook.netmesh-system.svc.cluster.local',
      'localhost',
    ]);
    assert.deepEqual(names.ipAddresses, ['127.0.0.1']);
    const inCluster = servingNames({ serviceName: 's', namespace: 'n' });
    assert.deepEqual(inCluster, { dnsNames: ['s.n.svc', 's.n.svc.cluster.local'], ipAddresses: [] });
  });

  test('a CA and a serving cert with SANs and the requested validity', () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const bundle = generateCertBundle(names, 10 * MINUTE, now);
    const ca = inspectCertificate(bundle.ca.certPem);
    const serving = inspectCertificate(bundle.serving.certPem);
    assert.equal(ca.isCA, true);
    assert.equal(serving.isCA, false);
    assert.deepEqual(serving.dnsNames, names.dnsNames);
    assert.deepEqual(serving.ipAddresses, ['127.0.0.1']);
    assert.equal(serving.commonName, 'netmesh-webhook.netmesh-system.svc');
    assert.ok(isSignedBy(bundle.serving.certPem, bundle.ca.certPem));
    // Valid from a minute before now (clock skew), for the requested validity.
    assert.equal(serving.notBefore.getTime(), now.getTime() - MINUTE);
    assert.equal(serving.notAfter.getTime(), now.getTime() + 10 * MINUTE);
    assert.ok(ca.notAfter.getTime() >= serving.notAfter.getTime(), 'the CA outlives its serving cert');
  });

  test('timings scale with the validity', () => {
    const year = rotationTimings(365 * 24 * 60 * MINUTE);
    assert.equal(year.resyncMs, MINUTE);
    assert.equal(year.overlapMs, 60 * MINUTE);
    assert.equal(year.propagationMs, 5000);
    const short = rotationTimings(3 * MINUTE);
    assert.equal(short.rotateBeforeMs, MINUTE);
    assert.equal(short.resyncMs, 3000);
    assert.ok(short.overlapMs >= 5 * short.resyncMs, 'replicas re-read several times within the overlap');
    assert.ok(
      short.overlapMs < short.rotateBeforeMs,
      'the old CA leaves the bundle before the old cert expires',
    );
    assert.equal(rotationTimings(3 * MINUTE, { overlapMs: 1234 }).overlapMs, 1234);
  });
});

describe('rotation planning', () => {
  const timings = rotationTimings(30 * MINUTE, { propagationMs: 2000, overlapMs: 60_000 });
  const t0 = new Date('2030-01-01T00:00:00Z');
  const at = (ms: number): Date => new Date(t0.getTime() + ms);
  const ctx = (now: Date) => ({ now, timings, names });

  test('no Secret: create', () => {
    assert.equal(
      planCertificates({ state: undefined, now: t0, timings, names, bundleHasNext: true }).kind,
      'create',
    );
  });

  test('a full rotation: stage, wait for the bundle, promote, overlap, drop', () => {
    let state = applyCertAction(undefined, { kind: 'create', reason: '' }, ctx(t0))!;
    const firstCa = state.current.ca.certPem;
    const plan = (now: Date, bundleHasNext = true) =>
      planCertificates({ state, now, timings, names, bundleHasNext });
    assert.equal(plan(at(MINUTE)).kind, 'none');
    assert.equal(splitPemBundle(caBundleFor(state)).length, 1);

    // Less than a third of the validity left (valid until t0 + 30 min: due after t0 + 20 min).
    assert.equal(plan(at(20 * MINUTE - 1000)).kind, 'none');
    const due = plan(at(20 * MINUTE + 1));
    assert.equal(due.kind, 'stage');
    state = applyCertAction(state, due, ctx(at(20 * MINUTE)))!;
    assert.ok(state.next);
    assert.equal(state.current.ca.certPem, firstCa, 'still serving the old cert while staged');
    const staged = caBundleFor(state);
    assert.equal(splitPemBundle(staged).length, 2);
    assert.ok(bundleContains(staged, firstCa) && bundleContains(staged, state.next.bundle.ca.certPem));

    // Not before the bundle holding both is in the configuration and had time to propagate.
    assert.equal(plan(at(20 * MINUTE + 5000), false).kind, 'wait-propagation');
    assert.equal(plan(at(20 * MINUTE + 1000), true).kind, 'wait-propagation');
    const promote = plan(at(20 * MINUTE + 2000), true);
    assert.equal(promote.kind, 'promote');
    const nextCa = state.next.bundle.ca.certPem;
    state = applyCertAction(state, promote, ctx(at(20 * MINUTE + 2000)))!;
    assert.equal(state.current.ca.certPem, nextCa, 'serving the new cert');
    assert.equal(state.next, undefined);
    const overlap = caBundleFor(state);
    assert.ok(sameBundle(overlap, staged), 'the bundle keeps both CAs during the overlap');

    assert.equal(plan(at(20 * MINUTE + 2000 + 59_000)).kind, 'none');
    const drop = plan(at(20 * MINUTE + 2000 + 60_000));
    assert.equal(drop.kind, 'drop-previous');
    state = applyCertAction(state, drop, ctx(at(21 * MINUTE)))!;
    const final = caBundleFor(state);
    assert.equal(splitPemBundle(final).length, 1);
    assert.ok(bundleContains(final, nextCa));
    assert.ok(!bundleContains(final, firstCa));
    assert.equal(plan(at(22 * MINUTE)).kind, 'none');
  });

  test('a forced rotation waits for the previous overlap to end', () => {
    let state: CertState = applyCertAction(undefined, { kind: 'create', reason: '' }, ctx(t0))!;
    const force = (now: Date) =>
      planCertificates({ state, now, timings, names, bundleHasNext: true, forceRotate: true });
    assert.equal(force(at(1000)).kind, 'stage');
    state = applyCertAction(state, { kind: 'stage', reason: '' }, ctx(at(1000)))!;
    state = applyCertAction(state, { kind: 'promote' }, ctx(at(4000)))!;
    assert.equal(force(at(5000)).kind, 'none', 'three CAs never share the bundle');
    assert.equal(force(at(64_000)).kind, 'drop-previous');
  });

  test('missing SANs reissue the serving cert under the same CA', () => {
    const state = applyCertAction(undefined, { kind: 'create', reason: '' }, ctx(t0))!;
    const more = servingNames({ serviceName: 'other', namespace: 'ns' });
    const action = planCertificates({ state, now: at(1000), timings, names: more, bundleHasNext: true });
    assert.equal(action.kind, 'reissue-serving');
    const next = applyCertAction(state, action, { ...ctx(at(1000)), names: more })!;
    assert.equal(next.current.ca.certPem, state.current.ca.certPem);
    const info = inspectCertificate(next.current.serving.certPem);
    for (const n of [...names.dnsNames, ...more.dnsNames]) assert.ok(info.dnsNames.includes(n), n);
  });

  test('an expired certificate is replaced outright', () => {
    const state = applyCertAction(undefined, { kind: 'create', reason: '' }, ctx(t0))!;
    assert.equal(
      planCertificates({ state, now: at(40 * MINUTE), timings, names, bundleHasNext: true }).kind,
      'create',
    );
  });

  test('a serving cert from another CA is reissued', () => {
    const a = applyCertAction(undefined, { kind: 'create', reason: '' }, ctx(t0))!;
    const b = applyCertAction(undefined, { kind: 'create', reason: '' }, ctx(t0))!;
    const mixed: CertState = { current: { ca: a.current.ca, serving: b.current.serving } };
    assert.equal(
      planCertificates({ state: mixed, now: at(1000), timings, names, bundleHasNext: true }).kind,
      'reissue-serving',
    );
  });
});

describe('Secret layout', () => {
  const timings = rotationTimings(30 * MINUTE);
  const now = new Date();

  test('round trip through data and annotations, with staged and previous parts', () => {
    let state = applyCertAction(undefined, { kind: 'create', reason: '' }, { now, timings, names })!;
    state = applyCertAction(state, { kind: 'stage', reason: '' }, { now, timings, names })!;
    const content = secretContent(state);
    assert.equal(
      content.data[SECRET_KEYS.previousCaCert],
      null,
      'absent parts are deleted by the merge patch',
    );
    const parsed = parseSecretContent(decodeData(content.data), decodeData(content.annotations));
    assert.deepEqual(parsed, state);
    const promoted = applyCertAction(state, { kind: 'promote' }, { now, timings, names })!;
    const c2 = secretContent(promoted);
    assert.equal(c2.data[SECRET_KEYS.nextCaCert], null);
    assert.deepEqual(parseSecretContent(decodeData(c2.data), decodeData(c2.annotations)), promoted);
    // The serving pair is where cert-manager style consumers expect it.
    assert.match(Buffer.from(c2.data['tls.crt']!, 'base64').toString(), /BEGIN CERTIFICATE/);
    assert.match(Buffer.from(c2.data['ca.crt']!, 'base64').toString(), /BEGIN CERTIFICATE/);
  });

  test('an unreadable Secret parses as absent; a damaged staged part is dropped', () => {
    assert.equal(parseSecretContent(undefined, undefined), undefined);
    assert.equal(parseSecretContent({ 'tls.crt': 'bm9wZQ==' }, {}), undefined);
    const state = applyCertAction(undefined, { kind: 'create', reason: '' }, { now, timings, names })!;
    const data = decodeData(secretContent(state).data);
    data[SECRET_KEYS.nextCaCert] = data[SECRET_KEYS.caCert]!;
    const parsed = parseSecretContent(data, {});
    assert.ok(parsed);
    assert.equal(parsed.next, undefined);
  });
});
