// The in-memory implementation of the raft storage interface. It holds the
// latest snapshot and the entries after it; `ents[0]` is a dummy entry that
// carries the snapshot's index and term, so term(firstIndex-1) is answerable.

import { CompactedError, UnavailableError } from '../raft/storage.js';
import type { InitialState, Storage, StorageWriter } from '../raft/storage.js';
import { EntryType } from '../raft/types.js';
import type { ConfState, Entry, HardState, Snapshot } from '../raft/types.js';

export class MemoryStorage implements Storage, StorageWriter {
  private hardState: HardState = { term: 0, vote: null, commit: 0 };
  private snap: Snapshot;
  private ents: Entry[];

  /** A new group's storage: an empty log whose configuration is `confState`. */
  constructor(confState: ConfState = { voters: [], learners: [] }) {
    this.snap = { metadata: { index: 0, term: 0, confState: cloneConf(confState) }, data: new Uint8Array(0) };
    this.ents = [dummy(0, 0)];
  }

  initialState(): InitialState {
    return { hardState: { ...this.hardState }, confState: cloneConf(this.snap.metadata.confState) };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.ents[0]!.index;
    if (lo <= offset) throw new CompactedError(lo, offset + 1);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1, this.lastIndex());
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - offset]!;
      bytes += e.data.length;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  term(index: number): number {
    const offset = this.ents[0]!.index;
    if (index < offset) throw new CompactedError(index, offset + 1);
    if (index > this.lastIndex()) throw new UnavailableError(index, this.lastIndex());
    return this.ents[index - offset]!.term;
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1;
  }

  lastIndex(): number {
    return this.ents[0]!.index + this.ents.length - 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  async save(batch: { hardState: HardState | null; entries: Entry[]; snapshot: Snapshot | null }): Promise<void> {
    this.saveSync(batch);
  }

  /** Applies a Ready's batch at once (memory is as durable as this storage gets). */
  stage(batch: { hardState: HardState | null; entries: Entry[]; snapshot: Snapshot | null }): void {
    this.saveSync(batch);
  }

  /** The same as save(), for drivers (the simulation) that want no await. */
  saveSync(batch: { hardState: HardState | null; entries: Entry[]; snapshot: Snapshot | null }): void {
    if (batch.snapshot) this.applySnapshot(batch.snapshot);
    if (batch.entries.length > 0) this.append(batch.entries);
    if (batch.hardState) this.setHardState(batch.hardState);
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  /** Replaces the whole log with a snapshot received from a leader. */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index <= this.snap.metadata.index) return;
    this.snap = snap;
    this.ents = [dummy(snap.metadata.index, snap.metadata.term)];
  }

  /**
   * Appends entries, truncating any existing suffix that they overwrite.
   * The raft core only hands over entries that follow or overwrite the log.
   */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0]!.index + entries.length - 1;
    if (last < first) return; // wholly compacted
    const fresh = entries[0]!.index < first ? entries.slice(first - entries[0]!.index) : entries;
    const offset = fresh[0]!.index - this.ents[0]!.index;
    if (offset > this.ents.length) {
      throw new Error(`missing log entry: last index ${this.lastIndex()}, appending at ${fresh[0]!.index}`);
    }
    this.ents.length = offset;
    for (const e of fresh) this.ents.push(e);
  }

  /**
   * Records the application's snapshot at `index` (≤ the applied index) and
   * discards the log up to it. `confState` is the configuration at `index`.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) return this.snap;
    if (index > this.lastIndex()) throw new UnavailableError(index, this.lastIndex());
    const term = this.term(index);
    this.snap = { metadata: { index, term, confState: cloneConf(confState) }, data };
    this.compact(index);
    return this.snap;
  }

  /** Discards entries up to and including `index`. */
  compact(index: number): void {
    const offset = this.ents[0]!.index;
    if (index <= offset) return;
    if (index > this.lastIndex()) throw new UnavailableError(index, this.lastIndex());
    const term = this.ents[index - offset]!.term;
    this.ents = [dummy(index, term), ...this.ents.slice(index - offset + 1)];
  }
}

function dummy(index: number, term: number): Entry {
  return { index, term, type: EntryType.Normal, data: new Uint8Array(0) };
}

function cloneConf(c: ConfState): ConfState {
  return { voters: [...c.voters], learners: [...c.learners] };
}
