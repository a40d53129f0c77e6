import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatCidr, type IpFamily, makeCidr, overlaps, type ParsedCidr, parseCidr } from './cidr.ts';
import { compareEntries, type Entry, OverlapIndex, type Rank, winnerAmong } from './overlap-index.ts';

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

function randomInt(random: () => number, below: number): number {
  return Math.floor(random() * below);
}

function randomBits(random: () => number, bits: number): bigint {
  let value = 0n;
  for (let i = 0; i < bits; i++) value = (value << 1n) | (random() < 0.5 ? 1n : 0n);
  return value;
}

// CIDRs packed into a small space (a fixed top and only a few varying bits before the prefix
// ends) so that a few thousand of them overlap often, at many depths, including host routes
// and identical duplicates.
function randomCidr(random: () => number): ParsedCidr {
  const family: IpFamily = random() < 0.5 ? 4 : 6;
  const bits = family === 4 ? 32 : 128;
  const roll = random();
  const top = family === 4 ? 10n << 24n : 0xfd00n << 112n;
  const fixed = 8;
  const varying = 14;
  // Mostly long prefixes: a few wide networks overlap many, most overlap a handful.
  const prefix =
    roll < 0.1 ? bits - randomInt(random, 2) : fixed + varying - Math.floor(random() ** 4 * (varying - 3));
  const value =
    top | (randomBits(random, varying) << BigInt(bits - fixed - varying)) | randomBits(random, 20);
  return makeCidr(family, value, prefix);
}

function randomRank(random: () => number, key: string): Rank {
  const roll = random();
  // Few distinct timestamps so key tie-breaks matter; some missing, some as Date objects.
  if (roll < 0.05) return { creationTimestamp: undefined, key };
  const seconds = randomInt(random, 50);
  const iso = new Date(Date.UTC(2024, 0, 1, 0, 0, seconds)).toISOString().replace('.000Z', 'Z');
  return { creationTimestamp: roll < 0.2 ? new Date(iso) : iso, key };
}

/**
 * The node count of the canonical path-compressed trie over `cidrs`: every distinct CIDR plus
 * every point where two of them diverge. In (network, prefix) order, the divergence points of
 * all pairs are those of adjacent pairs, so this catches both leaks and missed compression.
 */
function expectedTrieNodes(cidrs: ParsedCidr[]): number {
  const nodes = new Set<string>();
  for (const family of [4, 6] as const) {
    const bits = family === 4 ? 32 : 128;
    const sorted = cidrs
      .filter((c) => c.family === family)
      .sort((a, b) => (a.network < b.network ? -1 : a.network > b.network ? 1 : a.prefix - b.prefix));
    for (const [i, c] of sorted.entries()) {
      nodes.add(`${family} ${formatCidr(c)}`);
      const next = sorted[i + 1];
      if (next === undefined) continue;
      const diff = c.network ^ next.network;
      const firstDifferentBit = diff === 0n ? bits : bits - diff.toString(2).length;
      const common = Math.min(firstDifferentBit, c.prefix, next.prefix);
      nodes.add(`${family} ${formatCidr(makeCidr(family, c.network, common))}`);
    }
  }
  return nodes.size;
}

/** Brute force over the model; the index must agree. */
class Oracle {
  readonly entries = new Map<string, { cidr: ParsedCidr; rank: Rank }>();
  readonly index = new OverlapIndex();

  upsert(key: string, cidr: ParsedCidr, rank: Rank): void {
    this.entries.set(key, { cidr, rank });
    this.index.upsert(key, cidr, rank);
  }

  remove(key: string): void {
    assert.equal(this.index.remove(key), this.entries.delete(key));
  }

  expectedOverlapping(cidr: ParsedCidr, self?: string): string[] {
    const keys: string[] = [];
    for (const [key, entry] of this.entries) if (key !== self && overlaps(entry.cidr, cidr)) keys.push(key);
    return keys.sort();
  }

  // Every overlapping pair by brute force, computed once for a full check.
  allNeighbours(): Map<string, string[]> {
    const list = [...this.entries];
    const neighbours = new Map<string, string[]>(list.map(([key]) => [key, []]));
    for (let i = 0; i < list.length; i++) {
      const [keyA, a] = list[i]!;
      for (let j = i + 1; j < list.length; j++) {
        const [keyB, b] = list[j]!;
        if (overlaps(a.cidr, b.cidr)) {
          neighbours.get(keyA)!.push(keyB);
          neighbours.get(keyB)!.push(keyA);
        }
      }
    }
    return neighbours;
  }

