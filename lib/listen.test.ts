import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseListen } from './listen.ts';

describe('parseListen', () => {
  test('host:port forms', () => {
    assert.deepEqual(parseListen('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
    assert.deepEqual(parseListen(':9443'), { host: '0.0.0.0', port: 9443 });
    assert.deepEqual(parseListen('[::1]:8443'), { host: '::1', port: 8443 });
    assert.throws(() => parseListen('9443'), /host:port/);
    assert.throws(() => parseListen('a:99999'), /out of range/);
    assert.throws(() => parseListen('x', 'health-listen'), /^Error: --health-listen must be host:port/);
  });
});
