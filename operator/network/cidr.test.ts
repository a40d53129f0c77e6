import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  broadcast,
  CidrError,
  contains,
  containsCidr,
  firstUsable,
  formatCidr,
  formatIp,
  type IpAddress,
  lastUsable,
  makeCidr,
  overlaps,
  type ParsedCidr,
  parseCidr,
  parseIp,
  tryParseCidr,
  tryParseIp,
  usableAddresses,
  validateNetworkSpec,
} from './cidr.ts';

function ip(text: string): IpAddress {
  return parseIp(text);
}

function cidrError(text: string): CidrError {
  const result = tryParseCidr(text);
  assert.equal(result.ok, false, `expected "${text}" to be rejected`);
  assert.ok(!result.ok);
  return result.error;
}

// Deterministic PRNG (mulberry32) so failures reproduce.
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('parseIp / formatIp: IPv4', () => {
  test('round trips', () => {
    for (const text of ['0.0.0.0', '10.0.0.1', '192.168.255.255', '255.255.255.255', '1.2.3.4']) {
      const parsed = ip(text);
      assert.equal(parsed.family, 4);
      assert.equal(formatIp(parsed), text);
    }
    assert.equal(ip('10.1.2.3').value, 0x0a010203n);
    assert.equal(ip('255.255.255.255').value, 0xffffffffn);
  });

  test('random values round trip', () => {
    const random = prng(4);
    for (let i = 0; i < 2000; i++) {
      const value = BigInt(Math.floor(random() * 2 ** 32));
      const text = formatIp({ family: 4, value });
      assert.deepEqual(ip(text), { family: 4, value });
    }
  });

  test('rejects leading zeros, out of range octets and garbage', () => {
    const cases: Array<[string, RegExp]> = [
      ['010.0.0.1', /octet "010" has a leading zero/],
      ['10.0.0.01', /leading zero/],
      ['00.0.0.0', /leading zero/],
      ['10.0.0.256', /octet 256 is out of range \(0-255\)/],
      ['10.0.0.1000', /out of range/],
      ['10.0.0', /exactly 4/],
      ['10.0.0.0.0', /exactly 4/],
      ['10..0.0', /exactly 4/],
      ['10.0.0.', /exactly 4/],
      ['10.0.0.-1', /not a decimal number/],
      ['10.0.0.+1', /not a decimal number/],
      ['10.0.0.0x1', /not a decimal number/],
      [' 10.0.0.1', /not a decimal number/],
      ['10.0.0.1 ', /not a decimal number/],
      ['1e1.0.0.1', /not a decimal number/],
      ['١٠.0.0.1', /not a decimal number/],
      ['10', /not an IPv4 or IPv6 address/],
      ['hello', /not an IPv4 or IPv6 address/],
      ['', /empty/],
    ];
    for (const [text, pattern] of cases) {
      const result = tryParseIp(text);
      assert.ok(!result.ok, `expected ${JSON.stringify(text)} to be rejected`);
      assert.match(result.error.message, pattern, text);
      assert.ok(result.error instanceof CidrError);
    }
  });

  test('parseIp throws CidrError; tryParseIp rejects non-strings', () => {
    assert.throws(() => parseIp('nope'), CidrError);
    const result = tryParseIp(42);
    assert.ok(!result.ok);
    assert.equal(result.error.code, 'NotAString');
  });
});