  check(key: string, neighbours = this.expectedOverlapping(this.entries.get(key)!.cidr, key)): void {
    const entry = this.entries.get(key)!;
    const expected = [...neighbours].sort();
    const found = this.index.overlapping(key);
    assert.deepEqual(found.map((e) => e.key).sort(), expected, `overlapping(${key})`);
    for (let i = 1; i < found.length; i++)
      assert.ok(compareEntries(found[i - 1]!, found[i]!) < 0, 'sorted by rank');

    const self = this.index.get(key)!;
    let expectedBlocker: Entry | undefined;
    for (const other of expected) {
      const candidate = this.index.get(other)!;
      if (compareEntries(candidate, self) >= 0) continue;
      if (expectedBlocker === undefined || compareEntries(candidate, expectedBlocker) < 0)
        expectedBlocker = candidate;
    }
    const blocker = this.index.blockerFor(key);
    assert.equal(blocker?.key, expectedBlocker?.key, `blockerFor(${key})`);
    assert.equal(this.index.isBlocked(key), blocker !== undefined);
    assert.equal(this.index.ownerFor(key)?.key, blocker?.key ?? key, `ownerFor(${key})`);
    const byCidr = this.index.overlapping(entry.cidr).map((e) => e.key);
    assert.deepEqual(byCidr.sort(), [...expected, key].sort(), `overlapping(${formatCidr(entry.cidr)})`);
  }

  checkAll(): void {
    assert.equal(this.index.size, this.entries.size);
    assert.equal(this.index.nodeCount(), expectedTrieNodes([...this.entries.values()].map((e) => e.cidr)));
    for (const [key, neighbours] of this.allNeighbours()) this.check(key, neighbours);
  }
}

const rank = (creationTimestamp: string | Date | undefined, key: string): Rank => ({
  creationTimestamp,
  key,
});

