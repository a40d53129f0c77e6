// The apiserver's own verdict on injected Pods: a sample of random Pods and templates
// (examples/arbitraries.ts, the generators of webhook/core/inject.property.test.ts) injected by
// the webhook's decision (admission.ts `admit`), the patch applied with validation, and the
// result sent through a server-side dry-run create against the real control plane. Each
// original Pod is dry-run too, so a rejection can only be the injection's doing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import fc from 'fast-check';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { validPod, validTemplate } from '../../examples/arbitraries.ts';
import { admit } from '../../webhook/admission.ts';
import { STATUS_ANNOTATION } from '../../webhook/core/contract.ts';
import { parseTemplate } from '../../webhook/core/template.ts';
import { createNamespace, deleteNamespace, useCluster } from '../support.ts';

const SAMPLE = Number(process.env['NETMESH_PROPERTY_SAMPLE'] ?? 30);
const SEED = Number(process.env['NETMESH_PROPERTY_SEED'] ?? Date.now() % 2 ** 31);

interface Case {
  pod: Record<string, unknown>;
  templateText: string;
  injected: Record<string, unknown>;
  added: string[];
}

/** Draws (Pod, template) pairs until `count` of them are injected. */
function injectedSample(count: number, seed: number): Case[] {
  const cases: Case[] = [];
  const pairs = fc.sample(fc.tuple(validPod, validTemplate), { numRuns: count * 4, seed });
  for (const [pod, sample] of pairs) {
    if (cases.length === count) break;
    const parsed = parseTemplate(sample.text);
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
    const result = admit(
      {
        uid: 'u',
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        namespace: 'apps',
        operation: 'CREATE',
        object: pod,
      },
      {
        template: { template: parsed.template, hash: parsed.hash },
        namespaceLabels: { 'netmesh.io/injection': 'enabled' },
        webhookNamespace: 'netmesh-system',
      },
    );
    if (result.outcome !== 'injected') continue;
    const patch = JSON.parse(Buffer.from(result.response.patch!, 'base64').toString('utf8')) as Operation[];
    const injected = jsonpatch.applyPatch(structuredClone(pod), patch, true, false).newDocument;
    const added = [...parsed.template.initContainers, ...parsed.template.containers].map((c) => c.name);
    cases.push({ pod, templateText: sample.text, injected, added });
  }
  return cases;
}

describe('injected Pods pass the apiserver validation (server-side dry-run)', () => {
  const h = useCluster();
  let ns: string;

  before(async () => {
    // Not labelled for injection: only this file's own patch is under test, no webhook's.
    ns = await createNamespace(h, 'wh-prop');
  });
  after(async () => {
    if (ns) await deleteNamespace(h, ns);
  });

  test(`a sample of ${SAMPLE} random injected Pods (seed ${SEED})`, async () => {
    const cases = injectedSample(SAMPLE, SEED);
    assert.equal(cases.length, SAMPLE, `${SAMPLE} injected Pods drawn`);
    let containers = 0;
    for (const [i, c] of cases.entries()) {
      const where = `case ${i} (seed ${SEED}):\npod ${JSON.stringify(c.pod)}\ntemplate ${c.templateText}`;
      const dryRun = (body: Record<string, unknown>) =>
        h.core.createNamespacedPod({
          namespace: ns,
          body: body as V1Pod,
          dryRun: 'All',
          fieldValidation: 'Strict',
        });
      // The generator's Pod is valid on its own...
      await dryRun(c.pod).catch((err: Error) =>
        assert.fail(`the original Pod was rejected: ${err.message}\n${where}`),
      );
      // ...and so is what the webhook makes of it.
      const created = await dryRun(c.injected).catch((err: Error) =>
        assert.fail(`the injected Pod was rejected: ${err.message}\n${where}`),
      );
      const names = [...(created.spec?.initContainers ?? []), ...created.spec!.containers].map((x) => x.name);
      for (const name of c.added)
        assert.ok(names.includes(name), `sidecar ${name} kept by the apiserver; ${where}`);
      assert.ok(created.metadata?.annotations?.[STATUS_ANNOTATION], `status annotation kept; ${where}`);
      containers += c.added.length;
    }
    console.log(
      `# ${cases.length} injected Pods (${containers} sidecar containers) accepted by server-side dry-run create, strict field validation (seed ${SEED})`,
    );
  });
});
