// CNI configuration for a Network: a bridge with host-local IPAM. Pure: hashing is the only
// "library" call and it is deterministic.

import { createHash } from 'node:crypto';
import {
  contains,
  familyName,
  formatCidr,
  formatIp,
  type IpAddress,
  type IpFamily,
  type ParsedCidr,
  parseCidr,
  parseIp,
} from './cidr.ts';

export const CNI_VERSION = '1.0.0';

/** Linux interface names are at most 15 bytes (IFNAMSIZ 16 with the terminating NUL). */
export const MAX_BRIDGE_NAME_LENGTH = 15;

// host-local keeps its allocations in a directory named after the network, so the name must
// stay well inside NAME_MAX (255) and be unique on the node.
export const MAX_NETWORK_NAME_LENGTH = 128;

export interface CniInput {
  readonly namespace: string;
  readonly name: string;
  /** A CIDR with host bits zero, as text or parsed. */
  readonly cidr: string | ParsedCidr;
  /** Must lie inside `cidr`. */
  readonly gateway: string | IpAddress;
  readonly family: IpFamily;
  /**
   * Extra route destinations via the gateway, e.g. ["0.0.0.0/0"] when this is a pod's primary
   * network. Empty by default: the subnet itself is on-link, and a default route would collide
   * with the pod's primary interface when attached as a secondary network through Multus.
   */
  readonly routes?: readonly string[];
}

export interface HostLocalIpam {
  type: 'host-local';
  ranges: Array<Array<{ subnet: string; gateway: string }>>;
  routes: Array<{ dst: string }>;
}

export interface BridgePlugin {
  type: 'bridge';
  bridge: string;
  isGateway: true;
  ipMasq: false;
  ipam: HostLocalIpam;
}

/** A single-plugin network configuration: what a NetworkAttachmentDefinition's spec.config holds. */
export interface CniNetworkConfig extends BridgePlugin {
  cniVersion: string;
  name: string;
}

/** A configuration list (.conflist), as written to /etc/cni/net.d. */
export interface CniConflist {
  cniVersion: string;
  name: string;
  plugins: BridgePlugin[];
}

export interface Rendered<T> {
  readonly config: T;
  /** Deterministic: the same input always renders the same bytes. */
  readonly json: string;
}

export interface CniConfig {
  readonly networkName: string;
  readonly bridgeName: string;
  readonly plugin: BridgePlugin;
  readonly nad: Rendered<CniNetworkConfig>;
  readonly conflist: Rendered<CniConflist>;
}

function shortHash(namespace: string, name: string, hexDigits: number): string {
  // "/" cannot occur in a namespace, so distinct (namespace, name) pairs hash distinct inputs.
  return createHash('sha256').update(`${namespace}/${name}`).digest('hex').slice(0, hexDigits);
}

/**
 * `<namespace>-<name>` restricted to the characters CNI allows in a network name
 * (`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`), cut to MAX_NETWORK_NAME_LENGTH with a hash suffix when
 * long. The format is ambiguous ("a-b"/"c" and "a"/"b-c" render alike); that is tolerable
 * because the bridge, which must be unique on a node, is named from a hash of the unambiguous
 * "namespace/name", and the host-local store two such networks would share holds one file per
 * allocated address, while Ready networks never overlap.
 */
export function cniNetworkName(namespace: string, name: string): string {
  let text = `${namespace}-${name}`.replace(/[^a-zA-Z0-9_.-]/g, '-');
  if (!/^[a-zA-Z0-9]/.test(text)) text = `n${text}`;
  if (text.length <= MAX_NETWORK_NAME_LENGTH) return text;
  const suffix = `-${shortHash(namespace, name, 10)}`;
  return text.slice(0, MAX_NETWORK_NAME_LENGTH - suffix.length) + suffix;
}

/** "nm" + 12 hex digits of sha256("namespace/name"): 14 characters, a valid interface name. */
export function bridgeName(namespace: string, name: string): string {
  return `nm${shortHash(namespace, name, 12)}`;
}

function resolve(input: CniInput): { subnet: string; gateway: string; routes: string[] } {
  const cidr = typeof input.cidr === 'string' ? parseCidr(input.cidr) : input.cidr;
  const gateway = typeof input.gateway === 'string' ? parseIp(input.gateway) : input.gateway;
  if (cidr.family !== input.family || gateway.family !== input.family) {
    throw new TypeError(
      `family mismatch: family is ${familyName(input.family)}, cidr is ${familyName(cidr.family)}, gateway is ${familyName(gateway.family)}`,
    );
  }
  if (!contains(cidr, gateway)) {
    throw new RangeError(`gateway "${formatIp(gateway)}" is outside cidr "${formatCidr(cidr)}"`);
  }
  const routes = (input.routes ?? []).map((route) => {
    const parsed = parseCidr(route);
    if (parsed.family !== input.family) {
      throw new TypeError(
        `route "${route}" is ${familyName(parsed.family)}, not ${familyName(input.family)}`,
      );
    }
    return formatCidr(parsed);
  });
  return { subnet: formatCidr(cidr), gateway: formatIp(gateway), routes };
}

function render<T>(config: T): Rendered<T> {
  return { config, json: JSON.stringify(config, null, 2) };
}

/** Every form of the configuration; throws on inconsistent input (validate the spec first). */
export function buildCniConfig(input: CniInput): CniConfig {
  const { subnet, gateway, routes } = resolve(input);
  const networkName = cniNetworkName(input.namespace, input.name);
  const bridge = bridgeName(input.namespace, input.name);
  // Built fresh for each form so callers may mutate one without affecting the others.
  const plugin = (): BridgePlugin => ({
    type: 'bridge',
    bridge,
    isGateway: true,
    ipMasq: false,
    ipam: {
      type: 'host-local',
      ranges: [[{ subnet, gateway }]],
      routes: routes.map((dst) => ({ dst })),
    },
  });
  return {
    networkName,
    bridgeName: bridge,
    plugin: plugin(),
    nad: render<CniNetworkConfig>({ cniVersion: CNI_VERSION, name: networkName, ...plugin() }),
    conflist: render<CniConflist>({ cniVersion: CNI_VERSION, name: networkName, plugins: [plugin()] }),
  };
}

export function buildNadConfig(input: CniInput): Rendered<CniNetworkConfig> {
  return buildCniConfig(input).nad;
}

export function buildConflist(input: CniInput): Rendered<CniConflist> {
  return buildCniConfig(input).conflist;
}
