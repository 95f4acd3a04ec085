// The data of one partition and the primitives that keep its indexes in
// step: every item sits in its space's map, its region's tag index, the
// expiry heap (when it expires), its cache's recency list, and its cache's
// byte and item counts. apply() and restore() change items only through
// insert/rewrite/remove here, so those five never drift apart; check()
// verifies it in tests.

import type { CacheSettings } from './commands.js';
import { ExpiryHeap } from './expiry-heap.js';
import { ITEM_OVERHEAD_BYTES, TAG_OVERHEAD_BYTES } from './limits.js';
import { RecencyList } from './recency-list.js';
import { utf8Length } from './bytes.js';

export interface Lock {
  handle: string;
  /** Epoch ms: a lock whose deadline ≤ a command's `now` counts as released. */
  expiresAt: number;
}

/** The fields a write sets. */
export interface ItemContent {
  value: Uint8Array;
  contentType: string;
  version: number;
  expiresAt: number | null;
  tags: readonly string[];
  lock: Lock | null;
}

export class Item implements ItemContent {
  value: Uint8Array;
  contentType: string;
  version: number;
  expiresAt: number | null;
  tags: readonly string[];
  lock: Lock | null;
  /** What the item counts toward its cache's bytes (see itemBytes). */
  bytes: number;
  heapIndex = -1;
  older: Item | null = null;
  newer: Item | null = null;

  constructor(
    readonly cache: CacheState,
    readonly region: string | null,
    readonly key: string,
    content: ItemContent,
  ) {
    this.value = content.value;
    this.contentType = content.contentType;
    this.version = content.version;
    this.expiresAt = content.expiresAt;
    this.tags = content.tags;
    this.lock = content.lock;
    this.bytes = itemBytes(region, key, content);
  }

  /** Visible to reads and writes at `now`: an expired item is gone at once, before an expire command removes it. */
  isLive(now: number): boolean {
    return this.expiresAt === null || this.expiresAt > now;
  }

  /** The lock if it still holds at `now`. */
  liveLock(now: number): Lock | null {
    return this.lock !== null && this.lock.expiresAt > now ? this.lock : null;
  }
}

/**
 * An item's memory, as the cache accounts it: UTF-8 bytes of key, region,
 * content type and tags, the value's bytes, ITEM_OVERHEAD_BYTES for the
 * structures that hold it and TAG_OVERHEAD_BYTES per tag for the tag index.
 * A lock is part of the overhead, so that locking never changes a cache's size.
 */
export function itemBytes(region: string | null, key: string, c: Pick<ItemContent, 'value' | 'contentType' | 'tags'>): number {
  let n = ITEM_OVERHEAD_BYTES + utf8Length(key) + c.value.length + utf8Length(c.contentType);
  if (region !== null) n += utf8Length(region);
  for (const t of c.tags) n += utf8Length(t) + TAG_OVERHEAD_BYTES;
  return n;
}

/** The items of a cache's default space (region null) or of one region. */
export class Space {
  readonly items = new Map<string, Item>();
  /** tag → keys of this space's items that carry it: tag queries never scan the space. */
  readonly tagIndex = new Map<string, Set<string>>();

  constructor(readonly region: string | null) {}

  indexTags(key: string, tags: readonly string[]): void {
    for (const t of tags) {
      let keys = this.tagIndex.get(t);
      if (!keys) this.tagIndex.set(t, (keys = new Set()));
      keys.add(key);
    }
  }

  unindexTags(key: string, tags: readonly string[]): void {
    for (const t of tags) {
      const keys = this.tagIndex.get(t)!;
      keys.delete(key);
      if (keys.size === 0) this.tagIndex.delete(t);
    }
  }
}

export class CacheState {
  /** null is the default space; a space is dropped when it empties, so none is empty. */
  readonly spaces = new Map<string | null, Space>();
  readonly recency = new RecencyList<Item>();
  items = 0;
  bytes = 0;
  evictions = 0;
  expirations = 0;
  hits = 0;
  misses = 0;

  constructor(
    readonly name: string,
    public settings: CacheSettings,
  ) {}

  find(region: string | null, key: string): Item | undefined {
    return this.spaces.get(region)?.items.get(key);
  }
}

export const DEFAULT_CACHE = 'default';
export const DEFAULT_SETTINGS: CacheSettings = Object.freeze({ defaultTtlMs: 0, maxBytes: null, eviction: 'lru' });

export class PartitionState {
  readonly caches = new Map<string, CacheState>();
  readonly expiry = new ExpiryHeap<Item>();
  /** The last log index applied: versions handed out are above it. */
  appliedIndex = 0;

  /** maxBytesShare: a cache's maxBytes is divided by it (the partition count) to give this partition's limit. */
  constructor(readonly maxBytesShare: number) {
    if (!Number.isSafeInteger(maxBytesShare) || maxBytesShare < 1) throw new RangeError(`maxBytesShare must be a positive integer, got ${maxBytesShare}`);
  }

