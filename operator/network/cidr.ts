// IP address and CIDR arithmetic for Network specs. Pure: no I/O, addresses are bigints so
// IPv4 and IPv6 share one code path.

export type IpFamily = 4 | 6;

export interface IpAddress {
  readonly family: IpFamily;
  readonly value: bigint;
}

export interface ParsedCidr {
  readonly family: IpFamily;
  /** The network address (host bits zero); always equal to `first`. */
  readonly network: bigint;
  readonly prefix: number;
  /** First and last address of the block, network and broadcast addresses included. */
  readonly first: bigint;
  readonly last: bigint;
}

export type CidrErrorCode =
  | 'NotAString'
  | 'Empty'
  | 'InvalidAddress'
  | 'ZoneNotAllowed'
  | 'MissingPrefix'
  | 'InvalidPrefix'
  | 'PrefixOutOfRange'
  | 'HostBitsSet';

/** A parse failure whose `message` is fit to show to users as is. */
export class CidrError extends Error {
  override readonly name = 'CidrError';
  readonly code: CidrErrorCode;
  readonly input: string;
  /** For `HostBitsSet`: the canonical CIDR with the host bits cleared. */
  readonly suggestion: string | undefined;

  constructor(code: CidrErrorCode, input: string, message: string, suggestion?: string) {
    super(message);
    this.code = code;
    this.input = input;
    this.suggestion = suggestion;
  }
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: CidrError };

export function addressBits(family: IpFamily): number {
  return family === 4 ? 32 : 128;
}

function allOnes(family: IpFamily): bigint {
  return (1n << BigInt(addressBits(family))) - 1n;
}

function hostMask(family: IpFamily, prefix: number): bigint {
  return (1n << BigInt(addressBits(family) - prefix)) - 1n;
}

/** Clears the host bits of `value` for a `prefix`-bit network. */
export function maskToPrefix(family: IpFamily, value: bigint, prefix: number): bigint {
  return value & (allOnes(family) ^ hostMask(family, prefix));
}

// ---------------------------------------------------------------------------------------------
// Addresses

type Detail =
  | { ok: true; family: IpFamily; value: bigint }
  | { ok: false; code: CidrErrorCode; detail: string };

function fail(code: CidrErrorCode, detail: string): Detail {
  return { ok: false, code, detail };
}

// Octets with leading zeros are rejected rather than read as decimal: some parsers (inet_aton)
// read them as octal, so "010.0.0.1" means different addresses to different tools.
function parseIpv4Value(text: string): { ok: true; value: bigint } | { ok: false; detail: string } {
  const parts = text.split('.');
  if (parts.length !== 4) {
    return { ok: false, detail: 'an IPv4 address has exactly 4 dot-separated octets' };
  }
  let value = 0n;
  for (const part of parts) {
    if (part === '') return { ok: false, detail: 'an IPv4 address has exactly 4 dot-separated octets' };
    if (!/^[0-9]+$/.test(part)) return { ok: false, detail: `octet "${part}" is not a decimal number` };
    if (part.length > 1 && part.startsWith('0')) {
      return { ok: false, detail: `octet "${part}" has a leading zero` };
    }
    if (part.length > 3 || Number(part) > 255) {
      return { ok: false, detail: `octet ${part} is out of range (0-255)` };
    }
    value = (value << 8n) | BigInt(part);
  }
  return { ok: true, value };
}

function parseHexGroups(side: string): { ok: true; groups: string[] } | { ok: false; detail: string } {
  if (side === '') return { ok: true, groups: [] };
  const groups = side.split(':');
  for (const group of groups) {
    if (group === '')
      return { ok: false, detail: 'empty group (a single ":" at the start or end, or ":::")' };
  }
  return { ok: true, groups };
}

