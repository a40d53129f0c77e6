import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import {
  CONFLIST_KEY,
  configMapName,
  conflictMessage,
  controlledBy,
  desiredMaterialization,
  desiredStatus,
  foreignHolder,
  MAX_MESSAGE_LENGTH,
  materializationUpToDate,
  type Network,
  type Outcome,
  overlapMessage,
  reindexNetwork,
  sameStatus,
  transitionEvent,
} from './model.ts';
import { parseCidr, validateNetworkSpec } from './network/cidr.ts';
import { OverlapIndex } from './network/overlap-index.ts';

const net = (over: Partial<Network> = {}): Network => ({
  apiVersion: 'netmesh.io/v1',
  kind: 'Network',
  metadata: {
    name: 'example-network',
    namespace: 'default',
    uid: 'u-1',
    generation: 3,
    creationTimestamp: new Date('2026-01-01T00:00:00Z'),
  },
  spec: { cidr: '192.168.0.0/16', gateway: '192.168.0.1' },
  ...over,
});

const valid = () => {
  const v = validateNetworkSpec({ cidr: '192.168.0.0/16', gateway: '192.168.0.1' });
  assert.ok(v.ok);
  return v;
};

describe('desiredStatus', () => {
  const now = new Date('2026-02-02T10:00:00.123Z');
  test('Ready outcome: condition, phase, usable count, reference, generation', () => {
    const v = valid();
    const s = desiredStatus(
      net(),
      {
        kind: 'Ready',
        ref: { apiVersion: 'v1', kind: 'ConfigMap', name: 'example-network-cni', namespace: 'default' },
        validation: v,
      },
      now,
    );
    assert.equal(s.phase, 'Ready');
    assert.equal(s.observedGeneration, 3);
    assert.equal(s.usableAddresses, '65534');
    assert.equal(s.gateway, '192.168.0.1');
    assert.deepEqual(s.materialized, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      name: 'example-network-cni',
      namespace: 'default',
    });
    assert.deepEqual(s.conditions, [
      {
        type: 'Ready',
        status: 'True',
        reason: 'Materialized',
        message: 'materialized as ConfigMap default/example-network-cni',
        lastTransitionTime: '2026-02-02T10:00:00Z',
        observedGeneration: 3,
      },
    ]);
  });

  test('Invalid outcome carries the message and no usable count', () => {
    const s = desiredStatus(net(), { kind: 'Invalid', message: 'bad cidr' }, now);
    assert.equal(s.phase, 'Invalid');
    assert.equal(s.conditions?.[0]?.status, 'False');
    assert.equal(s.conditions?.[0]?.reason, 'Invalid');
    assert.equal(s.usableAddresses, undefined);
  });

  test('lastTransitionTime is kept while the condition status does not change', () => {
    const first = desiredStatus(net(), { kind: 'Invalid', message: 'a' }, now);
    const later = desiredStatus(
      net({ status: first }),
      { kind: 'Invalid', message: 'b' },
      new Date('2030-01-01T00:00:00Z'),
    );
    assert.equal(later.conditions?.[0]?.lastTransitionTime, '2026-02-02T10:00:00Z');
    const ready = desiredStatus(
      net({ status: first }),
      {
        kind: 'Ready',
        ref: { apiVersion: 'v1', kind: 'ConfigMap', name: 'x', namespace: 'default' },
        validation: valid(),
      },
      new Date('2030-01-01T00:00:00Z'),
    );
    assert.equal(ready.conditions?.[0]?.lastTransitionTime, '2030-01-01T00:00:00Z');
  });

  test('sameStatus ignores key order and undefined fields, so an unchanged status is not rewritten', () => {
    const s = desiredStatus(net(), { kind: 'Invalid', message: 'a' }, now);
    const reordered = JSON.parse(
      JSON.stringify({ conditions: s.conditions, phase: s.phase, observedGeneration: s.observedGeneration }),
    );
    assert.ok(sameStatus(reordered, s));
    assert.ok(!sameStatus(undefined, s));
    assert.ok(!sameStatus({ ...s, phase: 'Ready' }, s));
  });
});

