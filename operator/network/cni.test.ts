import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseCidr, parseIp, validateNetworkSpec } from './cidr.ts';
import {
  bridgeName,
  buildCniConfig,
  buildConflist,
  buildNadConfig,
  CNI_VERSION,
  cniNetworkName,
  MAX_BRIDGE_NAME_LENGTH,
  MAX_NETWORK_NAME_LENGTH,
} from './cni.ts';

const CNI_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
// Linux dev_valid_name: 1-15 bytes, no "/", ":" or whitespace, not "." or "..".
const INTERFACE_NAME = /^[a-z0-9]{1,15}$/;

describe('buildCniConfig', () => {
  test('IPv4 network', () => {
    const config = buildCniConfig({
      namespace: 'team-a',
      name: 'blue',
      cidr: '10.20.0.0/24',
      gateway: '10.20.0.1',
      family: 4,
    });
    const bridge = bridgeName('team-a', 'blue');
    assert.equal(config.networkName, 'team-a-blue');
    assert.equal(config.bridgeName, bridge);
    assert.deepEqual(config.nad.config, {
      cniVersion: '1.0.0',
      name: 'team-a-blue',
      type: 'bridge',
      bridge,
      isGateway: true,
      ipMasq: false,
      ipam: {
        type: 'host-local',
        ranges: [[{ subnet: '10.20.0.0/24', gateway: '10.20.0.1' }]],
        routes: [],
      },
    });
    assert.deepEqual(config.conflist.config, {
      cniVersion: '1.0.0',
      name: 'team-a-blue',
      plugins: [
        {
          type: 'bridge',
          bridge,
          isGateway: true,
          ipMasq: false,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: '10.20.0.0/24', gateway: '10.20.0.1' }]],
            routes: [],
          },
        },
      ],
    });
    assert.deepEqual(config.plugin, config.conflist.config.plugins[0]);
    assert.deepEqual(JSON.parse(config.nad.json), config.nad.config);
    assert.deepEqual(JSON.parse(config.conflist.json), config.conflist.config);
  });

  test('IPv6 network, canonicalised from parsed or loose text', () => {
    const fromText = buildCniConfig({
      namespace: 'prod',
      name: 'v6-net',
      cidr: '2001:DB8:0:0::/64',
      gateway: '2001:db8:0::1',
      family: 6,
    });
    const fromParsed = buildCniConfig({
      namespace: 'prod',
      name: 'v6-net',
      cidr: parseCidr('2001:db8::/64'),
      gateway: parseIp('2001:db8::1'),
      family: 6,
    });
    assert.equal(fromText.nad.json, fromParsed.nad.json);
    assert.equal(fromText.conflist.json, fromParsed.conflist.json);
    assert.deepEqual(fromText.nad.config.ipam, {
      type: 'host-local',
      ranges: [[{ subnet: '2001:db8::/64', gateway: '2001:db8::1' }]],
      routes: [],
    });
    assert.equal(fromText.nad.config.cniVersion, CNI_VERSION);
    assert.equal(fromText.nad.config.name, 'prod-v6-net');
  });

  test('works from validateNetworkSpec output', () => {
    const spec = validateNetworkSpec({ cidr: 'fd00:10::/64' });
    assert.ok(spec.ok);
    const nad = buildNadConfig({
      namespace: 'ns',
      name: 'n',
      cidr: spec.cidr,
      gateway: spec.gateway,
      family: spec.cidr.family,
    });
    assert.deepEqual(nad.config.ipam.ranges, [[{ subnet: 'fd00:10::/64', gateway: 'fd00:10::1' }]]);
  });

  test('routes are canonical and family-checked', () => {
    const v4 = buildConflist({
      namespace: 'ns',
      name: 'primary',
      cidr: '10.0.0.0/16',
      gateway: '10.0.0.1',
      family: 4,
      routes: ['0.0.0.0/0', '192.168.0.0/16'],
    });
    assert.deepEqual(v4.config.plugins[0]!.ipam.routes, [{ dst: '0.0.0.0/0' }, { dst: '192.168.0.0/16' }]);
    const v6 = buildNadConfig({
      namespace: 'ns',
      name: 'primary',
      cidr: 'fd00::/64',
      gateway: 'fd00::1',
      family: 6,
      routes: ['::/0', '2001:DB8::/32'],
    });
    assert.deepEqual(v6.config.ipam.routes, [{ dst: '::/0' }, { dst: '2001:db8::/32' }]);
    assert.throws(
      () =>
        buildNadConfig({
          namespace: 'ns',
          name: 'n',
          cidr: 'fd00::/64',
          gateway: 'fd00::1',
          family: 6,
          routes: ['0.0.0.0/0'],
        }),
      /route "0\.0\.0\.0\/0" is IPv4, not IPv6/,
    );
  });

  test('rejects inconsistent input', () => {
    assert.throws(
      () =>
        buildCniConfig({ namespace: 'ns', name: 'n', cidr: '10.0.0.0/24', gateway: '10.0.0.1', family: 6 }),
      /family mismatch/,
    );
    assert.throws(
      () =>
        buildCniConfig({ namespace: 'ns', name: 'n', cidr: '10.0.0.0/24', gateway: 'fd00::1', family: 4 }),
      /family mismatch/,
    );
    assert.throws(
      () =>
        buildCniConfig({ namespace: 'ns', name: 'n', cidr: '10.0.0.0/24', gateway: '10.0.1.1', family: 4 }),
      /outside/,
    );
    assert.throws(
      () =>
        buildCniConfig({ namespace: 'ns', name: 'n', cidr: '10.0.0.1/24', gateway: '10.0.0.1', family: 4 }),
      /host bits/,
    );
  });

  test('JSON is deterministic and forms are independent objects', () => {
    const input = { namespace: 'a', name: 'b', cidr: '10.0.0.0/24', gateway: '10.0.0.1', family: 4 as const };
    const first = buildCniConfig(input);
    const second = buildCniConfig({ ...input });
    assert.equal(first.nad.json, second.nad.json);
    assert.equal(first.conflist.json, second.conflist.json);
    assert.ok(
      first.nad.json.startsWith('{\n  "cniVersion": "1.0.0",\n  "name": "a-b",\n  "type": "bridge",'),
    );
    first.nad.config.ipam.routes.push({ dst: '0.0.0.0/0' });
    assert.deepEqual(first.conflist.config.plugins[0]!.ipam.routes, []);
    assert.deepEqual(first.plugin.ipam.routes, []);
    assert.equal(buildNadConfig(input).json, first.nad.json);
    assert.equal(buildConflist(input).json, first.conflist.json);
  });
});

