// The consensus core of one Raft group, as a pure state machine (Ongaro,
// "Consensus: Bridging Theory and Practice", 2014; structure after etcd's
// raft). Inputs: tick(), step(), propose(), proposeConfChange(),
// readIndex(), transferLeadership(). Output: a Ready batch, acknowledged with
// advance(). Nothing here touches a socket, a timer, the disk, the clock or
// Math.random(): time is ticks and chance is the injected Rng.

import { applyConfChange, decodeConfChange, encodeConfChange } from './confchange.js';
import { RaftLog } from './log.js';
import { Progress, ProgressState } from './progress.js';
import { committedIndex, hasQuorum, voteResult, VoteResult } from './quorum.js';
import { CompactedError } from './storage.js';
import { EntryType, MessageType, Role, emptyMessage } from './types.js';
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  InjectedBugs,
  Message,
  NodeId,
  ProposeResult,
  RaftConfig,
  ReadIndexResult,
  ReadState,
  Ready,
  Rng,
  Snapshot,
  SoftState,
} from './types.js';

export interface RaftStatus {
  id: NodeId;
  role: Role;
  term: number;
  vote: NodeId | null;
  leader: NodeId | null;
  commit: number;
  applied: number;
  lastIndex: number;
  /** The configuration in force (the latest in the log, committed or not). */
  confState: ConfState;
  /** Leader only: each follower's match index. */
  /**
   * Leader only: each member's replication progress; `recentActive`, whether
   * it answered since the last check-quorum round (within one election timeout).
   */
  progress: Map<NodeId, { match: number; next: number; state: ProgressState; recentActive: boolean }> | null;
}

const DEFAULTS = {
  maxEntriesPerAppend: 64,
  maxBytesPerAppend: 1 << 20,
  maxInflightAppends: 64,
  maxSnapshotChunkBytes: 1 << 20,
  maxUncommittedEntries: 10_000,
  maxApplyBytes: 16 << 20,
};

/** A read waiting for its heartbeat round; round 0 = not yet sent. */
interface PendingRead {
  context: unknown;
  index: number;
  round: number;
}

/** A snapshot being received in chunks. */
interface IncomingSnapshot {
  index: number;
  term: number;
  chunks: Uint8Array[];
  received: number;
}

export class RaftNode {
  readonly id: NodeId;
  private readonly log: RaftLog;
  private readonly rng: Rng;
  private readonly bugs: InjectedBugs;
  private readonly electionTicks: number;
  private readonly heartbeatTicks: number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly maxEntriesPerAppend: number;
  private readonly maxBytesPerAppend: number;
  private readonly maxInflightAppends: number;
  private readonly maxSnapshotChunkBytes: number;
  private readonly maxUncommittedEntries: number;
  private readonly leaseTicks: number; // 0 = leases off

  private term = 0;
  private vote: NodeId | null = null;
  /** The vote as it will be persisted; differs from `vote` only under the voteBeforePersist bug. */
  private persistableVote: NodeId | null = null;
  private role = Role.Follower;
  private leader: NodeId | null = null;

  /** Ticks since the last election timeout reset (follower/candidate) or check-quorum round (leader). */
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Logical time, for leases. */
  private now = 0;
  private ticksSinceStart = 0;

  /** The configuration before the first configuration entry in `confLog`. */
  private baseConf: ConfState;
  /** Configuration entries in the log beyond baseConf: the last one is in force (thesis §4.1). */
  private confLog: { index: number; conf: ConfState }[] = [];

  private readonly progress = new Map<NodeId, Progress>();
  private readonly votes = new Map<NodeId, boolean>();
  /** Index of the latest configuration entry the leader appended; none may follow until it commits. */
  private pendingConfIndex = 0;
  private leadTransferee: NodeId | null = null;

  private readRound = 0;
  private readonly ackedRound = new Map<NodeId, number>();
  private readonly roundSentAt = new Map<number, number>();
  private quorumRound = 0;
  private leaseExpiresAt = 0;
  /** Set once this leader sent TimeoutNow: its lease promises nothing for the rest of its term. */
  private leaseRevoked = false;
  private pendingReads: PendingRead[] = [];
  /** Reads waiting for the leader's first commit in its term (thesis §6.4 step 1). */
  private readsAwaitingCommit: { context: unknown; lease: boolean }[] = [];
  private readStates: ReadState[] = [];

  private incoming: IncomingSnapshot | null = null;

  private msgs: Message[] = [];
  private prevHardState: HardState;
  private prevSoftState: SoftState;
  private pendingReady: { lastEntry: Entry | null; snapshotIndex: number; lastApplied: number; hardState: HardState | null; softState: SoftState | null } | null = null;

