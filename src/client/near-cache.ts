// Velocity's local cache: items this client read recently, kept in its own
// process so that a 'local' read of a hot key costs no round trip. It is
// bounded by count and by bytes (least recently used first out) and kept
// honest by each cache's change-event stream.
//
// The guarantee: a lookup never returns a value older than the last event
// this near cache has processed for that key. Two things could break it,
// and both are refused here:
// - a fill whose read began before the stream was open (the events before
//   the stream's starting position will never come, so a value read then
//   could stay cached forever after it changed), and
// - a fill whose read raced an event for its key (the event was processed
//   and dropped nothing, then the read stored the value it replaced).
// A stream that ends (history lost, or any other error) leaves a gap of
// unknown events: everything of that cache is dropped at once and the
// stream starts again from now. A backend resumes a broken connection by
// itself without a gap, so that needs nothing here.

import type { Backend, ChangeEvent, EventEnvelope, ItemAddress, StoredItem } from './backend.js';

export interface NearCacheOptions {
  /** Items kept at most, over every cache. Default 10,000. */
  maxItems?: number;
  /** Estimated bytes kept at most (values plus names and metadata). Default 64 MiB. */
  maxBytes?: number;
}

/** What beginFill hands out and completeFill checks. */
export interface FillToken {
  readonly ref: ItemAddress;
}

const DEFAULT_MAX_ITEMS = 10_000;
const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
/** Per item beyond its value: the entry, the item object, map slots and string headers — a rough figure, so that many tiny items still count. */
const ENTRY_OVERHEAD_BYTES = 160;
/**
 * Keys whose latest event a cache's stream remembers for the fills in
 * flight. Memory stays bounded: forgetting the oldest only raises the floor
 * below which a fill is refused, never lets a raced fill through.
 */
const RECENT_EVENT_KEYS = 4096;
/** A restarted stream that fails again this soon backs off, so that a failing cluster is not asked in a tight loop. */
const STABLE_STREAM_MS = 1_000;
const RESTART_BACKOFF_MIN_MS = 50;
const RESTART_BACKOFF_MAX_MS = 5_000;

interface Entry {
  ref: ItemAddress;
  item: StoredItem;
  bytes: number;
}

/** One cache's event stream and the order of what it processed. */
class Feed {
  readonly controller = new AbortController();
  /** onOpen ran and no gap since: every event from now on will be processed. */
  open = false;
  /** Counts what can spoil a fill: events, own invalidations, gaps. */
  seq = 0;
  /** A fill begun at a seq below this is refused (a gap, a cache clear, or forgotten history). */
  floor = 0;
  /** The seq of the latest event per item (or region), oldest first. */
  readonly recent = new Map<string, number>();
  done: Promise<void> = Promise.resolve();
  constructor(readonly cache: string) {}
}

class Fill implements FillToken {
  completed = false;
  constructor(
    readonly ref: ItemAddress,
    readonly owner: NearCache,
    readonly feed: Feed | null,
    readonly seq: number,
    readonly streamOpen: boolean,
  ) {}
}

export class NearCache {
  readonly stats = {
    hits: 0,
    misses: 0,
    /** Fills kept. */
    fills: 0,
    /** Items dropped because of an event, a region clear or this client's own write. */
    invalidations: 0,
    /** Times a whole cache's near-cached items were dropped: a gap in its stream, or the cache cleared (dropped). */
    clears: 0,
  };

  private readonly maxItems: number;
  private readonly maxBytes: number;
  /** Every item, least recently used first. */
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private readonly feeds = new Map<string, Feed>();
  private closed = false;

  constructor(
    private readonly backend: Backend,
    opts: NearCacheOptions = {},
  ) {
    this.maxItems = positiveInteger('maxItems', opts.maxItems ?? DEFAULT_MAX_ITEMS);
    this.maxBytes = positiveInteger('maxBytes', opts.maxBytes ?? DEFAULT_MAX_BYTES);
  }

  /** The near-cached item for a read, or undefined (not cached, or expired at nowMs). Counts hits/misses; refreshes recency. */
  lookup(ref: ItemAddress, nowMs: number): StoredItem | undefined {
    const id = entryId(ref);
    const entry = this.entries.get(id);
    if (entry === undefined) {
      this.stats.misses++;
      return undefined;
    }
    if (entry.item.expiresAt !== null && entry.item.expiresAt <= nowMs) {
      this.remove(id, entry);
      this.stats.misses++;
      return undefined;
    }
    this.entries.delete(id);
    this.entries.set(id, entry);
    this.stats.hits++;
    return copyItem(entry.item);
  }

