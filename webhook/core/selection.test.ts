import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { coursePod } from '../../examples/course.ts';
import { decideSelection, type SelectionReason } from './selection.ts';

const ENABLED = { 'netmesh.io/injection': 'enabled' };
const WEBHOOK_NS = 'netmesh-system';

function pod(opts: {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  hostNetwork?: boolean;
}): V1Pod {
  return {
    metadata: {
      name: 'p',
      ...(opts.labels ? { labels: opts.labels } : {}),
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
    },
    spec: {
      containers: [{ name: 'app', image: 'busybox' }],
      ...(opts.hostNetwork !== undefined ? { hostNetwork: opts.hostNetwork } : {}),
    },
  };
}

const OPT_IN = { 'netmesh.io/inject': 'true' };
const OPT_OUT = { 'netmesh.io/inject': 'false' };
const LEGACY = { 'initializer.kubernetes.io/envoy': 'true' };
const MIRROR = { 'kubernetes.io/config.mirror': 'abc123' };
const STATUS = { 'netmesh.io/status': '{"version":1}' };

interface Case {
  title: string;
  pod: V1Pod;
  namespace?: string;
  namespaceLabels?: Record<string, string> | undefined;
  webhookNamespace?: string;
  inject: boolean;
  reason: SelectionReason;
  message?: RegExp;
}

