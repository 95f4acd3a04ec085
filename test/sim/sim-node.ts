// One simulated server: a RaftNode, its storage — the real LevelDB group
// storage (storage/level-storage.ts) over a simulated disk (sim-disk.ts) —
// its KV state machine, and the driver loop that handles a Ready the way a
// real host must (persist → send → restore/apply → serve reads → advance).
// A crash throws away everything in memory; the storage is then rebuilt by
// the real recovery from what the disk kept, and a restart builds a new
// RaftNode and KV from it.

import { RaftNode } from '../../raft/raft.js';
import { EntryType, Role } from '../../raft/types.js';
import type { ConfState, Entry, InjectedBugs, Message, NodeId, Ready, Snapshot } from '../../raft/types.js';
import { LevelGroupStorage } from '../../storage/level-storage.js';
import { KvStore, decodeCommand } from './kv.js';
import type { KvResult } from './kv.js';
import type { Prng } from './prng.js';
import { SimDisk } from './sim-disk.js';
import type { CrashKind, DiskBugs } from './sim-disk.js';

/** What a proposer learns about its entry at (index, term) on the node it proposed to. */
export type WriteOutcome =
  | { kind: 'applied'; result: KvResult }
  /** A different entry was applied at that index: this attempt did not take effect there. */
  | { kind: 'lost' }
  /** The node crashed, or skipped the index by installing a snapshot: fate unknown. */
  | { kind: 'unknown' };

export type ReadOutcome = { kind: 'value'; value: string | null } | { kind: 'lost' };

interface ProposalWaiter {
  term: number;
  done: (outcome: WriteOutcome) => void;
}

interface ReadWaiter {
  key: string;
  /** The leader's term when the read was accepted; a new term means the core dropped it. */
  term: number;
  done: (outcome: ReadOutcome) => void;
}

/** What the cluster wants to know about each node's Ready processing. */
export interface NodeHooks {
  /**
   * The Ready's snapshot, entries and hard state are durable; nothing was sent
   * yet. Returning true stops the Ready here: the process is about to die
   * between its fsync and its sends (the cluster crashes it right after).
   */
  persisted(node: SimNode, rd: Ready): boolean;
  /** After a Ready's messages left ahead of its writes; true if the node crashed there (the writes are lost). */
  sentBeforePersist(node: SimNode, rd: Ready): boolean;
  /** The Ready's writes are staged; true if the process dies while writing them (the cluster crashes it right after). */
  tearWrite(node: SimNode, rd: Ready): boolean;
  /** Hands a message to the network. */
  send(node: SimNode, m: Message): void;
  /** The KV was replaced by the snapshot's state. */
  restored(node: SimNode, snap: Snapshot): void;
  /** One committed entry was applied (result null for no-ops and configuration changes). */
  applied(node: SimNode, entry: Entry, result: KvResult | null): void;
  compacted(node: SimNode, index: number): void;
}

/** The raft configuration every node in a run shares (flow-control limits kept small on purpose). */
export interface NodeSettings {
  electionTicks: number;
  heartbeatTicks: number;
  preVote: boolean;
  checkQuorum: boolean;
  /** Lease reads with this drift bound (ticks per election timeout); null = off. */
  leaseDriftTicks: number | null;
  maxEntriesPerAppend: number;
  maxInflightAppends: number;
  maxSnapshotChunkBytes: number;
  /** Take a snapshot once the applied index is this many entries past the last one. */
  compactAfterEntries: number;
  bugs: InjectedBugs | undefined;
  diskBugs: DiskBugs | undefined;
}

/** The partition number of the one raft group the simulation runs, in its node's LevelDB layout. */
const GROUP = 0;

export class SimNode {
  /** What survives crashes: the bytes of the node's data directory. */
  readonly disk: SimDisk;
  /**
   * The group's storage: what the disk holds, plus what was written since
   * (all of it durable once the Ready's commit returns, but for commit
   * indexes written without sync). Rebuilt from the disk by every crash.
   */
  storage: LevelGroupStorage;
  /** Why recovery refused the data directory after a crash (the node then stays down, as LevelStore.open() stops a real one). */
  refused: string | null = null;
  raft: RaftNode | null = null;
  kv: KvStore | null = null;
  /** Bumped by every restart; names the node's Rng stream and lets clients tell attempts apart. */
  incarnation = 0;
  paused = false;
  /** Messages and client requests that arrived while paused, handled in order on resume. */
  inbox: (Message | (() => void))[] = [];
  appliedIndex = 0;
  /** Ticks that fell due while paused (a host that reads a monotonic clock catches up on them). */
  missedTicks = 0;
  /** Steps between two ticks of this node's clock (skew changes it). */
  tickSteps: number;
  nextTickAt: number;
  private proposals = new Map<number, ProposalWaiter[]>();
  private reads = new Map<string, ReadWaiter>();
  /** Reads the leader confirmed, waiting for the applied index to reach theirs. */
  private confirmedReads: { waiter: ReadWaiter; index: number }[] = [];

