import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventName } from './events.ts';

describe('eventName', () => {
  const now = new Date('2026-03-01T00:00:00Z');
  test('<object>.<hex time><random>, as client-go names Events', () => {
    assert.match(eventName('example-network', now), /^example-network\.[0-9a-f]{11}[0-9a-f]{6}$/);
  });
  test('fits an object name (253) for the longest object names', () => {
    const name = eventName('x'.repeat(253), now);
    assert.equal(name.length, 253);
    assert.match(name, /^x+\.[0-9a-f]+$/);
  });
  test('never leaves a dot or dash before the suffix', () => {
    const name = eventName(`${'a'.repeat(234)}.b`, now);
    assert.match(name, /^a+\.[0-9a-f]+$/);
  });
});