  createCache(name: string, settings: CacheSettings): CacheState {
    const c = new CacheState(name, { ...settings });
    this.caches.set(name, c);
    return c;
  }

  /** This partition's byte limit for `cache`, or null if unbounded. */
  limitBytes(cache: CacheState): number | null {
    const max = cache.settings.maxBytes;
    return max === null ? null : max / this.maxBytesShare;
  }

  /** Adds a new item. `recent: false` leaves it out of the recency list (restore orders it afterwards). */
  insert(item: Item, recent = true): void {
    const cache = item.cache;
    let space = cache.spaces.get(item.region);
    if (!space) cache.spaces.set(item.region, (space = new Space(item.region)));
    if (space.items.has(item.key)) throw new Error(`assertion: duplicate item ${item.key}`);
    space.items.set(item.key, item);
    space.indexTags(item.key, item.tags);
    this.expiry.update(item);
    if (recent) cache.recency.append(item);
    cache.items++;
    cache.bytes += item.bytes;
  }

  /** Replaces an item's content in place (it keeps its place in its space's order). */
  rewrite(item: Item, content: ItemContent): void {
    const space = item.cache.spaces.get(item.region)!;
    space.unindexTags(item.key, item.tags);
    item.value = content.value;
    item.contentType = content.contentType;
    item.version = content.version;
    item.expiresAt = content.expiresAt;
    item.tags = content.tags;
    item.lock = content.lock;
    const bytes = itemBytes(item.region, item.key, content);
    item.cache.bytes += bytes - item.bytes;
    item.bytes = bytes;
    space.indexTags(item.key, item.tags);
    this.expiry.update(item);
    item.cache.recency.use(item);
  }

  remove(item: Item): void {
    const cache = item.cache;
    const space = cache.spaces.get(item.region)!;
    space.items.delete(item.key);
    space.unindexTags(item.key, item.tags);
    if (space.items.size === 0) cache.spaces.delete(item.region);
    this.forget(item);
  }

  /** Removes a whole region at once; returns its items. */
  removeSpace(cache: CacheState, region: string): Item[] {
    const space = cache.spaces.get(region);
    if (!space) return [];
    cache.spaces.delete(region);
    const items = [...space.items.values()];
    for (const item of items) this.forget(item);
    return items;
  }

  dropCache(cache: CacheState): void {
    for (const space of cache.spaces.values()) for (const item of space.items.values()) this.expiry.remove(item);
    this.caches.delete(cache.name);
  }

  /** Takes an item out of the heap, the recency list and the counts (its space is handled by the caller). */
  private forget(item: Item): void {
    const cache = item.cache;
    this.expiry.remove(item);
    cache.recency.remove(item);
    cache.items--;
    cache.bytes -= item.bytes;
  }

  /** Asserts that every index agrees with the items (tests; O(n)). */
  check(): void {
    const fail = (m: string): never => {
      throw new Error(`partition state: ${m}`);
    };
    if (!this.caches.has(DEFAULT_CACHE)) fail('the default cache is missing');
    let expiring = 0;
    for (const cache of this.caches.values()) {
      let items = 0;
      let bytes = 0;
      const seen = new Set<Item>();
      for (const [region, space] of cache.spaces) {
        if (space.region !== region) fail('space filed under another region');
        if (space.items.size === 0) fail(`empty space ${String(region)} kept`);
        for (const [key, item] of space.items) {
          if (item.key !== key || item.region !== region || item.cache !== cache) fail(`item ${key} misfiled`);
          if (item.bytes !== itemBytes(region, key, item)) fail(`item ${key} bytes stale`);
          if (item.version > this.appliedIndex) fail(`item ${key} version above the applied index`);
          for (const t of item.tags) if (!space.tagIndex.get(t)?.has(key)) fail(`tag ${t} of ${key} not indexed`);
          if ((item.expiresAt === null) !== (item.heapIndex < 0)) fail(`item ${key} heap membership wrong`);
          if (item.expiresAt !== null) expiring++;
          items++;
          bytes += item.bytes;
          seen.add(item);
        }
        for (const [t, keys] of space.tagIndex) {
          if (keys.size === 0) fail(`empty tag set ${t} kept`);
          for (const k of keys) if (!space.items.get(k)?.tags.includes(t)) fail(`tag index ${t} names ${k} wrongly`);
        }
      }
      if (items !== cache.items) fail(`cache ${cache.name} counts ${cache.items} items, holds ${items}`);
      if (bytes !== cache.bytes) fail(`cache ${cache.name} counts ${cache.bytes} bytes, holds ${bytes}`);
      let listed = 0;
      for (const item of cache.recency.fromOldest()) {
        if (!seen.has(item)) fail(`recency list of ${cache.name} holds a removed item`);
        listed++;
      }
      if (listed !== items) fail(`recency list of ${cache.name} holds ${listed} of ${items} items`);
    }
    if (expiring !== this.expiry.size) fail(`expiry heap holds ${this.expiry.size} items, ${expiring} expire`);
    this.expiry.check();
  }
}
