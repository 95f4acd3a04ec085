// The vocabulary of one Raft group: messages, entries, hard state, snapshots,
// configurations and the Ready batch. Shaped after etcd's raftpb, with one
// message type for every kind so that every transition is found in one place.

export type NodeId = string;

/** What a node persists before it answers anything that depends on it. */
export interface HardState {
  term: number;
  /** Who this node voted for in `term`; null if nobody. */
  vote: NodeId | null;
  commit: number;
}

export const enum EntryType {
  /** Application data, or an empty no-op appended by a new leader. */
  Normal = 0,
  /** A configuration change (`ConfChange`), encoded with encodeConfChange. */
  ConfChange = 1,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

/**
 * A configuration. Membership changes are made one server at a time
 * (Raft thesis §4.1): a configuration takes effect on every server as soon
 * as its entry is in that server's log, and a leader appends no new change
 * until the previous one has committed.
 */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export const enum ConfChangeType {
  AddVoter = 0,
  AddLearner = 1,
  RemoveNode = 2,
}

export interface ConfChange {
  type: ConfChangeType;
  node: NodeId;
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

/** The application's state at `metadata.index`, as opaque bytes. */
export interface Snapshot {
  metadata: SnapshotMetadata;
  data: Uint8Array;
}

export const enum MessageType {
  /** Leader → follower: entries after (logTerm, index), and the leader's commit. */
  Append = 0,
  AppendResp = 1,
  Vote = 2,
  VoteResp = 3,
  PreVote = 4,
  PreVoteResp = 5,
  /** Leader → follower: liveness, commit, and the read round in `readRound`. */
  Heartbeat = 6,
  HeartbeatResp = 7,
  /** Leader → follower: one chunk of a snapshot (InstallSnapshot, thesis §5.3). */
  Snapshot = 8,
  SnapshotResp = 9,
  /** Leader → transfer target: start an election now (thesis §3.10). */
  TimeoutNow = 10,
}

export interface SnapshotChunk {
  metadata: SnapshotMetadata;
  /** Byte offset of `data` in the whole snapshot. */
  offset: number;
  data: Uint8Array;
  /** True on the last chunk. */
  done: boolean;
}

/**
 * One message kind for everything; fields a kind does not use are zero.
 *
 * - Append: `index`/`logTerm` are the entry before `entries`; `commit` the
 *   leader's commit index.
 * - AppendResp: on success `index` is the last index the follower now matches.
 *   On rejection `reject` is true, `index` is the rejected `index`, and
 *   `rejectHint`/`logTerm` are the fast back-off hint (thesis §5.3 / etcd):
 *   the largest index ≤ the rejected index at which the follower's term is
 *   ≤ the leader's `logTerm`, and that term.
 * - Vote/PreVote: `index`/`logTerm` are the candidate's last entry;
 *   `transfer` is set when leadership transfer asked for this election.
 * - Heartbeat: `commit` and `readRound`; HeartbeatResp echoes `readRound`.
 * - Snapshot: `snapshot`; SnapshotResp: `index` is the snapshot index,
 *   `snapshotOffset` the bytes received so far, `reject` if refused.
 */
export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  rejectHint: number;
  readRound: number;
  transfer: boolean;
  snapshot: SnapshotChunk | null;
  snapshotOffset: number;
}

export const enum Role {
  Follower = 0,
  PreCandidate = 1,
  Candidate = 2,
  Leader = 3,
}

export interface SoftState {
  role: Role;
  /** The leader this node knows of in its current term; null if none. */
  leader: NodeId | null;
  term: number;
}

/** A read that became safe: serve it once the applied index reaches `index`. */
export interface ReadState {
  context: unknown;
  index: number;
}

/**
 * What the driver must do, in this order, then call `advance()`:
 * 1. persist `snapshot` (if any), then `entries`, then `hardState` — as one
 *    durable batch when `mustSync`;
 * 2. only then send `messages` (they may depend on what was persisted) —
 *    unless `sendBeforePersist`, when they may leave while the batch is
 *    being written;
 * 3. apply `committedEntries` (and restore `snapshot` into the application);
 * 4. answer `readStates` whose index the applied state has reached.
 */
export interface Ready {
  softState: SoftState | null;
  hardState: HardState | null;
  snapshot: Snapshot | null;
  entries: Entry[];
  messages: Message[];
  committedEntries: Entry[];
  readStates: ReadState[];
  /** True when hardState or entries must reach stable storage before messages go out. */
  mustSync: boolean;
  /**
   * True when `messages` may be sent before this Ready's writes are durable:
   * the node leads, and its term and vote are the ones already persisted. A
   * leader's appends may then go out while it writes the same entries to its
   * own disk (thesis §10.2.1): they commit only once a majority holds them,
   * and nothing this Ready's messages say depends on the leader's own copy,
   * since what it commits becomes visible only in a later Ready, which the
   * driver takes after this one's writes are durable.
   */
  sendBeforePersist: boolean;
}

/** Why a proposal or read was refused; the driver maps these to its errors. */
export type RefusalReason = 'not_leader' | 'transferring' | 'conf_change_pending' | 'too_many_pending' | 'invalid_conf_change';

export type ProposeResult =
  | { ok: true; index: number; term: number }
  | { ok: false; reason: RefusalReason; leader: NodeId | null };

export type ReadIndexResult = { ok: true } | { ok: false; reason: RefusalReason; leader: NodeId | null };

/** A seeded source of randomness; the core never calls Math.random(). */
export interface Rng {
  /** A uniformly distributed integer in [0, n). */
  int(n: number): number;
}

/**
 * Deliberate bugs that only tests turn on, to prove the simulation catches
 * each of them. Never set outside test/.
 */
export interface InjectedBugs {
  /** Grant a vote without the §5.4.1 log up-to-date check. */
  voteWithoutLogCheck?: boolean;
  /** Commit a previous-term entry by counting replicas (§5.4.2 violation). */
  commitPreviousTermByCounting?: boolean;
  /** Serve a ReadIndex read without its confirming heartbeat round. */
  readIndexWithoutHeartbeat?: boolean;
  /** Answer a vote without persisting it first. */
  voteBeforePersist?: boolean;
  /** Accept an append without checking the previous entry. */
  appendWithoutPrevCheck?: boolean;
  /** Let a follower's messages leave before its writes are durable, as a leader's may: it acks entries a crash can still take. */
  acksBeforePersist?: boolean;
}

export interface RaftConfig {
  id: NodeId;
  /** Read side of the log; the driver writes what each Ready asks into it. */
  storage: import('./storage.js').Storage;
  rng: Rng;
  /** Minimum election timeout; the actual one is random in [electionTicks, 2·electionTicks). */
  electionTicks: number;
  heartbeatTicks: number;
  /** Thesis §9.6: a would-be candidate first asks whether it could win. Default true. */
  preVote?: boolean;
  /** Thesis §6.2: a leader that has not heard from a quorum for an election timeout steps down. Default true. */
  checkQuorum?: boolean;
  /** Flow control: entries and bytes per Append, Appends in flight per follower. */
  maxEntriesPerAppend?: number;
  maxBytesPerAppend?: number;
  maxInflightAppends?: number;
  /** Bytes of snapshot data per Snapshot message. */
  maxSnapshotChunkBytes?: number;
  /** Proposals accepted but not yet committed before `propose` refuses. */
  maxUncommittedEntries?: number;
  /**
   * Leader-lease reads (thesis §6.4.1): off unless set. The bound on clock
   * drift between servers, in ticks, over one election timeout; the lease is
   * `electionTicks - maxClockDriftTicks` from when a quorum-acknowledged
   * heartbeat round was sent. Requires checkQuorum.
   */
  leaseReads?: { maxClockDriftTicks: number };
  /** The applied index to resume from after a restart (entries ≤ it are not re-emitted). */
  applied?: number;
  bugs?: InjectedBugs;
}

export function emptyMessage(type: MessageType, from: NodeId, to: NodeId, term: number): Message {
  return {
    type,
    from,
    to,
    term,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    readRound: 0,
    transfer: false,
    snapshot: null,
    snapshotOffset: 0,
  };
}
