// Helpers of the operator suites that talk to the real apiserver only: the verdicts a fresh
// operator would compute from the stored Networks.
import { keyOf, type Network } from '../operator/model.ts';
import { validateNetworkSpec } from '../operator/network/cidr.ts';
import { OverlapIndex } from '../operator/network/overlap-index.ts';
import { type ClusterHandle, eventually } from './support.ts';

export type Verdict = 'Ready' | 'Overlap' | 'Invalid';

/**
 * The verdict of every stored Network as a freshly started operator would compute it: valid
 * specs enter the overlap index, a valid Network is Overlap iff an older (or, at the same
 * second, lexically smaller) directly overlapping valid Network exists.
 */
export function freshVerdicts(networks: Network[]): Map<string, Verdict> {
  const index = new OverlapIndex();
  const valid = new Set<string>();
  for (const n of networks) {
    const v = validateNetworkSpec(n.spec);
    if (!v.ok) continue;
    valid.add(keyOf(n));
    index.upsert(keyOf(n), v.cidr, { creationTimestamp: n.metadata?.creationTimestamp, key: keyOf(n) });
  }
  const out = new Map<string, Verdict>();
  for (const n of networks) {
    const key = keyOf(n);
    out.set(key, !valid.has(key) ? 'Invalid' : index.isBlocked(key) ? 'Overlap' : 'Ready');
  }
  return out;
}

/** Waits until every stored Network's status says what a fresh operator would compute. */
export async function expectFreshVerdicts(h: ClusterHandle, timeoutMs = 30_000): Promise<void> {
  let last = '';
  await eventually(
    'the Ready set to be what a fresh operator computes',
    async () => {
      const list = (await h.custom.listClusterCustomObject({
        group: 'netmesh.io',
        version: 'v1',
        plural: 'networks',
      })) as { items: Network[] };
      const live = list.items.filter((n) => !n.metadata?.deletionTimestamp);
      const expected = freshVerdicts(live);
      const wrong: string[] = [];
      for (const n of live) {
        const cond = n.status?.conditions?.find((c) => c.type === 'Ready');
        const current = n.status?.observedGeneration === n.metadata?.generation;
        const want = expected.get(keyOf(n));
        const is = !current ? 'stale' : cond?.status === 'True' ? 'Ready' : cond?.reason;
        if (is !== want) wrong.push(`${keyOf(n)}: ${is}, fresh operator: ${want}`);
      }
      last = wrong.join('; ');
      return wrong.length === 0;
    },
    { timeoutMs },
  ).catch((err: Error) => {
    throw new Error(`${err.message}: ${last}`);
  });
}
