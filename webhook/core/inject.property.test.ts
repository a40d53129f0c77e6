// Property-based tests of the injector (fast-check), through the webhook's own decision
// (admission.ts `admit`, which runs selection and core/inject.ts) over random Pod shapes and
// random valid templates:
//   1. the patch always applies (fast-json-patch applyPatch with validation);
//   2. applying the webhook twice adds nothing (reinvocation);
//   3. no user field is changed or removed: the result minus the appended sidecar entries and
//      the status annotation is the original Pod (null and absent count as the same);
//   4. no Pod shape, however odd, makes the handler fail (outcome `error`).
// The apiserver's own verdict on a sample of injected Pods is e2e/webhook/properties.test.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { oddPod, type TemplateSample, validPod, validTemplate } from '../../examples/arbitraries.ts';
import { type AdmitResult, admit } from '../admission.ts';
import { STATUS_ANNOTATION } from './contract.ts';
import { parseInjectionStatus, planInjection } from './inject.ts';
import { parseTemplate } from './template.ts';

const NUM_RUNS = Number(process.env['NETMESH_PROPERTY_RUNS'] ?? 300);

function loaded(sample: TemplateSample) {
  const parsed = parseTemplate(sample.text);
  if (!parsed.ok) throw new Error(`a valid template was refused: ${parsed.error}\n${sample.text}`);
  return { template: parsed.template, hash: parsed.hash };
}

function review(pod: unknown): Parameters<typeof admit>[0] {
  return {
    uid: 'u-1',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    namespace: 'apps',
    operation: 'CREATE',
    object: pod,
  };
}

function webhook(pod: unknown, template: ReturnType<typeof loaded>): AdmitResult {
  return admit(review(pod), {
    template,
    namespaceLabels: { 'netmesh.io/injection': 'enabled' },
    webhookNamespace: 'netmesh-system',
  });
}

function decode(result: AdmitResult): Operation[] {
  return JSON.parse(Buffer.from(result.response.patch!, 'base64').toString('utf8')) as Operation[];
}

/** applyPatch with validation, on a copy: throws if any operation does not apply. */
function apply(pod: unknown, patch: Operation[]): Record<string, unknown> {
  return jsonpatch.applyPatch(structuredClone(pod), patch, true, true).newDocument as Record<string, unknown>;
}

const LISTS = ['initContainers', 'containers', 'volumes'] as const;

/**
 * The injected Pod with what the injector may add taken out again: the template's init
 * containers inserted at the front of spec.initContainers (native sidecars start first), its
 * containers and volumes appended (each checked equal to the template's, in order, but for the
 * one sidecar a per-Pod override may adjust), the status annotation, and a metadata /
 * annotations map / list created where the Pod had none (or null).
 */
function withoutInjection(
  original: Record<string, unknown>,
  injected: Record<string, unknown>,
  template: TemplateSample['object'],
  overridden: boolean,
): Record<string, unknown> {
  const out = structuredClone(injected);
  const spec = out['spec'] as Record<string, unknown>;
  const originalSpec = original['spec'] as Record<string, unknown>;
  // The one container overrides apply to: the first native sidecar, else the first container.
  const sidecar = (template.initContainers ?? []).length > 0 ? 'initContainers' : 'containers';
  for (const key of LISTS) {
    const before = originalSpec[key];
    const after = (spec[key] as unknown[] | undefined) ?? [];
    const kept = Array.isArray(before) ? before.length : 0;
    const wanted = template[key] ?? [];
    const prepend = key === 'initContainers';
    const added = prepend ? after.slice(0, after.length - kept) : after.slice(kept);
    const remaining = prepend ? after.slice(after.length - kept) : after.slice(0, kept);
    assert.equal(added.length, wanted.length, `spec.${key}: as many entries added as the template has`);
    added.forEach((entry, i) => {
      const adjustable = overridden && key === sidecar && i === 0;
      if (adjustable) assert.equal((entry as { name: string }).name, (wanted[i] as { name: string }).name);
      else assert.deepStrictEqual(entry, wanted[i], `spec.${key}[${i}]: the template's entry`);
    });
    if (Array.isArray(before)) spec[key] = remaining;
    else if (before === null) spec[key] = null;
    else delete spec[key];
  }
  const metadata = out['metadata'] as Record<string, unknown>;
  const annotations = metadata['annotations'] as Record<string, unknown>;
  assert.equal(typeof annotations[STATUS_ANNOTATION], 'string');
  delete annotations[STATUS_ANNOTATION];
  const originalMetadata = original['metadata'];
  if (originalMetadata === undefined || originalMetadata === null) {
    assert.deepStrictEqual(metadata, { annotations: {} }, 'a created metadata holds only the record');
    if (originalMetadata === null) out['metadata'] = null;
    else delete out['metadata'];
  } else {
    const before = (originalMetadata as Record<string, unknown>)['annotations'];
    if (before === undefined || before === null) {
      assert.deepStrictEqual(annotations, {}, 'a created annotations map holds only the record');
      if (before === null) metadata['annotations'] = null;
      else delete metadata['annotations'];
    }
  }
  return out;
}

