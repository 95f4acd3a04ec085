// One partition's replica on this node: its Raft core, its log storage, its
// state machine, and the requests waiting on it (proposals until their entry
// applies, reads until their ReadIndex is confirmed and applied).

import { Role } from '../../raft/index.js';
import type { ConfState, Entry, HardState, Message, NodeId, RaftNode, Ready, Snapshot, Storage } from '../../raft/index.js';
import { VeloError } from './errors.js';

/**
 * A group's log storage as the host drives it: `stage` takes a Ready's batch
 * (memory: done; LevelDB: queued for the pass's single synced commit).
 */
export interface GroupStorage extends Storage {
  /** `sync` false: the batch need not be durable before the commit resolves (see SaveBatch). */
  stage(batch: { hardState: HardState | null; entries: Entry[]; snapshot: Snapshot | null; sync?: boolean }): void;
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot;
}

/** What a group needs of the application state it replicates. */
export interface GroupStateMachine {
  /** Applies a committed entry's command at log index `index`; the result goes to its proposer. */
  apply(index: number, data: Uint8Array): unknown;
  snapshot(): Uint8Array;
  /** Replaces the state with a snapshot's, taken at log index `index`. */
  restore(data: Uint8Array, index: number): void;
}

/**
 * When a group's log is long enough to snapshot: once either many entries or
 * many bytes of commands were applied since its last snapshot (a few large
 * values fill memory long before 10,000 entries do).
 */
export interface SnapshotPolicy {
  everyEntries: number;
  everyBytes: number;
}

/** What a group reports as it runs: latencies for metrics, leader changes for logs. */
export interface GroupObserver {
  proposalCommitted(seconds: number): void;
  applied(seconds: number, entries: number): void;
  roleChanged(partition: number, soft: { role: Role; leader: NodeId | null; term: number }): void;
  snapshotTaken(partition: number, index: number): void;
}

interface PendingProposal {
  term: number;
  startedAt: number;
  deadline: number;
  resolve(result: unknown): void;
  reject(err: VeloError): void;
}

interface PendingRead {
  deadline: number;
  /** Runs against the applied state once it is safe. */
  run(): void;
  reject(err: VeloError): void;
}

/** A request that certainly did not take effect (refused, or its entry replaced): retrying it is safe. */
export class NotApplied extends VeloError {
  constructor(message: string, code: 'unavailable' | 'node_removed' = 'unavailable') {
    super(code, message, 1);
  }
}

/** This node left the cluster (drained, or refused on its return): the request was not applied, and another member can take it. */
export class NodeRemoved extends NotApplied {
  constructor(message: string) {
    super(message, 'node_removed');
  }
}

export class Group {
  private readonly proposals = new Map<number, PendingProposal>();
  private readonly reads = new Map<number, PendingRead>();
  /** Confirmed reads waiting for the applied index to reach their read index, in index order. */
  private readsAwaitingApply: { index: number; id: number }[] = [];
  private nextReadId = 1;
  private applied: number;
  /** Command bytes applied since the last snapshot; with the entry count, what makes a snapshot due. */
  private appliedBytesSinceSnapshot = 0;
  /** Asks the drive loop for a pass: set by the loop that runs this group. */
  wake: () => void = () => {};
  /** Whether the loop's clock can back a leader lease now (see DriveLoop.clockTrusted); no lease until a loop says so. */
  clockTrusted: () => boolean = () => false;

  constructor(
    readonly partition: number,
    readonly raft: RaftNode,
    readonly storage: GroupStorage,
    readonly sm: GroupStateMachine,
    /** How long the log may grow past a snapshot before the next one is due. */
    private readonly snapshotPolicy: SnapshotPolicy,
    private readonly observer: GroupObserver | null = null,
  ) {
    this.applied = storage.snapshot().metadata.index;
  }

  isLeader(): boolean {
    return this.raft.status().role === Role.Leader;
  }

  leader(): NodeId | null {
    return this.raft.status().leader;
  }

  /** Proposes a command; resolves with its apply result once committed and applied here. */
  propose(data: Uint8Array, deadline: number): Promise<unknown> {
    const r = this.raft.propose(data);
    this.wake();
    if (!r.ok) return Promise.reject(new NotApplied(`partition ${this.partition} refused the write: ${r.reason}`));
    return new Promise((resolve, reject) => {
      this.proposals.set(r.index, { term: r.term, startedAt: performance.now(), deadline, resolve, reject });
    });
  }

  /** A linearizable read (ReadIndex, thesis §6.4): `run` executes against state at least as new as the read index. */
  read<T>(run: () => T, deadline: number): Promise<T> {
    const id = this.nextReadId++;
    const r = this.raft.readIndex(id, { lease: this.clockTrusted() });
    this.wake();
    if (!r.ok) return Promise.reject(new NotApplied(`partition ${this.partition} refused the read: ${r.reason}`));
    return new Promise<T>((resolve, reject) => {
      this.reads.set(id, {
        deadline,
        run: () => {
          try {
            resolve(run());
          } catch (e) {
            reject(e);
          }
        },
        reject,
      });
    });
  }