  /**
   * Called before the client reads the item from the cluster (a strong read);
   * the token is checked by completeFill. The first fill of a cache starts
   * its event stream, so that fill is refused: the stream was not open yet.
   */
  beginFill(ref: ItemAddress): FillToken {
    const at: ItemAddress = Object.freeze({ cache: ref.cache, region: ref.region, key: ref.key });
    if (this.closed) return new Fill(at, this, null, 0, false);
    const feed = this.feeds.get(at.cache) ?? this.follow(at.cache);
    return new Fill(at, this, feed, feed.seq, feed.open);
  }

  /**
   * Keeps what the read returned (null: nothing to keep) unless, since
   * beginFill, an event for that key, a clear of its region/cache, or a gap
   * in the stream was processed, or the cache's event stream was not open
   * when beginFill ran.
   */
  completeFill(token: FillToken, item: StoredItem | null): void {
    if (!(token instanceof Fill) || token.owner !== this) throw new TypeError('completeFill: the token was not returned by this near cache’s beginFill');
    if (token.completed) throw new Error('completeFill: the token was already completed');
    token.completed = true;
    if (this.closed || !this.accepts(token)) return;
    const id = entryId(token.ref);
    const existing = this.entries.get(id);
    if (item === null || (existing !== undefined && existing.item.version !== item.version)) {
      // Two reads of the key in flight answered differently (or this one found
      // nothing): which is newer is unknown, so neither is kept.
      if (existing !== undefined) this.remove(id, existing);
      return;
    }
    if (existing !== undefined) this.remove(id, existing);
    const stored = copyItem(item);
    const bytes = estimateBytes(token.ref, stored);
    if (bytes > this.maxBytes) return;
    this.entries.set(id, { ref: token.ref, item: stored, bytes });
    this.bytes += bytes;
    this.stats.fills++;
    this.evictOverflow();
  }

  /**
   * This client wrote or deleted the key: drop it now (its event follows).
   * Call it once the write is answered (or failed): a fill whose read began
   * before then may have read the old value, so it is refused too.
   */
  invalidate(ref: ItemAddress): void {
    const id = entryId(ref);
    const entry = this.entries.get(id);
    if (entry !== undefined) {
      this.remove(id, entry);
      this.stats.invalidations++;
    }
    const feed = this.feeds.get(ref.cache);
    if (feed !== undefined) this.spoil(feed, itemKey(ref.region, ref.key));
  }

  /** Stops every stream and forgets every item; later fills are refused. */
  async close(): Promise<void> {
    this.closed = true;
    for (const feed of this.feeds.values()) feed.controller.abort();
    await Promise.all([...this.feeds.values()].map((f) => f.done));
    this.feeds.clear();
    this.entries.clear();
    this.bytes = 0;
  }

  private accepts(fill: Fill): boolean {
    const feed = fill.feed;
    if (feed === null || !fill.streamOpen || this.feeds.get(fill.ref.cache) !== feed || fill.seq < feed.floor) return false;
    if ((feed.recent.get(itemKey(fill.ref.region, fill.ref.key)) ?? -1) > fill.seq) return false;
    return fill.ref.region === null || (feed.recent.get(regionKey(fill.ref.region)) ?? -1) <= fill.seq;
  }

  /** Starts following a cache's events; the feed is open once the backend says its position is fixed. */
  private follow(cache: string): Feed {
    const feed = new Feed(cache);
    this.feeds.set(cache, feed);
    feed.done = this.run(feed);
    return feed;
  }

  private async run(feed: Feed): Promise<void> {
    const signal = feed.controller.signal;
    let quickFailures = 0;
    while (!signal.aborted) {
      const startedAt = Date.now();
      let current = true;
      let iterator: AsyncIterator<EventEnvelope> | null = null;
      try {
        const onOpen = () => {
          if (current && !signal.aborted) feed.open = true;
        };
        iterator = this.backend.events({ cache: feed.cache, region: null, key: null, lastEventId: null }, signal, onOpen)[Symbol.asyncIterator]();
        for (;;) {
          const r = await nextUnlessAborted(iterator, signal);
          if (r === null || r.done === true) break;
          this.apply(feed, r.value.event);
        }
      } catch {
        // Every way a stream ends is a gap, handled below.
      }
      current = false;
      if (signal.aborted) {
        iterator?.return?.().catch(() => {});
        return;
      }
      this.gap(feed);
      quickFailures = Date.now() - startedAt >= STABLE_STREAM_MS ? 0 : quickFailures + 1;
      // The first restart is immediate: until it opens, no fill of this cache is kept.
      const delayMs = quickFailures <= 1 ? 0 : Math.min(RESTART_BACKOFF_MIN_MS * 2 ** (quickFailures - 2), RESTART_BACKOFF_MAX_MS);
      await pause(delayMs, signal);
    }
  }

