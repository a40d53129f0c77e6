// Which Networks overlap which, and who wins. Pure: no I/O, no clock.
//
// Two CIDRs overlap iff one contains the other, so the networks overlapping a CIDR C are the
// ones on the path from the root to C in a binary trie keyed by prefix bits (C's supernets and
// C itself) plus everything in C's subtree (its subnets). The trie is path-compressed (one node
// per distinct CIDR plus at most one branching node each), so a query costs O(address bits +
// matches) and an update O(address bits), independent of how many networks are indexed.
//
// Ranking and blocking: networks rank by creationTimestamp (oldest first; missing or
// unparsable timestamps rank last), then by rank key (namespace/name) ascending, then by index
// key. A network is blocked (not Ready) iff some network that directly overlaps it ranks
// before it; its blocker is the best-ranked such network.
//
// Blocking is by direct overlap, not transitive: a network blocked by an older one stays
// blocked even if that older one is itself blocked. With B = 10.0.0.0/16 blocked by an older
// A = 10.0.1.0/24, a newer C = 10.0.2.0/24 stays blocked by B. Transitive rules would make C
// Ready, and then deleting A would have to take C's range away again for B. Direct blocking
// is simple, deterministic (a function of a network's own neighbours, not of evaluation
// order) and stable: a verdict only changes when a directly overlapping network changes, and
// a Ready network never loses its range to a newer one.

import { addressBits, type IpFamily, makeCidr, type ParsedCidr } from './cidr.ts';

export interface Rank {
  readonly creationTimestamp: string | Date | undefined;
  /** Usually "namespace/name". */
  readonly key: string;
}

export interface Entry {
  readonly key: string;
  readonly cidr: ParsedCidr;
  readonly rank: Rank;
  /** creationTimestamp in epoch milliseconds; +Infinity when missing or unparsable. */
  readonly createdAt: number;
}

function timestampMillis(timestamp: string | Date | undefined): number {
  if (timestamp === undefined) return Number.POSITIVE_INFINITY;
  const millis = typeof timestamp === 'string' ? Date.parse(timestamp) : timestamp.getTime();
  return Number.isNaN(millis) ? Number.POSITIVE_INFINITY : millis;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Negative when `a` ranks before (wins over) `b`. Code-unit order, not locale order. */
export function compareEntries(a: Entry, b: Entry): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1;
  return compareStrings(a.rank.key, b.rank.key) || compareStrings(a.key, b.key);
}

/** The best-ranked entry, or undefined for none. */
export function winnerAmong(entries: Iterable<Entry>): Entry | undefined {
  let best: Entry | undefined;
  for (const entry of entries) {
    if (best === undefined || compareEntries(entry, best) < 0) best = entry;
  }
  return best;
}

interface TrieNode {
  network: bigint;
  prefix: number;
  /** Entries whose CIDR is exactly this node's; empty for branching-only nodes. */
  entries: Map<string, Entry>;
  children: [TrieNode | undefined, TrieNode | undefined];
  parent: TrieNode | undefined;
}

function newNode(network: bigint, prefix: number): TrieNode {
  return { network, prefix, entries: new Map(), children: [undefined, undefined], parent: undefined };
}

/** A path-compressed binary trie for one address family. */
class FamilyTrie {
  readonly bits: number;
  root: TrieNode | undefined;

  constructor(family: IpFamily) {
    this.bits = addressBits(family);
    this.root = undefined;
  }

  // Bit `index` counted from the most significant end.
  bit(value: bigint, index: number): 0 | 1 {
    return ((value >> BigInt(this.bits - 1 - index)) & 1n) === 1n ? 1 : 0;
  }

  commonPrefixLength(a: bigint, b: bigint, limit: number): number {
    const diff = a ^ b;
    if (diff === 0n) return limit;
    return Math.min(limit, this.bits - diff.toString(2).length);
  }