function parseIpv6Value(text: string): Detail {
  const invalid = (detail: string) => fail('InvalidAddress', detail);
  const halves = text.split('::');
  if (halves.length > 2) return invalid('"::" may appear only once');
  const head = parseHexGroups(halves[0]!);
  if (!head.ok) return invalid(head.detail);
  const compressed = halves.length === 2;
  const tail = compressed ? parseHexGroups(halves[1]!) : { ok: true as const, groups: [] };
  if (!tail.ok) return invalid(tail.detail);

  // An embedded dotted IPv4 address may only be the last 32 bits, e.g. ::ffff:192.0.2.1.
  const lastSide = compressed ? tail.groups : head.groups;
  const words: bigint[][] = [[], []];
  for (const [index, side] of [head.groups, tail.groups].entries()) {
    for (const [i, group] of side.entries()) {
      if (group.includes('.')) {
        if (side !== lastSide || i !== side.length - 1) {
          return invalid('an embedded IPv4 address is only allowed as the last 32 bits');
        }
        const v4 = parseIpv4Value(group);
        if (!v4.ok) return invalid(`embedded IPv4 address "${group}": ${v4.detail}`);
        words[index]!.push(v4.value >> 16n, v4.value & 0xffffn);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(group)) {
        return invalid(`group "${group}" is not 1 to 4 hexadecimal digits`);
      }
      words[index]!.push(BigInt(`0x${group}`));
    }
  }
  const [headWords, tailWords] = words as [bigint[], bigint[]];
  const count = headWords.length + tailWords.length;
  if (compressed ? count > 7 : count !== 8) {
    return invalid(
      compressed ? 'too many groups around "::"' : 'an IPv6 address has 8 groups unless "::" is used',
    );
  }
  const zeros: bigint[] = new Array(8 - count).fill(0n);
  let value = 0n;
  for (const word of [...headWords, ...zeros, ...tailWords]) value = (value << 16n) | word;
  return { ok: true, family: 6, value };
}

function parseIpDetail(text: string): Detail {
  if (text === '') return fail('Empty', 'empty address');
  // Zones ("fe80::1%eth0") name a host's interface, which means nothing in a cluster-wide spec.
  const zone = text.indexOf('%');
  if (zone !== -1) return fail('ZoneNotAllowed', text.slice(zone));
  if (text.includes(':')) return parseIpv6Value(text);
  if (text.includes('.')) {
    const v4 = parseIpv4Value(text);
    return v4.ok ? { ok: true, family: 4, value: v4.value } : fail('InvalidAddress', v4.detail);
  }
  return fail('InvalidAddress', 'not an IPv4 or IPv6 address');
}

// `subject` names the value in the message, e.g. `gateway "10.0.0.256"`.
function addressMessage(subject: string, code: CidrErrorCode, detail: string): string {
  if (code === 'ZoneNotAllowed') return `${subject} has a zone ("${detail}"); zones are not allowed`;
  return `${subject} is not a valid IP address: ${detail}`;
}

function tryParseIpAs(text: unknown, subject: string): ParseResult<IpAddress> {
  if (typeof text !== 'string') {
    return { ok: false, error: new CidrError('NotAString', String(text), `${subject} must be a string`) };
  }
  const result = parseIpDetail(text);
  if (result.ok) return { ok: true, value: { family: result.family, value: result.value } };
  const message = addressMessage(`${subject} "${text}"`, result.code, result.detail);
  return { ok: false, error: new CidrError(result.code, text, message) };
}

/** Parses an IPv4 or IPv6 address without a zone or prefix. */
export function tryParseIp(text: unknown): ParseResult<IpAddress> {
  return tryParseIpAs(text, 'address');
}

/** Like `tryParseIp`, throwing `CidrError`. */
export function parseIp(text: string): IpAddress {
  const result = tryParseIp(text);
  if (!result.ok) throw result.error;
  return result.value;
}

function formatIpv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');
}

// RFC 5952: lowercase, no leading zeros, "::" for the longest run of two or more zero groups
// (the first one on a tie), and IPv4-mapped addresses in mixed notation.
function formatIpv6(value: bigint): string {
  if (value >> 32n === 0xffffn) return `::ffff:${formatIpv4(value & 0xffffffffn)}`;
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((value >> shift) & 0xffffn));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** Formats an address; IPv6 in RFC 5952 canonical form. */
export function formatIp(ip: IpAddress): string {
  return ip.family === 4 ? formatIpv4(ip.value) : formatIpv6(ip.value);
}

export function familyName(family: IpFamily): string {
  return family === 4 ? 'IPv4' : 'IPv6';
}

// ---------------------------------------------------------------------------------------------
// CIDRs

