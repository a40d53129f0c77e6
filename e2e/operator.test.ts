// The Network operator end to end: the real `netmesh operator` process against the real
// control plane (CRD applied from crds/, CEL validation by the apiserver, garbage collection
// by kube-controller-manager), running under the Helm chart's own ServiceAccount and RBAC
// (operator-only install), which proves the chart grants everything the operator uses.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { parse } from 'yaml';
import { installChart, serviceAccountKubeconfig, uninstallChart } from '../cluster/chart.ts';
import { type NetmeshProcess, startNetmesh } from '../cluster/netmesh-process.ts';
import { kubectl } from '../cluster/tools.ts';
import { CONFLIST_KEY, type Network } from '../operator/model.ts';
import {
  auditLog,
  expectFreshVerdicts,
  type GateRequest,
  metric,
  startAdmissionGate,
} from './operator-support.ts';
import { createNamespace, deleteNamespace, eventually, gone, useCluster } from './support.ts';

const GROUP = 'netmesh.io';
const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/**
 * kube-controller-manager's garbage collector starts watching a newly created CRD's resource
 * only at its next discovery resync (every 30 s): right after the CRD is (re)applied, the
 * dependents of a deleted Network may wait that long.
 */
const GC_TIMEOUT_MS = 60_000;
/** The chart's ServiceAccount, which the operator runs as. */
const OPERATOR_USER = 'system:serviceaccount:netmesh-system:netmesh';