describe('transitionEvent', () => {
  const now = new Date();
  const ready: Outcome = {
    kind: 'Ready',
    ref: { apiVersion: 'v1', kind: 'ConfigMap', name: 'x', namespace: 'd' },
    validation: valid(),
  };
  test('first Ready is a Normal Ready event; repeating it is silent', () => {
    const s = desiredStatus(net(), ready, now);
    assert.deepEqual(transitionEvent(undefined, s)?.reason, 'Ready');
    assert.equal(transitionEvent(s, desiredStatus(net({ status: s }), ready, now)), undefined);
  });
  test('Invalid and Overlap are Warning events with the reason', () => {
    const inv = desiredStatus(net(), { kind: 'Invalid', message: 'm' }, now);
    assert.deepEqual(transitionEvent(undefined, inv), { type: 'Warning', reason: 'Invalid', message: 'm' });
    const idx = new OverlapIndex();
    idx.upsert('a/old', parseCidr('192.168.0.0/24'), {
      creationTimestamp: '2020-01-01T00:00:00Z',
      key: 'a/old',
    });
    const blocker = idx.get('a/old')!;
    const ov = desiredStatus(
      net(),
      { kind: 'Overlap', blocker, message: overlapMessage(blocker), validation: valid() },
      now,
    );
    const ev = transitionEvent(inv, ov);
    assert.equal(ev?.type, 'Warning');
    assert.equal(ev?.reason, 'Overlap');
    assert.match(ev!.message, /a\/old \(192\.168\.0\.0\/24/);
  });
});

describe('materialization', () => {
  test('ConfigMap mode: <name>-cni with the conflist, labels and a controller owner reference', () => {
    const { object, ref } = desiredMaterialization(net(), valid(), 'ConfigMap');
    assert.equal(ref.name, configMapName('example-network'));
    assert.equal(object.kind, 'ConfigMap');
    assert.equal(object.metadata?.ownerReferences?.[0]?.controller, true);
    assert.equal(object.metadata?.ownerReferences?.[0]?.uid, 'u-1');
    const conflist = JSON.parse(object.data![CONFLIST_KEY]!);
    assert.equal(conflist.plugins[0].type, 'bridge');
    assert.deepEqual(conflist.plugins[0].ipam.ranges, [
      [{ subnet: '192.168.0.0/16', gateway: '192.168.0.1' }],
    ]);
  });

  test('NAD mode: same name, spec.config is a single-plugin CNI config', () => {
    const { object, ref } = desiredMaterialization(net(), valid(), 'NetworkAttachmentDefinition');
    assert.equal(ref.kind, 'NetworkAttachmentDefinition');
    assert.equal(ref.name, 'example-network');
    const config = JSON.parse(object.spec!.config!);
    assert.equal(config.type, 'bridge');
    assert.equal(config.ipam.type, 'host-local');
  });

  test('up-to-date check detects edits, missing objects, foreign owners and changed CIDRs, not foreign keys', () => {
    const { object } = desiredMaterialization(net(), valid(), 'ConfigMap');
    const live = JSON.parse(JSON.stringify(object));
    assert.ok(materializationUpToDate(live, object));
    assert.ok(!materializationUpToDate(undefined, object));
    assert.ok(!materializationUpToDate({ ...live, data: { [CONFLIST_KEY]: '{}' } }, object));
    assert.ok(
      materializationUpToDate({ ...live, data: { ...live.data, extra: 'x' } }, object),
      'foreign keys are not drift',
    );
    assert.ok(
      !materializationUpToDate({ ...live, metadata: { ...live.metadata, ownerReferences: [] } }, object),
    );
    const moved = validateNetworkSpec({ cidr: '10.1.0.0/16' });
    assert.ok(moved.ok);
    assert.ok(!materializationUpToDate(live, desiredMaterialization(net(), moved, 'ConfigMap').object));
  });
});

describe('reindexNetwork: the index after any sequence of edits is the one a fresh operator builds', () => {
  const CIDRS = [
    '10.0.0.0/16',
    '10.0.1.0/24',
    '10.0.2.0/24',
    '10.0.1.128/25',
    '10.1.0.0/16',
    'fd00::/64',
    'fd00::/48',
  ];
  const KEYS = ['a/n0', 'a/n1', 'a/n2', 'b/n0', 'b/n3', 'b/n4'];
  const TIMES = ['2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z', '2026-01-01T00:00:02Z'];

  // Deterministic PRNG (mulberry32) so a failure reproduces.
  const rng = (seed: number) => () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const network = (key: string, cidr: string, validGateway: boolean, created: string): Network => {
    const [namespace, name] = key.split('/') as [string, string];
    return {
      metadata: { namespace, name, creationTimestamp: created as unknown as Date },
      // The address part of the CIDR is its network (IPv4) or subnet-router (IPv6) address:
      // valid for CEL, Invalid for the operator.
      spec: validGateway ? { cidr } : { cidr, gateway: cidr.split('/')[0] },
    };
  };
  /** Verdict of every key: Invalid (not indexed), Ready, or the blocker's key. */
  const verdicts = (index: OverlapIndex) =>
    new Map(KEYS.map((k) => [k, !index.has(k) ? 'Invalid' : (index.blockerFor(k)?.key ?? 'Ready')]));
  const fresh = (objects: Map<string, Network>) => {
    const index = new OverlapIndex();
    for (const [k, n] of objects) reindexNetwork(index, k, n);
    return index;
  };

  for (const seed of [1, 2, 3, 4, 5]) {
    test(`random create/edit-gateway/edit-cidr/delete sequence, seed ${seed}`, () => {
      const random = rng(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
      const objects = new Map<string, Network>();
      const index = new OverlapIndex();
      for (let step = 0; step < 1500; step++) {
        const key = pick(KEYS);
        const current = objects.get(key);
        const before = verdicts(fresh(objects));
        const op = current ? pick(['gateway', 'gateway', 'cidr', 'delete'] as const) : 'create';
        let next: Network | undefined;
        if (op === 'create') next = network(key, pick(CIDRS), random() < 0.6, pick(TIMES));
        else if (op === 'delete') next = undefined;
        else {
          const cidr = String(current!.spec!.cidr);
          const validGateway = current!.spec!.gateway === undefined;
          const created = String(current!.metadata!.creationTimestamp);
          next =
            op === 'gateway'
              ? network(key, cidr, !validGateway, created)
              : network(key, pick(CIDRS), validGateway, created);
        }
        if (next) objects.set(key, next);
        else objects.delete(key);
        const affected = new Set(reindexNetwork(index, key, next));
        const expected = verdicts(fresh(objects));
        assert.deepEqual(verdicts(index), expected, `step ${step}: ${op} ${key}`);
        for (const k of KEYS) {
          if (before.get(k) !== expected.get(k))
            assert.ok(
              affected.has(k),
              `step ${step}: ${op} ${key} changed ${k}'s verdict but did not enqueue it`,
            );
        }
      }
    });
  }
});

describe('foreignHolder: netmesh writes only objects carrying its ownership mark', () => {
  const n = net();
  const ref = (over: Partial<k8s.V1OwnerReference> = {}): k8s.V1OwnerReference => ({
    apiVersion: 'netmesh.io/v1',
    kind: 'Network',
    name: 'example-network',
    uid: 'u-1',
    controller: true,
    ...over,
  });
  const obj = (ownerReferences?: k8s.V1OwnerReference[], labels?: Record<string, string>) => ({
    metadata: { name: 'example-network-cni', namespace: 'default', ownerReferences, labels },
  });
  const ours = { 'app.kubernetes.io/managed-by': 'netmesh-operator' };

  test("this Network's controller reference: ours, label or not", () => {
    assert.equal(foreignHolder(obj([ref()]), n), undefined);
    assert.equal(foreignHolder(obj([ref()], ours), n), undefined);
    assert.equal(controlledBy(obj([ref()]), n), true);
  });

  test('an earlier Network of the same name, with our label: ours to adopt', () => {
    assert.equal(foreignHolder(obj([ref({ uid: 'u-0' })], ours), n), undefined);
    assert.equal(controlledBy(obj([ref({ uid: 'u-0' })], ours), n), false, 'but never deleted as ours');
  });

  test("everything else is someone else's", () => {
    assert.match(foreignHolder(obj(), n)!, /not created by netmesh/);
    assert.match(
      foreignHolder(obj(undefined, ours), n)!,
      /not created by netmesh/,
      'a copied label is no mark',
    );
    assert.match(foreignHolder(obj([ref({ uid: 'u-0' })]), n)!, /controlled by Network example-network/);
    assert.match(foreignHolder(obj([ref({ controller: false })]), n)!, /not created by netmesh/);
    assert.match(
      foreignHolder(obj([ref({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'x', uid: 'd' })], ours), n)!,
      /controlled by Deployment x/,
    );
    assert.match(
      conflictMessage(
        { apiVersion: 'v1', kind: 'ConfigMap', name: 'example-network-cni', namespace: 'default' },
        'was not created by netmesh',
      ),
      /^ConfigMap default\/example-network-cni already exists and was not created by netmesh/,
    );
  });
});

describe('bad inputs never make a status or object the apiserver refuses', () => {
  test('a condition message is bounded whatever the outcome quotes', () => {
    const s = desiredStatus(net(), { kind: 'Invalid', message: `cidr "${'x'.repeat(40_000)}"` }, new Date());
    const message = s.conditions?.[0]?.message ?? '';
    assert.equal(message.length, MAX_MESSAGE_LENGTH);
    assert.ok(message.endsWith('…'));
  });

  test('MaterializeFailed: Ready=False with the reason, the effective gateway, nothing materialised', () => {
    const s = desiredStatus(
      net(),
      {
        kind: 'MaterializeFailed',
        message: 'the apiserver refused ConfigMap default/x-cni (422): too long',
        validation: valid(),
      },
      new Date(),
    );
    assert.equal(s.phase, 'MaterializeFailed');
    assert.equal(s.conditions?.[0]?.status, 'False');
    assert.equal(s.conditions?.[0]?.reason, 'MaterializeFailed');
    assert.equal(s.gateway, '192.168.0.1');
    assert.equal(s.materialized, undefined);
  });

  test('the netmesh.io/network label only when the name is a valid label value', () => {
    const short = desiredMaterialization(net(), valid(), 'ConfigMap').object;
    assert.equal(short.metadata?.labels?.['netmesh.io/network'], 'example-network');
    const name = `long-${'n'.repeat(90)}`;
    const long = desiredMaterialization(
      net({ metadata: { ...net().metadata, name } }),
      valid(),
      'ConfigMap',
    ).object;
    assert.equal(long.metadata?.labels?.['netmesh.io/network'], undefined);
    assert.equal(long.metadata?.labels?.['app.kubernetes.io/managed-by'], 'netmesh-operator');
    assert.equal(long.metadata?.ownerReferences?.[0]?.name, name);
  });
});
