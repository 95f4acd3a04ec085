// The log as the core sees it: the durable part read through Storage, and
// the unstable part (entries and a snapshot not yet persisted) held here
// until the driver persists them and calls advance(). As etcd's log.go and
// log_unstable.go.

import { CompactedError, UnavailableError } from './storage.js';
import type { Storage } from './storage.js';
import type { Entry, Snapshot } from './types.js';

/** Entries and a snapshot that the driver has not yet persisted. */
export class Unstable {
  snapshot: Snapshot | null = null;
  entries: Entry[] = [];

  /** The index of entries[0]. */
  constructor(public offset: number) {}

  maybeFirstIndex(): number | undefined {
    return this.snapshot ? this.snapshot.metadata.index + 1 : undefined;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.metadata.index : undefined;
  }

  maybeTerm(index: number): number | undefined {
    if (index < this.offset) {
      if (this.snapshot && this.snapshot.metadata.index === index) return this.snapshot.metadata.term;
      return undefined;
    }
    const last = this.maybeLastIndex();
    if (last === undefined || index > last) return undefined;
    return this.entries[index - this.offset]!.term;
  }

  /** The entries up to (index, term) are now durable. */
  stableTo(index: number, term: number): void {
    const t = this.maybeTerm(index);
    if (t === undefined || t !== term || index < this.offset) return;
    this.entries = this.entries.slice(index + 1 - this.offset);
    this.offset = index + 1;
  }

  stableSnapTo(index: number): void {
    if (this.snapshot && this.snapshot.metadata.index === index) this.snapshot = null;
  }

  restore(snap: Snapshot): void {
    this.offset = snap.metadata.index + 1;
    this.entries = [];
    this.snapshot = snap;
  }

  /** Appends `ents`, dropping any unstable suffix they overwrite. */
  truncateAndAppend(ents: Entry[]): void {
    const after = ents[0]!.index;
    if (after === this.offset + this.entries.length) {
      for (const e of ents) this.entries.push(e);
    } else if (after <= this.offset) {
      // Overwrites everything unstable, and a durable suffix the driver will truncate.
      this.offset = after;
      this.entries = ents.slice();
    } else {
      this.entries = this.entries.slice(0, after - this.offset).concat(ents);
    }
  }

  slice(lo: number, hi: number): Entry[] {
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}

export class RaftLog {
  readonly unstable: Unstable;
  /** Highest index known committed. */
  committed: number;
  /** Highest index handed to the application to apply. */
  applied: number;

  constructor(readonly storage: Storage, applied: number) {
    this.unstable = new Unstable(storage.lastIndex() + 1);
    const first = storage.firstIndex();
    this.committed = Math.max(first - 1, storage.initialState().hardState.commit);
    this.applied = Math.min(this.committed, Math.max(first - 1, applied));
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): number {
    return this.term(this.lastIndex())!;
  }

  /** The term of the entry at `index`, or undefined if compacted or beyond the log. */
  term(index: number): number | undefined {
    if (index < this.firstIndex() - 1 || index > this.lastIndex()) return undefined;
    const t = this.unstable.maybeTerm(index);
    if (t !== undefined) return t;
    try {
      return this.storage.term(index);
    } catch (e) {
      if (e instanceof CompactedError || e instanceof UnavailableError) return undefined;
      throw e;
    }
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: is a log ending at (lastIndex, lastTerm) at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * A follower's append (§5.3): if our log holds (prevIndex, prevTerm), drop
   * what conflicts with `ents` and append the rest. Returns the last new
   * index, or undefined when the previous entry does not match. With
   * `skipPrevCheck` (an injected bug) the previous entry is not checked.
   */
  maybeAppend(prevIndex: number, prevTerm: number, ents: Entry[], skipPrevCheck = false): { lastNew: number; appended: Entry[] } | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) {
      if (!skipPrevCheck || prevIndex > this.lastIndex() || prevIndex < this.firstIndex() - 1) return undefined;
    }
    const lastNew = prevIndex + ents.length;
    const conflict = this.findConflict(ents);
    let appended: Entry[] = [];
    if (conflict !== 0) {
      if (conflict <= this.committed) {
        throw new Error(`entry ${conflict} conflicts with a committed entry (committed ${this.committed})`);
      }
      appended = ents.slice(conflict - (prevIndex + 1));
      this.append(appended);
    }
    return { lastNew, appended };
  }

  /** The first index in `ents` whose term differs from ours (or that we lack); 0 if none. */
  private findConflict(ents: Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Fast back-off (thesis §5.3 / etcd): the largest index ≤ `index` whose term
   * is ≤ `term`. The leader's log cannot match ours anywhere above it.
   */
  findConflictByTerm(index: number, term: number): number {
    for (let i = Math.min(index, this.lastIndex()); i > 0; i--) {
      const t = this.term(i);
      if (t === undefined) return i; // compacted: no better hint
      if (t <= term) return i;
    }
    return 0;
  }

  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    if (ents[0]!.index - 1 < this.committed) {
      throw new Error(`appending at ${ents[0]!.index} would overwrite committed entries up to ${this.committed}`);
    }
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /** Entries in [lo, hi) from storage and unstable, at most `maxBytes` beyond the first. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo >= hi) return [];
    if (lo < this.firstIndex()) throw new CompactedError(lo, this.firstIndex());
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1, this.lastIndex());
    let out: Entry[] = [];
    const uOffset = this.unstable.offset;
    if (lo < uOffset) {
      const storedHi = Math.min(hi, uOffset);
      out = this.storage.entries(lo, storedHi, maxBytes);
      if (out.length < storedHi - lo) return out; // cut short by maxBytes
    }
    if (hi > uOffset) {
      let bytes = 0;
      for (const e of out) bytes += e.data.length;
      for (const e of this.unstable.slice(Math.max(lo, uOffset), hi)) {
        bytes += e.data.length;
        if (out.length > 0 && bytes > maxBytes) break;
        out.push(e);
      }
    }
    return out;
  }

  unstableEntries(): Entry[] {
    return this.unstable.entries.slice();
  }

  stableTo(index: number, term: number): void {
    this.unstable.stableTo(index, term);
  }

  stableSnapTo(index: number): void {
    this.unstable.stableSnapTo(index);
  }

  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== null;
  }

  /** The latest snapshot: a received one not yet persisted, else storage's. */
  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  hasNextCommittedEntries(): boolean {
    return !this.hasPendingSnapshot() && this.committed > this.applied;
  }

  nextCommittedEntries(maxBytes: number): Entry[] {
    if (!this.hasNextCommittedEntries()) return [];
    const lo = Math.max(this.applied + 1, this.firstIndex());
    return this.slice(lo, this.committed + 1, maxBytes);
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    if (index > this.lastIndex()) {
      throw new Error(`commit index ${index} is beyond the last index ${this.lastIndex()}`);
    }
    this.committed = index;
  }

  appliedTo(index: number): void {
    if (index === 0) return;
    if (index > this.committed || index < this.applied) {
      throw new Error(`applied ${index} outside [${this.applied}, ${this.committed}]`);
    }
    this.applied = index;
  }

  /** Replaces the log with a snapshot received from the leader. */
  restore(snap: Snapshot): void {
    this.committed = snap.metadata.index;
    this.unstable.restore(snap);
  }
}
