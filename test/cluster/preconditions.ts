// What a real-process test checks before it injects a fault, instead of
// assuming how far the cluster got (issue 15, section 2). A kill -9 in memory
// mode loses the node's replicas for good, and a restarted memory node comes
// back as a new incarnation (a new member id, a learner until promoted): so
// before each kill, every raft group the victim votes in — each partition and
// the metadata group — must keep a quorum of live voters without it, and no
// incarnation killed earlier may still count as one.

import type { ClusterView } from '../../src/node/service.js';
import { nodeOf, settle } from './elastic-load.js';

export { clusterView, nodeOf, settle } from './elastic-load.js';

interface RaftGroup {
  name: string;
  voters: string[];
  learners: string[];
}

function groups(v: ClusterView): RaftGroup[] {
  const out: RaftGroup[] = v.partitions.map((p) => ({ name: `partition ${p.id}`, voters: p.voters, learners: p.learners }));
  if (v.metadata) out.push({ name: 'the metadata group', voters: v.metadata.voters, learners: v.metadata.learners });
  return out;
}

/**
 * Why killing `victim` now could leave some raft group without a quorum, or
 * null when it cannot: in `v` (one node's GET /v1/cluster), every partition
 * and the metadata group must keep a majority of its voters on nodes other
 * than `victim` that are up, none of them a member id in `dead` (incarnations
 * killed earlier). A group whose configuration `v` does not show counts as
 * lost: what is not seen is not assumed.
 */
export function quorumLostWithout(v: ClusterView, victim: string, dead: ReadonlySet<string> = new Set()): string | null {
  if (v.metadata === null) return `${v.node} has no replica of the metadata group yet`;
  const up = new Set(v.members.filter((m) => m.state === 'up').map((m) => m.id));
  for (const g of groups(v)) {
    if (g.voters.length === 0) return `${v.node} sees no configuration of ${g.name}`;
    const live = g.voters.filter((m) => nodeOf(m) !== victim && !dead.has(m) && up.has(nodeOf(m)));
    const quorum = Math.floor(g.voters.length / 2) + 1;
    if (live.length < quorum) {
      const why = g.voters.map((m) => `${m}${nodeOf(m) === victim ? ' (the victim)' : dead.has(m) ? ' (dead)' : up.has(nodeOf(m)) ? '' : ' (down)'}`);
      return `killing ${victim} would leave ${g.name} ${live.length} live voter(s) of ${g.voters.length}, below its quorum of ${quorum}: voters ${why.join(', ')}; learners ${g.learners.join(', ') || 'none'}`;
    }
  }
  return null;
}

/** Every member id of `node` in any configuration `v` shows (voters and learners, the metadata group's too): what a kill -9 in memory mode makes dead for good. */
export function incarnationsOf(v: ClusterView, node: string): string[] {
  const ids = new Set<string>();
  for (const g of groups(v)) for (const m of [...g.voters, ...g.learners]) if (nodeOf(m) === node) ids.add(m);
  return [...ids];
}

/** The first group that still counts a member id in `dead` among its voters or learners, or null. */
export function deadMemberLeft(v: ClusterView, dead: ReadonlySet<string>): string | null {
  for (const g of groups(v)) {
    const gone = [...g.voters, ...g.learners].filter((m) => dead.has(m));
    if (gone.length > 0) return `${g.name} still lists the dead incarnation(s) ${gone.join(', ')} (voters ${g.voters.join(', ')}; learners ${g.learners.join(', ') || 'none'})`;
  }
  return null;
}

/**
 * `settle` for the state a fault relies on: polls `check` until it holds,
 * fails after `timeoutMs` with what was last seen, and when it had to wait,
 * logs for how long and what it first saw — the runs in which checking,
 * rather than assuming, made a difference.
 */
export async function beforeFault(what: string, check: () => Promise<string | null>, timeoutMs: number): Promise<void> {
  const started = Date.now();
  let first: string | null = null;
  await settle(what, async () => {
    const complaint = await check();
    first ??= complaint;
    return complaint;
  }, timeoutMs);
  if (first !== null) console.log(`${what}: held after ${Date.now() - started} ms; first seen: ${first}`);
}
