// Where a node reaches each member over the raft transport.
//
// The metadata a node has applied may be a prefix of the cluster's: a node
// that joined learns every member's address from the join answer, then
// applies the metadata log from its start, where the bootstrap members have
// not registered their addresses yet (their records say raft ''). Taking
// that prefix as the whole truth dropped them as peers, and a node without
// peers never receives the rest of the log that would give them back: it
// stayed cut off for good (a clean-clone CI run, membership-crash test).
// So an address is only ever replaced, never forgotten: members are never
// deleted from the metadata either (a removed one keeps its record).
import type { NodeId } from '../../raft/index.js';

export interface RegisteredAddress {
  id: NodeId;
  /** The raft address it registered; '' before it registered one. */
  raft: string;
}

/**
 * The addresses `known` so far, updated by every registered one in
 * `members`, then overridden by `overrides` (the local --peers: a proxy, say).
 */
export function peerAddresses(self: NodeId, known: ReadonlyMap<NodeId, string>, members: readonly RegisteredAddress[], overrides: ReadonlyMap<NodeId, string>): Map<NodeId, string> {
  const peers = new Map(known);
  for (const m of members) if (m.raft !== '') peers.set(m.id, m.raft);
  for (const [id, addr] of overrides) peers.set(id, addr);
  peers.delete(self);
  return peers;
}

export function sameAddresses(a: ReadonlyMap<NodeId, string>, b: ReadonlyMap<NodeId, string>): boolean {
  return a.size === b.size && [...a].every(([id, addr]) => b.get(id) === addr);
}
