// The counting rules for a simple majority configuration: what is committed,
// and who won an election. Learners never count.

import type { NodeId } from './types.js';

export const enum VoteResult {
  Pending = 0,
  Won = 1,
  Lost = 2,
}

/**
 * The largest index that a majority of `voters` have acknowledged.
 * Raft thesis §3.6: an entry is committed once a majority stores it.
 */
export function committedIndex(voters: readonly NodeId[], acked: (id: NodeId) => number): number {
  const n = voters.length;
  if (n === 0) return Number.MAX_SAFE_INTEGER; // an empty configuration agrees to everything (etcd convention)
  const matched = voters.map(acked).sort((a, b) => b - a);
  return matched[Math.floor(n / 2)]!;
}

/** Whether the votes so far decide the election: granted/rejected per voter id. */
export function voteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const n = voters.length;
  if (n === 0) return VoteResult.Won;
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === true) granted++;
    else if (v === false) rejected++;
  }
  const quorum = Math.floor(n / 2) + 1;
  if (granted >= quorum) return VoteResult.Won;
  if (n - rejected < quorum) return VoteResult.Lost;
  return VoteResult.Pending;
}

/** Whether `ids` (say, the voters heard from recently) contain a majority of `voters`. */
export function hasQuorum(voters: readonly NodeId[], ids: (id: NodeId) => boolean): boolean {
  let count = 0;
  for (const id of voters) if (ids(id)) count++;
  return count >= Math.floor(voters.length / 2) + 1;
}