  private apply(feed: Feed, event: ChangeEvent): void {
    if (event.cache !== feed.cache) return;
    if (event.type === 'clear' || event.key === null) {
      // A clear without a region is the whole cache (it was dropped); a keyless
      // event of another type names no item, so it is taken as broadly.
      if (event.region === null) {
        this.dropCache(feed);
        return;
      }
      this.spoil(feed, regionKey(event.region));
      for (const [id, entry] of this.entries) {
        if (entry.ref.cache === feed.cache && entry.ref.region === event.region) {
          this.remove(id, entry);
          this.stats.invalidations++;
        }
      }
      return;
    }
    this.spoil(feed, itemKey(event.region, event.key));
    const id = entryId({ cache: feed.cache, region: event.region, key: event.key });
    const entry = this.entries.get(id);
    // The put of the very version cached is the write that value came from: nothing newer to drop it for.
    if (entry === undefined || (event.type === 'put' && entry.item.version === event.version)) return;
    this.remove(id, entry);
    this.stats.invalidations++;
  }

  /** The stream broke with events unknown: nothing of the cache can be trusted, nor any fill in flight. */
  private gap(feed: Feed): void {
    feed.open = false;
    this.dropCache(feed);
  }

  private dropCache(feed: Feed): void {
    feed.floor = ++feed.seq;
    // Every remembered event is below the floor now.
    feed.recent.clear();
    for (const [id, entry] of this.entries) if (entry.ref.cache === feed.cache) this.remove(id, entry);
    this.stats.clears++;
  }

  private spoil(feed: Feed, key: string): void {
    const seq = ++feed.seq;
    feed.recent.delete(key);
    feed.recent.set(key, seq);
    if (feed.recent.size > RECENT_EVENT_KEYS) {
      const [oldest, oldestSeq] = feed.recent.entries().next().value as [string, number];
      feed.recent.delete(oldest);
      feed.floor = Math.max(feed.floor, oldestSeq);
    }
  }

  private evictOverflow(): void {
    while (this.entries.size > this.maxItems || this.bytes > this.maxBytes) {
      const [id, entry] = this.entries.entries().next().value as [string, Entry];
      this.remove(id, entry);
    }
  }

  private remove(id: string, entry: Entry): void {
    this.entries.delete(id);
    this.bytes -= entry.bytes;
  }
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`near cache ${name} must be a positive integer, not ${String(value)}`);
  return value;
}

function entryId(ref: ItemAddress): string {
  return JSON.stringify([ref.cache, ref.region, ref.key]);
}

function itemKey(region: string | null, key: string): string {
  return JSON.stringify([region, key]);
}

function regionKey(region: string): string {
  return JSON.stringify([region]);
}

/** Fresh bytes and arrays: what the near cache holds is never shared with a caller who might change it. */
function copyItem(item: StoredItem): StoredItem {
  return { value: new Uint8Array(item.value), contentType: item.contentType, version: item.version, expiresAt: item.expiresAt, tags: [...item.tags] };
}

/** JavaScript strings take two bytes a character; every name is held twice (the address and the entry id). */
function estimateBytes(ref: ItemAddress, item: StoredItem): number {
  const names = 2 * (ref.cache.length + (ref.region?.length ?? 0) + ref.key.length);
  const meta = item.contentType.length + item.version.length + item.tags.reduce((n, t) => n + t.length + 8, 0);
  return ENTRY_OVERHEAD_BYTES + item.value.byteLength + 2 * (names + meta);
}

/** The iterator's next result, or null once `signal` aborts: a backend that ignores the abort must not keep close() waiting. */
function nextUnlessAborted<T>(iterator: AsyncIterator<T>, signal: AbortSignal): Promise<IteratorResult<T> | null> {
  if (signal.aborted) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(null);
    signal.addEventListener('abort', onAbort, { once: true });
    iterator.next().then(
      (r) => {
        signal.removeEventListener('abort', onAbort);
        resolve(r);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
