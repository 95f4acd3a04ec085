// The safety properties of Raft (thesis §3.6, Figure 3.2), checked while the
// simulation runs. Each check is incremental — fed by what nodes persist,
// send and apply — so that it can run after every simulation step:
//
// - election safety: at most one leader per term; and no server grants its
//   vote to two candidates in one term (§3.4);
// - durable state: a server's persisted term and commit index never go back,
//   and its persisted vote never changes within a term; and a crash gives
//   back exactly what the server had made durable before acting on it — its
//   term, vote, snapshot and log — losing only commit indexes that were
//   written without sync (a Ready that is not mustSync);
// - log matching: an (index, term) pair names one entry, with one
//   predecessor term, in every log that ever held it (§3.5);
// - leader completeness: a new leader's log holds every committed entry (§3.6);
// - state machine safety: every server applies the same entry, and reaches the
//   same state, at each index; snapshots carry exactly that state (§3.6, §5);
// - committed entries are never lost: no quorum of the configuration in
//   force can be formed out of servers whose disks lack the newest one.
//
// "Committed" here means applied by some server: an entry is only applied
// once committed, and every snapshot is taken from applied state, so the first
// server to apply a given index always applies that entry itself, in order.

import { applyConfChange, decodeConfChange } from '../../raft/confchange.js';
import { EntryType, MessageType, Role } from '../../raft/types.js';
import type { ConfState, Entry, HardState, Message, NodeId, Ready, Snapshot } from '../../raft/types.js';
import { fnv1a32 } from './prng.js';
import type { SimNode } from './sim-node.js';

export class InvariantViolation extends Error {
  constructor(
    readonly invariant: string,
    message: string,
  ) {
    super(`${invariant}: ${message}`);
    this.name = 'InvariantViolation';
  }
}

interface CommittedEntry {
  term: number;
  /** Entry type and payload, as one comparable string. */
  key: string;
  /** Hash of the KV state right after applying it. */
  stateHash: number;
}

function entryKey(e: Entry): string {
  return `${e.type}|${Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).toString('latin1')}`;
}

function quorum(voters: readonly NodeId[]): number {
  return Math.floor(voters.length / 2) + 1;
}

export class InvariantChecker {
  /** term → the leader seen in it. */
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** "voter@term" → the candidate it granted its vote to. */
  private readonly voteGranted = new Map<string, NodeId>();
  /** The last hard state each server made durable (survives its crashes, as the disk does). */
  private readonly durableHardState = new Map<NodeId, HardState>();
  /** "index:term" → the entry's key and its predecessor's term (-1 when unknown: compacted). */
  private readonly logEntries = new Map<string, { key: string; prevTerm: number }>();
  /** The committed log, by index (1-based; [0] unused). */
  private readonly committed: (CommittedEntry | undefined)[] = [undefined];
  /** The configuration of the committed log prefix. */
  private committedConf: ConfState;
  /** (term, leader) pairs whose completeness was checked. */
  private readonly leadersChecked = new Set<string>();
  /** Hash of each node's current KV state, kept up to date as it applies. */
  private readonly nodeStateHash = new Map<NodeId, number>();
  /** What each server acted on as durable: its snapshot and log as of its last acknowledged write. */
  private readonly ackedLog = new Map<NodeId, AckedLog>();
  /** The commit index of each server's last hard state written with sync: a crash may take later ones. */
  private readonly syncedCommit = new Map<NodeId, number>();

  constructor(bootstrap: ConfState) {
    this.committedConf = { voters: [...bootstrap.voters], learners: [...bootstrap.learners] };
  }

  /** The highest index known committed. */
  get maxCommitted(): number {
    return this.committed.length - 1;
  }

  /** How many terms had a leader. */
  get leadersElected(): number {
    return this.leaderOfTerm.size;
  }

  get committedConfState(): ConfState {
    return this.committedConf;
  }

  committedTerm(index: number): number | undefined {
    return this.committed[index]?.term;
  }