  constructor(
    readonly id: NodeId,
    bootstrap: ConfState,
    private readonly settings: NodeSettings,
    private readonly hooks: NodeHooks,
    tickSteps: number,
    tickPhase: number,
    diskRng: Prng,
  ) {
    this.disk = new SimDisk(diskRng, settings.diskBugs);
    this.storage = new LevelGroupStorage(GROUP, this.disk);
    this.storage.bootstrap(bootstrap);
    this.disk.commit();
    this.tickSteps = tickSteps;
    this.nextTickAt = tickPhase;
  }

  get up(): boolean {
    return this.raft !== null;
  }

  /** Up and not paused: it takes ticks, messages and requests. */
  get running(): boolean {
    return this.raft !== null && !this.paused;
  }

  /** Starts (or restarts) the process from its durable storage. */
  start(rng: Prng): void {
    if (this.raft) throw new Error(`${this.id} is already up`);
    if (this.refused) throw new Error(`${this.id} refused to start: ${this.refused}`);
    this.incarnation++;
    const snap = this.storage.snapshot();
    this.kv = KvStore.restore(snap.data);
    this.appliedIndex = snap.metadata.index;
    this.paused = false;
    this.inbox = [];
    this.missedTicks = 0;
    this.raft = new RaftNode({
      id: this.id,
      storage: this.storage,
      rng,
      electionTicks: this.settings.electionTicks,
      heartbeatTicks: this.settings.heartbeatTicks,
      preVote: this.settings.preVote,
      checkQuorum: this.settings.checkQuorum,
      ...(this.settings.leaseDriftTicks !== null ? { leaseReads: { maxClockDriftTicks: this.settings.leaseDriftTicks } } : {}),
      maxEntriesPerAppend: this.settings.maxEntriesPerAppend,
      maxInflightAppends: this.settings.maxInflightAppends,
      maxSnapshotChunkBytes: this.settings.maxSnapshotChunkBytes,
      applied: snap.metadata.index,
      ...(this.settings.bugs ? { bugs: this.settings.bugs } : {}),
    });
  }

  /**
   * Loses everything in memory, and what the crash takes of the disk; then
   * recovers the storage from the disk as a restart will (the disk does not
   * change while the node is down). Waiting clients learn nothing definite.
   */
  crash(kind: CrashKind = 'process'): void {
    this.disk.crash(kind);
    try {
      const groups = this.disk.recover();
      this.storage = new LevelGroupStorage(GROUP, this.disk, groups.get(GROUP) ?? null);
    } catch (e) {
      this.refused = (e as Error).message;
    }
    this.raft = null;
    this.kv = null;
    this.paused = false;
    this.inbox = [];
    const proposals = this.proposals;
    const reads = this.reads;
    const confirmed = this.confirmedReads;
    this.proposals = new Map();
    this.reads = new Map();
    this.confirmedReads = [];
    for (const ws of proposals.values()) for (const w of ws) w.done({ kind: 'unknown' });
    for (const w of reads.values()) w.done({ kind: 'lost' });
    for (const r of confirmed) r.waiter.done({ kind: 'lost' });
  }

  /** Registers interest in the entry a successful propose() returned. */
  awaitProposal(index: number, term: number, done: (o: WriteOutcome) => void): void {
    const list = this.proposals.get(index);
    if (list) list.push({ term, done });
    else this.proposals.set(index, [{ term, done }]);
  }

  /** Registers a read the core accepted under `context`. */
  awaitRead(context: string, key: string, done: (o: ReadOutcome) => void): void {
    this.reads.set(context, { key, term: this.raft!.status().term, done });
  }

