import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type AdmissionResponse, encodeReviewResponse, reviewResponse } from './admission.ts';

describe('encodeReviewResponse', () => {
  const patch = Buffer.from('[{"op":"add","path":"/spec/containers/-","value":{"name":"envoy"}}]').toString(
    'base64',
  );
  const cases: [string, AdmissionResponse][] = [
    ['allowed, nothing else', { uid: 'u-1', allowed: true }],
    ['a patch', { uid: 'u-2', allowed: true, patchType: 'JSONPatch', patch }],
    [
      'a patch and warnings that JSON must escape',
      {
        uid: 'ünïcode "quoted" \\ uid',
        allowed: true,
        patchType: 'JSONPatch',
        patch,
        warnings: ['netmesh: a "quoted" warning', 'tab\there, newline\nthere, and a \u2028 separator'],
      },
    ],
    [
      'warnings and a status, no patch',
      { uid: 'u-4', allowed: true, warnings: ['w'], status: { code: 200, message: 'ok' } },
    ],
  ];
  for (const [title, response] of cases) {
    it(`is the AdmissionReview JSON: ${title}`, () => {
      const text = encodeReviewResponse(response);
      assert.deepStrictEqual(JSON.parse(text), reviewResponse(response));
      if (response.patch === undefined) assert.equal(text, JSON.stringify(reviewResponse(response)));
    });
  }
  it('puts the patch in verbatim, after the other fields', () => {
    const text = encodeReviewResponse({ uid: 'u', allowed: true, patchType: 'JSONPatch', patch });
    assert.equal(
      text,
      `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u","allowed":true,"patchType":"JSONPatch","patch":"${patch}"}}`,
    );
  });
});
