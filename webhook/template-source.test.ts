import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { courseTemplateText } from '../examples/course.ts';
import {
  eventNameFor,
  INITIAL_TEMPLATE_STATE,
  reduceTemplate,
  templateReadiness,
} from './template-source.ts';

const now = new Date('2030-01-01T00:00:00Z');
const cm = (config: string | undefined, rv: string): V1ConfigMap => ({
  metadata: { name: 'envoy-initializer', namespace: 'ns', resourceVersion: rv, uid: '0123456789abcdef' },
  ...(config === undefined ? { data: {} } : { data: { config } }),
});
const broken = 'containers:\n  - name: Envoy\n';

describe('reduceTemplate', () => {
  test('first load, no-op update, change', () => {
    const a = reduceTemplate(
      INITIAL_TEMPLATE_STATE,
      { type: 'upsert', configMap: cm(courseTemplateText(), '1') },
      now,
    );
    assert.equal(a.effect.kind, 'loaded');
    assert.ok(a.state.good);
    const b = reduceTemplate(
      a.state,
      { type: 'upsert', configMap: cm(`# comment\n${courseTemplateText()}`, '2') },
      now,
    );
    assert.equal(b.effect.kind, 'unchanged');
    assert.equal(b.state.good?.hash, a.state.good.hash);
    const c = reduceTemplate(
      b.state,
      {
        type: 'upsert',
        configMap: cm(courseTemplateText().replace('lyft/envoy:', 'envoyproxy/envoy:'), '3'),
      },
      now,
    );
    assert.equal(c.effect.kind, 'loaded');
    assert.notEqual(c.state.good?.hash, a.state.good.hash);
  });

  test('a broken template keeps the last good one and says so', () => {
    const good = reduceTemplate(
      INITIAL_TEMPLATE_STATE,
      { type: 'upsert', configMap: cm(courseTemplateText(), '1') },
      now,
    );
    const bad = reduceTemplate(good.state, { type: 'upsert', configMap: cm(broken, '2') }, now);
    assert.equal(bad.effect.kind, 'invalid');
    assert.equal(bad.state.good?.hash, good.state.good?.hash);
    assert.match(bad.state.error!.message, /containers\[0\]/);
    const ready = templateReadiness(bad.state, true, 'ConfigMap ns/envoy-initializer');
    assert.equal(ready.ok, true);
    assert.match(ready.message, /STALE/);
    const fixed = reduceTemplate(
      bad.state,
      { type: 'upsert', configMap: cm(courseTemplateText(), '3') },
      now,
    );
    assert.deepEqual(fixed.effect, { kind: 'unchanged', hash: good.state.good!.hash, recovered: true });
    assert.equal(fixed.state.error, undefined);
  });

  test('a missing key is broken, not absent', () => {
    const r = reduceTemplate(INITIAL_TEMPLATE_STATE, { type: 'upsert', configMap: cm(undefined, '1') }, now);
    assert.equal(r.effect.kind, 'invalid');
    // Nothing to fall back to: Pods are admitted unchanged, as without a ConfigMap, so still ready.
    const ready = templateReadiness(r.state, true, 'x');
    assert.equal(ready.ok, true);
    assert.match(
      ready.message,
      /x is invalid and there is no last good template \(the ConfigMap has no key "config"\)/,
    );
    assert.match(ready.message, /admitted unchanged/);
  });

  test('a deleted ConfigMap means no template', () => {
    const good = reduceTemplate(
      INITIAL_TEMPLATE_STATE,
      { type: 'upsert', configMap: cm(courseTemplateText(), '1') },
      now,
    );
    const gone = reduceTemplate(good.state, { type: 'delete' }, now);
    assert.equal(gone.state.good, undefined);
    const ready = templateReadiness(gone.state, true, 'x');
    assert.equal(ready.ok, true);
    assert.match(ready.message, /none/);
  });

  test('not ready before the first list', () => {
    assert.equal(templateReadiness(INITIAL_TEMPLATE_STATE, false, 'x').ok, false);
  });

  test('event names are per ConfigMap version, so replicas record one event', () => {
    assert.equal(eventNameFor(cm(broken, '42')), 'envoy-initializer.invalid-template.01234567.42');
  });
});
