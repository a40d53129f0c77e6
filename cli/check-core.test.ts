import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { renderProbe } from '../runtime/health-server.ts';
import {
  leaseVerdict,
  operatorReadiness,
  parseReadyz,
  podNamespaceVerdict,
  readyEndpoints,
  renderChecks,
  requiredPermissions,
  restartTarget,
  uninjectedPods,
} from './check-core.ts';

describe('leaseVerdict', () => {
  const now = Date.parse('2026-01-01T00:00:30Z');
  test('a holder renewed within the lease duration leads', () => {
    const v = leaseVerdict(
      {
        spec: {
          holderIdentity: 'netmesh-abc',
          leaseDurationSeconds: 15,
          renewTime: '2026-01-01T00:00:25.000000Z' as never,
        },
      },
      now,
    );
    assert.deepEqual(v, { ok: true, holder: 'netmesh-abc', message: 'held by netmesh-abc, renewed 5s ago' });
  });
  test('no holder, or a stale renewal, is no leader', () => {
    assert.equal(leaseVerdict({ spec: {} }, now).ok, false);
    assert.match(leaseVerdict({ spec: { holderIdentity: '' } }, now).message, /no holder/);
    const stale = leaseVerdict(
      {
        spec: {
          holderIdentity: 'x',
          leaseDurationSeconds: 15,
          renewTime: '2026-01-01T00:00:00.000000Z' as never,
        },
      },
      now,
    );
    assert.equal(stale.ok, false);
    assert.match(stale.message, /last renewed 30s ago \(lease duration 15s\): the leader is gone/);
  });
});

describe('readyz', () => {
  test('reads what runtime/health-server.ts writes', () => {
    const { body } = renderProbe(
      'readyz',
      [
        { name: 'startup', ok: true },
        { name: 'webhook', ok: true, detail: 'template: ok' },
        {
          name: 'operator',
          ok: false,
          reason: 'leader: controller caches not synced or workers not running',
        },
      ],
      true,
    );
    assert.deepEqual(parseReadyz(body), [
      { name: 'startup', ok: true },
      { name: 'webhook', ok: true, detail: 'template: ok' },
      { name: 'operator', ok: false, detail: 'leader: controller caches not synced or workers not running' },
    ]);
    assert.deepEqual(operatorReadiness(body), {
      ok: false,
      message: 'leader not ready: leader: controller caches not synced or workers not running',
    });
    const good = renderProbe('readyz', [{ name: 'operator', ok: true }], true).body;
    assert.equal(operatorReadiness(good).ok, true);
  });
  test("`netmesh run` always passes its operator check: the detail says the operator's state", () => {
    const run = (detail: string) =>
      operatorReadiness(renderProbe('readyz', [{ name: 'operator', ok: true, detail }], true).body);
    assert.deepEqual(run('leader, working'), { ok: true, message: 'caches synced and workers running' });
    assert.deepEqual(run('standby'), {
      ok: false,
      message: 'the Lease holder reports itself a standby (the Lease is changing hands?)',
    });
    assert.deepEqual(run('leader: controller caches not synced or workers not running'), {
      ok: false,
      message: 'leader not ready: leader: controller caches not synced or workers not running',
    });
    assert.match(operatorReadiness('ok\n').message, /no "operator" check/);
  });
});

describe('readyEndpoints', () => {
  test('the Service port by name, ready endpoints only', () => {
    const slices = [
      {
        ports: [{ name: 'https-webhook', port: 8443 }],
        endpoints: [
          { addresses: ['10.0.0.1'], conditions: { ready: true } },
          { addresses: ['10.0.0.2'], conditions: { ready: false } },
          { addresses: ['10.0.0.3'] },
        ],
      },
      { ports: [{ name: 'other', port: 1 }], endpoints: [{ addresses: ['10.0.0.9'] }] },
    ];
    assert.deepEqual(readyEndpoints({ name: 'https-webhook', port: 443 }, slices), [
      { host: '10.0.0.1', port: 8443 },
      { host: '10.0.0.3', port: 8443 },
    ]);
    assert.deepEqual(
      readyEndpoints({ name: 'https-webhook', port: 443 }, [{ ports: [], endpoints: [] }]),
      [],
    );
  });
});