  constructor(config: RaftConfig) {
    this.id = config.id;
    this.rng = config.rng;
    this.bugs = config.bugs ?? {};
    this.electionTicks = config.electionTicks;
    this.heartbeatTicks = config.heartbeatTicks;
    if (!(this.heartbeatTicks >= 1 && this.electionTicks > this.heartbeatTicks)) {
      throw new Error('raft config: need 1 <= heartbeatTicks < electionTicks');
    }
    this.preVote = config.preVote ?? true;
    this.checkQuorum = config.checkQuorum ?? true;
    this.maxEntriesPerAppend = config.maxEntriesPerAppend ?? DEFAULTS.maxEntriesPerAppend;
    this.maxBytesPerAppend = config.maxBytesPerAppend ?? DEFAULTS.maxBytesPerAppend;
    this.maxInflightAppends = config.maxInflightAppends ?? DEFAULTS.maxInflightAppends;
    this.maxSnapshotChunkBytes = config.maxSnapshotChunkBytes ?? DEFAULTS.maxSnapshotChunkBytes;
    this.maxUncommittedEntries = config.maxUncommittedEntries ?? DEFAULTS.maxUncommittedEntries;
    if (config.leaseReads) {
      if (!this.checkQuorum) throw new Error('raft config: leaseReads requires checkQuorum');
      this.leaseTicks = this.electionTicks - config.leaseReads.maxClockDriftTicks;
      if (!(this.leaseTicks > 0)) throw new Error('raft config: maxClockDriftTicks must be below electionTicks');
    } else {
      this.leaseTicks = 0;
    }

    const storage = config.storage;
    const { hardState, confState } = storage.initialState();
    this.log = new RaftLog(storage, config.applied ?? 0);
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.persistableVote = hardState.vote;
    this.baseConf = cloneConf(confState);
    // Thesis §4.1: the latest configuration in the log is in force, committed or not.
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    for (let lo = first; lo <= last; ) {
      const ents = storage.entries(lo, last + 1, 8 << 20);
      for (const e of ents) this.noteConfEntry(e);
      lo += ents.length;
    }
    this.prevHardState = { ...hardState };
    this.becomeFollower(this.term, null);
    this.prevSoftState = this.softState();
  }

  // ---------------------------------------------------------------- inputs

  tick(): void {
    this.now++;
    this.ticksSinceStart++;
    if (this.role === Role.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  step(m: Message): void {
    if (m.to !== this.id || m.from === this.id) return;
    if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        if (!m.transfer && this.inLease()) return; // thesis §4.2.3: ignore disruptive candidates
      }
      if (m.type === MessageType.PreVote) {
        // A pre-vote does not change our term.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // The term we would campaign for; ours changes when we do.
      } else {
        const fromLeader = m.type === MessageType.Append || m.type === MessageType.Heartbeat || m.type === MessageType.Snapshot;
        this.becomeFollower(m.term, fromLeader ? m.from : null);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === MessageType.Append || m.type === MessageType.Heartbeat)) {
        // A stale leader (e.g. back from a partition) learns our term and steps down.
        this.send(emptyMessage(MessageType.AppendResp, this.id, m.from, this.term));
      } else if (m.type === MessageType.PreVote) {
        this.send({ ...emptyMessage(MessageType.PreVoteResp, this.id, m.from, this.term), reject: true });
      } else if (m.type === MessageType.Vote) {
        // Figure 2: the refusal carries our term, so a candidate behind in term
        // learns it at once instead of campaigning on (a livelock the
        // simulation found with pre-vote off: test/sim/FINDINGS.md §1).
        this.send({ ...emptyMessage(MessageType.VoteResp, this.id, m.from, this.term), reject: true });
      }
      return;
    }