export function tryParseCidr(text: unknown): ParseResult<ParsedCidr> {
  const error = (code: CidrErrorCode, message: string, suggestion?: string): ParseResult<ParsedCidr> => ({
    ok: false,
    error: new CidrError(code, String(text), message, suggestion),
  });
  if (typeof text !== 'string') return error('NotAString', 'a CIDR must be a string');
  if (text === '') return error('Empty', 'cidr is empty');
  const slash = text.indexOf('/');
  if (slash === -1) {
    const example = parseIpDetail(text).ok ? `${text}/${text.includes(':') ? '64' : '24'}` : '10.0.0.0/24';
    return error('MissingPrefix', `cidr "${text}" has no prefix length (e.g. "${example}")`);
  }
  const addressText = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  const address = parseIpDetail(addressText);
  if (!address.ok) {
    const message =
      address.code === 'ZoneNotAllowed'
        ? addressMessage(`cidr "${text}"`, address.code, address.detail)
        : `cidr "${text}" has an invalid address: ${address.detail}`;
    return error(address.code, message);
  }
  const { family } = address;
  const bits = addressBits(family);
  if (!/^[0-9]+$/.test(prefixText)) {
    return error('InvalidPrefix', `cidr "${text}": prefix "${prefixText}" is not a decimal number`);
  }
  if (prefixText.length > 1 && prefixText.startsWith('0')) {
    return error('InvalidPrefix', `cidr "${text}": prefix "${prefixText}" has a leading zero`);
  }
  const prefix = prefixText.length > 3 ? Number.POSITIVE_INFINITY : Number(prefixText);
  if (prefix > bits) {
    return error(
      'PrefixOutOfRange',
      `prefix ${prefixText} is out of range for ${familyName(family)} (0-${bits})`,
    );
  }
  const network = maskToPrefix(family, address.value, prefix);
  if (network !== address.value) {
    const suggestion = `${formatIp({ family, value: network })}/${prefix}`;
    return error(
      'HostBitsSet',
      `cidr "${text}" has host bits set; did you mean "${suggestion}"?`,
      suggestion,
    );
  }
  return { ok: true, value: makeCidr(family, network, prefix) };
}

/** Like `tryParseCidr`, throwing `CidrError`. */
export function parseCidr(text: string): ParsedCidr {
  const result = tryParseCidr(text);
  if (!result.ok) throw result.error;
  return result.value;
}

/** Builds a CIDR from any address inside it (host bits are cleared). */
export function makeCidr(family: IpFamily, address: bigint, prefix: number): ParsedCidr {
  const bits = addressBits(family);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) {
    throw new RangeError(`prefix ${prefix} is out of range for ${familyName(family)} (0-${bits})`);
  }
  if (address < 0n || address > allOnes(family)) {
    throw new RangeError(`address ${address} is out of range for ${familyName(family)}`);
  }
  const network = maskToPrefix(family, address, prefix);
  return { family, network, prefix, first: network, last: network | hostMask(family, prefix) };
}

/** Canonical text, e.g. "2001:db8::/64". */
export function formatCidr(cidr: ParsedCidr): string {
  return `${formatIp({ family: cidr.family, value: cidr.network })}/${cidr.prefix}`;
}

export function contains(cidr: ParsedCidr, ip: IpAddress): boolean {
  return cidr.family === ip.family && ip.value >= cidr.first && ip.value <= cidr.last;
}

/** Whether `outer` contains every address of `inner` (a CIDR contains itself). */
export function containsCidr(outer: ParsedCidr, inner: ParsedCidr): boolean {
  return (
    outer.family === inner.family &&
    outer.prefix <= inner.prefix &&
    inner.first >= outer.first &&
    inner.last <= outer.last
  );
}

/** Whether two CIDRs share an address; CIDRs of different families never overlap. */
export function overlaps(a: ParsedCidr, b: ParsedCidr): boolean {
  return a.family === b.family && a.first <= b.last && b.first <= a.last;
}

// Blocks this small have no network/broadcast (RFC 3021 for IPv4 /31, RFC 6164 for IPv6 /127)
// or are a single host, so every address in them is usable.
function allAddressesUsable(cidr: ParsedCidr): boolean {
  return addressBits(cidr.family) - cidr.prefix <= 1;
}

/**
 * Addresses a host may use. IPv4: minus network and broadcast for /30 and larger. IPv6: minus
 * the subnet-router anycast address (the network address) for /126 and larger.
 */
export function usableAddresses(cidr: ParsedCidr): bigint {
  const total = cidr.last - cidr.first + 1n;
  if (allAddressesUsable(cidr)) return total;
  return cidr.family === 4 ? total - 2n : total - 1n;
}

export function firstUsable(cidr: ParsedCidr): bigint {
  return allAddressesUsable(cidr) ? cidr.first : cidr.first + 1n;
}

export function lastUsable(cidr: ParsedCidr): bigint {
  return cidr.family === 4 && !allAddressesUsable(cidr) ? cidr.last - 1n : cidr.last;
}

/** The IPv4 broadcast address; undefined for IPv6 and for /31 and /32, which have none. */
export function broadcast(cidr: ParsedCidr): bigint | undefined {
  return cidr.family === 4 && !allAddressesUsable(cidr) ? cidr.last : undefined;
}

