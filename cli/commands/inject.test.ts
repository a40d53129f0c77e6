import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { COURSE_POD_YAML, courseTemplate } from '../../examples/course.ts';
import { type ManifestSource, objectsOf, readManifestSources } from '../manifests.ts';
import { injectSources } from './inject.ts';

const { template, hash } = courseTemplate();
const containers = (o: { spec: { containers: { name: string }[] } }): string[] =>
  o.spec.containers.map((c) => c.name);
const deployment = (name: string) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, namespace: 'shop' },
  spec: {
    selector: { matchLabels: { app: name } },
    template: { metadata: { labels: { app: name } }, spec: { containers: [{ name, image: 'nginx' }] } },
  },
});
// What `kubectl get deploy -o json` prints: a v1 List, 4-space indentation.
const kubectlList = {
  apiVersion: 'v1',
  kind: 'List',
  items: [deployment('web'), deployment('api')],
  metadata: { resourceVersion: '' },
};

describe('injectSources', () => {
  test('kind: List in JSON: every item injected, JSON out with the same indentation', () => {
    const src: ManifestSource = {
      name: 'list.json',
      format: 'json',
      text: JSON.stringify(kubectlList, null, 4),
    };
    const { output, results } = injectSources([src], template, hash);
    assert.match(output, /^\{\n {4}"apiVersion": "v1",/);
    const out = JSON.parse(output);
    assert.equal(out.kind, 'List');
    assert.deepEqual(
      out.items.map((d: { spec: { template: never } }) => containers(d.spec.template)),
      [
        ['web', 'envoy'],
        ['api', 'envoy'],
      ],
    );
    assert.deepEqual(
      results.map((r) => `${r.kind} ${r.name} ${r.decision.action}`),
      ['Deployment web injected', 'Deployment api injected'],
    );
  });

  test('kind: List in YAML, next to other documents', () => {
    const text = `${COURSE_POD_YAML}---\n${JSON.stringify(kubectlList)}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\n`;
    const { output, results } = injectSources([{ name: 'm.yaml', format: 'yaml', text }], template, hash);
    const docs = parseAllDocuments(output).map((d) => d.toJS());
    assert.equal(docs.length, 3);
    assert.deepEqual(containers(docs[0]), ['myapp-container', 'envoy']);
    assert.deepEqual(containers(docs[1].items[1].spec.template), ['api', 'envoy']);
    assert.equal(docs[2].kind, 'Service');
    assert.deepEqual(
      results.map((r) => r.decision.action),
      ['injected', 'injected', 'injected', 'unchanged'],
    );
  });

  test('a plain YAML stream keeps its comments (edited in place)', () => {
    const { output } = injectSources(
      [{ name: 'pod.yaml', format: 'yaml', text: COURSE_POD_YAML }],
      template,
      hash,
    );
    assert.match(output, /^# The seed's application Pod/);
    assert.deepEqual(containers(parse(output)), ['myapp-container', 'envoy']);
  });

  test('several JSON sources: one v1 List; mixed sources: a YAML stream', () => {
    const a: ManifestSource = { name: 'a.json', format: 'json', text: JSON.stringify(deployment('a')) };
    const b: ManifestSource = { name: 'b.json', format: 'json', text: JSON.stringify(kubectlList) };
    const both = JSON.parse(injectSources([a, b], template, hash).output);
    assert.equal(both.kind, 'List');
    assert.deepEqual(
      both.items.map((d: { metadata: { name: string } }) => d.metadata.name),
      ['a', 'web', 'api'],
    );
    const mixed = injectSources(
      [a, { name: 'pod.yaml', format: 'yaml', text: COURSE_POD_YAML }],
      template,
      hash,
    );
    const docs = parseAllDocuments(mixed.output).map((d) => d.toJS());
    assert.deepEqual(
      docs.map((d) => d.kind),
      ['Deployment', 'Pod'],
    );
    assert.deepEqual(
      mixed.results.map((r) => r.source),
      ['a.json', 'pod.yaml'],
    );
  });
});

describe('injectSources -o', () => {
  const yamlSource: ManifestSource = { name: 'pod.yaml', format: 'yaml', text: COURSE_POD_YAML };
  const jsonSource: ManifestSource = {
    name: 'web.json',
    format: 'json',
    text: JSON.stringify(deployment('web'), null, 4),
  };

  test('json: one YAML object becomes one JSON object, injected', () => {
    const { output } = injectSources([yamlSource], template, hash, {}, 'json');
    const pod = JSON.parse(output);
    assert.equal(pod.kind, 'Pod');
    assert.deepEqual(containers(pod), ['myapp-container', 'envoy']);
    assert.match(output, /^\{\n {2}"apiVersion"/, "kubectl's indentation when no input was JSON");
  });

  test('json: a YAML stream of several objects becomes a v1 List', () => {
    const stream: ManifestSource = {
      name: 'both.yaml',
      format: 'yaml',
      text: `${COURSE_POD_YAML}\n---\n# empty document\n---\n${JSON.stringify(deployment('api'))}\n`,
    };
    const list = JSON.parse(injectSources([stream, jsonSource], template, hash, {}, 'json').output);
    assert.equal(list.kind, 'List');
    assert.deepEqual(
      list.items.map((o: { kind: string }) => o.kind),
      ['Pod', 'Deployment', 'Deployment'],
    );
    assert.deepEqual(containers(list.items[2].spec.template), ['web', 'envoy']);
  });

  test('yaml: JSON input printed as YAML', () => {
    const { output } = injectSources([jsonSource], template, hash, {}, 'yaml');
    assert.doesNotMatch(output, /^\{/);
    const d = parse(output);
    assert.equal(d.kind, 'Deployment');
    assert.deepEqual(containers(d.spec.template), ['web', 'envoy']);
  });

  test("no format: the input's own, JSON text kept as it was indented", () => {
    assert.match(injectSources([jsonSource], template, hash).output, /^\{\n {4}"apiVersion"/);
    assert.equal(
      injectSources([jsonSource], template, hash, {}, 'json').output,
      injectSources([jsonSource], template, hash).output,
    );
    assert.equal(
      injectSources([yamlSource], template, hash, {}, 'yaml').output,
      injectSources([yamlSource], template, hash).output,
    );
  });
});

describe('readManifestSources', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netmesh-manifests-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'b.yaml'), COURSE_POD_YAML);
  writeFileSync(join(dir, 'a.json'), JSON.stringify(kubectlList));
  writeFileSync(join(dir, 'notes.txt'), 'not a manifest');
  writeFileSync(join(dir, 'sub', 'c.yml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: c}\n');

  test('directories: manifest files sorted, subdirectories with --recursive; format sniffed', () => {
    assert.deepEqual(
      readManifestSources([dir]).map((s) => [s.name.slice(dir.length + 1), s.format]),
      [
        ['a.json', 'json'],
        ['b.yaml', 'yaml'],
      ],
    );
    assert.deepEqual(
      readManifestSources([dir], true).map((s) => s.name.slice(dir.length + 1)),
      ['a.json', 'b.yaml', 'sub/c.yml'],
    );
  });

  test('objectsOf unwraps Lists; errors name the file', () => {
    const [json] = readManifestSources([join(dir, 'a.json')]);
    assert.deepEqual(
      objectsOf(json!).map((o) => (o['metadata'] as { name: string }).name),
      ['web', 'api'],
    );
    assert.throws(() => readManifestSources([]), /no manifest given/);
    assert.throws(() => readManifestSources([join(dir, 'nope')]), /cannot read .*nope/);
    assert.throws(() => readManifestSources([join(dir, 'sub', 'x')]), /cannot read/);
    assert.throws(
      () => objectsOf({ name: 'bad.json', format: 'json', text: '{"kind":' }),
      /bad\.json is not valid JSON/,
    );
  });
});
