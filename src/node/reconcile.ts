// The next configuration change of a partition's leader (issue 9): a pure
// decision from the current configuration, the target, and the leader's view
// of its followers. The leader calls it every ~200 ms and proposes what comes
// out; raft refuses a second change while one is pending, so one step at a
// time is all this ever returns.
//
// Why the order of the rules keeps the group safe:
// - Single-server changes only (Raft thesis §4.1): any majority of the old
//   configuration overlaps any majority of the new one, so no two leaders can
//   be elected in one term across a change.
// - Every new replica joins as a learner and is promoted only once caught up:
//   learners do not count in quorums or elections, so a replica still taking
//   its snapshot cannot stall commits (thesis §4.2.1).
// - A voter leaves only once every desired voter is a voter: the replacement
//   is in before anyone leaves, so the replication factor never dips during a
//   move (a group of R voters grows to at most R + the number moving in).
import { nodeOfMember } from '../transport/index.js';
import { ConfChangeType } from '../../raft/types.js';

export interface ReconcileInput {
  /** The leader's raft member id. */
  self: string;
  /** The current configuration, as raft member ids. */
  voters: readonly string[];
  learners: readonly string[];
  /** Member ids that should be voters, preferred leader first. */
  desiredVoters: readonly string[];
  /** Member ids that should be learners (only the metadata group has any). */
  desiredLearners: readonly string[];
  /** Match index per member, from the leader's progress; a missing member counts as 0. */
  match: ReadonlyMap<string, number>;
  /** The leader's commit index. */
  commit: number;
  /** The leader's last log index. */
  lastIndex: number;
  /** True when the member answers: its node is connected and the member id itself answered lately (not a past incarnation). */
  connected: (member: string) => boolean;
}

export type ReconcileStep =
  | { kind: 'change'; type: ConfChangeType; member: string; why: string }
  | { kind: 'transfer'; to: string; why: string }
  | { kind: 'none' };

/** The node of a raft member id: the id itself, or the part before `@incarnation` (one rule, the transport's, which checks it on every message). */
export { nodeOfMember };

/** True when the configuration is the target: voters and learners equal the desired ones as sets. */
export function configMatches(i: Pick<ReconcileInput, 'voters' | 'learners' | 'desiredVoters' | 'desiredLearners'>): boolean {
  return sameSet(i.voters, i.desiredVoters) && sameSet(i.learners, i.desiredLearners);
}