  /** Stages what a Ready asks to persist; the drive loop makes the pass durable before finish(). */
  persist(rd: Ready): void {
    this.storage.stage({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot, sync: rd.mustSync });
  }

  /**
   * After persisting: hands messages to `send` (unless `messagesSent`: the
   * drive loop sent a leader's ahead of the write), applies, answers, advances.
   */
  finish(rd: Ready, send: (m: Message) => void, messagesSent = false): void {
    if (!messagesSent) for (const m of rd.messages) send(m);
    if (rd.snapshot) {
      this.sm.restore(rd.snapshot.data, rd.snapshot.metadata.index);
      this.applied = rd.snapshot.metadata.index;
      this.appliedBytesSinceSnapshot = 0;
      // Proposals at or below the snapshot can no longer be matched to results.
      for (const [index, p] of this.proposals) {
        if (index <= this.applied) {
          this.proposals.delete(index);
          p.reject(new VeloError('unavailable', 'the outcome of this write is unknown (replica restored from a snapshot)', 1));
        }
      }
    }
    const applyStart = performance.now();
    for (const e of rd.committedEntries) {
      const result = e.type === 0 && e.data.length > 0 ? this.sm.apply(e.index, e.data) : undefined;
      this.applied = e.index;
      this.appliedBytesSinceSnapshot += e.data.length;
      const p = this.proposals.get(e.index);
      if (p) {
        this.proposals.delete(e.index);
        if (p.term === e.term) {
          this.observer?.proposalCommitted((performance.now() - p.startedAt) / 1000);
          p.resolve(result);
        } else p.reject(new NotApplied('the partition changed leader before the write committed; it was not applied'));
      }
    }
    if (rd.committedEntries.length > 0) this.observer?.applied((performance.now() - applyStart) / 1000, rd.committedEntries.length);
    if (rd.softState) this.observer?.roleChanged(this.partition, rd.softState);
    for (const rs of rd.readStates) this.readsAwaitingApply.push({ index: rs.index, id: rs.context as number });
    if (rd.readStates.length > 0) this.readsAwaitingApply.sort((a, b) => a.index - b.index);
    this.serveReads();
    if (rd.softState && rd.softState.role !== Role.Leader) this.failReads('this replica stopped leading the partition');
    this.raft.advance();
  }

  private serveReads(): void {
    let n = 0;
    while (n < this.readsAwaitingApply.length && this.readsAwaitingApply[n]!.index <= this.applied) {
      const { id } = this.readsAwaitingApply[n]!;
      const r = this.reads.get(id);
      if (r) {
        this.reads.delete(id);
        r.run();
      }
      n++;
    }
    if (n > 0) this.readsAwaitingApply.splice(0, n);
  }

  /** Reads are always safe to retry; the host retries them at the new leader. */
  private failReads(why: string): void {
    for (const [id, r] of this.reads) {
      this.reads.delete(id);
      r.reject(new NotApplied(why));
    }
    this.readsAwaitingApply = [];
  }

  /**
   * How far the log has grown past its snapshot, as a share of the policy's
   * limit (the larger of entries and bytes): 1 or more means a snapshot is due,
   * and the drive loop snapshots the group with the largest first.
   */
  snapshotUrgency(): number {
    const entries = this.applied - this.storage.snapshot().metadata.index;
    if (entries <= 0) return 0;
    return Math.max(entries / this.snapshotPolicy.everyEntries, this.appliedBytesSinceSnapshot / this.snapshotPolicy.everyBytes);
  }

  /**
   * Snapshots the applied state at the applied index and drops the log up to
   * it. Only between drive-loop passes: during one, the state machine may be
   * ahead of the raft core's applied index (or the core ahead of the state).
   */
  takeSnapshot(): void {
    const index = this.applied;
    if (index <= this.storage.snapshot().metadata.index) return;
    const raftApplied = this.raft.status().applied;
    if (raftApplied !== index) throw new Error(`partition ${this.partition}: snapshot at applied index ${index}, but the raft core has applied ${raftApplied}`);
    this.storage.createSnapshot(index, this.raft.appliedConfState(), this.sm.snapshot());
    this.appliedBytesSinceSnapshot = 0;
    this.observer?.snapshotTaken(this.partition, index);
  }

  /** Fails requests past their deadline; a write's outcome is then unknown. */
  expire(now: number): void {
    for (const [index, p] of this.proposals) {
      if (p.deadline <= now) {
        this.proposals.delete(index);
        p.reject(new VeloError('timeout', 'the write did not commit in time; it may or may not have been applied', 1));
      }
    }
    for (const [id, r] of this.reads) {
      if (r.deadline <= now) {
        this.reads.delete(id);
        r.reject(new VeloError('timeout', 'the read could not be confirmed in time', 1));
      }
    }
  }

  /** Fails everything (shutdown). */
  close(): void {
    this.expire(Infinity);
  }
}