  committedStateHash(index: number): number | undefined {
    return this.committed[index]?.stateHash;
  }

  // ------------------------------------------------------------ fed by nodes

  /** After `node` made `rd` durable. */
  persisted(node: SimNode, rd: Ready): void {
    if (rd.hardState) this.checkHardState(node.id, rd.hardState);
    // A sync makes every earlier write durable too, commit indexes written without one included.
    if (rd.mustSync) this.syncedCommit.set(node.id, this.durableHardState.get(node.id)?.commit ?? 0);
    this.acked(node).persisted(rd);
    if (rd.entries.length > 0) this.recordEntries(node, rd.entries);
    if (rd.snapshot) this.checkSnapshotMeta(node.id, rd.snapshot, 'installed');
    const st = node.raft!.status();
    if (st.role === Role.Leader) this.checkLeaderCompleteness(node, st.term);
  }

  /** Every message a node sends. */
  sent(node: SimNode, m: Message): void {
    if (m.type !== MessageType.VoteResp || m.reject) return;
    const k = `${node.id}@${m.term}`;
    const before = this.voteGranted.get(k);
    if (before === undefined) this.voteGranted.set(k, m.to);
    else if (before !== m.to) {
      throw new InvariantViolation('election safety', `${node.id} granted its vote in term ${m.term} to both ${before} and ${m.to}`);
    }
  }

  restored(node: SimNode, snap: Snapshot): void {
    this.checkSnapshotMeta(node.id, snap, 'restored');
    const h = fnv1a32(node.kv!.canonical());
    const want = this.committed[snap.metadata.index]!.stateHash;
    if (h !== want) {
      throw new InvariantViolation('state machine safety', `${node.id} restored a snapshot at ${snap.metadata.index} whose state differs from the state applied there`);
    }
    this.nodeStateHash.set(node.id, h);
  }

  /** `node` restarted: its KV is its storage's snapshot, which must hold the state applied at that index. */
  restarted(node: SimNode): void {
    const h = fnv1a32(node.kv!.canonical());
    const index = node.storage.snapshot().metadata.index;
    if (index > 0 && this.committed[index]?.stateHash !== h) {
      throw new InvariantViolation('state machine safety', `${node.id} restarted from a snapshot at ${index} whose state differs from the state applied there`);
    }
    this.nodeStateHash.set(node.id, h);
  }

  /**
   * `node` crashed, and its storage was rebuilt from its disk. It must hold
   * exactly what the node had acted on as durable (the simulation never
   * keeps part of a batch that was being written at a crash, and LevelDB
   * applies a batch whole or not at all): the same term and vote, snapshot
   * and log, and a commit index no lower than the last one written with
   * sync. A node whose recovery refused its data directory is out for good
   * (as a real one that cannot open it): safe, but only acceptable when bit
   * rot really cost the disk synced writes.
   */
  recovered(node: SimNode): void {
    const id = node.id;
    if (node.refused) {
      if (node.disk.stats.syncedBatchesLost === 0) {
        throw new InvariantViolation('durable state', `${id} cannot recover what it had made durable, though no fault touched a synced write: ${node.refused}`);
      }
      return;
    }
    const st = node.storage;
    const hs = st.initialState().hardState;
    const before = this.durableHardState.get(id);
    if (before) {
      if (hs.term !== before.term || hs.vote !== before.vote) {
        throw new InvariantViolation(
          'durable state',
          `${id} came back with term ${hs.term} and vote ${hs.vote ?? 'none'}, but had made term ${before.term} and vote ${before.vote ?? 'none'} durable`,
        );
      }
      const synced = this.syncedCommit.get(id) ?? 0;
      if (hs.commit < synced || hs.commit > before.commit) {
        throw new InvariantViolation('durable state', `${id} came back with commit ${hs.commit}, outside [${synced}, ${before.commit}] (last synced, last written)`);
      }
    }
    const why = this.acked(node).differs(st);
    if (why) throw new InvariantViolation('durable state', `${id} came back with a log unlike the one it had made durable: ${why}`);
    // Later writes are judged against what it came back with.
    this.durableHardState.set(id, { ...hs });
  }