// ---------------------------------------------------------------------------------------------
// Network spec validation

export type NetworkSpecValidation =
  | {
      ok: true;
      cidr: ParsedCidr;
      /** The effective gateway: the given one, or the first usable address. */
      gateway: IpAddress;
      gatewayDefaulted: boolean;
      usable: bigint;
      canonicalCidr: string;
      canonicalGateway: string;
    }
  | { ok: false; reason: 'Invalid'; message: string };

/** spec.cidr and spec.gateway maxLength in the CRD. */
export const MAX_CIDR_TEXT = 49;
export const MAX_GATEWAY_TEXT = 45;

function excerpt(text: string): string {
  return `"${text.slice(0, 24)}…"`;
}

/**
 * Validates a Network spec. Messages are short sentences meant for a status condition.
 * An empty gateway string is rejected rather than defaulted so a typo does not silently
 * pick an address; omit the field (or set it to null) for the default.
 */
export function validateNetworkSpec(
  spec: { cidr?: unknown; gateway?: unknown } | null | undefined,
): NetworkSpecValidation {
  const invalid = (message: string): NetworkSpecValidation => ({ ok: false, reason: 'Invalid', message });
  if (spec === null || typeof spec !== 'object') return invalid('spec is required');
  if (spec.cidr === undefined || spec.cidr === null || spec.cidr === '')
    return invalid('spec.cidr is required');
  if (typeof spec.cidr !== 'string') return invalid('spec.cidr must be a string such as "10.0.0.0/24"');
  // The CRD's maxLength, for apiservers that did not enforce it: the messages quote the input,
  // and a status condition must stay small (the apiserver caps its message at 32 KiB).
  if (spec.cidr.length > MAX_CIDR_TEXT) {
    return invalid(
      `cidr ${excerpt(spec.cidr)} is ${spec.cidr.length} characters long: a CIDR has at most ${MAX_CIDR_TEXT} (e.g. "10.0.0.0/24")`,
    );
  }
  const parsed = tryParseCidr(spec.cidr);
  if (!parsed.ok) return invalid(parsed.error.message);
  const cidr = parsed.value;
  const canonicalCidr = formatCidr(cidr);
  const usable = usableAddresses(cidr);

  if (spec.gateway === undefined || spec.gateway === null) {
    const gateway: IpAddress = { family: cidr.family, value: firstUsable(cidr) };
    return {
      ok: true,
      cidr,
      gateway,
      gatewayDefaulted: true,
      usable,
      canonicalCidr,
      canonicalGateway: formatIp(gateway),
    };
  }
  if (typeof spec.gateway !== 'string') return invalid('spec.gateway must be a string such as "10.0.0.1"');
  if (spec.gateway === '') return invalid('spec.gateway is empty; omit it to use the first usable address');
  if (spec.gateway.length > MAX_GATEWAY_TEXT) {
    return invalid(
      `gateway ${excerpt(spec.gateway)} is ${spec.gateway.length} characters long: an address has at most ${MAX_GATEWAY_TEXT}`,
    );
  }
  const gatewayText = spec.gateway;
  const ip = tryParseIpAs(gatewayText, 'gateway');
  if (!ip.ok) return invalid(ip.error.message);
  const gateway = ip.value;
  if (gateway.family !== cidr.family) {
    return invalid(
      `gateway "${gatewayText}" is ${familyName(gateway.family)} but cidr "${canonicalCidr}" is ${familyName(cidr.family)}`,
    );
  }
  if (!contains(cidr, gateway)) return invalid(`gateway "${gatewayText}" is outside cidr "${canonicalCidr}"`);
  const suggestion = formatIp({ family: cidr.family, value: firstUsable(cidr) });
  if (!allAddressesUsable(cidr) && gateway.value === cidr.network) {
    const what = cidr.family === 4 ? 'the network address' : 'the subnet-router anycast (network) address';
    return invalid(
      `gateway "${gatewayText}" is ${what} of "${canonicalCidr}"; use a host address such as "${suggestion}"`,
    );
  }
  if (gateway.value === broadcast(cidr)) {
    return invalid(
      `gateway "${gatewayText}" is the broadcast address of "${canonicalCidr}"; use a host address such as "${suggestion}"`,
    );
  }
  return {
    ok: true,
    cidr,
    gateway,
    gatewayDefaulted: false,
    usable,
    canonicalCidr,
    canonicalGateway: formatIp(gateway),
  };
}