    switch (m.type) {
      case MessageType.Vote:
      case MessageType.PreVote:
        this.handleVoteRequest(m);
        return;
      default:
        break;
    }
    switch (this.role) {
      case Role.Leader:
        this.stepLeader(m);
        break;
      case Role.Candidate:
      case Role.PreCandidate:
        this.stepCandidate(m);
        break;
      case Role.Follower:
        this.stepFollower(m);
        break;
    }
  }

  propose(data: Uint8Array): ProposeResult {
    const refusal = this.proposalRefusal();
    if (refusal) return refusal;
    const index = this.appendEntries([{ term: this.term, index: 0, type: EntryType.Normal, data }]);
    this.bcastAppend();
    return { ok: true, index, term: this.term };
  }

  proposeConfChange(cc: ConfChange): ProposeResult {
    const refusal = this.proposalRefusal();
    if (refusal) return refusal;
    // Thesis §4.1: one change at a time, and (§4.1 errata) not before this
    // leader has committed an entry of its own term — pendingConfIndex starts
    // at the leader's no-op.
    if (this.pendingConfIndex > this.log.committed) {
      return { ok: false, reason: 'conf_change_pending', leader: this.leader };
    }
    const next = applyConfChange(this.conf(), cc);
    if (next.voters.length === 0) return { ok: false, reason: 'invalid_conf_change', leader: this.leader };
    const data = encodeConfChange(cc);
    const index = this.appendEntries([{ term: this.term, index: 0, type: EntryType.ConfChange, data }]);
    this.bcastAppend();
    return { ok: true, index, term: this.term };
  }

  /**
   * A linearizable read at the current commit index (thesis §6.4). With
   * leaseReads it is served from the lease when one holds, unless `lease` is
   * false: the driver says so when it cannot vouch for its clock right now
   * (its ticks are overdue, say after a stall), and the read then waits for a
   * heartbeat round as without leases.
   */
  readIndex(context: unknown, opts: { lease?: boolean } = {}): ReadIndexResult {
    if (this.role !== Role.Leader) return { ok: false, reason: 'not_leader', leader: this.leader };
    const lease = opts.lease ?? true;
    if (this.bugs.readIndexWithoutHeartbeat) {
      this.readStates.push({ context, index: this.log.committed });
      return { ok: true };
    }
    // Thesis §6.4: the read index is the commit index once the leader has
    // committed an entry of its own term; until then we cannot know it.
    if (this.log.term(this.log.committed) !== this.term) {
      this.readsAwaitingCommit.push({ context, lease });
      return { ok: true };
    }
    this.enqueueRead(context, this.log.committed, lease);
    return { ok: true };
  }

  transferLeadership(to: NodeId): { ok: boolean } {
    if (this.role !== Role.Leader) return { ok: false };
    if (to === this.id) return { ok: true };
    if (!this.conf().voters.includes(to)) return { ok: false };
    this.leadTransferee = to;
    this.electionElapsed = 0; // the transfer aborts after one election timeout (thesis §3.10)
    const pr = this.progress.get(to)!;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to, false);
    return { ok: true };
  }

  // ---------------------------------------------------------------- output

  hasReady(): boolean {
    if (this.msgs.length > 0 || this.readStates.length > 0) return true;
    if (this.pendingReads.some((r) => r.round === 0)) return true;
    if (this.log.unstable.entries.length > 0 || this.log.hasPendingSnapshot()) return true;
    if (this.log.hasNextCommittedEntries()) return true;
    if (!sameHardState(this.hardState(), this.prevHardState)) return true;
    if (!sameSoftState(this.softState(), this.prevSoftState)) return true;
    return false;
  }

  ready(): Ready {
    if (this.pendingReady) throw new Error('ready() called again before advance()');
    // Every read that arrived since the last Ready shares one heartbeat round.
    if (this.role === Role.Leader && this.pendingReads.some((r) => r.round === 0)) this.bcastHeartbeat();
    const hs = this.hardState();
    const ss = this.softState();
    const hardState = sameHardState(hs, this.prevHardState) ? null : hs;
    const termOrVoteChanged = hardState !== null && (hardState.term !== this.prevHardState.term || hardState.vote !== this.prevHardState.vote);
    const softState = sameSoftState(ss, this.prevSoftState) ? null : ss;
    const entries = this.log.unstableEntries();
    const snapshot = this.log.unstable.snapshot;
    const committedEntries = this.log.nextCommittedEntries(DEFAULTS.maxApplyBytes);
    const rd: Ready = {
      softState,
      hardState,
      snapshot,
      entries,
      messages: this.msgs,
      committedEntries,
      readStates: this.readStates,
      mustSync: entries.length > 0 || snapshot !== null || termOrVoteChanged,
      sendBeforePersist: !termOrVoteChanged && (this.role === Role.Leader || this.bugs.acksBeforePersist === true),
    };
    this.msgs = [];
    this.readStates = [];
    this.pendingReady = {
      lastEntry: entries.length > 0 ? entries[entries.length - 1]! : null,
      snapshotIndex: snapshot ? snapshot.metadata.index : 0,
      lastApplied: committedEntries.length > 0 ? committedEntries[committedEntries.length - 1]!.index : 0,
      hardState,
      softState,
    };
    return rd;
  }

  advance(): void {
    const p = this.pendingReady;
    if (!p) throw new Error('advance() without a ready()');
    this.pendingReady = null;
    if (p.hardState) this.prevHardState = p.hardState;
    if (p.softState) this.prevSoftState = p.softState;
    if (p.snapshotIndex > 0) {
      this.log.stableSnapTo(p.snapshotIndex);
      this.log.appliedTo(p.snapshotIndex);
    }
    if (p.lastEntry) this.log.stableTo(p.lastEntry.index, p.lastEntry.term);
    if (p.lastApplied > 0) this.log.appliedTo(p.lastApplied);
    this.foldAppliedConf();
  }

  status(): RaftStatus {
    let progress: RaftStatus['progress'] = null;
    if (this.role === Role.Leader) {
      progress = new Map();
      for (const [id, pr] of this.progress) progress.set(id, { match: pr.match, next: pr.next, state: pr.state, recentActive: pr.recentActive });
    }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.leader,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      confState: cloneConf(this.conf()),
      progress,
    };
  }

  /** The configuration as of the applied index — what to record in an application snapshot taken there. */
  appliedConfState(): ConfState {
    let conf = this.baseConf;
    for (const c of this.confLog) if (c.index <= this.log.applied) conf = c.conf;
    return cloneConf(conf);
  }

  // ---------------------------------------------------------------- roles

  private becomeFollower(term: number, leader: NodeId | null): void {
    this.reset(term);
    this.role = Role.Follower;
    this.leader = leader;
  }

  private becomePreCandidate(): void {
    // Thesis §9.6: a pre-vote changes neither term nor vote.
    this.role = Role.PreCandidate;
    this.leader = null;
    this.votes.clear();
    this.dropReads();
  }

  private becomeCandidate(): void {
    this.reset(this.term + 1);
    this.role = Role.Candidate;
    this.vote = this.id;
    this.persistableVote = this.id;
  }

  private becomeLeader(): void {
    this.reset(this.term);
    this.role = Role.Leader;
    this.leader = this.id;
    const last = this.log.lastIndex();
    for (const id of this.members()) {
      const pr = new Progress(last + 1, this.maxInflightAppends, 0, !this.conf().voters.includes(id));
      if (id === this.id) {
        pr.match = last;
        pr.becomeReplicate();
      }
      pr.recentActive = true;
      this.progress.set(id, pr);
    }
    this.readRound = 0;
    this.quorumRound = 0;
    this.ackedRound.clear();
    this.roundSentAt.clear();
    this.leaseExpiresAt = 0;
    this.leaseRevoked = false;
    // Thesis §6.4 / §3.6.2: a no-op of our term, so that earlier entries commit.
    // Configuration changes wait for it (pendingConfIndex).
    this.pendingConfIndex = this.appendEntries([{ term: this.term, index: 0, type: EntryType.Normal, data: new Uint8Array(0) }]);
  }

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = null;
      this.persistableVote = null;
    }
    this.leader = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.electionTicks + this.rng.int(this.electionTicks);
    this.votes.clear();
    this.progress.clear();
    this.leadTransferee = null;
    this.pendingConfIndex = 0;
    this.dropReads();
  }

  /** Reads not yet confirmed die with the leadership; the driver fails them on the role change. */
  private dropReads(): void {
    this.pendingReads = [];
    this.readsAwaitingCommit = [];
  }

  // ---------------------------------------------------------------- ticks

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.campaign(this.preVote, false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    for (const [id, pr] of this.progress) {
      if (pr.state === ProgressState.Snapshot && ++pr.snapshotIdleTicks > 2 * this.heartbeatTicks) {
        this.sendSnapshotChunk(id, pr); // the last chunk or its answer was lost
      }
    }
    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0;
      if (this.checkQuorum) {
        // Thesis §6.2: step down if a quorum has not been heard from for an election timeout.
        const voters = this.conf().voters;
        const active = hasQuorum(voters, (id) => id === this.id || this.progress.get(id)?.recentActive === true);
        for (const [id, pr] of this.progress) if (id !== this.id) pr.recentActive = false;
        if (!active) {
          this.becomeFollower(this.term, null);
          return;
        }
      }
      if (this.leadTransferee !== null) this.leadTransferee = null; // transfer timed out
    }
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  // ---------------------------------------------------------------- elections

  private promotable(): boolean {
    return this.conf().voters.includes(this.id);
  }

  /** Whether a leader was heard from within the minimum election timeout (thesis §4.2.3). */
  private inLease(): boolean {
    if (this.leaseTicks > 0 && this.ticksSinceStart < this.electionTicks) {
      // After a restart we cannot know when we last heard from a leader; with
      // leases on, wait out one election timeout before helping depose one.
      return true;
    }
    return (this.checkQuorum || this.preVote) && this.leader !== null && this.electionElapsed < this.electionTicks;
  }

  private campaign(pre: boolean, transfer: boolean): void {
    if (!this.promotable()) return;
    let term: number;
    let type: MessageType;
    if (pre) {
      this.becomePreCandidate();
      term = this.term + 1;
      type = MessageType.PreVote;
    } else {
      this.becomeCandidate();
      term = this.term;
      type = MessageType.Vote;
    }
    this.votes.set(this.id, true);
    if (this.tallyVotes(pre)) return;
    for (const id of this.conf().voters) {
      if (id === this.id) continue;
      this.send({ ...emptyMessage(type, this.id, id, term), index: this.log.lastIndex(), logTerm: this.log.lastTerm(), transfer });
    }
  }

  /** Counts votes; returns true once the election is decided. */
  private tallyVotes(pre: boolean): boolean {
    const result = voteResult(this.conf().voters, this.votes);
    if (result === VoteResult.Won) {
      if (pre) this.campaign(false, false);
      else {
        this.becomeLeader();
        this.bcastAppend();
      }
      return true;
    }
    if (result === VoteResult.Lost) {
      this.becomeFollower(this.term, null);
      return true;
    }
    return false;
  }

  private handleVoteRequest(m: Message): void {
    const pre = m.type === MessageType.PreVote;
    const respType = pre ? MessageType.PreVoteResp : MessageType.VoteResp;
    // §5.2: one vote per term; a pre-vote for a future term binds nothing.
    const canVote = this.vote === m.from || (this.vote === null && this.leader === null) || (pre && m.term > this.term);
    const upToDate = this.bugs.voteWithoutLogCheck || this.log.isUpToDate(m.index, m.logTerm);
    if (canVote && upToDate) {
      // The response carries the candidate's term so that it counts there.
      this.send(emptyMessage(respType, this.id, m.from, m.term));
      if (!pre) {
        this.electionElapsed = 0;
        this.vote = m.from;
        if (!this.bugs.voteBeforePersist) this.persistableVote = m.from;
      }
    } else {
      this.send({ ...emptyMessage(respType, this.id, m.from, this.term), reject: true });
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case MessageType.Append:
      case MessageType.Heartbeat:
      case MessageType.Snapshot:
        // A leader exists in our term (§5.2).
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        return;
      case MessageType.VoteResp:
      case MessageType.PreVoteResp: {
        const pre = this.role === Role.PreCandidate;
        if ((m.type === MessageType.PreVoteResp) !== pre) return;
        this.votes.set(m.from, !m.reject);
        this.tallyVotes(pre);
        return;
      }
      default:
        return;
    }
  }

  // ---------------------------------------------------------------- follower

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.Append:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleAppend(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snapshot:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleSnapshotChunk(m);
        return;
      case MessageType.TimeoutNow:
        // Thesis §3.10: the leader asks us to start an election at once.
        this.campaign(false, true);
        return;
      default:
        return;
    }
  }

  private handleAppend(m: Message): void {
    const reply = emptyMessage(MessageType.AppendResp, this.id, m.from, this.term);
    const conf = this.conf();
    if (conf.voters.length === 0 && conf.learners.length === 0) {
      // A node that joined without a configuration must take one from a
      // snapshot: appends from index 1 never carry the bootstrap configuration,
      // and a wrong one could let it count itself a quorum. The leader sends a
      // snapshot once its log is compacted past the rejected index.
      reply.reject = true;
      reply.index = m.index;
      this.send(reply);
      return;
    }
    if (m.index < this.log.committed) {
      // Everything up to our commit index matches the leader's log already.
      reply.index = this.log.committed;
      this.send(reply);
      return;
    }
    const result = this.log.maybeAppend(m.index, m.logTerm, m.entries, this.bugs.appendWithoutPrevCheck === true);
    if (result) {
      for (const e of result.appended) this.noteConfEntry(e);
      this.log.commitTo(Math.min(m.commit, result.lastNew));
      reply.index = result.lastNew;
      this.send(reply);
      return;
    }
    // Fast back-off: point the leader at the last index that may match.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    reply.reject = true;
    reply.index = m.index;
    reply.rejectHint = hint;
    reply.logTerm = this.log.term(hint) ?? 0;
    this.send(reply);
  }

  private handleHeartbeat(m: Message): void {
    // The leader sends min(its commit, our match), so this is within our matching log.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send({ ...emptyMessage(MessageType.HeartbeatResp, this.id, m.from, this.term), readRound: m.readRound });
  }

  private handleSnapshotChunk(m: Message): void {
    const chunk = m.snapshot!;
    const meta = chunk.metadata;
    if (meta.index <= this.log.committed) {
      // We already have all of it; tell the leader where we are.
      this.incoming = null;
      this.send({ ...emptyMessage(MessageType.AppendResp, this.id, m.from, this.term), index: this.log.committed });
      return;
    }
    let inc = this.incoming;
    if (chunk.offset === 0 && (!inc || inc.index !== meta.index || inc.term !== meta.term || inc.received > 0)) {
      inc = this.incoming = { index: meta.index, term: meta.term, chunks: [], received: 0 };
    }
    if (inc && inc.index === meta.index && inc.term === meta.term && chunk.offset === inc.received) {
      inc.chunks.push(chunk.data);
      inc.received += chunk.data.length;
      if (chunk.done) {
        this.incoming = null;
        this.restore({ metadata: meta, data: concat(inc.chunks, inc.received) });
        // Only up to the commit index do we know our log matches the leader's.
        this.send({ ...emptyMessage(MessageType.AppendResp, this.id, m.from, this.term), index: this.log.committed });
        return;
      }
    }
    // Acknowledge what we hold; the leader sends on (or resends) from there.
    const received = inc && inc.index === meta.index && inc.term === meta.term ? inc.received : 0;
    this.send({ ...emptyMessage(MessageType.SnapshotResp, this.id, m.from, this.term), index: meta.index, logTerm: meta.term, snapshotOffset: received });
  }

  private restore(snap: Snapshot): void {
    const { index, term } = snap.metadata;
    if (this.log.matchTerm(index, term)) {
      // Our log already holds the snapshot's last entry: keep it, just commit.
      this.log.commitTo(index);
      return;
    }
    this.log.restore(snap);
    this.baseConf = cloneConf(snap.metadata.confState);
    this.confLog = [];
  }

  // ---------------------------------------------------------------- leader

  private stepLeader(m: Message): void {
    const pr = this.progress.get(m.from);
    if (!pr) return; // not (or no longer) a member
    switch (m.type) {
      case MessageType.AppendResp:
        pr.recentActive = true;
        this.handleAppendResp(m, pr);
        return;
      case MessageType.HeartbeatResp:
        pr.recentActive = true;
        pr.probeSent = false;
        // A lost append in Replicate would otherwise stall the window for good.
        if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
        if (pr.match < this.log.lastIndex() || pr.state === ProgressState.Probe) this.sendAppend(m.from, true);
        if (!pr.isLearner && m.readRound > (this.ackedRound.get(m.from) ?? 0)) {
          this.ackedRound.set(m.from, m.readRound);
          this.advanceReadRound();
        }
        return;
      case MessageType.SnapshotResp:
        pr.recentActive = true;
        if (pr.state !== ProgressState.Snapshot || m.index !== pr.pendingSnapshotIndex) return;
        pr.snapshotOffset = m.snapshotOffset;
        this.sendSnapshotChunk(m.from, pr);
        return;
      default:
        return;
    }
  }

  private handleAppendResp(m: Message, pr: Progress): void {
    if (m.reject) {
      let next = m.rejectHint;
      if (m.logTerm > 0) next = this.log.findConflictByTerm(m.rejectHint, m.logTerm);
      if (pr.maybeDecrTo(m.index, next)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from, false);
      }
      return;
    }
    // In Probe, an answer at the match index also proves where the follower's log ends.
    if (pr.maybeUpdate(m.index) || (pr.state === ProgressState.Probe && pr.match === m.index)) {
      if (pr.state === ProgressState.Probe) pr.becomeReplicate();
      else if (pr.state === ProgressState.Snapshot && pr.match >= pr.pendingSnapshotIndex) pr.becomeReplicate();
      else if (pr.state === ProgressState.Replicate) pr.inflights.freeTo(m.index);
      if (this.maybeCommit()) this.bcastAppend();
      // Keep the pipeline full.
      while (!pr.isPaused() && pr.next <= this.log.lastIndex()) {
        if (!this.sendAppend(m.from, false)) break;
      }
      if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
    } else if (pr.state === ProgressState.Snapshot && pr.match >= pr.pendingSnapshotIndex) {
      pr.becomeReplicate();
      this.sendAppend(m.from, false);
    }
  }

  /** Raft §3.6.2: commit the largest index a majority holds, but only by counting if it is of our term. */
  private maybeCommit(): boolean {
    const conf = this.conf();
    const index = committedIndex(conf.voters, (id) => this.progress.get(id)?.match ?? 0);
    if (index <= this.log.committed) return false;
    if (!this.bugs.commitPreviousTermByCounting && this.log.term(index) !== this.term) return false;
    this.log.commitTo(index);
    this.onCommitAdvanced();
    return true;
  }

  private onCommitAdvanced(): void {
    // Reads that waited for the leader's first commit in its term.
    if (this.readsAwaitingCommit.length > 0 && this.log.term(this.log.committed) === this.term) {
      const waiting = this.readsAwaitingCommit;
      this.readsAwaitingCommit = [];
      for (const r of waiting) this.enqueueRead(r.context, this.log.committed, r.lease);
    }
    // Thesis §4.2.2: a leader removed from the configuration steps down once the change commits.
    if (!this.conf().voters.includes(this.id) && this.pendingConfIndex <= this.log.committed) {
      this.becomeFollower(this.term, null);
    }
  }

  /** Appends entries proposed by this leader; returns the last index. */
  private appendEntries(ents: Entry[]): number {
    let index = this.log.lastIndex();
    for (const e of ents) {
      e.term = this.term;
      e.index = ++index;
    }
    this.log.append(ents);
    for (const e of ents) {
      if (e.type === EntryType.ConfChange) this.pendingConfIndex = e.index;
      this.noteConfEntry(e);
    }
    this.progress.get(this.id)?.maybeUpdate(index);
    this.maybeCommit();
    return index;
  }

  private proposalRefusal(): ProposeResult | null {
    if (this.role !== Role.Leader) return { ok: false, reason: 'not_leader', leader: this.leader };
    if (this.leadTransferee !== null) return { ok: false, reason: 'transferring', leader: this.leader };
    if (this.log.lastIndex() - this.log.committed >= this.maxUncommittedEntries) {
      return { ok: false, reason: 'too_many_pending', leader: this.leader };
    }
    return null;
  }

  private bcastAppend(): void {
    for (const id of this.progress.keys()) if (id !== this.id) this.sendAppend(id, true);
  }

  /**
   * Sends the follower its next entries (or a snapshot if they are compacted).
   * Returns whether anything was sent.
   */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    let ents: Entry[] = [];
    let compacted = prevTerm === undefined;
    if (!compacted) {
      const hi = Math.min(this.log.lastIndex() + 1, pr.next + this.maxEntriesPerAppend);
      try {
        ents = this.log.slice(pr.next, hi, this.maxBytesPerAppend);
      } catch (e) {
        if (!(e instanceof CompactedError)) throw e;
        compacted = true;
      }
    }
    if (compacted) {
      if (prevIndex > this.log.lastIndex()) throw new Error(`progress of ${to} is past the log`);
      // The follower needs entries we no longer have: InstallSnapshot (thesis §5.3).
      const snap = this.log.snapshot();
      pr.becomeSnapshot(snap.metadata.index);
      this.sendSnapshotChunk(to, pr);
      return true;
    }
    if (ents.length === 0 && !sendIfEmpty) return false;
    const m = emptyMessage(MessageType.Append, this.id, to, this.term);
    m.index = prevIndex;
    m.logTerm = prevTerm!;
    m.entries = ents;
    m.commit = this.log.committed;
    this.send(m);
    if (ents.length > 0) {
      const last = ents[ents.length - 1]!.index;
      if (pr.state === ProgressState.Replicate) {
        pr.next = last + 1;
        pr.inflights.add(last, entriesBytes(ents));
      } else if (pr.state === ProgressState.Probe) {
        pr.probeSent = true;
      }
    } else if (pr.state === ProgressState.Probe) {
      pr.probeSent = true;
    }
    return true;
  }

  private sendSnapshotChunk(to: NodeId, pr: Progress): void {
    let snap = this.log.snapshot();
    if (snap.metadata.index !== pr.pendingSnapshotIndex) {
      // A newer snapshot replaced the one being sent: start it over.
      pr.becomeSnapshot(snap.metadata.index);
    }
    const offset = Math.min(pr.snapshotOffset, snap.data.length);
    const end = Math.min(snap.data.length, offset + this.maxSnapshotChunkBytes);
    const m = emptyMessage(MessageType.Snapshot, this.id, to, this.term);
    m.snapshot = { metadata: snap.metadata, offset, data: snap.data.subarray(offset, end), done: end === snap.data.length };
    pr.snapshotIdleTicks = 0;
    this.send(m);
  }

  private sendTimeoutNow(to: NodeId): void {
    // The target will be elected ignoring every follower's lease (§3.10), so
    // ours can no longer promise that no other leader exists.
    this.leaseRevoked = true;
    this.send(emptyMessage(MessageType.TimeoutNow, this.id, to, this.term));
  }

  private bcastHeartbeat(): void {
    const round = ++this.readRound;
    this.roundSentAt.set(round, this.now);
    for (const r of this.pendingReads) if (r.round === 0) r.round = round;
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      const m = emptyMessage(MessageType.Heartbeat, this.id, id, this.term);
      m.commit = Math.min(pr.match, this.log.committed);
      m.readRound = round;
      this.send(m);
    }
    this.advanceReadRound(); // a single voter confirms alone
  }

  private enqueueRead(context: unknown, index: number, lease: boolean): void {
    if (this.conf().voters.length === 1 && this.conf().voters[0] === this.id) {
      this.readStates.push({ context, index });
      return;
    }
    if (lease && this.leaseTicks > 0 && this.now < this.leaseExpiresAt && !this.leaseRevoked) {
      // Thesis §6.4.1: within the lease no other leader can have been elected.
      this.readStates.push({ context, index });
      return;
    }
    this.pendingReads.push({ context, index, round: 0 });
  }

  /** The newest heartbeat round a quorum acknowledged confirms every read sent with it or before. */
  private advanceReadRound(): void {
    const voters = this.conf().voters;
    const round = committedIndex(voters, (id) => (id === this.id ? this.readRound : (this.ackedRound.get(id) ?? 0)));
    if (round <= this.quorumRound) return;
    this.quorumRound = round;
    if (this.leaseTicks > 0) {
      this.leaseExpiresAt = Math.max(this.leaseExpiresAt, (this.roundSentAt.get(round) ?? this.now) + this.leaseTicks);
    }
    for (const r of this.roundSentAt.keys()) if (r <= round) this.roundSentAt.delete(r);
    let n = 0;
    while (n < this.pendingReads.length && this.pendingReads[n]!.round !== 0 && this.pendingReads[n]!.round <= round) {
      const r = this.pendingReads[n]!;
      this.readStates.push({ context: r.context, index: r.index });
      n++;
    }
    if (n > 0) this.pendingReads.splice(0, n);
  }

  // ---------------------------------------------------------------- configuration

  private conf(): ConfState {
    return this.confLog.length > 0 ? this.confLog[this.confLog.length - 1]!.conf : this.baseConf;
  }

  private members(): NodeId[] {
    const c = this.conf();
    return [...c.voters, ...c.learners];
  }

  /**
   * Records a configuration entry now in our log; called for every entry
   * appended. Entries at or after it that were truncated drop their configurations.
   */
  private noteConfEntry(e: Entry): void {
    while (this.confLog.length > 0 && this.confLog[this.confLog.length - 1]!.index >= e.index) this.confLog.pop();
    if (e.type !== EntryType.ConfChange) return;
    const next = applyConfChange(this.conf(), decodeConfChange(e.data));
    this.confLog.push({ index: e.index, conf: next });
    if (this.role === Role.Leader) this.syncProgressWithConf();
  }

  /** The leader tracks exactly the members of the configuration in force. */
  private syncProgressWithConf(): void {
    const conf = this.conf();
    const last = this.log.lastIndex();
    const members = new Set(this.members());
    for (const id of [...this.progress.keys()]) {
      if (!members.has(id)) {
        this.progress.delete(id);
        this.ackedRound.delete(id);
      }
    }
    for (const id of members) {
      const isLearner = !conf.voters.includes(id);
      const old = this.progress.get(id);
      if (old && old.isLearner === isLearner) continue;
      const pr = new Progress(old ? old.next : last, this.maxInflightAppends, 0, isLearner);
      if (old) {
        pr.match = old.match;
        pr.recentActive = old.recentActive;
      } else {
        pr.recentActive = true;
      }
      if (id === this.id) {
        pr.match = last;
        pr.becomeReplicate();
      }
      this.progress.set(id, pr);
    }
  }

  /** Configurations at or below the applied index are settled; fold them into the base. */
  private foldAppliedConf(): void {
    let n = 0;
    while (n < this.confLog.length && this.confLog[n]!.index <= this.log.applied) n++;
    if (n > 0) {
      this.baseConf = this.confLog[n - 1]!.conf;
      this.confLog.splice(0, n);
    }
  }

  // ---------------------------------------------------------------- state

  private hardState(): HardState {
    return { term: this.term, vote: this.persistableVote, commit: this.log.committed };
  }

  private softState(): SoftState {
    return { role: this.role, leader: this.leader, term: this.term };
  }

  private send(m: Message): void {
    this.msgs.push(m);
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.role === b.role && a.leader === b.leader && a.term === b.term;
}

function cloneConf(c: ConfState): ConfState {
  return { voters: [...c.voters], learners: [...c.learners] };
}

function entriesBytes(ents: Entry[]): number {
  let n = 0;
  for (const e of ents) n += e.data.length;
  return n;
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