  applied(node: SimNode, e: Entry, changedState: boolean): void {
    let h = this.nodeStateHash.get(node.id);
    if (changedState || h === undefined) {
      h = fnv1a32(node.kv!.canonical());
      this.nodeStateHash.set(node.id, h);
    }
    const known = this.committed[e.index];
    if (known) {
      if (known.term !== e.term || known.key !== entryKey(e)) {
        throw new InvariantViolation(
          'state machine safety',
          `${node.id} applied entry ${e.index} of term ${e.term}, but the entry committed there has term ${known.term}${known.term === e.term ? ' and other data' : ''}`,
        );
      }
      if (known.stateHash !== h) {
        throw new InvariantViolation('state machine safety', `${node.id} reached a different state after applying entry ${e.index}`);
      }
      return;
    }
    if (e.index !== this.committed.length) {
      throw new InvariantViolation('state machine safety', `${node.id} applied entry ${e.index} before anyone applied entry ${this.committed.length}`);
    }
    this.committed.push({ term: e.term, key: entryKey(e), stateHash: h });
    if (e.type === EntryType.ConfChange) this.committedConf = applyConfChange(this.committedConf, decodeConfChange(e.data));
  }

  /** A locally taken snapshot must sit on the committed log. */
  compacted(node: SimNode, index: number): void {
    const snap = node.storage.snapshot();
    this.checkSnapshotMeta(node.id, snap, 'created');
    this.acked(node).compacted(index, snap.metadata.term);
  }

  private acked(node: SimNode): AckedLog {
    let a = this.ackedLog.get(node.id);
    if (!a) {
      a = new AckedLog();
      this.ackedLog.set(node.id, a);
    }
    return a;
  }

  // ------------------------------------------------------------ per step

  /** Cheap checks over every node after each simulation step. */
  checkStep(nodes: readonly SimNode[]): void {
    for (const n of nodes) {
      if (!n.raft) continue;
      const st = n.raft.status();
      if (st.role !== Role.Leader) continue;
      const before = this.leaderOfTerm.get(st.term);
      if (before === undefined) this.leaderOfTerm.set(st.term, n.id);
      else if (before !== n.id) {
        throw new InvariantViolation('election safety', `two leaders in term ${st.term}: ${before} and ${n.id}`);
      }
    }
    this.checkNewestCommittedHeld(nodes);
  }

  /**
   * The newest committed entry must be on enough durable disks that no quorum
   * of the committed configuration can be formed without it. (With
   * one-server-at-a-time changes a leader may have counted it in the next
   * configuration, so "held by a majority" is too strong; "no quorum of
   * non-holders" is what leader completeness needs.)
   */
  checkNewestCommittedHeld(nodes: readonly SimNode[]): void {
    const index = this.maxCommitted;
    if (index === 0) return;
    this.checkHeld(nodes, index);
  }

  private checkHeld(nodes: readonly SimNode[], index: number): void {
    const term = this.committed[index]!.term;
    const voters = this.committedConf.voters;
    let missing = 0;
    const lacking: NodeId[] = [];
    for (const id of voters) {
      const n = nodes.find((x) => x.id === id);
      if (n && holds(n, index, term)) continue;
      missing++;
      lacking.push(id);
    }
    if (missing >= quorum(voters)) {
      throw new InvariantViolation(
        'committed entry lost',
        `entry ${index} (term ${term}) is committed, but the durable logs of ${lacking.join(', ')} lack it — a quorum of voters [${voters.join(', ')}]`,
      );
    }
  }

