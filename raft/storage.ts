// The storage interface the core reads its log through (as etcd's Storage).
// Reads are synchronous: an implementation keeps the un-compacted log (or an
// index of it) in memory. Writes belong to the driver, which persists what a
// Ready asks — possibly asynchronously and in batches — and calls advance()
// only once they are durable. Implementations live in storage/.

import type { ConfState, Entry, HardState, Snapshot } from './types.js';

/** Thrown when asked for an index at or below the last snapshot. */
export class CompactedError extends Error {
  constructor(index: number, firstIndex: number) {
    super(`log index ${index} is compacted (first available index is ${firstIndex})`);
    this.name = 'CompactedError';
  }
}

/** Thrown when asked for an index past the last one stored. */
export class UnavailableError extends Error {
  constructor(index: number, lastIndex: number) {
    super(`log index ${index} is unavailable (last index is ${lastIndex})`);
    this.name = 'UnavailableError';
  }
}

export interface InitialState {
  hardState: HardState;
  /** The configuration of the latest snapshot (or the bootstrap one). */
  confState: ConfState;
}

export interface Storage {
  initialState(): InitialState;
  /** Entries in [lo, hi), at least one if any exist, at most `maxBytes` of data beyond the first. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** The term of the entry at `index`; the snapshot's term at firstIndex-1. */
  term(index: number): number;
  /** The first index still held as an entry (snapshot index + 1). */
  firstIndex(): number;
  lastIndex(): number;
  /** The latest snapshot, to send to a follower that fell behind it. */
  snapshot(): Snapshot;
}

/**
 * What the driver writes through, once per Ready: one batch, durable when
 * the returned promise resolves. The memory implementation resolves at once;
 * a LevelDB one writes every group's batch of one drive-loop pass with one sync.
 */
export interface StorageWriter {
  save(batch: { hardState: HardState | null; entries: Entry[]; snapshot: Snapshot | null }): Promise<void>;
}