const cases: Case[] = [
  // Never, whatever the labels say.
  {
    title: 'kube-system even when enabled and opted in',
    pod: pod({ labels: OPT_IN }),
    namespace: 'kube-system',
    namespaceLabels: ENABLED,
    inject: false,
    reason: 'SystemNamespace',
    message: /"kube-system" is a system namespace/,
  },
  {
    title: 'kube-public',
    pod: pod({ labels: OPT_IN }),
    namespace: 'kube-public',
    inject: false,
    reason: 'SystemNamespace',
  },
  {
    title: 'kube-node-lease',
    pod: pod({ annotations: LEGACY }),
    namespace: 'kube-node-lease',
    namespaceLabels: ENABLED,
    inject: false,
    reason: 'SystemNamespace',
  },
  {
    title: "the webhook's own namespace even when enabled",
    pod: pod({ labels: OPT_IN }),
    namespace: WEBHOOK_NS,
    namespaceLabels: ENABLED,
    inject: false,
    reason: 'OwnNamespace',
    message: /webhook's own namespace/,
  },
  {
    title: 'a custom webhook namespace',
    pod: pod({ labels: OPT_IN }),
    namespace: 'mesh',
    webhookNamespace: 'mesh',
    inject: false,
    reason: 'OwnNamespace',
  },
  {
    title: 'netmesh-system is an ordinary namespace when the webhook runs elsewhere',
    pod: pod({ labels: OPT_IN }),
    namespace: 'netmesh-system',
    webhookNamespace: 'mesh',
    inject: true,
    reason: 'PodOptIn',
  },
  {
    title: 'a mirror pod in an enabled namespace',
    pod: pod({ annotations: MIRROR }),
    namespaceLabels: ENABLED,
    inject: false,
    reason: 'MirrorPod',
  },
  {
    title: 'a hostNetwork pod that opts in',
    pod: pod({ labels: OPT_IN, hostNetwork: true }),
    namespaceLabels: ENABLED,
    inject: false,
    reason: 'HostNetwork',
    message: /hostNetwork/,
  },
  {
    title: 'hostNetwork: false does not matter',
    pod: pod({ hostNetwork: false }),
    namespaceLabels: ENABLED,
    inject: true,
    reason: 'NamespaceEnabled',
  },
  {
    title: 'a pod that already carries the status annotation',
    pod: pod({ annotations: STATUS }),
    namespaceLabels: ENABLED,
    inject: false,
    reason: 'AlreadyInjected',
  },
  // Opt-out beats every opt-in.
  {
    title: 'pod opt-out in an enabled namespace',
    pod: pod({ labels: OPT_OUT }),
    namespaceLabels: ENABLED,
    inject: false,
    reason: 'PodOptOut',
    message: /netmesh.io\/inject=false/,
  },
  {
    title: 'pod opt-out with the legacy annotation',
    pod: pod({ labels: OPT_OUT, annotations: LEGACY }),
    inject: false,
    reason: 'PodOptOut',
  },
  // Opt-in.
  {
    title: 'enabled namespace',
    pod: pod({}),
    namespaceLabels: ENABLED,
    inject: true,
    reason: 'NamespaceEnabled',
    message: /namespace "default" has label netmesh.io\/injection=enabled/,
  },
  {
    title: 'enabled namespace and pod opt-in: the namespace is reported',
    pod: pod({ labels: OPT_IN }),
    namespaceLabels: { ...ENABLED, team: 'a' },
    inject: true,
    reason: 'NamespaceEnabled',
  },
  { title: 'pod opt-in label', pod: pod({ labels: OPT_IN }), inject: true, reason: 'PodOptIn' },
  {
    title: 'pod opt-in label and the legacy annotation: the label is reported',
    pod: pod({ labels: OPT_IN, annotations: LEGACY }),
    inject: true,
    reason: 'PodOptIn',
  },
  {
    title: "the course's annotation",
    pod: pod({ annotations: LEGACY }),
    namespaceLabels: {},
    inject: true,
    reason: 'LegacyAnnotationOptIn',
    message: /initializer.kubernetes.io\/envoy=true/,
  },
  // Not selected.
  {
    title: 'no labels at all',
    pod: pod({}),
    inject: false,
    reason: 'NamespaceNotEnabled',
    message: /does not have label netmesh.io\/injection=enabled and the pod does not opt in/,
  },
  {
    title: 'undefined namespace labels',
    pod: pod({}),
    namespaceLabels: undefined,
    inject: false,
    reason: 'NamespaceNotEnabled',
  },
  {
    title: 'namespace label with another value',
    pod: pod({}),
    namespaceLabels: { 'netmesh.io/injection': 'disabled' },
    inject: false,
    reason: 'NamespaceNotEnabled',
    message: /label netmesh.io\/injection=disabled is not "enabled"/,
  },
  {
    title: 'namespace label "true" is not "enabled"',
    pod: pod({}),
    namespaceLabels: { 'netmesh.io/injection': 'true' },
    inject: false,
    reason: 'NamespaceNotEnabled',
  },
  {
    title: 'pod label with an unrecognised value',
    pod: pod({ labels: { 'netmesh.io/inject': 'yes' } }),
    inject: false,
    reason: 'NamespaceNotEnabled',
    message: /pod label netmesh.io\/inject="yes" is neither "true" nor "false" and was ignored/,
  },
  {
    title: 'pod label "True" (case matters)',
    pod: pod({ labels: { 'netmesh.io/inject': 'True' } }),
    inject: false,
    reason: 'NamespaceNotEnabled',
  },
  {
    title: 'legacy annotation "false"',
    pod: pod({ annotations: { 'initializer.kubernetes.io/envoy': 'false' } }),
    inject: false,
    reason: 'NamespaceNotEnabled',
    message: /annotation initializer.kubernetes.io\/envoy="false" is not "true"/,
  },
  {
    title: 'the opt-in written as an annotation instead of a label',
    pod: pod({ annotations: OPT_IN }),
    inject: false,
    reason: 'NamespaceNotEnabled',
  },
  {
    title: 'the namespace label written on the pod',
    pod: pod({ labels: ENABLED }),
    inject: false,
    reason: 'NamespaceNotEnabled',
  },
  {
    title: 'a pod without metadata in an enabled namespace',
    pod: { spec: { containers: [{ name: 'app', image: 'busybox' }] } },
    namespaceLabels: ENABLED,
    inject: true,
    reason: 'NamespaceEnabled',
  },
  {
    title: 'a pod without metadata elsewhere',
    pod: { spec: { containers: [{ name: 'app', image: 'busybox' }] } },
    inject: false,
    reason: 'NamespaceNotEnabled',
  },
  {
    title: 'null labels and annotations',
    pod: { metadata: { labels: null, annotations: null }, spec: { containers: [] } } as unknown as V1Pod,
    namespaceLabels: ENABLED,
    inject: true,
    reason: 'NamespaceEnabled',
  },
  {
    title: "the course's Pod in an enabled namespace",
    pod: coursePod(),
    namespaceLabels: ENABLED,
    inject: true,
    reason: 'NamespaceEnabled',
  },
  { title: "the course's Pod elsewhere", pod: coursePod(), inject: false, reason: 'NamespaceNotEnabled' },
];

describe('decideSelection', () => {
  for (const c of cases) {
    it(c.title, () => {
      const before = structuredClone(c.pod);
      const decision = decideSelection({
        pod: c.pod,
        namespace: c.namespace ?? 'default',
        namespaceLabels: 'namespaceLabels' in c ? c.namespaceLabels : {},
        webhookNamespace: c.webhookNamespace ?? WEBHOOK_NS,
      });
      assert.equal(decision.reason, c.reason, decision.message);
      assert.equal(decision.inject, c.inject);
      assert.ok(decision.message.length > 0 && !decision.message.includes('\n'));
      if (c.message) assert.match(decision.message, c.message);
      assert.deepEqual(c.pod, before, 'the pod must not be modified');
    });
  }
});