describe('OverlapIndex', () => {
  test('basic overlap queries', () => {
    const index = new OverlapIndex();
    index.upsert('a/wide', parseCidr('10.0.0.0/8'), rank('2024-01-01T00:00:00Z', 'a/wide'));
    index.upsert('a/mid', parseCidr('10.1.0.0/16'), rank('2024-01-02T00:00:00Z', 'a/mid'));
    index.upsert('a/leaf', parseCidr('10.1.2.0/24'), rank('2024-01-03T00:00:00Z', 'a/leaf'));
    index.upsert('a/other', parseCidr('192.168.0.0/16'), rank('2024-01-01T00:00:00Z', 'a/other'));
    index.upsert('a/v6', parseCidr('::/0'), rank('2023-01-01T00:00:00Z', 'a/v6'));
    assert.equal(index.size, 5);
    const keys = (entries: Entry[]) => entries.map((e) => e.key);
    assert.deepEqual(keys(index.overlapping('a/mid')), ['a/wide', 'a/leaf']);
    assert.deepEqual(keys(index.overlapping('a/leaf')), ['a/wide', 'a/mid']);
    assert.deepEqual(keys(index.overlapping('a/wide')), ['a/mid', 'a/leaf']);
    assert.deepEqual(keys(index.overlapping('a/other')), [], 'disjoint');
    assert.deepEqual(keys(index.overlapping('a/v6')), [], 'families never overlap');
    assert.deepEqual(keys(index.overlapping(parseCidr('10.1.2.128/25'))), ['a/wide', 'a/mid', 'a/leaf']);
    assert.deepEqual(keys(index.overlapping(parseCidr('0.0.0.0/0'))), [
      'a/other',
      'a/wide',
      'a/mid',
      'a/leaf',
    ]);
    assert.deepEqual(keys(index.overlapping(parseCidr('11.0.0.0/8'))), []);
    assert.deepEqual(keys(index.overlapping('missing')), []);
    assert.equal(index.ownerFor('missing'), undefined);
    assert.equal(index.blockerFor('missing'), undefined);
  });

  test('identical CIDRs overlap each other', () => {
    const index = new OverlapIndex();
    index.upsert('ns/b', parseCidr('10.0.0.0/24'), rank('2024-01-01T00:00:00Z', 'ns/b'));
    index.upsert('ns/a', parseCidr('10.0.0.0/24'), rank('2024-01-01T00:00:00Z', 'ns/a'));
    assert.deepEqual(
      index.overlapping('ns/b').map((e) => e.key),
      ['ns/a'],
    );
    assert.equal(index.blockerFor('ns/b')?.key, 'ns/a', 'same timestamp: key ascending');
    assert.equal(index.blockerFor('ns/a'), undefined);
  });

  test('winner ordering: oldest timestamp, then key; missing timestamps last', () => {
    const index = new OverlapIndex();
    const cidr = parseCidr('10.0.0.0/16');
    index.upsert('z/old', cidr, rank('2024-01-01T00:00:00Z', 'z/old'));
    index.upsert('a/new', cidr, rank('2024-06-01T00:00:00Z', 'a/new'));
    index.upsert('b/none', cidr, rank(undefined, 'b/none'));
    index.upsert('a/none', cidr, rank('not a date', 'a/none'));
    index.upsert('m/date', parseCidr('10.0.1.0/24'), rank(new Date('2024-06-01T00:00:00Z'), 'm/date'));
    const order = ['z/old', 'a/new', 'm/date', 'a/none', 'b/none'];
    assert.deepEqual(
      index.overlapping(parseCidr('10.0.0.0/8')).map((e) => e.key),
      order,
    );
    assert.deepEqual(winnerAmong(index.entries())?.key, 'z/old');
    assert.equal(winnerAmong([]), undefined);
    for (const key of order.slice(1)) assert.equal(index.blockerFor(key)?.key, 'z/old', key);
    assert.equal(index.blockerFor('z/old'), undefined);
    assert.equal(index.ownerFor('z/old')?.key, 'z/old');
    assert.equal(index.isBlocked('z/old'), false);
    assert.equal(index.isBlocked('a/new'), true);

    // Key order is code-unit order, not locale order.
    const keys = new OverlapIndex();
    keys.upsert('ns/b', cidr, rank('2024-01-01T00:00:00Z', 'ns/b'));
    keys.upsert('ns/B', cidr, rank('2024-01-01T00:00:00Z', 'ns/B'));
    assert.equal(keys.blockerFor('ns/b')?.key, 'ns/B');
  });

  test('rank key orders before the index key', () => {
    const index = new OverlapIndex();
    const cidr = parseCidr('fd00::/64');
    index.upsert('uid-1', cidr, rank('2024-01-01T00:00:00Z', 'ns/zzz'));
    index.upsert('uid-2', cidr, rank('2024-01-01T00:00:00Z', 'ns/aaa'));
    assert.equal(index.blockerFor('uid-1')?.key, 'uid-2');
  });

  test('blocking is by direct overlap only', () => {
    const index = new OverlapIndex();
    index.upsert('ns/a', parseCidr('10.0.1.0/24'), rank('2024-01-01T00:00:00Z', 'ns/a'));
    index.upsert('ns/b', parseCidr('10.0.0.0/16'), rank('2024-01-02T00:00:00Z', 'ns/b'));
    index.upsert('ns/c', parseCidr('10.0.2.0/24'), rank('2024-01-03T00:00:00Z', 'ns/c'));
    assert.equal(index.blockerFor('ns/b')?.key, 'ns/a');
    assert.equal(index.blockerFor('ns/c')?.key, 'ns/b', 'blocked by a blocked network');
    assert.equal(index.blockerFor('ns/a'), undefined);
    index.remove('ns/a');
    assert.equal(index.blockerFor('ns/b'), undefined);
    assert.equal(index.blockerFor('ns/c')?.key, 'ns/b');
  });

  test('removal heals and updates move networks', () => {
    const index = new OverlapIndex();
    index.upsert('ns/old', parseCidr('10.0.0.0/16'), rank('2024-01-01T00:00:00Z', 'ns/old'));
    index.upsert('ns/new', parseCidr('10.0.5.0/24'), rank('2024-02-01T00:00:00Z', 'ns/new'));
    assert.equal(index.blockerFor('ns/new')?.key, 'ns/old');
    assert.equal(index.remove('ns/old'), true);
    assert.equal(index.remove('ns/old'), false);
    assert.equal(index.blockerFor('ns/new'), undefined);
    assert.equal(index.size, 1);

    index.upsert('ns/old', parseCidr('10.0.0.0/16'), rank('2024-01-01T00:00:00Z', 'ns/old'));
    assert.equal(index.blockerFor('ns/new')?.key, 'ns/old');
    index.upsert('ns/old', parseCidr('10.1.0.0/16'), rank('2024-01-01T00:00:00Z', 'ns/old'));
    assert.equal(index.blockerFor('ns/new'), undefined, 'moved away');
    assert.equal(index.get('ns/old')?.cidr.network, parseCidr('10.1.0.0/16').network);
    index.upsert('ns/old', parseCidr('fd00::/8'), rank('2024-01-01T00:00:00Z', 'ns/old'));
    assert.deepEqual(
      index.overlapping(parseCidr('::/0')).map((e) => e.key),
      ['ns/old'],
      'changed family',
    );
    assert.deepEqual(
      index.overlapping(parseCidr('10.0.0.0/8')).map((e) => e.key),
      ['ns/new'],
    );
    assert.equal(index.size, 2);
    index.remove('ns/old');
    index.remove('ns/new');
    assert.equal(index.size, 0);
    assert.equal(index.nodeCount(), 0);
    assert.deepEqual(index.overlapping(parseCidr('0.0.0.0/0')), []);
    assert.deepEqual(index.overlapping(parseCidr('::/0')), []);
  });

  test('upsert ignores stray host bits in a hand-built CIDR', () => {
    const index = new OverlapIndex();
    const sloppy: ParsedCidr = {
      family: 4,
      network: 0x0a000005n,
      prefix: 24,
      first: 0x0a000005n,
      last: 0x0a0000ffn,
    };
    index.upsert('ns/a', sloppy, rank(undefined, 'ns/a'));
    assert.equal(index.get('ns/a')?.cidr.network, 0x0a000000n);
    assert.deepEqual(
      index.overlapping(parseCidr('10.0.0.0/25')).map((e) => e.key),
      ['ns/a'],
    );
  });

  test('blockerForCandidate answers for a network not yet indexed', () => {
    const index = new OverlapIndex();
    index.upsert('ns/a', parseCidr('10.0.0.0/16'), rank('2024-01-01T00:00:00Z', 'ns/a'));
    index.upsert('ns/b', parseCidr('10.0.0.0/24'), rank('2024-01-02T00:00:00Z', 'ns/b'));
    const candidate = parseCidr('10.0.0.0/25');
    assert.equal(index.blockerForCandidate(candidate, rank(undefined, 'ns/c'))?.key, 'ns/a');
    assert.equal(
      index.blockerForCandidate(candidate, rank('2023-01-01T00:00:00Z', 'ns/c')),
      undefined,
      'older wins',
    );
    assert.equal(
      index.blockerForCandidate(parseCidr('10.0.0.0/24'), rank(undefined, 'ns/a'), 'ns/a')?.key,
      'ns/b',
    );
    assert.equal(index.blockerForCandidate(parseCidr('10.9.0.0/16'), rank(undefined, 'ns/c')), undefined);
  });

  test('agrees with a brute-force oracle over random CIDRs', () => {
    const random = prng(20240601);
    const oracle = new Oracle();
    const keys: string[] = [];
    // Catch-alls that overlap everything of their family; without a timestamp they rank last.
    oracle.upsert('all/v4', parseCidr('0.0.0.0/0'), rank(undefined, 'all/v4'));
    oracle.upsert('all/v6', parseCidr('::/0'), rank(undefined, 'all/v6'));
    for (let i = 0; i < 3000; i++) {
      const key = `ns${randomInt(random, 30)}/net-${i}`;
      keys.push(key);
      oracle.upsert(key, randomCidr(random), randomRank(random, key));
    }
    oracle.checkAll();

    // Churn: removals, moves (new CIDR, same rank) and re-adds, checking as we go.
    for (let step = 0; step < 1500; step++) {
      const key = keys[randomInt(random, keys.length)]!;
      const roll = random();
      if (roll < 0.4) oracle.remove(key);
      else oracle.upsert(key, randomCidr(random), oracle.entries.get(key)?.rank ?? randomRank(random, key));
      if (oracle.entries.has(key)) oracle.check(key);
      const probe = randomCidr(random);
      assert.deepEqual(
        oracle.index
          .overlapping(probe)
          .map((e) => e.key)
          .sort(),
        oracle.expectedOverlapping(probe),
        `overlapping(${formatCidr(probe)})`,
      );
    }
    oracle.checkAll();

    // The fixture really exercises overlaps and blocking, including blockers that are blocked.
    let blocked = 0;
    let blockedByBlocked = 0;
    let free = 0;
    for (const key of oracle.entries.keys()) {
      const blocker = oracle.index.blockerFor(key);
      if (blocker === undefined) free++;
      else blocked++;
      if (blocker !== undefined && oracle.index.isBlocked(blocker.key)) blockedByBlocked++;
    }
    assert.ok(blocked > 100, `blocked ${blocked}`);
    assert.ok(free > 100, `not blocked ${free}`);
    assert.ok(blockedByBlocked > 10, `blocked by a blocked network ${blockedByBlocked}`);
    assert.ok(oracle.entries.size < keys.length + 2, 'some removals stuck');

    for (const key of [...oracle.entries.keys()]) oracle.remove(key);
    assert.equal(oracle.index.size, 0);
    assert.equal(oracle.index.nodeCount(), 0, 'pruned to nothing');
    assert.deepEqual(oracle.index.overlapping(parseCidr('::/0')), []);
    assert.deepEqual(oracle.index.overlapping(parseCidr('0.0.0.0/0')), []);
  });

  test('10,000+ networks insert and query correctly', () => {
    const index = new OverlapIndex();
    const random = prng(10_000);
    const created = (i: number) => new Date(Date.UTC(2024, 0, 1) + i * 1000).toISOString();

    // 10,000 distinct IPv4 /24s inside 10.0.0.0/8 and 10,000 distinct IPv6 /64s.
    const slots = Array.from({ length: 65536 }, (_, i) => i);
    for (let i = slots.length - 1; i > 0; i--) {
      const j = randomInt(random, i + 1);
      [slots[i], slots[j]] = [slots[j]!, slots[i]!];
    }
    const v4: string[] = [];
    const v6: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      const slot = slots[i]!;
      const key4 = `v4/n${i}`;
      index.upsert(key4, makeCidr(4, (10n << 24n) | (BigInt(slot) << 8n), 24), rank(created(i), key4));
      v4.push(key4);
      const key6 = `v6/n${i}`;
      const network = (0xfd00n << 112n) | (BigInt(slot) << 64n);
      index.upsert(key6, makeCidr(6, network, 64), rank(created(i), key6));
      v6.push(key6);
    }
    // Supernets: every 10.x.0.0/16 with an even x, added last so they are the newest.
    for (let x = 0; x < 256; x += 2) {
      const key = `v4/super-${x}`;
      index.upsert(key, makeCidr(4, (10n << 24n) | (BigInt(x) << 16n), 16), rank(created(20_000 + x), key));
    }
    assert.equal(index.size, 20_128);
    assert.equal(index.nodeCount(), expectedTrieNodes([...index.entries()].map((e) => e.cidr)));

    for (const [i, key] of v4.entries()) {
      const x = slots[i]! >> 8;
      const found = index.overlapping(key).map((e) => e.key);
      assert.deepEqual(found, x % 2 === 0 ? [`v4/super-${x}`] : [], key);
      assert.equal(index.isBlocked(key), false, key);
    }
    for (const key of v6) assert.deepEqual(index.overlapping(key), [], key);
    for (let x = 0; x < 256; x += 2) {
      const key = `v4/super-${x}`;
      const expected = v4.filter((_, i) => slots[i]! >> 8 === x);
      const found = index.overlapping(key).map((e) => e.key);
      assert.deepEqual(found, expected, key);
      assert.equal(index.blockerFor(key)?.key, expected[0], key);
    }
    assert.equal(index.overlapping(parseCidr('10.0.0.0/8')).length, 10_128);
    assert.equal(index.overlapping(parseCidr('fd00::/16')).length, 10_000);

    // Spot-check random probes against brute force over every entry.
    const all = [...index.entries()];
    for (let i = 0; i < 100; i++) {
      const probe = randomCidr(random);
      const expected = all
        .filter((e) => overlaps(e.cidr, probe))
        .map((e) => e.key)
        .sort();
      assert.deepEqual(
        index
          .overlapping(probe)
          .map((e) => e.key)
          .sort(),
        expected,
      );
    }

    for (const key of v4) index.remove(key);
    assert.equal(index.size, 10_128);
    for (let x = 0; x < 256; x += 2) assert.deepEqual(index.overlapping(`v4/super-${x}`), []);
  });
});