  /**
   * At the end, after the cluster has converged: every member of the final
   * configuration holds the whole committed log and reached the same state.
   */
  checkConverged(nodes: readonly SimNode[]): string | null {
    const last = this.maxCommitted;
    const members = [...this.committedConf.voters, ...this.committedConf.learners];
    for (const id of members) {
      const n = nodes.find((x) => x.id === id)!;
      if (n.refused) continue; // out for good, like a machine whose disk failed
      if (!n.raft) return `${id} is down`;
      if (n.appliedIndex !== last) return `${id} applied ${n.appliedIndex} of ${last} committed entries`;
      if (this.nodeStateHash.get(id) !== this.committed[last]?.stateHash) return `${id} has a different state at ${last}`;
    }
    return null;
  }

  /** The full checks once the run is over. */
  checkFinal(nodes: readonly SimNode[]): void {
    const members = [...this.committedConf.voters, ...this.committedConf.learners];
    for (const id of members) {
      const n = nodes.find((x) => x.id === id)!;
      if (n.refused) continue;
      const first = n.storage.firstIndex();
      const last = Math.min(n.storage.lastIndex(), this.maxCommitted);
      for (let i = first; i <= last; i++) {
        if (n.storage.term(i) !== this.committed[i]!.term) {
          throw new InvariantViolation('log matching', `${id}'s log has term ${n.storage.term(i)} at committed index ${i}, not ${this.committed[i]!.term}`);
        }
      }
    }
    for (let i = 1; i <= this.maxCommitted; i++) this.checkHeld(nodes, i);
  }

  // ------------------------------------------------------------ helpers

  private checkHardState(id: NodeId, hs: HardState): void {
    const before = this.durableHardState.get(id);
    if (before) {
      if (hs.term < before.term) throw new InvariantViolation('durable state', `${id} persisted term ${hs.term} after term ${before.term}`);
      if (hs.commit < before.commit) {
        throw new InvariantViolation('durable state', `${id} persisted commit ${hs.commit} after commit ${before.commit}`);
      }
      if (hs.term === before.term && before.vote !== null && hs.vote !== before.vote) {
        throw new InvariantViolation('election safety', `${id} changed its persisted vote in term ${hs.term} from ${before.vote} to ${hs.vote}`);
      }
    }
    this.durableHardState.set(id, { ...hs });
  }

  /** Log matching, fed with every batch of entries a node makes durable. */
  private recordEntries(node: SimNode, entries: Entry[]): void {
    const st = node.storage;
    let prevTerm = -1;
    const firstIndex = entries[0]!.index;
    if (firstIndex - 1 >= st.firstIndex() - 1) prevTerm = st.term(firstIndex - 1);
    for (let j = 0; j < entries.length; j++) {
      const e = entries[j]!;
      if (e.index !== firstIndex + j) throw new InvariantViolation('log matching', `${node.id} persisted a batch with a gap at ${e.index}`);
      if (j > 0 && e.term < entries[j - 1]!.term) {
        throw new InvariantViolation('log matching', `${node.id}'s log has term ${e.term} at ${e.index} after term ${entries[j - 1]!.term}`);
      }
      const k = `${e.index}:${e.term}`;
      const key = entryKey(e);
      const seen = this.logEntries.get(k);
      if (!seen) {
        this.logEntries.set(k, { key, prevTerm });
      } else {
        if (seen.key !== key) {
          throw new InvariantViolation('log matching', `two different entries at index ${e.index} in term ${e.term} (${node.id} persisted the second)`);
        }
        if (seen.prevTerm !== -1 && prevTerm !== -1 && seen.prevTerm !== prevTerm) {
          throw new InvariantViolation(
            'log matching',
            `entry ${e.index} of term ${e.term} follows term ${prevTerm} in ${node.id}'s log but term ${seen.prevTerm} in another`,
          );
        }
        if (seen.prevTerm === -1) seen.prevTerm = prevTerm;
      }
      prevTerm = e.term;
    }
  }