describe('parseIp / formatIp: IPv6', () => {
  test('canonical RFC 5952 formatting', () => {
    const cases: Array<[string, string]> = [
      ['::', '::'],
      ['0:0:0:0:0:0:0:0', '::'],
      ['::1', '::1'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['1::', '1::'],
      ['2001:DB8::1', '2001:db8::1'],
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      // A single zero group is not compressed.
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['2001:db8::1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      // The longest run wins; on a tie the first.
      ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['1:0:0:2:0:0:3:4', '1::2:0:0:3:4'],
      ['fe80::1:2', 'fe80::1:2'],
      ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
      ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
      ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
      ['1:2:3:4::5:6:7', '1:2:3:4:0:5:6:7'],
      // IPv4-mapped stays in mixed notation; other embedded forms become hex.
      ['::ffff:1.2.3.4', '::ffff:1.2.3.4'],
      ['::FFFF:10.0.0.1', '::ffff:10.0.0.1'],
      ['0:0:0:0:0:ffff:0102:0304', '::ffff:1.2.3.4'],
      ['::1.2.3.4', '::102:304'],
      ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
      ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ];
    for (const [input, canonical] of cases) {
      const parsed = ip(input);
      assert.equal(parsed.family, 6, input);
      assert.equal(formatIp(parsed), canonical, input);
      assert.deepEqual(ip(canonical), parsed, `canonical form of ${input} parses back`);
    }
    assert.equal(ip('::ffff:1.2.3.4').value, 0xffff01020304n);
    assert.equal(ip('2001:db8::1').value, 0x20010db8000000000000000000000001n);
  });

  test('random values round trip and agree with the WHATWG URL serializer', () => {
    const random = prng(6);
    for (let i = 0; i < 3000; i++) {
      let value = 0n;
      for (let g = 0; g < 8; g++) {
        // Zero-heavy groups exercise "::" placement.
        const group = random() < 0.5 ? 0 : Math.floor(random() * 0x10000);
        value = (value << 16n) | BigInt(group);
      }
      const text = formatIp({ family: 6, value });
      assert.deepEqual(ip(text), { family: 6, value });
      if (value >> 32n !== 0xffffn) {
        // WHATWG compresses like RFC 5952 but writes IPv4-mapped addresses in hex.
        assert.equal(new URL(`http://[${text}]/`).hostname, `[${text}]`);
      }
    }
  });

  test('rejects zones, bad groups and garbage', () => {
    const cases: Array<[string, RegExp]> = [
      ['fe80::1%eth0', /has a zone \("%eth0"\); zones are not allowed/],
      ['fe80::1%1', /zone/],
      ['fe80::1%', /zone/],
      ['1::2::3', /"::" may appear only once/],
      [':::', /empty group/],
      [':1::', /empty group/],
      ['1::2:', /empty group/],
      [':1:2:3:4:5:6:7', /empty group/],
      ['1:2:3:4:5:6:7:', /empty group/],
      ['1:2:3:4:5:6:7', /8 groups/],
      ['1:2:3:4:5:6:7:8:9', /8 groups/],
      ['1:2:3:4:5:6:7:8::', /too many groups/],
      ['::1:2:3:4:5:6:7:8', /too many groups/],
      ['1:2:3:4::5:6:7:8', /too many groups/],
      ['12345::', /not 1 to 4 hexadecimal digits/],
      ['g::1', /not 1 to 4 hexadecimal digits/],
      ['2001:db8:: 1', /hexadecimal/],
      ['::ffff:1.2.3', /embedded IPv4 address "1.2.3"/],
      ['::ffff:1.2.3.04', /leading zero/],
      ['::ffff:1.2.3.256', /out of range/],
      ['1.2.3.4::', /only allowed as the last 32 bits/],
      ['::1.2.3.4:1', /only allowed as the last 32 bits/],
      ['1:2:3:4:5:6:7:1.2.3.4', /8 groups/],
      ['[::1]', /hexadecimal/],
      ['::1/128', /hexadecimal/],
      [':', /empty group/],
    ];
    for (const [text, pattern] of cases) {
      const result = tryParseIp(text);
      assert.ok(!result.ok, `expected ${JSON.stringify(text)} to be rejected`);
      assert.match(result.error.message, pattern, text);
    }
    const zone = tryParseIp('fe80::1%eth0');
    assert.ok(!zone.ok);
    assert.equal(zone.error.code, 'ZoneNotAllowed');
  });
});

describe('parseCidr', () => {
  test('IPv4 edge prefixes', () => {
    const cases: Array<[string, bigint, bigint]> = [
      ['0.0.0.0/0', 0n, 0xffffffffn],
      ['0.0.0.0/1', 0n, 0x7fffffffn],
      ['128.0.0.0/1', 0x80000000n, 0xffffffffn],
      ['10.0.0.0/8', 0x0a000000n, 0x0affffffn],
      ['192.168.1.0/24', 0xc0a80100n, 0xc0a801ffn],
      ['10.0.0.4/31', 0x0a000004n, 0x0a000005n],
      ['10.0.0.7/32', 0x0a000007n, 0x0a000007n],
    ];
    for (const [text, first, last] of cases) {
      const cidr = parseCidr(text);
      assert.equal(cidr.family, 4);
      assert.equal(cidr.network, first, text);
      assert.equal(cidr.first, first, text);
      assert.equal(cidr.last, last, text);
      assert.equal(cidr.prefix, Number(text.split('/')[1]));
      assert.equal(formatCidr(cidr), text);
    }
  });

  test('IPv6 edge prefixes and canonical text', () => {
    const max = (1n << 128n) - 1n;
    const cases: Array<[string, string, bigint, bigint]> = [
      ['::/0', '::/0', 0n, max],
      ['8000::/1', '8000::/1', 1n << 127n, max],
      ['::/1', '::/1', 0n, (1n << 127n) - 1n],
      ['2001:0DB8:0000::/64', '2001:db8::/64', 0x20010db8n << 96n, (0x20010db8n << 96n) | ((1n << 64n) - 1n)],
      ['2001:db8::/127', '2001:db8::/127', 0x20010db8n << 96n, (0x20010db8n << 96n) + 1n],
      ['2001:db8::1/128', '2001:db8::1/128', (0x20010db8n << 96n) + 1n, (0x20010db8n << 96n) + 1n],
      ['::ffff:10.0.0.0/104', '::ffff:10.0.0.0/104', 0xffff0a000000n, 0xffff0affffffn],
    ];
    for (const [text, canonical, first, last] of cases) {
      const cidr = parseCidr(text);
      assert.equal(cidr.family, 6, text);
      assert.equal(cidr.first, first, text);
      assert.equal(cidr.last, last, text);
      assert.equal(formatCidr(cidr), canonical);
      assert.deepEqual(parseCidr(canonical), cidr);
    }
  });

  test('host bits set suggests the network', () => {
    const error = cidrError('10.0.0.1/8');
    assert.equal(error.code, 'HostBitsSet');
    assert.equal(error.message, 'cidr "10.0.0.1/8" has host bits set; did you mean "10.0.0.0/8"?');
    assert.equal(error.suggestion, '10.0.0.0/8');
    assert.equal(error.input, '10.0.0.1/8');
    const v6 = cidrError('2001:DB8::1/64');
    assert.equal(v6.message, 'cidr "2001:DB8::1/64" has host bits set; did you mean "2001:db8::/64"?');
    assert.equal(cidrError('10.0.0.1/31').suggestion, '10.0.0.0/31');
    assert.equal(cidrError('0.0.0.1/0').suggestion, '0.0.0.0/0');
    assert.equal(cidrError('::1/127').suggestion, '::/127');
  });

  test('prefix errors', () => {
    assert.equal(cidrError('10.0.0.0/33').message, 'prefix 33 is out of range for IPv4 (0-32)');
    assert.equal(cidrError('10.0.0.0/33').code, 'PrefixOutOfRange');
    assert.equal(cidrError('::/129').message, 'prefix 129 is out of range for IPv6 (0-128)');
    assert.equal(cidrError('::/99999999999999999999').code, 'PrefixOutOfRange');
    assert.match(cidrError('10.0.0.0/08').message, /prefix "08" has a leading zero/);
    assert.match(cidrError('10.0.0.0/').message, /prefix "" is not a decimal number/);
    assert.match(cidrError('10.0.0.0/-1').message, /prefix "-1" is not a decimal number/);
    assert.match(cidrError('10.0.0.0/ 8').message, /not a decimal number/);
    assert.match(cidrError('10.0.0.0/8/8').message, /not a decimal number/);
    assert.equal(cidrError('10.0.0.0/x').code, 'InvalidPrefix');
  });

  test('address and shape errors', () => {
    assert.equal(cidrError('10.0.0.0').message, 'cidr "10.0.0.0" has no prefix length (e.g. "10.0.0.0/24")');
    assert.equal(cidrError('10.0.0.0').code, 'MissingPrefix');
    assert.match(cidrError('fd00::').message, /e\.g\. "fd00::\/64"/);
    assert.equal(cidrError('').code, 'Empty');
    assert.equal(
      cidrError('010.0.0.0/8').message,
      'cidr "010.0.0.0/8" has an invalid address: octet "010" has a leading zero',
    );
    assert.equal(
      cidrError('fe80::%eth0/64').message,
      'cidr "fe80::%eth0/64" has a zone ("%eth0"); zones are not allowed',
    );
    assert.equal(cidrError('fe80::%eth0/64').code, 'ZoneNotAllowed');
    assert.equal(cidrError('/24').code, 'Empty');
    assert.equal(cidrError('banana/24').code, 'InvalidAddress');
    assert.equal(cidrError('1.2.3.4.5/24').code, 'InvalidAddress');
    const notString = tryParseCidr(undefined);
    assert.ok(!notString.ok);
    assert.equal(notString.error.code, 'NotAString');
    assert.throws(() => parseCidr('nope'), CidrError);
  });

  test('random CIDRs round trip', () => {
    const random = prng(8);
    for (let i = 0; i < 2000; i++) {
      const family = random() < 0.5 ? 4 : 6;
      const bits = family === 4 ? 32 : 128;
      let value = 0n;
      for (let b = 0; b < bits; b += 16) value = (value << 16n) | BigInt(Math.floor(random() * 0x10000));
      const prefix = Math.floor(random() * (bits + 1));
      const cidr = makeCidr(family, value, prefix);
      assert.deepEqual(parseCidr(formatCidr(cidr)), cidr);
      assert.equal(cidr.last - cidr.first + 1n, 1n << BigInt(bits - prefix));
    }
  });

  test('makeCidr rejects out of range input', () => {
    assert.throws(() => makeCidr(4, 0n, 33), RangeError);
    assert.throws(() => makeCidr(4, 1n << 32n, 8), RangeError);
    assert.throws(() => makeCidr(6, -1n, 8), RangeError);
    assert.throws(() => makeCidr(6, 0n, 1.5), RangeError);
  });
});

describe('contains / overlaps', () => {
  const c = parseCidr;

  test('contains', () => {
    assert.equal(contains(c('10.0.0.0/24'), ip('10.0.0.0')), true);
    assert.equal(contains(c('10.0.0.0/24'), ip('10.0.0.255')), true);
    assert.equal(contains(c('10.0.0.0/24'), ip('10.0.1.0')), false);
    assert.equal(contains(c('10.0.0.0/24'), ip('9.255.255.255')), false);
    assert.equal(contains(c('0.0.0.0/0'), ip('255.255.255.255')), true);
    assert.equal(contains(c('::/0'), ip('10.0.0.1')), false, 'families never mix');
    assert.equal(contains(c('::ffff:0.0.0.0/96'), ip('10.0.0.1')), false, 'IPv4 is not its mapped form');
    assert.equal(contains(c('::ffff:0.0.0.0/96'), ip('::ffff:10.0.0.1')), true);
    assert.equal(contains(c('2001:db8::/64'), ip('2001:db8::ffff:ffff:ffff:ffff')), true);
    assert.equal(contains(c('2001:db8::/64'), ip('2001:db8:0:1::')), false);
  });

  test('overlaps: contained, identical, disjoint, adjacent, mixed family', async (t) => {
    const cases: Array<[string, string, boolean]> = [
      ['10.0.0.0/8', '10.1.0.0/16', true],
      ['10.1.0.0/16', '10.0.0.0/8', true],
      ['10.0.0.0/24', '10.0.0.0/24', true],
      ['10.0.0.0/24', '10.0.1.0/24', false],
      ['10.0.0.0/25', '10.0.0.128/25', false],
      ['10.0.0.0/31', '10.0.0.1/32', true],
      ['0.0.0.0/0', '192.168.0.1/32', true],
      ['2001:db8::/32', '2001:db8:1::/48', true],
      ['2001:db8::/64', '2001:db8:0:1::/64', false],
      ['::/0', '0.0.0.0/0', false],
      ['::ffff:0.0.0.0/96', '10.0.0.0/8', false],
      ['::/127', '::1/128', true],
    ];
    for (const [a, b, expected] of cases) {
      await t.test(`${a} vs ${b}`, () => {
        assert.equal(overlapsText(a, b), expected);
        assert.equal(overlapsText(b, a), expected, 'symmetric');
      });
    }
    assert.equal(containsCidr(c('10.0.0.0/8'), c('10.1.0.0/16')), true);
    assert.equal(containsCidr(c('10.1.0.0/16'), c('10.0.0.0/8')), false);
    assert.equal(containsCidr(c('10.0.0.0/8'), c('10.0.0.0/8')), true);
    assert.equal(containsCidr(c('::/0'), c('10.0.0.0/8')), false);
  });
});

function overlapsText(a: string, b: string): boolean {
  return overlaps(parseCidr(a), parseCidr(b));
}

describe('usable addresses', () => {
  const check = (text: string, usable: bigint, first: string, last: string, bcast: string | undefined) => {
    const cidr: ParsedCidr = parseCidr(text);
    assert.equal(usableAddresses(cidr), usable, `${text} usable`);
    assert.equal(formatIp({ family: cidr.family, value: firstUsable(cidr) }), first, `${text} first`);
    assert.equal(formatIp({ family: cidr.family, value: lastUsable(cidr) }), last, `${text} last`);
    const b = broadcast(cidr);
    assert.equal(
      b === undefined ? undefined : formatIp({ family: cidr.family, value: b }),
      bcast,
      `${text} broadcast`,
    );
    // Counting the range agrees with the formula.
    assert.equal(lastUsable(cidr) - firstUsable(cidr) + 1n, usable, `${text} range size`);
  };

  test('IPv4', () => {
    check('0.0.0.0/0', 2n ** 32n - 2n, '0.0.0.1', '255.255.255.254', '255.255.255.255');
    check('0.0.0.0/1', 2n ** 31n - 2n, '0.0.0.1', '127.255.255.254', '127.255.255.255');
    check('10.0.0.0/24', 254n, '10.0.0.1', '10.0.0.254', '10.0.0.255');
    check('10.0.0.0/30', 2n, '10.0.0.1', '10.0.0.2', '10.0.0.3');
    check('10.0.0.0/31', 2n, '10.0.0.0', '10.0.0.1', undefined);
    check('10.0.0.9/32', 1n, '10.0.0.9', '10.0.0.9', undefined);
  });

  test('IPv6', () => {
    check('::/0', 2n ** 128n - 1n, '::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', undefined);
    check('8000::/1', 2n ** 127n - 1n, '8000::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', undefined);
    check('2001:db8::/64', 2n ** 64n - 1n, '2001:db8::1', '2001:db8::ffff:ffff:ffff:ffff', undefined);
    check('2001:db8::/126', 3n, '2001:db8::1', '2001:db8::3', undefined);
    check('2001:db8::/127', 2n, '2001:db8::', '2001:db8::1', undefined);
    check('2001:db8::5/128', 1n, '2001:db8::5', '2001:db8::5', undefined);
  });
});

describe('validateNetworkSpec', () => {
  const ok = (spec: { cidr?: unknown; gateway?: unknown }) => {
    const result = validateNetworkSpec(spec);
    assert.ok(result.ok, `expected ${JSON.stringify(spec)} to be valid: ${result.ok ? '' : result.message}`);
    return result;
  };
  const invalid = (spec: { cidr?: unknown; gateway?: unknown } | null | undefined) => {
    const result = validateNetworkSpec(spec);
    assert.ok(!result.ok, `expected ${JSON.stringify(spec)} to be invalid`);
    assert.equal(result.reason, 'Invalid');
    return result.message;
  };

  test('inputs longer than the CRD allows: a short message that does not quote them whole', () => {
    const cidr = invalid({ cidr: 'x'.repeat(40_000) });
    assert.match(cidr, /^cidr "x{24}…" is 40000 characters long: a CIDR has at most 49/);
    assert.ok(cidr.length < 200);
    const gateway = invalid({ cidr: '10.0.0.0/24', gateway: '1'.repeat(5_000) });
    assert.match(gateway, /^gateway "1{24}…" is 5000 characters long: an address has at most 45$/);
    // The longest valid texts still pass (the CRD's maxLength).
    ok({
      cidr: 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.0/128'.replace('255.255.255.0', '255.255.255.255'),
    });
  });

  test('defaults the gateway to the first usable address', () => {
    const v4 = ok({ cidr: '10.0.0.0/24' });
    assert.equal(v4.canonicalCidr, '10.0.0.0/24');
    assert.equal(v4.canonicalGateway, '10.0.0.1');
    assert.deepEqual(v4.gateway, ip('10.0.0.1'));
    assert.equal(v4.gatewayDefaulted, true);
    assert.equal(v4.usable, 254n);
    assert.equal(v4.cidr.prefix, 24);

    const v6 = ok({ cidr: '2001:DB8:0::/64', gateway: null });
    assert.equal(v6.canonicalCidr, '2001:db8::/64');
    assert.equal(v6.canonicalGateway, '2001:db8::1');
    assert.equal(v6.usable, 2n ** 64n - 1n);

    assert.equal(ok({ cidr: '10.0.0.0/31' }).canonicalGateway, '10.0.0.0');
    assert.equal(ok({ cidr: '10.0.0.5/32' }).canonicalGateway, '10.0.0.5');
    assert.equal(ok({ cidr: '2001:db8::/127' }).canonicalGateway, '2001:db8::');
    assert.equal(ok({ cidr: '2001:db8::7/128' }).canonicalGateway, '2001:db8::7');
    assert.equal(ok({ cidr: '0.0.0.0/0' }).canonicalGateway, '0.0.0.1');
  });

  test('accepts and canonicalises a given gateway', () => {
    const v4 = ok({ cidr: '10.0.0.0/24', gateway: '10.0.0.254' });
    assert.equal(v4.canonicalGateway, '10.0.0.254');
    assert.equal(v4.gatewayDefaulted, false);
    const v6 = ok({ cidr: '2001:db8::/64', gateway: '2001:DB8:0:0::FFFF' });
    assert.equal(v6.canonicalGateway, '2001:db8::ffff');
    assert.equal(
      ok({ cidr: '2001:db8::/64', gateway: '2001:db8::ffff:ffff:ffff:ffff' }).usable,
      2n ** 64n - 1n,
    );
  });

  test('cidr rules', () => {
    assert.equal(invalid({}), 'spec.cidr is required');
    assert.equal(invalid({ cidr: '' }), 'spec.cidr is required');
    assert.equal(invalid({ cidr: null }), 'spec.cidr is required');
    assert.equal(invalid(null), 'spec is required');
    assert.equal(invalid(undefined), 'spec is required');
    assert.match(invalid({ cidr: 10 }), /spec\.cidr must be a string/);
    assert.match(invalid({ cidr: ['10.0.0.0/8'] }), /spec\.cidr must be a string/);
    assert.equal(
      invalid({ cidr: '10.0.0.1/8' }),
      'cidr "10.0.0.1/8" has host bits set; did you mean "10.0.0.0/8"?',
    );
    assert.equal(invalid({ cidr: '10.0.0.0/33' }), 'prefix 33 is out of range for IPv4 (0-32)');
    assert.match(invalid({ cidr: '10.0.0.0' }), /has no prefix length/);
  });

  test('gateway: network address', () => {
    assert.equal(
      invalid({ cidr: '10.0.0.0/24', gateway: '10.0.0.0' }),
      'gateway "10.0.0.0" is the network address of "10.0.0.0/24"; use a host address such as "10.0.0.1"',
    );
    assert.match(invalid({ cidr: '2001:db8::/64', gateway: '2001:db8::' }), /subnet-router anycast/);
    assert.match(invalid({ cidr: '2001:db8::/126', gateway: '2001:db8::' }), /subnet-router anycast/);
    assert.match(invalid({ cidr: '10.0.0.0/30', gateway: '10.0.0.0' }), /network address/);
  });

  test('gateway: broadcast address', () => {
    assert.equal(
      invalid({ cidr: '10.0.0.0/24', gateway: '10.0.0.255' }),
      'gateway "10.0.0.255" is the broadcast address of "10.0.0.0/24"; use a host address such as "10.0.0.1"',
    );
    assert.match(invalid({ cidr: '10.0.0.0/30', gateway: '10.0.0.3' }), /broadcast/);
    // IPv6 has no broadcast: the last address is fine.
    ok({ cidr: '2001:db8::/126', gateway: '2001:db8::3' });
  });

  test('gateway: /31, /32, /127, /128 allow every address', () => {
    ok({ cidr: '10.0.0.0/31', gateway: '10.0.0.0' });
    ok({ cidr: '10.0.0.0/31', gateway: '10.0.0.1' });
    ok({ cidr: '10.0.0.1/32', gateway: '10.0.0.1' });
    ok({ cidr: '2001:db8::/127', gateway: '2001:db8::' });
    ok({ cidr: '2001:db8::/127', gateway: '2001:db8::1' });
    ok({ cidr: '2001:db8::1/128', gateway: '2001:db8::1' });
    assert.match(invalid({ cidr: '10.0.0.1/32', gateway: '10.0.0.2' }), /outside/);
  });

  test('gateway: outside, wrong family, unparsable', () => {
    assert.equal(
      invalid({ cidr: '10.0.0.0/24', gateway: '10.0.1.1' }),
      'gateway "10.0.1.1" is outside cidr "10.0.0.0/24"',
    );
    assert.equal(
      invalid({ cidr: '10.0.0.0/24', gateway: 'fd00::1' }),
      'gateway "fd00::1" is IPv6 but cidr "10.0.0.0/24" is IPv4',
    );
    assert.equal(
      invalid({ cidr: 'fd00::/64', gateway: '10.0.0.1' }),
      'gateway "10.0.0.1" is IPv4 but cidr "fd00::/64" is IPv6',
    );
    assert.match(invalid({ cidr: '10.0.0.0/24', gateway: '::ffff:10.0.0.1' }), /is IPv6 but/);
    assert.equal(
      invalid({ cidr: '10.0.0.0/24', gateway: '10.0.0.010' }),
      'gateway "10.0.0.010" is not a valid IP address: octet "010" has a leading zero',
    );
    assert.match(
      invalid({ cidr: 'fe80::/64', gateway: 'fe80::1%eth0' }),
      /^gateway "fe80::1%eth0" has a zone/,
    );
    assert.match(invalid({ cidr: '10.0.0.0/24', gateway: '10.0.0.1/24' }), /not a valid IP address/);
    assert.match(invalid({ cidr: '10.0.0.0/24', gateway: 5 }), /spec\.gateway must be a string/);
    assert.match(invalid({ cidr: '10.0.0.0/24', gateway: '' }), /spec\.gateway is empty; omit it/);
  });

  test('messages stay short', () => {
    const message = invalid({ cidr: '2001:db8:1234:5678:9abc:def0:1234:5678/200' });
    assert.ok(message.length < 200, message);
  });
});