describe('network operator', () => {
  const h = useCluster();
  let ns: string;
  const systemNs = 'netmesh-system';
  const release = 'netmesh';
  let identityKubeconfig: string;
  let removeToken: (() => void) | undefined;
  let operator: NetmeshProcess;
  const operatorArgs = (identity: string) => [
    '--kubeconfig',
    identityKubeconfig,
    '--netmesh-namespace',
    systemNs,
    '--lease-name',
    'netmesh-operator',
    '--identity',
    identity,
    '--multus-probe-interval',
    '1s',
    '--lease-duration',
    '4s',
    '--renew-deadline',
    '3s',
    '--retry-period',
    '500ms',
  ];

  const getNet = (name: string, namespace = ns) =>
    h.custom.getNamespacedCustomObject({
      group: GROUP,
      version: 'v1',
      namespace,
      plural: 'networks',
      name,
    }) as Promise<Network>;
  const createNet = (name: string, spec: Record<string, string>, namespace = ns) =>
    h.custom.createNamespacedCustomObject({
      group: GROUP,
      version: 'v1',
      namespace,
      plural: 'networks',
      body: { apiVersion: 'netmesh.io/v1', kind: 'Network', metadata: { name }, spec },
    });
  const deleteNet = (name: string, namespace = ns) =>
    h.custom.deleteNamespacedCustomObject({
      group: GROUP,
      version: 'v1',
      namespace,
      plural: 'networks',
      name,
    });
  const ready = (n: Network) => n.status?.conditions?.find((c) => c.type === 'Ready');
  const waitFor = (
    name: string,
    pred: (n: Network) => boolean,
    what: string,
    namespace = ns,
    timeoutMs = 30_000,
  ) =>
    eventually(
      `${namespace}/${name} ${what}`,
      async () => {
        const n = await getNet(name, namespace);
        return pred(n) ? n : undefined;
      },
      { timeoutMs },
    );
  const waitReady = (name: string, namespace = ns) =>
    waitFor(
      name,
      (n) => ready(n)?.status === 'True' && n.status?.observedGeneration === n.metadata?.generation,
      'Ready',
      namespace,
    );
  const events = async (name: string, namespace = ns) =>
    (await h.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` })).items;

  const patchNet = (name: string, spec: Record<string, unknown>, namespace = ns) =>
    h.custom.patchNamespacedCustomObject(
      { group: GROUP, version: 'v1', namespace, plural: 'networks', name, body: { spec } },
      mergePatch,
    );
  const reason = (want: string) => (n: Network) =>
    ready(n)?.reason === want && n.status?.observedGeneration === n.metadata?.generation;

  before(async () => {
    kubectl(h.cluster.kubeconfigPath, ['apply', '-f', 'crds/']);
    kubectl(h.cluster.kubeconfigPath, [
      'wait',
      '--for=condition=Established',
      'crd/networks.netmesh.io',
      '--timeout=30s',
    ]);
    installChart(h.cluster.kubeconfigPath, release, systemNs, { 'webhook.enabled': false, replicaCount: 1 });
    const sa = await serviceAccountKubeconfig(h.kc, systemNs, 'netmesh');
    identityKubeconfig = sa.path;
    removeToken = sa.remove;
    ns = await createNamespace(h, 'op');
    operator = await startNetmesh('operator', operatorArgs('replica-a'));
    await operator.waitReady();
  });

  after(async () => {
    // Delete while the operator still runs, so finalizers are released.
    await deleteNamespace(h, ns);
    await eventually('test namespace gone', () => gone(() => h.core.readNamespace({ name: ns })), {
      timeoutMs: 60_000,
    }).catch(() => {});
    const code = await operator?.stop();
    uninstallChart(h.cluster.kubeconfigPath, release, systemNs);
    removeToken?.();
    assert.equal(code, 0, `operator exits cleanly on SIGTERM; log ${operator?.logFile}`);
  });

  test("the course's example Network becomes Ready with its CNI ConfigMap, status and Events", async () => {
    const manifest = readFileSync('deploy/examples/example-network.yaml', 'utf8');
    kubectl(h.cluster.kubeconfigPath, ['apply', '-n', ns, '-f', '-'], manifest);
    const net = await waitReady('example-network');
    assert.equal(net.status?.phase, 'Ready');
    assert.equal(net.status?.usableAddresses, '65534');
    assert.equal(net.status?.gateway, '192.168.0.1');
    assert.equal(net.metadata?.finalizers, undefined, 'no finalizer: owner references clean up');
    assert.deepEqual(net.status?.materialized, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      name: 'example-network-cni',
      namespace: ns,
    });
    const cm = await h.core.readNamespacedConfigMap({ namespace: ns, name: 'example-network-cni' });
    const conflist = JSON.parse(cm.data?.[CONFLIST_KEY] ?? '{}');
    assert.equal(conflist.plugins[0].type, 'bridge');
    assert.deepEqual(conflist.plugins[0].ipam.ranges, [
      [{ subnet: '192.168.0.0/16', gateway: '192.168.0.1' }],
    ]);
    assert.equal(cm.metadata?.ownerReferences?.[0]?.uid, net.metadata?.uid);
    assert.equal(cm.metadata?.ownerReferences?.[0]?.controller, true);
    assert.ok(
      cm.metadata?.managedFields?.some((f) => f.manager === 'netmesh-operator'),
      'written under the field manager netmesh-operator',
    );
    assert.equal(cm.metadata?.labels?.['app.kubernetes.io/managed-by'], 'netmesh-operator');
    const evs = await eventually('a Ready Event', async () => {
      const list = await events('example-network');
      return list.some((e) => e.reason === 'Ready') ? list : undefined;
    });
    assert.equal(evs.find((e) => e.reason === 'Ready')?.type, 'Normal');
    const table = kubectl(h.cluster.kubeconfigPath, ['get', 'net', '-n', ns, 'example-network']);
    assert.match(table, /NAME\s+CIDR\s+GATEWAY\s+READY\s+AGE/);
    assert.match(table, /example-network\s+192\.168\.0\.0\/16\s+192\.168\.0\.1\s+True/);
  });

  test('the apiserver rejects invalid specs with a readable message (CEL)', () => {
    for (const [spec, message] of [
      ['  cidr: "10.0.0.1/8"', /spec\.cidr: .*has host bits set/],
      ['  cidr: "nonsense"', /spec\.cidr: .*must be an IPv4 or IPv6 CIDR/],
      [
        '  cidr: "10.9.0.0/24"\n  gateway: "10.9.1.1"',
        /spec\.gateway: .*gateway 10\.9\.1\.1 is not inside cidr 10\.9\.0\.0\/24/,
      ],
      [
        '  cidr: "10.9.0.0/24"\n  gateway: "10.9.0.255"',
        /spec\.gateway: .*is the broadcast address of 10\.9\.0\.0\/24/,
      ],
      [
        '  cidr: "10.9.0.0/24"\n  gateway: "10.9.0.0"',
        /spec\.gateway: .*is the network address of 10\.9\.0\.0\/24/,
      ],
      ['  gateway: "10.9.0.1"', /spec\.cidr: Required value/],
    ] as const) {
      const manifest = `apiVersion: netmesh.io/v1\nkind: Network\nmetadata: {name: bad}\nspec:\n${spec}\n`;
      assert.throws(
        () => kubectl(h.cluster.kubeconfigPath, ['apply', '-n', ns, '-f', '-'], manifest),
        message,
      );
    }
  });

  test('the controller re-validates: an IPv6 gateway on the subnet-router address is Invalid with an Event', async () => {
    await createNet('v6-router', { cidr: 'fd00:77::/64', gateway: 'fd00:77::' });
    const net = await waitFor('v6-router', (n) => ready(n)?.reason === 'Invalid', 'Invalid');
    assert.equal(ready(net)?.status, 'False');
    assert.match(ready(net)!.message, /subnet-router anycast/);
    assert.equal(net.status?.phase, 'Invalid');
    await eventually('an Invalid Warning Event', async () =>
      (await events('v6-router')).some((e) => e.reason === 'Invalid' && e.type === 'Warning'),
    );
    assert.ok(
      await gone(() => h.core.readNamespacedConfigMap({ namespace: ns, name: 'v6-router-cni' })),
      'nothing materialised',
    );
    await deleteNet('v6-router');
  });

  test('overlapping Networks: the older wins, the newer heals when the winner goes', async () => {
    // Names sort the other way round, so only the creation time can make ov-old win
    // (creationTimestamp has one-second resolution: make sure the two differ).
    await createNet('ov-old', { cidr: '10.20.0.0/16' });
    await waitReady('ov-old');
    await new Promise((r) => setTimeout(r, 1100));
    await createNet('ov-a-new', { cidr: '10.20.5.0/24' });
    const loser = await waitFor('ov-a-new', (n) => ready(n)?.reason === 'Overlap', 'Overlap');
    assert.equal(ready(loser)?.status, 'False');
    assert.match(ready(loser)!.message, new RegExp(`${ns}/ov-old`));
    assert.equal((await getNet('ov-old')).status?.phase, 'Ready', 'the winner stays Ready');
    await eventually('an Overlap Event naming the winner', async () =>
      (await events('ov-a-new')).some((e) => e.reason === 'Overlap' && e.message?.includes('ov-old')),
    );
    // A Ready Network moved onto the winner's range loses its CNI object and status fields.
    await createNet('ov-late', { cidr: '10.21.0.0/24' });
    await waitReady('ov-late');
    await h.custom.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: 'v1',
        namespace: ns,
        plural: 'networks',
        name: 'ov-late',
        body: { spec: { cidr: '10.20.9.0/24' } },
      },
      mergePatch,
    );
    const moved = await waitFor('ov-late', (n) => ready(n)?.reason === 'Overlap', 'Overlap after the move');
    assert.equal(moved.status?.materialized, undefined, 'no materialized reference while blocked');
    await eventually('its ConfigMap removed', () =>
      gone(() => h.core.readNamespacedConfigMap({ namespace: ns, name: 'ov-late-cni' })),
    );
    await deleteNet('ov-late');
    await deleteNet('ov-old');
    const healed = await waitReady('ov-a-new');
    assert.equal(healed.status?.phase, 'Ready');
    await h.core.readNamespacedConfigMap({ namespace: ns, name: 'ov-a-new-cni' });
    await deleteNet('ov-a-new');
  });

  test('a gateway-only edit re-ranks overlapping Networks: the Ready set is what a fresh operator computes', async () => {
    // gw-old is older than gw-new, on the same range, but Invalid because of its gateway alone
    // (the IPv6 subnet-router address, which CEL accepts): gw-new is Ready.
    await createNet('gw-old', { cidr: 'fd00:90::/64', gateway: 'fd00:90::' });
    await waitFor('gw-old', reason('Invalid'), 'Invalid');
    await sleep(1100); // creationTimestamp has one-second resolution
    await createNet('gw-new', { cidr: 'fd00:90::/64' });
    await waitReady('gw-new');
    await h.core.readNamespacedConfigMap({ namespace: ns, name: 'gw-new-cni' });

    // Fixing only the gateway makes gw-old valid, and older: it takes the range.
    await patchNet('gw-old', { gateway: 'fd00:90::1' });
    await waitReady('gw-old');
    const blocked = await waitFor('gw-new', reason('Overlap'), 'Overlap once the older one is valid');
    assert.match(ready(blocked)!.message, new RegExp(`${ns}/gw-old`));
    await eventually('the newer one loses its ConfigMap', () =>
      gone(() => h.core.readNamespacedConfigMap({ namespace: ns, name: 'gw-new-cni' })),
    );
    await expectFreshVerdicts(h);

    // Breaking only the gateway again releases the range: gw-new becomes Ready by itself.
    await patchNet('gw-old', { gateway: 'fd00:90::' });
    await waitFor('gw-old', reason('Invalid'), 'Invalid again');
    await waitReady('gw-new');
    await eventually('the older one loses its ConfigMap', () =>
      gone(() => h.core.readNamespacedConfigMap({ namespace: ns, name: 'gw-old-cni' })),
    );
    await expectFreshVerdicts(h);
    await deleteNet('gw-old');
    await deleteNet('gw-new');
  });

  test('editing the CIDR updates the materialised object', async () => {
    await createNet('edit', { cidr: '10.30.0.0/24' });
    await waitReady('edit');
    await h.custom.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: 'v1',
        namespace: ns,
        plural: 'networks',
        name: 'edit',
        body: { spec: { cidr: '10.31.0.0/24', gateway: '10.31.0.254' } },
      },
      mergePatch,
    );
    await waitFor('edit', (n) => n.status?.gateway === '10.31.0.254' && ready(n)?.status === 'True', 'moved');
    await eventually('the ConfigMap to carry the new subnet', async () => {
      const cm = await h.core.readNamespacedConfigMap({ namespace: ns, name: 'edit-cni' });
      const c = JSON.parse(cm.data?.[CONFLIST_KEY] ?? '{}');
      return (
        c.plugins?.[0]?.ipam?.ranges?.[0]?.[0]?.subnet === '10.31.0.0/24' &&
        c.plugins[0].ipam.ranges[0][0].gateway === '10.31.0.254'
      );
    });
    await deleteNet('edit');
  });

  test('drift is repaired: a hand-deleted or hand-edited ConfigMap comes back', async () => {
    await createNet('drift', { cidr: '10.40.0.0/24' });
    await waitReady('drift');
    const original = (await h.core.readNamespacedConfigMap({ namespace: ns, name: 'drift-cni' })).data?.[
      CONFLIST_KEY
    ];
    await h.core.deleteNamespacedConfigMap({ namespace: ns, name: 'drift-cni' });
    await eventually('the ConfigMap recreated', async () => {
      const cm = await h.core.readNamespacedConfigMap({ namespace: ns, name: 'drift-cni' });
      return cm.data?.[CONFLIST_KEY] === original;
    });
    await h.core.patchNamespacedConfigMap(
      { namespace: ns, name: 'drift-cni', body: { data: { [CONFLIST_KEY]: '{"tampered":true}' } } },
      mergePatch,
    );
    await eventually('the edit reverted', async () => {
      const cm = await h.core.readNamespacedConfigMap({ namespace: ns, name: 'drift-cni' });
      return cm.data?.[CONFLIST_KEY] === original;
    });
    await deleteNet('drift');
  });

  test('deleting a Network needs no finalizer: its ConfigMap is garbage-collected', async () => {
    await createNet('bye', { cidr: '10.50.0.0/24' });
    const net = await waitReady('bye');
    assert.equal(net.metadata?.finalizers, undefined);
    await deleteNet('bye');
    await eventually('the Network gone', () => gone(() => getNet('bye')));
    await eventually(
      'the ConfigMap collected through its owner reference',
      () => gone(() => h.core.readNamespacedConfigMap({ namespace: ns, name: 'bye-cni' })),
      { timeoutMs: GC_TIMEOUT_MS },
    );
  });

  test('the finalizer of older versions is removed on reconcile (migration)', async () => {
    await h.custom.createNamespacedCustomObject({
      group: GROUP,
      version: 'v1',
      namespace: ns,
      plural: 'networks',
      body: {
        apiVersion: 'netmesh.io/v1',
        kind: 'Network',
        metadata: { name: 'legacy', finalizers: ['netmesh.io/network-cleanup', 'example.com/keep'] },
        spec: { cidr: '10.51.0.0/24' },
      },
    });
    const net = await waitFor(
      'legacy',
      (n) => !n.metadata?.finalizers?.includes('netmesh.io/network-cleanup') && ready(n)?.status === 'True',
      'Ready without the old finalizer',
    );
    assert.deepEqual(net.metadata?.finalizers, ['example.com/keep'], "another controller's finalizer stays");
    await h.custom.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: 'v1',
        namespace: ns,
        plural: 'networks',
        name: 'legacy',
        body: { metadata: { finalizers: null } },
      },
      mergePatch,
    );
    await deleteNet('legacy');
    await eventually('legacy gone', () => gone(() => getNet('legacy')));
  });

  test('a ConfigMap <name>-cni that netmesh did not create is never taken over: Conflict, Warning Event, untouched', async () => {
    await h.core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'taken-cni', labels: { team: 'a' } }, data: { mine: 'yes' } },
    });
    const before = await h.core.readNamespacedConfigMap({ namespace: ns, name: 'taken-cni' });
    await createNet('taken', { cidr: '10.52.0.0/24' });
    const net = await waitFor('taken', reason('Conflict'), 'Conflict');
    assert.equal(ready(net)?.status, 'False');
    assert.match(ready(net)!.message, new RegExp(`ConfigMap ${ns}/taken-cni`));
    assert.equal(net.status?.materialized, undefined);
    const ev = await eventually('a Conflict Warning Event naming the ConfigMap', async () =>
      (await events('taken')).find((e) => e.reason === 'Conflict' && e.type === 'Warning'),
    );
    assert.match(ev.message ?? '', new RegExp(`ConfigMap ${ns}/taken-cni`));
    await sleep(1500); // time for any (wrong) write to land
    const after = await h.core.readNamespacedConfigMap({ namespace: ns, name: 'taken-cni' });
    assert.equal(
      after.metadata?.resourceVersion,
      before.metadata?.resourceVersion,
      "the user's object unchanged",
    );
    assert.equal(after.metadata?.ownerReferences, undefined);
    assert.deepEqual(after.data, { mine: 'yes' });
    // Deleting the Network leaves the user's object alone.
    await deleteNet('taken');
    await eventually('taken gone', () => gone(() => getNet('taken')));
    await sleep(1500);
    await h.core.readNamespacedConfigMap({ namespace: ns, name: 'taken-cni' });

    // Once the name is free, a Network in Conflict heals by itself.
    await createNet('taken', { cidr: '10.52.0.0/24' });
    await waitFor('taken', reason('Conflict'), 'Conflict again');
    await h.core.deleteNamespacedConfigMap({ namespace: ns, name: 'taken-cni' });
    await eventually(
      'Ready once the name is free',
      async () => ready(await getNet('taken'))?.status === 'True',
      { timeoutMs: 45_000 },
    );
    const cm = await h.core.readNamespacedConfigMap({ namespace: ns, name: 'taken-cni' });
    assert.equal(cm.metadata?.ownerReferences?.[0]?.name, 'taken');
    await deleteNet('taken');
  });

  test('a persistent 409 is retried through the rate limiter, not at request speed', async () => {
    // The apiserver answers every status write of this Network with 409 Conflict (an admission
    // webhook saying so), as it would for a writer whose cache is stale and stays stale.
    const gate = await startAdmissionGate(h, {
      rules: [
        {
          apiGroups: [GROUP],
          apiVersions: ['v1'],
          operations: ['UPDATE'],
          resources: ['networks/status'],
        },
      ],
      matchConditions: [
        { name: 'operator', expression: `request.userInfo.username == '${OPERATOR_USER}'` },
        { name: 'network', expression: "object.metadata.name == 'hot-409'" },
      ],
      handler: () => ({
        allowed: false,
        code: 409,
        reason: 'Conflict',
        message: 'e2e: the object has been modified; please apply your changes to the latest version',
      }),
    });
    try {
      const conflictsBefore = await metric(operator.healthPort, 'netmesh_reconcile_total', {
        result: 'conflict',
      });
      await createNet('hot-409', { cidr: '10.53.0.0/24' });
      await eventually('the first refused status write', async () => gate.requests.length > 0);
      const start = gate.requests[0]!.at;
      const windowMs = 8_000;
      await sleep(windowMs + 200);
      const inWindow = gate.requests.filter((r) => r.at - start < windowMs).length;
      const perSecond = inWindow / (windowMs / 1000);
      console.log(
        `# persistent 409: ${inWindow} status writes in ${windowMs / 1000} s (${perSecond.toFixed(1)}/s)`,
      );
      // Per-item exponential backoff from 5 ms: about a dozen attempts in 8 s, then fewer and
      // fewer. A requeue without the rate limiter makes hundreds per second.
      assert.ok(inWindow <= 20, `${inWindow} writes in ${windowMs} ms: not rate limited`);
      const conflicts =
        (await metric(operator.healthPort, 'netmesh_reconcile_total', { result: 'conflict' })) -
        conflictsBefore;
      assert.ok(conflicts >= inWindow - 1, `conflicts counted (${conflicts})`);
      assert.ok(
        (await metric(operator.healthPort, 'workqueue_retries_total', { name: 'network' })) >= inWindow - 1,
        'the requeues went through the rate limiter (workqueue_retries_total)',
      );
    } finally {
      await gate.stop();
    }
    await eventually(
      'Ready once the conflict is gone',
      async () => ready(await getNet('hot-409'))?.status === 'True',
      {
        timeoutMs: 60_000,
      },
    );
    await deleteNet('hot-409');
  });

  test('Networks that skipped CEL: Ready=False with the reason, one Event each, no crash loop, backoff in the workqueue metrics', {
    timeout: 180_000,
  }, async () => {
    // As on an apiserver without the CEL rules: the same CRD with its spec schema removed.
    const crd = parse(readFileSync('crds/networks.netmesh.io.yaml', 'utf8'));
    const schema = crd.spec.versions[0].schema;
    schema.openAPIV3Schema = {
      type: 'object',
      properties: {
        spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
        status: schema.openAPIV3Schema.properties.status,
      },
    };
    kubectl(h.cluster.kubeconfigPath, ['apply', '-f', '-'], JSON.stringify(crd));
    const bad = await createNamespace(h, 'op-bad');
    const longName = `long-${'n'.repeat(90)}`; // longer than a label value (63)
    const tooLong = `x${'y'.repeat(250)}`; // 251: "<name>-cni" exceeds the 253 of an object name
    const create = (name: string, spec?: unknown) =>
      h.custom.createNamespacedCustomObject({
        group: GROUP,
        version: 'v1',
        namespace: bad,
        plural: 'networks',
        body: { apiVersion: 'netmesh.io/v1', kind: 'Network', metadata: { name }, ...(spec ? { spec } : {}) },
      });
    try {
      await eventually('the apiserver to accept a Network its CEL rules would reject', () =>
        create('bad-number', { cidr: 42 }).then(() => true),
      );
      await create('bad-nospec');
      await create('bad-huge', { cidr: 'x'.repeat(40_000) });
      await create('bad-gateway', { cidr: '10.54.0.0/24', gateway: '10.55.0.1' });
      await create(longName, { cidr: '10.54.1.0/24' });
      await create(tooLong, { cidr: '10.54.2.0/24' });
      const expected: [string, string, RegExp][] = [
        ['bad-number', 'Invalid', /spec\.cidr must be a string/],
        ['bad-nospec', 'Invalid', /spec is required/],
        ['bad-huge', 'Invalid', /cidr "x+/],
        ['bad-gateway', 'Invalid', /outside cidr/],
        [tooLong, 'MaterializeFailed', /253/],
      ];
      for (const [name, want, pattern] of expected) {
        const n = await waitFor(name, reason(want), want, bad);
        assert.equal(ready(n)?.status, 'False');
        assert.match(ready(n)!.message, pattern);
        assert.ok(ready(n)!.message.length <= 2048, 'a bounded message, whatever the input');
      }
      await waitReady(longName, bad);
      const retriesBefore = await metric(operator.healthPort, 'workqueue_retries_total', { name: 'network' });
      const errorsBefore = await metric(operator.healthPort, 'netmesh_reconcile_errors_total');
      await sleep(6_000);
      for (const [name, want] of expected) {
        const warnings = (await events(name, bad)).filter((e) => e.type === 'Warning');
        assert.deepEqual(
          warnings.map((e) => e.reason),
          [want],
          `${name.slice(0, 20)}: one Warning Event`,
        );
      }
      // The Network whose object the apiserver refuses keeps being retried, with growing delays.
      const retries =
        (await metric(operator.healthPort, 'workqueue_retries_total', { name: 'network' })) - retriesBefore;
      const errors = (await metric(operator.healthPort, 'netmesh_reconcile_errors_total')) - errorsBefore;
      console.log(`# refused object: ${retries} retries, ${errors} failed reconciles in 6 s`);
      assert.ok(retries >= 1 && retries <= 10, `backoff visible: ${retries} retries in 6 s`);
      assert.ok(errors <= 10, `${errors} failed reconciles in 6 s`);
      assert.equal(operator.child.exitCode, null, 'the operator keeps running');
    } finally {
      await deleteNamespace(h, bad);
      await eventually('bad namespace gone', () => gone(() => h.core.readNamespace({ name: bad })), {
        timeoutMs: 60_000,
      }).catch(() => {});
      kubectl(h.cluster.kubeconfigPath, ['apply', '-f', 'crds/']);
    }
  });

  test('a second replica stays passive, then takes over within the lease duration', async () => {
    const standby = await startNetmesh('operator', operatorArgs('replica-b'));
    try {
      await standby.waitReady();
      const coord = h.kc.makeApiClient(k8s.CoordinationV1Api);
      const lease = await coord.readNamespacedLease({ namespace: systemNs, name: 'netmesh-operator' });
      assert.equal(lease.spec?.holderIdentity, 'replica-a');
      await createNet('ha-1', { cidr: '10.60.0.0/24' });
      await waitReady('ha-1');
      assert.doesNotMatch(standby.logs(), /"key":"[^"]*\/ha-1"/, 'the standby did not reconcile');
      const stoppedAt = Date.now();
      assert.equal(await operator.stop(), 0);
      await eventually(
        'replica-b to hold the lease',
        async () => {
          const l = await coord.readNamespacedLease({ namespace: systemNs, name: 'netmesh-operator' });
          return l.spec?.holderIdentity === 'replica-b';
        },
        { timeoutMs: 10_000 },
      );
      // Counted from before the graceful stop (which drains the queue, then releases the lease);
      // the slack over the 4 s lease is for that and round trips on a loaded machine.
      assert.ok(
        Date.now() - stoppedAt < 4_000 + 4_000,
        'took over within the lease duration (released lease)',
      );
      await createNet('ha-2', { cidr: '10.60.1.0/24' });
      await waitReady('ha-2');
      // Swap roles: replica-b is now the operator of this suite.
      operator = standby;
    } catch (err) {
      await standby.stop();
      throw err;
    }
  });

  test('kill -9 mid-way through 200 Networks, restart: all 200 Ready, no duplicates', {
    timeout: 240_000,
  }, async () => {
    const bulk = await createNamespace(h, 'op-bulk');
    const names = Array.from({ length: 200 }, (_, i) => `n${i}`);
    let created = 0;
    const creating = (async () => {
      for (const [i, name] of names.entries()) {
        await createNet(name, { cidr: `10.${100 + Math.floor(i / 250)}.${i % 250}.0/24` }, bulk);
        created++;
      }
    })();
    await eventually('some Networks created', async () => created >= 40, { timeoutMs: 60_000 });
    await operator.kill9();
    await creating;
    operator = await startNetmesh('operator', operatorArgs('replica-c'));
    await operator.waitReady(60_000);
    await eventually(
      'all 200 Networks Ready',
      async () => {
        const list = (await h.custom.listNamespacedCustomObject({
          group: GROUP,
          version: 'v1',
          namespace: bulk,
          plural: 'networks',
        })) as { items: Network[] };
        return list.items.length === 200 && list.items.every((n) => ready(n)?.status === 'True');
      },
      { timeoutMs: 180_000, intervalMs: 1000 },
    );
    const cms = await h.core.listNamespacedConfigMap({
      namespace: bulk,
      labelSelector: 'app.kubernetes.io/managed-by=netmesh-operator',
    });
    assert.equal(cms.items.length, 200, 'one ConfigMap per Network');
    assert.equal(
      new Set(cms.items.map((c) => c.metadata?.ownerReferences?.[0]?.uid)).size,
      200,
      'each owned by a different Network',
    );
    await deleteNamespace(h, bulk);
    await eventually('bulk namespace gone', () => gone(() => h.core.readNamespace({ name: bulk })), {
      timeoutMs: 120_000,
    });
  });

  // Read-modify-write of the Lease, retried on 409: the leader renews it every 500 ms.
  const overwriteLease = (spec: (s: k8s.V1LeaseSpec) => k8s.V1LeaseSpec) =>
    eventually('the Lease overwritten', async () => {
      const coord = h.kc.makeApiClient(k8s.CoordinationV1Api);
      const lease = await coord.readNamespacedLease({ namespace: systemNs, name: 'netmesh-operator' });
      return coord.replaceNamespacedLease({
        namespace: systemNs,
        name: 'netmesh-operator',
        body: { ...lease, spec: spec(lease.spec ?? {}) },
      });
    });
  // Someone else takes the lease (as after a network partition): the leader cannot renew.
  const intrude = () =>
    overwriteLease((spec) => {
      const now = new k8s.V1MicroTime();
      return {
        ...spec,
        holderIdentity: 'intruder',
        leaseDurationSeconds: 60,
        renewTime: now,
        acquireTime: now,
      };
    });
  const handBack = () => overwriteLease((spec) => ({ ...spec, holderIdentity: '', leaseDurationSeconds: 1 }));
  const exitWithin = (ms: number) =>
    Promise.race([operator.exited, new Promise<string>((r) => setTimeout(() => r('still running'), ms))]);

  test('a replica that loses its lease stops reconciling and exits; Networks delete without it', async () => {
    await createNet('while-down', { cidr: '10.81.0.0/24' });
    await waitReady('while-down');
    await intrude();
    const code = await exitWithin(20_000);
    assert.equal(code, 1, 'the replica exits with an error so it restarts as a standby');
    assert.match(operator.logs(), /lost leadership/);
    // No netmesh running: deleting a Network (and, through it, its ConfigMap) must not hang.
    await deleteNet('while-down');
    await eventually('the Network gone without netmesh', () => gone(() => getNet('while-down')), {
      timeoutMs: 10_000,
    });
    await eventually(
      'its ConfigMap collected without netmesh',
      () => gone(() => h.core.readNamespacedConfigMap({ namespace: ns, name: 'while-down-cni' })),
      { timeoutMs: GC_TIMEOUT_MS },
    );
    // Hand the lease back and start a fresh replica for the remaining tests.
    await handBack();
    operator = await startNetmesh('operator', operatorArgs('replica-d'));
    await operator.waitReady();
    await createNet('after-loss', { cidr: '10.80.0.0/24' });
    await waitReady('after-loss');
    await deleteNet('after-loss');
  });

  test('fencing: after a forced lease takeover, nothing the old leader had in flight lands', async () => {
    // The apiserver holds the leader's first write for this Network (an admission webhook that
    // answers after 12 s), so the takeover happens while the old leader is mid-reconcile.
    const holdMs = 12_000;
    const gate = await startAdmissionGate(h, {
      rules: [
        { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['configmaps'] },
      ],
      matchConditions: [
        { name: 'operator', expression: `request.userInfo.username == '${OPERATOR_USER}'` },
        { name: 'network', expression: "object.metadata.name == 'fence-cni'" },
      ],
      timeoutSeconds: 20,
      handler: async (_req: GateRequest, closed: Promise<void>) => {
        await Promise.race([sleep(holdMs), closed]);
        return { allowed: true };
      },
    });
    const audit = auditLog(h.cluster.kubeconfigPath);
    let takeover: k8s.V1Lease;
    try {
      await createNet('fence', { cidr: '10.82.0.0/24' });
      await eventually('the CNI write held by the apiserver', async () => gate.requests.length > 0);
      takeover = await intrude();
      // Past the hold: a write the old leader did not cancel would have landed by now.
      await sleep(Math.max(0, gate.requests[0]!.at + holdMs + 2_000 - Date.now()));
      if (audit) {
        // The apiserver's own record: no write by the operator's identity succeeded after the
        // takeover (the Lease replace by the admin), whatever the resource.
        const events = audit.read();
        const taken = events.find(
          (e) =>
            e.objectRef?.resource === 'leases' &&
            e.objectRef.name === 'netmesh-operator' &&
            e.verb === 'update' &&
            e.user.username !== OPERATOR_USER &&
            e.responseStatus?.code === 200 &&
            e.stage === 'ResponseComplete' &&
            Date.parse(e.stageTimestamp) >= Date.parse(String(takeover.spec?.renewTime)) - 1000,
        );
        assert.ok(taken, 'the takeover is in the audit log');
        const late = events.filter(
          (e) =>
            e.user.username === OPERATOR_USER &&
            e.stage === 'ResponseComplete' &&
            (e.responseStatus?.code ?? 0) < 300 &&
            Date.parse(e.stageTimestamp) > Date.parse(taken.stageTimestamp),
        );
        assert.deepEqual(
          late.map((e) => `${e.verb} ${e.objectRef?.resource}/${e.objectRef?.name} at ${e.stageTimestamp}`),
          [],
          `writes of the old leader after the takeover at ${taken.stageTimestamp}`,
        );
      } else {
        console.log('# no apiserver audit log on this target: checked the objects only');
      }
      assert.ok(
        await gone(() => h.core.readNamespacedConfigMap({ namespace: ns, name: 'fence-cni' })),
        'the held ConfigMap never landed',
      );
      const net = await getNet('fence');
      assert.equal(net.status, undefined, 'no status written after the takeover');
      assert.deepEqual(
        (await events('fence')).map((e) => e.reason),
        [],
        'no Event written after the takeover',
      );
      assert.equal(gate.requests[0]!.abandoned, true, 'the held request was cancelled, not answered');
      assert.equal(await exitWithin(30_000), 1, 'the old leader exits');
    } finally {
      await gate.stop();
      await handBack();
    }
    operator = await startNetmesh('operator', operatorArgs('replica-e'));
    await operator.waitReady();
    await waitReady('fence');
    await deleteNet('fence');
  });

  test('with Multus installed, Networks become NetworkAttachmentDefinitions', async () => {
    const multusCrd = parse(`
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: network-attachment-definitions.k8s.cni.cncf.io
spec:
  group: k8s.cni.cncf.io
  scope: Namespaced
  names: {plural: network-attachment-definitions, singular: network-attachment-definition, kind: NetworkAttachmentDefinition, shortNames: [net-attach-def]}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                config: {type: string}
`);
    kubectl(h.cluster.kubeconfigPath, ['apply', '-f', '-'], JSON.stringify(multusCrd));
    try {
      kubectl(h.cluster.kubeconfigPath, [
        'wait',
        '--for=condition=Established',
        'crd/network-attachment-definitions.k8s.cni.cncf.io',
        '--timeout=30s',
      ]);
      await createNet('multus', { cidr: '10.70.0.0/24' });
      const net = await waitFor(
        'multus',
        (n) => n.status?.materialized?.kind === 'NetworkAttachmentDefinition' && ready(n)?.status === 'True',
        'materialised as a NAD',
      );
      const nad = (await h.custom.getNamespacedCustomObject({
        group: 'k8s.cni.cncf.io',
        version: 'v1',
        namespace: ns,
        plural: 'network-attachment-definitions',
        name: 'multus',
      })) as { spec: { config: string }; metadata: k8s.V1ObjectMeta };
      const config = JSON.parse(nad.spec.config);
      assert.equal(config.type, 'bridge');
      assert.equal(config.ipam.ranges[0][0].subnet, '10.70.0.0/24');
      assert.equal(nad.metadata.ownerReferences?.[0]?.uid, net.metadata?.uid);
      // The example Network created before Multus moves over to a NAD too.
      await waitFor(
        'example-network',
        (n) => n.status?.materialized?.kind === 'NetworkAttachmentDefinition',
        'moved to a NAD',
      );
      await eventually('its old ConfigMap removed', () =>
        gone(() => h.core.readNamespacedConfigMap({ namespace: ns, name: 'example-network-cni' })),
      );
      // Deleting the NAD by hand gets it recreated.
      await h.custom.deleteNamespacedCustomObject({
        group: 'k8s.cni.cncf.io',
        version: 'v1',
        namespace: ns,
        plural: 'network-attachment-definitions',
        name: 'multus',
      });
      await eventually('the NAD recreated', async () =>
        h.custom
          .getNamespacedCustomObject({
            group: 'k8s.cni.cncf.io',
            version: 'v1',
            namespace: ns,
            plural: 'network-attachment-definitions',
            name: 'multus',
          })
          .then(() => true),
      );
      // A NetworkAttachmentDefinition of the same name that someone else created stays theirs.
      const nadApi = {
        group: 'k8s.cni.cncf.io',
        version: 'v1',
        namespace: ns,
        plural: 'network-attachment-definitions',
      };
      await h.custom.createNamespacedCustomObject({
        ...nadApi,
        body: {
          apiVersion: 'k8s.cni.cncf.io/v1',
          kind: 'NetworkAttachmentDefinition',
          metadata: { name: 'nad-taken' },
          spec: { config: '{"cniVersion":"1.0.0","name":"theirs","type":"macvlan"}' },
        },
      });
      const theirs = (await h.custom.getNamespacedCustomObject({ ...nadApi, name: 'nad-taken' })) as {
        metadata: k8s.V1ObjectMeta;
      };
      await createNet('nad-taken', { cidr: '10.71.0.0/24' });
      const conflicted = await waitFor('nad-taken', reason('Conflict'), 'Conflict');
      assert.match(ready(conflicted)!.message, new RegExp(`NetworkAttachmentDefinition ${ns}/nad-taken`));
      await sleep(1500);
      const still = (await h.custom.getNamespacedCustomObject({ ...nadApi, name: 'nad-taken' })) as {
        metadata: k8s.V1ObjectMeta;
        spec: { config: string };
      };
      assert.equal(still.metadata.resourceVersion, theirs.metadata.resourceVersion, 'their NAD untouched');
      await deleteNet('nad-taken');
      await eventually('nad-taken gone', () => gone(() => getNet('nad-taken')));
      await sleep(1500);
      await h.custom.getNamespacedCustomObject({ ...nadApi, name: 'nad-taken' });
      await h.custom.deleteNamespacedCustomObject({ ...nadApi, name: 'nad-taken' });

      await deleteNet('multus');
      await eventually('NAD collected with its Network', () =>
        gone(() =>
          h.custom.getNamespacedCustomObject({
            group: 'k8s.cni.cncf.io',
            version: 'v1',
            namespace: ns,
            plural: 'network-attachment-definitions',
            name: 'multus',
          }),
        ),
      );
    } finally {
      await deleteNet('example-network').catch(() => {});
      await eventually('example-network gone', () => gone(() => getNet('example-network'))).catch(() => {});
      kubectl(h.cluster.kubeconfigPath, [
        'delete',
        'crd',
        'network-attachment-definitions.k8s.cni.cncf.io',
        '--wait=true',
      ]);
    }
  });
});