describe('names', () => {
  test('bridge names are short, valid, deterministic and distinct', () => {
    const name = bridgeName('team-a', 'blue');
    assert.equal(name, bridgeName('team-a', 'blue'));
    assert.match(name, /^nm[0-9a-f]{12}$/);
    assert.ok(name.length <= MAX_BRIDGE_NAME_LENGTH);
    const long = bridgeName('n'.repeat(63), 'x'.repeat(253));
    assert.match(long, INTERFACE_NAME);
    assert.ok(long.length <= MAX_BRIDGE_NAME_LENGTH);
    // Pairs that render the same network name still get distinct bridges.
    assert.equal(cniNetworkName('a-b', 'c'), cniNetworkName('a', 'b-c'));
    assert.notEqual(bridgeName('a-b', 'c'), bridgeName('a', 'b-c'));
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) seen.add(bridgeName(`ns${i % 50}`, `net-${i}`));
    assert.equal(seen.size, 5000);
  });

  test('network names are sanitised and length-limited', () => {
    assert.equal(cniNetworkName('default', 'my.net'), 'default-my.net');
    assert.equal(cniNetworkName('ns', 'Weird Name/ü'), 'ns-Weird-Name--');
    assert.equal(cniNetworkName('-ns', 'n'), 'n-ns-n');
    assert.match(cniNetworkName('', ''), CNI_NAME);

    const namespace = 'n'.repeat(63);
    const long = cniNetworkName(namespace, 'x'.repeat(253));
    assert.equal(long.length, MAX_NETWORK_NAME_LENGTH);
    assert.match(long, CNI_NAME);
    assert.ok(long.startsWith(`${namespace}-${'x'.repeat(20)}`));
    assert.match(long, /-[0-9a-f]{10}$/);
    assert.notEqual(
      long,
      cniNetworkName(namespace, `${'x'.repeat(252)}y`),
      'truncation keeps names distinct',
    );
    assert.equal(long, cniNetworkName(namespace, 'x'.repeat(253)));

    const fits = cniNetworkName('ns', 'y'.repeat(MAX_NETWORK_NAME_LENGTH - 3));
    assert.equal(fits, `ns-${'y'.repeat(MAX_NETWORK_NAME_LENGTH - 3)}`, 'exactly at the limit: untouched');
    assert.equal(
      cniNetworkName('ns', 'y'.repeat(MAX_NETWORK_NAME_LENGTH - 2)).length,
      MAX_NETWORK_NAME_LENGTH,
    );

    const config = buildCniConfig({
      namespace,
      name: 'x'.repeat(253),
      cidr: '10.0.0.0/24',
      gateway: '10.0.0.1',
      family: 4,
    });
    assert.equal(config.nad.config.name, long);
    assert.ok(config.nad.config.bridge.length <= MAX_BRIDGE_NAME_LENGTH);
  });
});