  replace(old: TrieNode, replacement: TrieNode | undefined): void {
    const parent = old.parent;
    if (replacement) replacement.parent = parent;
    if (parent === undefined) this.root = replacement;
    else parent.children[parent.children[0] === old ? 0 : 1] = replacement;
    old.parent = undefined;
  }

  attach(parent: TrieNode, child: TrieNode): void {
    parent.children[this.bit(child.network, parent.prefix)] = child;
    child.parent = parent;
  }

  /** The node for exactly (network, prefix), created if missing. */
  nodeFor(network: bigint, prefix: number): TrieNode {
    let node = this.root;
    if (node === undefined) {
      this.root = newNode(network, prefix);
      return this.root;
    }
    for (;;) {
      const common = this.commonPrefixLength(node.network, network, Math.min(node.prefix, prefix));
      if (common < node.prefix) {
        // `node` does not contain the new CIDR: hang both under the longest common prefix.
        const created = newNode(network, prefix);
        if (common === prefix) {
          this.replace(node, created);
          this.attach(created, node);
        } else {
          const branch = newNode(network & ~((1n << BigInt(this.bits - common)) - 1n), common);
          this.replace(node, branch);
          this.attach(branch, node);
          this.attach(branch, created);
        }
        return created;
      }
      if (node.prefix === prefix) return node;
      const slot = this.bit(network, node.prefix);
      const child: TrieNode | undefined = node.children[slot];
      if (child === undefined) {
        const created = newNode(network, prefix);
        this.attach(node, created);
        return created;
      }
      node = child;
    }
  }

  findNode(network: bigint, prefix: number): TrieNode | undefined {
    let node = this.root;
    while (node !== undefined && node.prefix <= prefix) {
      if (this.commonPrefixLength(node.network, network, node.prefix) < node.prefix) return undefined;
      if (node.prefix === prefix) return node;
      node = node.children[this.bit(network, node.prefix)];
    }
    return undefined;
  }

  /** Drops `node` if it no longer holds entries, keeping the trie compressed. */
  prune(node: TrieNode): void {
    let current: TrieNode | undefined = node;
    while (current !== undefined && current.entries.size === 0) {
      const [left, right] = current.children;
      if (left !== undefined && right !== undefined) return;
      const parent: TrieNode | undefined = current.parent;
      this.replace(current, left ?? right);
      current = parent;
    }
  }

  /** Calls `visit` for every entry overlapping the CIDR (network, prefix). */
  forEachOverlapping(network: bigint, prefix: number, visit: (entry: Entry) => void): void {
    let node = this.root;
    while (node !== undefined) {
      const limit = Math.min(node.prefix, prefix);
      if (this.commonPrefixLength(node.network, network, limit) < limit) return;
      if (node.prefix >= prefix) {
        forEachInSubtree(node, visit);
        return;
      }
      for (const entry of node.entries.values()) visit(entry);
      node = node.children[this.bit(network, node.prefix)];
    }
  }
}

function forEachInSubtree(root: TrieNode, visit: (entry: Entry) => void): void {
  const stack: TrieNode[] = [root];
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    for (const entry of node.entries.values()) visit(entry);
    if (node.children[1]) stack.push(node.children[1]);
    if (node.children[0]) stack.push(node.children[0]);
  }
}

export class OverlapIndex {
  readonly #byKey = new Map<string, Entry>();
  readonly #tries: Record<IpFamily, FamilyTrie> = { 4: new FamilyTrie(4), 6: new FamilyTrie(6) };

  get size(): number {
    return this.#byKey.size;
  }

  get(key: string): Entry | undefined {
    return this.#byKey.get(key);
  }

  has(key: string): boolean {
    return this.#byKey.has(key);
  }

  /** Every indexed entry, in no particular order. */
  entries(): IterableIterator<Entry> {
    return this.#byKey.values();
  }

