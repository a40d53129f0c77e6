import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { instrumentProcess, setLeader } from './metrics.ts';

const info = { version: '1.2.3', commit: 'abcdef012345', node: '24.21.0', kubernetesClient: '1.0.0' };

describe('process metrics', () => {
  it('adds the default metrics and netmesh_build_info once per registry', async () => {
    const registry = new Registry();
    instrumentProcess(registry, info);
    // Twice for the same registry: a no-op, not prom-client's "already registered" error.
    instrumentProcess(registry, info);
    const text = await registry.metrics();
    assert.match(text, /^# TYPE process_cpu_user_seconds_total counter$/m);
    assert.match(text, /^# TYPE nodejs_heap_size_total_bytes gauge$/m);
    assert.match(text, /^netmesh_build_info\{version="1.2.3",commit="abcdef012345",node="24.21.0"\} 1$/m);
    assert.equal(text.match(/^# TYPE netmesh_build_info gauge$/gm)?.length, 1);
  });

  it('keeps default metrics registered by someone else', async () => {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: '' });
    assert.doesNotThrow(() => instrumentProcess(registry, info));
    assert.match(await registry.metrics(), /^netmesh_build_info\{/m);
  });

  it('registries are independent', async () => {
    const a = new Registry();
    const b = new Registry();
    instrumentProcess(a, info);
    instrumentProcess(b, { ...info, version: '9.9.9' });
    assert.match(await a.metrics(), /version="1.2.3"/);
    assert.match(await b.metrics(), /version="9.9.9"/);
  });
});

describe('netmesh_leader', () => {
  it('is absent until the process takes part in an election, then follows it', async () => {
    const registry = new Registry();
    instrumentProcess(registry, info);
    assert.doesNotMatch(await registry.metrics(), /netmesh_leader/);
    setLeader(registry, true);
    assert.match(await registry.metrics(), /^# TYPE netmesh_leader gauge\nnetmesh_leader 1$/m);
    setLeader(registry, false);
    assert.match(await registry.metrics(), /^netmesh_leader 0$/m);
    setLeader(registry, true);
    assert.match(await registry.metrics(), /^netmesh_leader 1$/m);
  });
});
