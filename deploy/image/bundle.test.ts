import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BUNDLED_PACKAGE, packageName, staysExternal } from './bundle.ts';

describe('what the image bundle contains', () => {
  test('packageName: the package of a bare specifier, scoped or not, with or without a subpath', () => {
    assert.equal(packageName('express'), 'express');
    assert.equal(packageName('node-forge/lib/pki'), 'node-forge');
    assert.equal(packageName('@kubernetes/client-node'), '@kubernetes/client-node');
    assert.equal(packageName('@kubernetes/client-node/dist/gen/index.js'), '@kubernetes/client-node');
  });

  test('the product and client-node are bundled: relative imports and the bundled package', () => {
    for (const spec of ['./a.ts', '../lib/b.ts', '/abs/c.js', BUNDLED_PACKAGE, `${BUNDLED_PACKAGE}/dist/config.js`])
      assert.equal(staysExternal(spec), false, spec);
  });

  test('every other package and the builtins stay imports of node_modules and the runtime', () => {
    for (const spec of ['express', 'pino', 'undici', 'js-yaml', '@types/node', 'node:fs', '@kubernetes/other'])
      assert.equal(staysExternal(spec), !spec.startsWith('node:'), spec);
  });
});
