// The recent change events of one partition replica, in commit order, for
// the events stream (API.md "Change events"). Every replica applies the same
// entries, so (log index, position within the entry) names an event on any
// replica. Bounded: the oldest events fall off, and a reader asking from
// before what is held learns that its history is lost.

import type { ChangeEvent } from '../cache/index.js';

/** Where a reader is in one partition's events: after event `seq` of entry `index`. */
export interface Position {
  index: number;
  seq: number;
}

export interface StoredEvent extends Position {
  event: ChangeEvent;
}

export const DEFAULT_EVENT_LOG_CAPACITY = 10_000;

export class EventLog {
  private events: StoredEvent[] = [];
  /** Every event after this position is held (or none happened): the history starts here. */
  private floor: Position = { index: 0, seq: 0 };
  private last: Position = { index: 0, seq: 0 };

  constructor(private readonly capacity = DEFAULT_EVENT_LOG_CAPACITY) {}

  append(index: number, events: readonly ChangeEvent[]): void {
    for (let seq = 0; seq < events.length; seq++) this.events.push({ index, seq: seq + 1, event: events[seq]! });
    if (events.length > 0) this.last = { index, seq: events.length };
    if (this.events.length > this.capacity) {
      const dropped = this.events.splice(0, this.events.length - this.capacity);
      const newest = dropped[dropped.length - 1]!;
      this.floor = { index: newest.index, seq: newest.seq };
    }
  }

  /** The replica was restored from a snapshot at `index`: what happened before it is not held. */
  reset(index: number): void {
    this.events = [];
    this.floor = { index, seq: Number.MAX_SAFE_INTEGER };
    this.last = { ...this.floor };
  }

  /** The position after the newest event: where a new reader starts. */
  head(): Position {
    return { ...this.last };
  }

  /** Events after `after`, at most `limit`; `lost` when the log no longer holds what follows `after`. */
  since(after: Position, limit: number): { lost: false; events: StoredEvent[] } | { lost: true } {
    if (before(after, this.floor)) return { lost: true };
    // Binary search for the first event after `after`.
    let lo = 0;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (before(after, this.events[mid]!)) hi = mid;
      else lo = mid + 1;
    }
    return { lost: false, events: this.events.slice(lo, lo + limit) };
  }
}

export function before(a: Position, b: Position): boolean {
  return a.index < b.index || (a.index === b.index && a.seq < b.seq);
}

/**
 * A stream's cursor: its position in every partition it follows. An event's
 * SSE id is `<partition>.<index>.<seq>~<cursor after it>`, so it names the
 * event and lets a reconnecting client resume exactly after it.
 */
export function encodeEventId(partition: number, at: Position, cursor: Map<number, Position>): string {
  const parts = [...cursor].map(([p, pos]) => `${p}:${pos.index}.${pos.seq}`);
  return `${partition}.${at.index}.${at.seq}~${parts.join(',')}`;
}

/** The cursor in an event id; throws on anything malformed. */
export function decodeEventId(id: string): Map<number, Position> {
  const m = /^\d+\.\d+\.\d+~((?:\d+:\d+\.\d+)(?:,\d+:\d+\.\d+)*)$/.exec(id);
  if (!m) throw new Error(`Last-Event-ID "${id.slice(0, 80)}" is not an id this server sent`);
  const cursor = new Map<number, Position>();
  for (const part of m[1]!.split(',')) {
    const [p, rest] = part.split(':') as [string, string];
    const [index, seq] = rest.split('.') as [string, string];
    cursor.set(Number(p), { index: Number(index), seq: Number(seq) });
  }
  return cursor;
}