  /**
   * Trie nodes held, for diagnostics and tests: at most twice the number of distinct CIDRs
   * indexed, 0 when empty (removal prunes, so churn does not leak).
   */
  nodeCount(): number {
    let count = 0;
    for (const trie of Object.values(this.#tries)) {
      const stack = trie.root ? [trie.root] : [];
      for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
        count++;
        for (const child of node.children) if (child) stack.push(child);
      }
    }
    return count;
  }

  /** Adds or replaces the network under `key`. */
  upsert(key: string, cidr: ParsedCidr, rank: Rank): void {
    // Re-derive the CIDR so a caller's object with stray host bits cannot corrupt the trie.
    const normal = makeCidr(cidr.family, cidr.network, cidr.prefix);
    const entry: Entry = {
      key,
      cidr: normal,
      rank: { ...rank },
      createdAt: timestampMillis(rank.creationTimestamp),
    };
    this.remove(key);
    this.#tries[normal.family].nodeFor(normal.network, normal.prefix).entries.set(key, entry);
    this.#byKey.set(key, entry);
  }

  /** Removes the network under `key`; returns whether it was indexed. */
  remove(key: string): boolean {
    const existing = this.#byKey.get(key);
    if (existing === undefined) return false;
    this.#byKey.delete(key);
    const trie = this.#tries[existing.cidr.family];
    const node = trie.findNode(existing.cidr.network, existing.cidr.prefix);
    if (node !== undefined) {
      node.entries.delete(key);
      trie.prune(node);
    }
    return true;
  }

  /**
   * Networks overlapping the indexed network `key` (itself excluded), or overlapping a CIDR,
   * best-ranked first. An unknown key yields [].
   */
  overlapping(target: string | ParsedCidr): Entry[] {
    const found: Entry[] = [];
    let cidr: ParsedCidr;
    let self: string | undefined;
    if (typeof target === 'string') {
      const entry = this.#byKey.get(target);
      if (entry === undefined) return found;
      cidr = entry.cidr;
      self = target;
    } else {
      cidr = target;
    }
    this.#tries[cidr.family].forEachOverlapping(cidr.network, cidr.prefix, (entry) => {
      if (entry.key !== self) found.push(entry);
    });
    return found.sort(compareEntries);
  }

  /**
   * The winner of the overlap group relevant to `key`: the best-ranked of the network and
   * everything directly overlapping it. It is the network itself iff the network is not
   * blocked. Undefined for an unknown key.
   */
  ownerFor(key: string): Entry | undefined {
    const self = this.#byKey.get(key);
    if (self === undefined) return undefined;
    let best = self;
    this.#tries[self.cidr.family].forEachOverlapping(self.cidr.network, self.cidr.prefix, (entry) => {
      if (compareEntries(entry, best) < 0) best = entry;
    });
    return best;
  }

  /** The best-ranked network that blocks `key`, or undefined when `key` is not blocked. */
  blockerFor(key: string): Entry | undefined {
    const owner = this.ownerFor(key);
    return owner === undefined || owner.key === key ? undefined : owner;
  }

  isBlocked(key: string): boolean {
    return this.blockerFor(key) !== undefined;
  }

  /**
   * For a network not (yet) indexed, e.g. in an admission check: the best-ranked indexed
   * network that would block it. Entries under `excludeKey` are ignored.
   */
  blockerForCandidate(cidr: ParsedCidr, rank: Rank, excludeKey?: string): Entry | undefined {
    const candidate: Entry = {
      key: excludeKey ?? rank.key,
      cidr,
      rank,
      createdAt: timestampMillis(rank.creationTimestamp),
    };
    let best: Entry | undefined;
    this.#tries[cidr.family].forEachOverlapping(cidr.network, cidr.prefix, (entry) => {
      if (entry.key === excludeKey) return;
      if (compareEntries(entry, candidate) < 0 && (best === undefined || compareEntries(entry, best) < 0)) {
        best = entry;
      }
    });
    return best;
  }
}