  private checkSnapshotMeta(id: NodeId, snap: Snapshot, how: string): void {
    const { index, term } = snap.metadata;
    if (index === 0) return;
    const c = this.committed[index];
    if (!c) throw new InvariantViolation('state machine safety', `${id} ${how} a snapshot at ${index}, beyond the committed log (${this.maxCommitted})`);
    if (c.term !== term) {
      throw new InvariantViolation('state machine safety', `${id} ${how} a snapshot at ${index} of term ${term}; the committed entry there has term ${c.term}`);
    }
  }

  /** Thesis §3.6.1 (leader completeness), checked on a leader's first durable batch in its term. */
  private checkLeaderCompleteness(node: SimNode, term: number): void {
    const k = `${term}:${node.id}`;
    if (this.leadersChecked.has(k)) return;
    this.leadersChecked.add(k);
    const st = node.storage;
    const snapIndex = st.snapshot().metadata.index;
    if (st.lastIndex() < this.maxCommitted) {
      throw new InvariantViolation(
        'leader completeness',
        `${node.id} became leader of term ${term} with a log ending at ${st.lastIndex()}, but entries up to ${this.maxCommitted} are committed`,
      );
    }
    for (let i = snapIndex + 1; i <= this.maxCommitted; i++) {
      const t = st.term(i);
      if (t !== this.committed[i]!.term) {
        throw new InvariantViolation(
          'leader completeness',
          `${node.id} became leader of term ${term} with term ${t} at index ${i}, where the committed entry has term ${this.committed[i]!.term}`,
        );
      }
    }
  }
}

/** Whether `n`'s durable storage holds entry (index, term), as an entry or under its snapshot. */
function holds(n: SimNode, index: number, term: number): boolean {
  if (n.refused) return false;
  const st = n.storage;
  if (st.snapshot().metadata.index >= index) return true;
  if (index > st.lastIndex()) return false;
  return st.term(index) === term;
}

/**
 * The snapshot and log a server acted on as durable, rebuilt from the writes
 * it acknowledged (as MemoryStorage and LevelGroupStorage apply them): what
 * a crash must give back.
 */
class AckedLog {
  private snapIndex = 0;
  private snapTerm = 0;
  /** terms[i] is the term of entry snapIndex + 1 + i. */
  private terms: number[] = [];

  persisted(rd: Ready): void {
    if (rd.snapshot && rd.snapshot.metadata.index > this.snapIndex) {
      this.snapIndex = rd.snapshot.metadata.index;
      this.snapTerm = rd.snapshot.metadata.term;
      this.terms = [];
    }
    if (rd.entries.length === 0) return;
    let fresh = true;
    for (const e of rd.entries) {
      if (e.index <= this.snapIndex) continue; // already under the snapshot
      if (fresh) this.terms.length = Math.min(this.terms.length, e.index - this.snapIndex - 1); // overwrites the suffix from there
      fresh = false;
      this.terms.push(e.term);
    }
  }

  compacted(index: number, term: number): void {
    if (index <= this.snapIndex) return;
    this.terms = this.terms.slice(index - this.snapIndex);
    this.snapIndex = index;
    this.snapTerm = term;
  }

  /** How `st` differs from it, or null. */
  differs(st: { snapshot(): Snapshot; lastIndex(): number; term(i: number): number }): string | null {
    const m = st.snapshot().metadata;
    if (m.index !== this.snapIndex || m.term !== this.snapTerm) {
      return `snapshot at ${m.index} (term ${m.term}), not at ${this.snapIndex} (term ${this.snapTerm})`;
    }
    const last = this.snapIndex + this.terms.length;
    if (st.lastIndex() !== last) return `last index ${st.lastIndex()}, not ${last}`;
    for (let i = 0; i < this.terms.length; i++) {
      const t = st.term(this.snapIndex + 1 + i);
      if (t !== this.terms[i]) return `term ${t} at index ${this.snapIndex + 1 + i}, not ${this.terms[i]}`;
    }
    return null;
  }
}
