// One raft group's storage inside a node's shared LevelDB database (see
// level-store.ts). The raft core reads synchronously, so the group's
// un-compacted log, hard state and latest snapshot live in a MemoryStorage;
// every write updates that copy at once and stages the matching LevelDB
// operations into the store's pending batch, which the store's next commit()
// makes durable for every group with one sync.
//
// Reads therefore see staged writes before they are durable. That is what
// the raft core expects (it hands a Ready's writes over before advance());
// what must wait for durability is sending the Ready's messages.

import { UnavailableError } from '../raft/storage.js';
import type { InitialState, Storage, StorageWriter } from '../raft/storage.js';
import type { ConfState, Entry, HardState, Snapshot } from '../raft/types.js';
import { Kind, encodeEntry, encodeHardState, encodeSnapshot, entryKey, groupKey, voteKey } from './level-codec.js';
import { MemoryStorage } from './memory-storage.js';

export type SaveBatch = {
  hardState: HardState | null;
  entries: Entry[];
  snapshot: Snapshot | null;
  /**
   * Whether the batch must reach the disk before the commit resolves (the
   * Ready's mustSync; default true). A batch that only moves the commit index
   * need not: losing it in a crash loses nothing that cannot be learned again,
   * and the next synced batch makes it durable anyway (LevelDB writes in order).
   */
  sync?: boolean;
};

export type LevelOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

/** What a group needs of its store: a place to stage operations, and a way to wait for them. */
export interface BatchSink {
  /** Adds operations to the pending batch (`sync`: the commit that writes them must fsync); throws if the store can no longer write. */
  push(ops: LevelOp[], sync: boolean): void;
  /** Resolves once everything pushed so far is durable (commits soon if nobody else does). */
  durable(): Promise<void>;
}

/** What recovery found of a group on disk. */
export interface LoadedGroup {
  hardState: HardState | null;
  snapshot: Snapshot | null;
  /** The entries after the snapshot, contiguous and in index order. */
  entries: Entry[];
}

export class LevelGroupStorage implements Storage, StorageWriter {
  private mem: MemoryStorage;
  /** Whether anything of this group is on disk or staged: bootstrap() is only for new groups. */
  private known: boolean;
  /** Set by destroy(): a handle still held by a stopping replica must not write the group back. */
  private destroyed = false;

  /**
   * `keptVote`: the vote a destroyed replica of this group left behind on this
   * node (destroy()); the group starts from it unless its own hard state is
   * at a later term, so a replica re-created here never votes twice in a term.
   */
  constructor(
    readonly id: number,
    private readonly sink: BatchSink,
    loaded: LoadedGroup | null = null,
    keptVote: HardState | null = null,
  ) {
    this.known = loaded !== null;
    const snap = loaded?.snapshot;
    this.mem = new MemoryStorage(snap?.metadata.confState);
    if (snap) this.mem.applySnapshot(snap);
    if (loaded) this.mem.append(loaded.entries);
    const own = loaded?.hardState ?? null;
    if (keptVote && (own === null || own.term < keptVote.term)) this.mem.setHardState({ term: keptVote.term, vote: keptVote.vote, commit: own?.commit ?? 0 });
    else if (own) this.mem.setHardState(own);
  }

  /** True if the group has state on disk (or staged): a restarted host resumes it instead of bootstrapping. */
  exists(): boolean {
    return this.known;
  }

  initialState(): InitialState {
    return this.mem.initialState();
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return this.mem.entries(lo, hi, maxBytes);
  }

  term(index: number): number {
    return this.mem.term(index);
  }

  firstIndex(): number {
    return this.mem.firstIndex();
  }

  lastIndex(): number {
    return this.mem.lastIndex();
  }

  snapshot(): Snapshot {
    return this.mem.snapshot();
  }

  /**
   * Records the configuration of a brand-new group as its snapshot at index 0.
   * Refused for a group that already has state: re-bootstrapping a restarted
   * replica would overwrite the configuration its log has moved past.
   */
  bootstrap(confState: ConfState): void {
    this.checkLive();
    if (this.known) throw new Error(`raft group ${this.id} already has state; bootstrap is only for a new group`);
    const snap: Snapshot = { metadata: { index: 0, term: 0, confState: { voters: [...confState.voters], learners: [...confState.learners] } }, data: new Uint8Array(0) };
    this.sink.push([{ type: 'put', key: groupKey(this.id, Kind.Snapshot), value: encodeSnapshot(snap) }], true);
    // A MemoryStorage only takes a configuration at construction; swap in a fresh one (the group is empty).
    this.mem = new MemoryStorage(confState);
    this.known = true;
  }

  /** StorageWriter: stages `batch` and resolves once it is durable (after the store's next commit). */
  async save(batch: SaveBatch): Promise<void> {
    this.stage(batch);
    return this.sink.durable();
  }

