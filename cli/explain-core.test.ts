import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { coursePod, courseTemplate } from '../examples/course.ts';
import { injectManifests } from '../webhook/core/workloads.ts';
import { buildMutatingWebhookConfiguration } from '../webhook/webhook-config.ts';
import { type ExplainInput, explain, renderExplanation, withoutInjection } from './explain-core.ts';

const { template, hash } = courseTemplate();
const config = buildMutatingWebhookConfiguration({
  name: 'netmesh',
  namespace: 'netmesh-system',
  clientConfig: { service: { name: 'netmesh', namespace: 'netmesh-system' } },
  caBundle: 'CA',
  failurePolicy: 'Ignore',
  matchConditionsSupported: true,
});
const enabled = { 'netmesh.io/injection': 'enabled' };
const input = (over: Partial<ExplainInput> = {}): ExplainInput => ({
  kind: 'Deployment',
  name: 'web',
  namespace: 'shop',
  source: 'cluster',
  pod: coursePod(),
  namespaceLabels: enabled,
  webhookConfiguration: { name: 'netmesh', object: config },
  template: { template, hash, where: 'ConfigMap netmesh-system/envoy-initializer' },
  webhookNamespace: 'netmesh-system',
  ...over,
});

describe('explain', () => {
  test('a labelled namespace, the live configuration and a template: injected, and what is added', () => {
    const e = explain(input());
    assert.equal(e.injected, true);
    assert.equal(e.plan?.action, 'inject');
    assert.deepEqual(
      e.webhookConfiguration?.webhooks.map((w) => [w.name, w.called]),
      [
        ['namespace.netmesh.io', true],
        ['object.netmesh.io', false],
        ['legacy.netmesh.io', false],
      ],
    );
    const text = renderExplanation(e);
    assert.match(text, /^Deployment shop\/web \(pod template\): new Pods will be injected$/m);
    assert.match(text, /selected: yes \(NamespaceEnabled\)/);
    assert.match(text, /plan: add containers envoy; volumes envoy-conf and annotation netmesh.io\/status/);
    assert.match(text, /result: injected/);
  });

  test('the first thing that stops injection is the reason', () => {
    const unlabelled = explain(input({ namespaceLabels: {} }));
    assert.equal(unlabelled.injected, false);
    assert.match(
      unlabelled.reason,
      /calls none of the webhooks of netmesh.*namespaceSelector requires netmesh.io\/injection In \[enabled\]/,
    );
    const noConfig = explain(input({ webhookConfiguration: { name: 'netmesh', object: null } }));
    assert.match(noConfig.reason, /MutatingWebhookConfiguration netmesh not found/);
    const noTemplate = explain(
      input({ template: { error: 'ConfigMap netmesh-system/envoy-initializer not found' } }),
    );
    assert.equal(noTemplate.injected, false);
    assert.match(noTemplate.reason, /no usable template .*not found.*admits Pods unchanged/);
    const clash = coursePod();
    clash.spec!.containers.push({ name: 'envoy', image: 'mine' });
    const e = explain(input({ pod: clash }));
    assert.equal(e.injected, false);
    assert.equal(e.plan?.action, 'skip');
  });

  test('offline, without configuration or template, the webhook selection alone decides', () => {
    const e = explain(input({ source: 'pod.yaml', webhookConfiguration: undefined, template: undefined }));
    assert.equal(e.injected, true);
    assert.match(renderExplanation(e), /plan: not evaluated \(no template given\)/);
    const unknownLabels = explain(input({ webhookConfiguration: undefined, namespaceLabels: undefined }));
    assert.equal(unknownLabels.injected, false);
    assert.match(unknownLabels.warnings.join(), /namespace labels unknown/);
  });

  test('a live Pod: what it got, and whether a re-created one would get it', () => {
    const injected = injectManifests(JSON.stringify(coursePod()), template, 'oldhash');
    const pod = parseYaml(injected.output) as V1Pod;
    const stripped = withoutInjection(pod);
    assert.deepEqual(
      stripped.pod.spec?.containers.map((c) => c.name),
      ['myapp-container'],
    );
    assert.equal(stripped.status?.templateHash, 'oldhash');
    const e = explain(input({ kind: 'Pod', name: 'myapp-pod', pod }));
    assert.equal(e.injected, true);
    assert.equal(e.current?.injected, true);
    assert.equal(e.current?.templateCurrent, false);
    assert.match(e.warnings.join(), /injected from template oldhash; the template is now/);
    assert.match(
      renderExplanation(e),
      /this Pod: injected at creation \(containers envoy; volumes envoy-conf; template oldhash, not the current one\)/,
    );
  });

  test('a pod template injected offline already carries the sidecar', () => {
    const out = injectManifests(JSON.stringify(coursePod()), template, hash);
    const e = explain(input({ source: 'app.yaml', kind: 'Pod', pod: parseYaml(out.output) as V1Pod }));
    assert.equal(e.injected, true);
    assert.match(e.reason, /already carries the sidecar/);
  });
});