/** The one change (or leadership transfer) that moves the group closest to its target, safely. */
export function nextStep(i: ReconcileInput): ReconcileStep {
  validate(i);
  const voters = new Set(i.voters);
  const learners = new Set(i.learners);
  const desiredVoters = new Set(i.desiredVoters);
  const desiredLearners = new Set(i.desiredLearners);
  const matchOf = (m: string): number => i.match.get(m) ?? 0;
  // Promotion waits for the learner to hold everything committed: promoted
  // earlier, it would count in the quorum while unable to acknowledge new
  // entries, and a failure of one more voter would stall the group.
  const caughtUp = (m: string): boolean => i.commit > 0 && matchOf(m) >= i.commit;
  // A transfer target must hold the whole log, or the transfer waits on it (thesis §3.10).
  const ready = (m: string): boolean => m !== i.self && voters.has(m) && matchOf(m) >= i.lastIndex && i.connected(m);
  const transferAway = (why: string): ReconcileStep => {
    const to = i.desiredVoters.find(ready);
    return to === undefined ? { kind: 'none' } : { kind: 'transfer', to, why: `${why}; leadership to ${to} first` };
  };

  // 1. Promote a caught-up learner that should be a voter.
  for (const m of i.desiredVoters) {
    if (!learners.has(m) || !caughtUp(m)) continue;
    const old = i.voters.find((v) => v !== m && nodeOfMember(v) === nodeOfMember(m));
    // A node's new incarnation replaces its old member id: the old one leaves
    // first, so the node never counts twice in a quorum (one node failing
    // would take two votes). Unless it is the only voter: a configuration
    // needs one, so then the new id is promoted first and rule 4 removes the old.
    if (old !== undefined && i.voters.length > 1) {
      if (old !== i.self) {
        return change(ConfChangeType.RemoveNode, old, `${m} replaces ${old}, the old incarnation of node ${nodeOfMember(m)}: remove ${old} before promoting ${m}`);
      }
      // Only a ghost of this node leads (its new incarnation is the learner):
      // hand leadership to any caught-up voter, which then removes it.
      const to = i.desiredVoters.find(ready) ?? i.voters.find(ready);
      if (to === undefined) return { kind: 'none' };
      return { kind: 'transfer', to, why: `${m} replaces this leader's member id ${old}; leadership to ${to} first` };
    }
    return change(ConfChangeType.AddVoter, m, `${m} caught up (match ${matchOf(m)} ≥ commit ${i.commit}): promote to voter`);
  }

  // 2. A learner nobody wants costs bandwidth and counts in no quorum: drop it.
  for (const m of i.learners) {
    if (!desiredVoters.has(m) && !desiredLearners.has(m)) {
      return change(ConfChangeType.RemoveNode, m, `${m} is a learner in neither desired list`);
    }
  }

  // 3. Add a missing replica as a learner, one catch-up at a time: a snapshot
  // transfer is the expensive part of a move, and the group's leader sends it.
  const catchingUp = i.learners.find((m) => desiredVoters.has(m));
  if (catchingUp === undefined) {
    const missing = [...i.desiredVoters, ...i.desiredLearners].find((m) => !voters.has(m) && !learners.has(m));
    if (missing !== undefined) {
      const as = desiredVoters.has(missing) ? 'a voter' : 'a learner';
      return change(ConfChangeType.AddLearner, missing, `${missing} should be ${as}: add it as a learner to catch up first`);
    }
  }

  // 4. Remove a voter nobody wants as a voter, only once every desired voter
  // is a voter (the replacement is in before anyone leaves). A desired learner
  // among them is demoted this way and re-added as a learner by rule 3. The
  // last voter never leaves: a configuration without one cannot commit again.
  if (i.desiredVoters.every((m) => voters.has(m)) && i.voters.length > 1) {
    const leaving = i.voters.filter((m) => !desiredVoters.has(m));
    // Others first: removing this leader costs an election.
    const other = leaving.find((m) => m !== i.self);
    if (other !== undefined) return change(ConfChangeType.RemoveNode, other, `${other} is a voter not in the desired voters, all of which are voters`);
    if (leaving.length > 0) return transferAway(`this leader ${i.self} is to leave the voters`);
  }

  // 5. Spread leadership: hand it to the preferred replica once it can take it.
  const preferred = i.desiredVoters[0]!;
  if (ready(preferred)) return { kind: 'transfer', to: preferred, why: `${preferred} is the preferred leader and caught up` };
  return { kind: 'none' };
}

function change(type: ConfChangeType, member: string, why: string): ReconcileStep {
  return { kind: 'change', type, member, why };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const sa = new Set(a);
  const sb = new Set(b);
  return sa.size === sb.size && [...sa].every((m) => sb.has(m));
}

/** Input no leader can hold is a bug upstream: say which, rather than steer the group somewhere odd. */
function validate(i: ReconcileInput): void {
  if (i.voters.length === 0) throw new Error('reconcile: the configuration has no voter');
  const learner = i.learners.find((m) => i.voters.includes(m));
  if (learner !== undefined) throw new Error(`reconcile: ${learner} is both a voter and a learner`);
  if (i.desiredVoters.length === 0) throw new Error('reconcile: desiredVoters is empty; a group needs at least one voter');
  // Two desired members on one node would make rule 1 remove one incarnation
  // to promote the other, back and forth, and count the node twice anyway.
  const nodes = new Map<string, string>();
  for (const m of [...i.desiredVoters, ...i.desiredLearners]) {
    const node = nodeOfMember(m);
    const seen = nodes.get(node);
    if (seen === m) throw new Error(`reconcile: ${m} is listed twice in the desired voters and learners`);
    if (seen !== undefined) throw new Error(`reconcile: ${seen} and ${m} are both desired, but a node holds one replica of a group`);
    nodes.set(node, m);
  }
}