/** Injections that applied a per-Pod override (so the test is seen to cover them). */
let withOverrides = 0;

/** The three properties for one Pod and template; returns whether it was injected. */
function check(pod: Record<string, unknown>, sample: TemplateSample): boolean {
  const template = loaded(sample);
  const frozen = structuredClone(pod);
  const first = webhook(pod, template);
  assert.notEqual(first.outcome, 'error', first.message);
  assert.deepStrictEqual(pod, frozen, 'the handler does not touch its input');
  if (first.outcome !== 'injected') {
    assert.equal(first.response.patch, undefined);
    return false;
  }
  const patch = decode(first);
  assert.ok(
    patch.every((op) => op.op === 'add'),
    'only add operations',
  );
  // The webhook's encoded plan and the plain planner agree.
  const plain = planInjection(structuredClone(pod) as never, template.template, {
    templateHash: template.hash,
  });
  assert.equal(plain.action, 'inject');
  assert.deepStrictEqual(plain.action === 'inject' ? plain.patch : undefined, patch);

  const injected = apply(pod, patch); // 1. applies, with validation
  const status = parseInjectionStatus(
    ((injected['metadata'] as Record<string, unknown>)['annotations'] as Record<string, unknown>)[
      STATUS_ANNOTATION
    ],
  );
  assert.equal(status?.templateHash, template.hash);
  // 3. every field of the original, and nothing else but the injection.
  if (status?.overrides !== undefined) withOverrides++;
  assert.deepStrictEqual(
    withoutInjection(pod, injected, sample.object, status?.overrides !== undefined),
    pod,
  );
  // 2. reinvocation: the injected Pod comes back (as the apiserver sends it after another
  // webhook's change) and gets no patch and no warning.
  const second = webhook(injected, template);
  assert.equal(second.outcome, 'skipped');
  assert.equal(second.reason, 'AlreadyInjected');
  assert.equal(second.response.patch, undefined);
  assert.equal(second.response.warnings, undefined);
  return true;
}

describe('injection properties (fast-check)', () => {
  test('valid Pods x valid templates: the patch applies, reinvocation adds nothing, no user field changes', () => {
    let injected = 0;
    let runs = 0;
    fc.assert(
      fc.property(validPod, validTemplate, (pod, sample) => {
        runs++;
        if (check(pod, sample)) injected++;
      }),
      { numRuns: NUM_RUNS },
    );
    // Not vacuous: most pairs inject (the others are name conflicts or empty templates).
    assert.ok(injected > runs / 2, `${injected} of ${runs} injected`);
    assert.ok(withOverrides > runs / 20, `${withOverrides} of ${runs} with a per-Pod override applied`);
  });

  test('odd Pod shapes (nulls, empty lists, no metadata, unknown fields, odd keys): the same, and never an error', () => {
    let injected = 0;
    let runs = 0;
    fc.assert(
      fc.property(oddPod, validTemplate, (pod, sample) => {
        runs++;
        if (check(pod, sample)) injected++;
      }),
      { numRuns: NUM_RUNS },
    );
    assert.ok(injected > runs / 3, `${injected} of ${runs} injected`);
  });

  test('any JSON as the Pod object: the handler answers, never with an error', () => {
    const template = loaded({ text: '{"containers":[{"name":"envoy","image":"envoy"}]}', object: {} });
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), (object) => {
        const result = webhook(object, template);
        assert.notEqual(result.outcome, 'error', result.message);
        if (result.outcome === 'injected') apply(object, decode(result));
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