  /**
   * Stages one Ready's writes (snapshot, then entries, then hard state, in
   * that order as the Ready asks) without waiting: a host stages every
   * group's Ready, then calls store.commit() once.
   */
  stage(batch: SaveBatch): void {
    this.checkLive(); // before touching the in-memory copy, not only at push()
    const ops: LevelOp[] = [];
    if (batch.snapshot && batch.snapshot.metadata.index > this.mem.snapshot().metadata.index) {
      // A leader's snapshot replaces the whole log.
      this.deleteEntries(ops, this.mem.firstIndex(), this.mem.lastIndex());
      this.mem.applySnapshot(batch.snapshot);
      ops.push({ type: 'put', key: groupKey(this.id, Kind.Snapshot), value: encodeSnapshot(batch.snapshot) });
    }
    if (batch.entries.length > 0) this.append(ops, batch.entries);
    if (batch.hardState) {
      this.mem.setHardState(batch.hardState);
      ops.push({ type: 'put', key: groupKey(this.id, Kind.HardState), value: encodeHardState(batch.hardState) });
    }
    this.push(ops, batch.sync ?? true);
  }

  /**
   * Records the application's snapshot at `index` (≤ the applied index) and
   * deletes the log up to it, in the same batch so that a crash leaves
   * either the old snapshot and the whole log or the new one and the rest.
   * Durable at the store's next commit(); until then the old state is what
   * a restart finds, which is equally valid.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    this.checkLive();
    const before = this.mem.snapshot();
    const first = this.mem.firstIndex();
    const snap = this.mem.createSnapshot(index, confState, data);
    if (snap === before) return snap;
    const ops: LevelOp[] = [{ type: 'put', key: groupKey(this.id, Kind.Snapshot), value: encodeSnapshot(snap) }];
    this.deleteEntries(ops, first, index);
    this.push(ops, true);
    return snap;
  }

  /**
   * Compacting is only possible up to the snapshot, which createSnapshot()
   * has already done: a durable log must keep every entry after its snapshot,
   * since a restarted replica rebuilds its state from the snapshot and them.
   */
  compact(index: number): void {
    if (index <= this.mem.snapshot().metadata.index) return;
    if (index > this.mem.lastIndex()) throw new UnavailableError(index, this.mem.lastIndex());
    throw new Error(`cannot compact raft group ${this.id} to ${index}, past its snapshot at ${this.mem.snapshot().metadata.index}: take a snapshot (createSnapshot) instead`);
  }

  /** Appends entries, truncating the suffix they overwrite (MemoryStorage checks for gaps). */
  private append(ops: LevelOp[], entries: Entry[]): void {
    const oldLast = this.mem.lastIndex();
    const first = this.mem.firstIndex();
    this.mem.append(entries);
    for (const e of entries) if (e.index >= first) ops.push({ type: 'put', key: entryKey(this.id, e.index), value: encodeEntry(e) });
    this.deleteEntries(ops, this.mem.lastIndex() + 1, oldLast);
  }

  /**
   * Stages the deletion of every key of the group (store.destroyGroup() is
   * the way in: the store must also forget this handle), keeping only its
   * vote (term and vote, under the group's kept-vote key), which it returns:
   * the same group may be re-created on this node later, after a restart
   * too, and must not vote again in a term it voted in. The un-compacted log
   * is all in memory, and everything before it was deleted when the snapshot
   * covering it was written, so firstIndex..lastIndex are all the entry keys
   * there are. Synced: a replica whose removal a crash undid would come back
   * as a member of a group that has moved on without it.
   */
  destroy(): HardState | null {
    if (this.destroyed) return null;
    let kept: HardState | null = null;
    if (this.known) {
      const hs = this.mem.initialState().hardState;
      kept = { term: hs.term, vote: hs.vote, commit: 0 };
      const ops: LevelOp[] = [
        { type: 'del', key: groupKey(this.id, Kind.HardState) },
        { type: 'del', key: groupKey(this.id, Kind.Snapshot) },
        { type: 'put', key: voteKey(this.id), value: encodeHardState(kept) },
      ];
      this.deleteEntries(ops, this.mem.firstIndex(), this.mem.lastIndex());
      this.sink.push(ops, true);
    }
    this.destroyed = true;
    this.known = false;
    return kept;
  }

  private deleteEntries(ops: LevelOp[], lo: number, hi: number): void {
    for (let i = lo; i <= hi; i++) ops.push({ type: 'del', key: entryKey(this.id, i) });
  }

  private push(ops: LevelOp[], sync: boolean): void {
    this.checkLive();
    if (ops.length === 0) return;
    this.sink.push(ops, sync);
    this.known = true;
  }

  private checkLive(): void {
    if (this.destroyed) throw new Error(`raft group ${this.id} was destroyed on this node; take store.group(${this.id}) anew to recreate it`);
  }
}
