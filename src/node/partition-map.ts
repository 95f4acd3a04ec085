// Where every key lives: keys hash to one of P partitions (fixed at
// bootstrap); each partition is a Raft group of R replicas placed evenly over
// the nodes, with its preferred leader spread evenly too.

import type { NodeId } from '../../raft/index.js';

export interface PartitionPlacement {
  id: number;
  /** The replicas, preferred leader first. */
  replicas: NodeId[];
}

/**
 * The partition of an item: region items hash by (cache, region) so that a
 * region lives whole in one partition; others by (cache, key).
 */
export function partitionOf(partitions: number, cache: string, region: string | null, key: string): number {
  // FNV-1a over UTF-16 code units: fast, stable across versions and platforms.
  let h = 0x811c9dc5;
  const mix = (s: string): void => {
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
  };
  mix(cache);
  h ^= 0;
  h = Math.imul(h, 0x01000193); // a separator no name can contain
  if (region !== null) {
    h ^= 1;
    h = Math.imul(h, 0x01000193);
    mix(region);
  } else {
    mix(key);
  }
  return (h >>> 0) % partitions;
}

/**
 * Places P partitions of R replicas over `nodes` (sorted by id). Replica
 * slots are dealt round-robin, so every node holds ⌊P·R/N⌋ or ⌈P·R/N⌉
 * replicas; each partition's preferred leader (listed first) is the replica
 * that leads the fewest partitions so far, which spreads leadership as evenly.
 */
export function placePartitions(nodes: readonly NodeId[], partitions: number, replicas: number): PartitionPlacement[] {
  if (!Number.isInteger(partitions) || partitions < 1) throw new Error(`partitions must be a positive integer, got ${partitions}`);
  if (!Number.isInteger(replicas) || replicas < 1) throw new Error(`replicas must be a positive integer, got ${replicas}`);
  const sorted = [...new Set(nodes)].sort();
  if (sorted.length === 0) throw new Error('a cluster needs at least one node');
  const r = Math.min(replicas, sorted.length);
  const leads = new Map<NodeId, number>(sorted.map((id) => [id, 0]));
  const out: PartitionPlacement[] = [];
  for (let p = 0; p < partitions; p++) {
    const reps: NodeId[] = [];
    for (let i = 0; i < r; i++) reps.push(sorted[(p * r + i) % sorted.length]!);
    let best = 0;
    for (let i = 1; i < r; i++) if (leads.get(reps[i]!)! < leads.get(reps[best]!)!) best = i;
    leads.set(reps[best]!, leads.get(reps[best]!)! + 1);
    out.push({ id: p, replicas: [reps[best]!, ...reps.filter((_, i) => i !== best)] });
  }
  return out;
}