  /**
   * Handles one Ready, if there is one. One per simulation step, so that a
   * crash can fall between two Readies (e.g. after a vote was sent and before
   * the next batch reached the disk).
   */
  processReady(): boolean {
    const raft = this.raft;
    if (!raft || this.paused || !raft.hasReady()) return false;
    const rd = raft.ready();

    // 1. Durable first: snapshot, entries, hard state as one batch. The disk
    //    keeps its own copies, as a real one would. A leader's messages may
    //    leave first (sendBeforePersist), and a crash may then fall between
    //    sending them and the write.
    if (rd.sendBeforePersist) {
      for (const m of rd.messages) this.hooks.send(this, m);
      if (this.hooks.sentBeforePersist(this, rd)) return true;
    }
    this.storage.stage({
      hardState: rd.hardState,
      entries: rd.entries.map((e) => ({ ...e })),
      snapshot: rd.snapshot,
      sync: rd.mustSync,
    });
    if (this.disk.hasPending() && this.hooks.tearWrite(this, rd)) {
      this.disk.commitTorn();
      return true;
    }
    this.disk.commit();
    if (this.hooks.persisted(this, rd)) return true;

    // 2. Only then may messages that depend on it go out.
    if (!rd.sendBeforePersist) for (const m of rd.messages) this.hooks.send(this, m);

    // 3. The state machine: a snapshot replaces it, then committed entries in order.
    if (rd.snapshot) {
      const snap = rd.snapshot;
      if (snap.metadata.index <= this.appliedIndex) {
        throw new Error(`${this.id}: snapshot at ${snap.metadata.index} would roll back applied index ${this.appliedIndex}`);
      }
      this.kv = KvStore.restore(snap.data);
      this.appliedIndex = snap.metadata.index;
      this.hooks.restored(this, snap);
      // Entries up to the snapshot were never applied here one by one: their proposers cannot know.
      for (const [index, ws] of [...this.proposals]) {
        if (index > snap.metadata.index) continue;
        this.proposals.delete(index);
        for (const w of ws) w.done({ kind: 'unknown' });
      }
    }
    for (const e of rd.committedEntries) {
      if (e.index !== this.appliedIndex + 1) {
        throw new Error(`${this.id}: applying index ${e.index} after ${this.appliedIndex} (a gap or a repeat)`);
      }
      let result: KvResult | null = null;
      if (e.type === EntryType.Normal && e.data.length > 0) result = this.kv!.apply(decodeCommand(e.data));
      this.appliedIndex = e.index;
      this.hooks.applied(this, e, result);
      const ws = this.proposals.get(e.index);
      if (ws) {
        this.proposals.delete(e.index);
        for (const w of ws) w.done(w.term === e.term && result ? { kind: 'applied', result } : { kind: 'lost' });
      }
    }

    // 4. Reads the leader confirmed; served once applied reaches their index.
    for (const rs of rd.readStates) {
      const ctx = rs.context as string;
      const w = this.reads.get(ctx);
      if (!w) continue;
      this.reads.delete(ctx);
      this.confirmedReads.push({ waiter: w, index: rs.index });
    }
    if (rd.softState) {
      // The core drops unconfirmed reads when its leadership ends (or a new term starts).
      const ss = rd.softState;
      for (const [ctx, w] of [...this.reads]) {
        if (ss.role !== Role.Leader || ss.term !== w.term) {
          this.reads.delete(ctx);
          w.done({ kind: 'lost' });
        }
      }
    }

    raft.advance();
    this.serveReads();
    this.maybeCompact();
    return true;
  }

  private serveReads(): void {
    if (this.confirmedReads.length === 0) return;
    const kv = this.kv!;
    const waiting: { waiter: ReadWaiter; index: number }[] = [];
    for (const r of this.confirmedReads) {
      if (r.index <= this.appliedIndex) r.waiter.done({ kind: 'value', value: kv.get(r.waiter.key) });
      else waiting.push(r);
    }
    this.confirmedReads = waiting;
  }

  /** Log compaction: snapshot the applied state once the log has grown past the threshold. */
  private maybeCompact(): void {
    const snapIndex = this.storage.snapshot().metadata.index;
    if (this.appliedIndex - snapIndex <= this.settings.compactAfterEntries) return;
    this.storage.createSnapshot(this.appliedIndex, this.raft!.appliedConfState(), this.kv!.snapshot());
    this.disk.commit();
    this.hooks.compacted(this, this.appliedIndex);
  }
}