describe('uninjectedPods and restartTarget', () => {
  const pod = (name: string, extra: Partial<V1Pod> = {}): V1Pod => ({
    metadata: { name, ...extra.metadata },
    spec: { containers: [], ...extra.spec },
    status: { phase: 'Running', ...extra.status },
  });
  test('only Pods that should carry the sidecar and do not', () => {
    const pods = [
      pod('injected', { metadata: { name: 'injected', annotations: { 'netmesh.io/status': '{}' } } }),
      pod('opted-out', { metadata: { name: 'opted-out', labels: { 'netmesh.io/inject': 'false' } } }),
      pod('host', { spec: { containers: [], hostNetwork: true } }),
      pod('mirror', { metadata: { name: 'mirror', annotations: { 'kubernetes.io/config.mirror': 'x' } } }),
      pod('done', { status: { phase: 'Succeeded' } }),
      pod('missing'),
    ];
    assert.deepEqual(
      uninjectedPods(pods).map((p) => p.metadata?.name),
      ['missing'],
    );
  });
  test('the workload to restart', () => {
    const owned = (kind: string, name: string, labels: Record<string, string> = {}): V1Pod => ({
      metadata: {
        name: 'p',
        labels,
        ownerReferences: [{ apiVersion: 'apps/v1', kind, name, uid: 'u', controller: true }],
      },
    });
    assert.equal(
      restartTarget(owned('ReplicaSet', 'web-7d4b9c', { 'pod-template-hash': '7d4b9c' })),
      'deploy/web',
    );
    assert.equal(restartTarget(owned('StatefulSet', 'db')), 'sts/db');
    assert.equal(restartTarget({ metadata: { name: 'bare' } }), undefined);
  });
});

describe('requiredPermissions', () => {
  test('the chart RBAC; Secret and webhook configuration only with self-managed certificates', () => {
    const self = requiredPermissions({
      namespace: 'ns',
      fullname: 'netmesh',
      tlsSecret: 'tls',
      selfManagedCerts: true,
    });
    const cm = requiredPermissions({
      namespace: 'ns',
      fullname: 'netmesh',
      tlsSecret: 'tls',
      selfManagedCerts: false,
    });
    assert.ok(self.some((p) => p.attributes.resource === 'secrets' && p.attributes.name === 'tls'));
    assert.ok(!cm.some((p) => p.attributes.resource === 'secrets'));
    assert.ok(cm.some((p) => p.attributes.resource === 'leases' && p.attributes.name === 'netmesh-operator'));
  });
});

describe('renderChecks', () => {
  test('one line per check, hints for what did not pass, a summary', () => {
    const text = renderChecks(
      [
        { name: 'cluster', status: 'ok', message: 'Kubernetes v1.34.4', hint: 'not shown' },
        { name: 'operator leader', status: 'fail', message: 'no holder', hint: 'is netmesh running?' },
        { name: 'RBAC', status: 'skip', message: 'not allowed' },
      ],
      'netmesh check',
    );
    assert.equal(
      text,
      [
        'netmesh check',
        '',
        '✔ cluster: Kubernetes v1.34.4',
        '✖ operator leader: no holder',
        '    hint: is netmesh running?',
        '- RBAC: not allowed',
        '',
        '3 checks: 1 passed, 1 failed, 0 warnings, 1 skipped',
      ].join('\n'),
    );
  });
});

describe('podNamespaceVerdict (check -n)', () => {
  const opts = { netmeshNamespace: 'mesh', excludedByConfig: ['legacy'] };
  const enabled = { 'netmesh.io/injection': 'enabled' };
  test('a labelled namespace is looked at', () => {
    assert.equal(podNamespaceVerdict('shop', enabled, opts), undefined);
  });
  test('a namespace that does not exist fails', () => {
    assert.deepEqual(podNamespaceVerdict('shpo', undefined, opts), {
      status: 'fail',
      message: 'namespace shpo not found',
      hint: 'check -n/--namespace',
    });
  });
  test('a namespace never injected, or not labelled, is skipped and says why', () => {
    assert.match(
      podNamespaceVerdict('kube-system', enabled, opts)!.message,
      /never injected \(a system namespace\)/,
    );
    assert.match(
      podNamespaceVerdict('mesh', enabled, opts)!.message,
      /the namespace netmesh is installed in/,
    );
    assert.match(
      podNamespaceVerdict('legacy', enabled, opts)!.message,
      /excluded by the webhook configuration/,
    );
    const unlabelled = podNamespaceVerdict('shop', { 'netmesh.io/injection': 'disabled' }, opts)!;
    assert.equal(unlabelled.status, 'skip');
    assert.match(unlabelled.hint!, /kubectl label namespace shop netmesh.io\/injection=enabled/);
  });
});
