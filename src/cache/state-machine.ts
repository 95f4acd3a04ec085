// The cache state machine of one partition (DESIGN.md "Determinism of the
// replicated state"): apply(index, command) is a pure function of the state
// and the command. It reads no clock and draws no random number — the
// leader's clock arrives as `command.now` — so every replica that applies the
// same log reaches the same state, and the log index becomes the version.
//
// Reads (get, listRegion, stats) take `now` from the caller. The leader-only
// helpers (expiredItems, lruCandidates, bytesToFree) propose the expire and
// evict commands that keep the cache inside its limits.

import {
  decodeCommand,
  validateCommand,
  type CacheSettings,
  type ClearRegionCommand,
  type Command,
  type DeleteCommand,
  type DropCacheCommand,
  type ExpireCommand,
  type EvictCommand,
  type ItemVersionRef,
  type LockCommand,
  type PutCacheCommand,
  type PutCommand,
  type TouchCommand,
  type UnlockCommand,
} from './commands.js';
import { copyBytes } from './bytes.js';
import { MAX_CACHES, MAX_ITEMS_PER_COMMAND } from './limits.js';
import { DEFAULT_CACHE, DEFAULT_SETTINGS, Item, itemBytes, PartitionState, type CacheState, type Lock } from './partition-state.js';
import type {
  Applied,
  CacheStats,
  ChangeEvent,
  ClearRegionResult,
  DeleteResult,
  DropCacheResult,
  FailureCode,
  ItemView,
  ListOptions,
  LockResult,
  PutCacheResult,
  PutResult,
  RemoveResult,
  Result,
  ResultFor,
  TouchResult,
  UnlockResult,
} from './results.js';
import { decodeSnapshot, encodeSnapshot } from './snapshot.js';
import type { CacheRecord, ItemRecord } from './records.js';

function failure<C extends FailureCode>(code: C, message: string): { code: C; message: string } {
  return { code, message };
}

function itemName(cache: string, region: string | null, key: string): string {
  return region === null ? `item "${key}" of cache "${cache}"` : `item "${key}" of region "${region}" in cache "${cache}"`;
}

function view(item: Item): ItemView {
  return {
    region: item.region,
    key: item.key,
    value: item.value,
    contentType: item.contentType,
    version: item.version,
    expiresAt: item.expiresAt,
    tags: item.tags,
  };
}

/** An item's identity (not its version), as evictionFor's `skip` names it. */
export function itemKey(cache: string, region: string | null, key: string): string {
  return JSON.stringify([cache, region, key]);
}

function ref(item: Item): ItemVersionRef {
  return { cache: item.cache.name, region: item.region, key: item.key, version: item.version };
}

/**
 * Who may change a locked item at `now` (API.md "PUT"): with a live lock,
 * only a command bearing its handle (else 423); a handle on an item that no
 * live lock holds (never locked, or its lock expired) is refused with 409, as
 * the writer's belief that it holds the lock is wrong and its read-modify-write
 * may be stale.
 */
function lockVerdict(item: Item | undefined, handle: string | null, now: number, what: string): { lock: Lock | null } | { code: 'locked' | 'lock_not_held'; message: string } {
  const lock = item ? item.liveLock(now) : null;
  if (lock !== null) {
    if (handle === lock.handle) return { lock };
    return failure('locked', `${what} is locked${handle === null ? '' : ' by another handle'}`);
  }
  if (handle !== null) return failure('lock_not_held', `${what} is not locked by this handle (the lock expired or was released)`);
  return { lock: null };
}

export class CacheStateMachine {
  private state: PartitionState;

  /**
   * maxBytesShare: the number of partitions, by which a cache's maxBytes is
   * divided to give this partition's share (1 for a single partition).
   */
  constructor(maxBytesShare = 1) {
    this.state = new PartitionState(maxBytesShare);
    this.state.createCache(DEFAULT_CACHE, DEFAULT_SETTINGS);
  }

  /** The last log index applied (0 before any). */
  get appliedIndex(): number {
    return this.state.appliedIndex;
  }

  get maxBytesShare(): number {
    return this.state.maxBytesShare;
  }

  // ---- the replicated part ----

  /**
   * Applies the committed command at log `index` (strictly above the last
   * one). Throws CommandError on a malformed command (the leader validates
   * before proposing, so this is a bug or a corrupt log, never a user error).
   */
  apply<C extends Command>(index: number, command: C): Applied<ResultFor[C['type']]>;
  apply(index: number, command: Command): Applied {
    validateCommand(command);
    if (!Number.isSafeInteger(index) || index <= this.state.appliedIndex) {
      throw new Error(`assertion: log index ${index} applied after ${this.state.appliedIndex}; indexes must increase`);
    }
    this.state.appliedIndex = index;
    const events: ChangeEvent[] = [];
    const result = this.dispatch(index, command, events);
    return { result, events };
  }

  /** apply() of an encoded command, as it comes out of the raft log. */
  applyEncoded(index: number, bytes: Uint8Array): Applied {
    return this.apply(index, decodeCommand(bytes));
  }

  private dispatch(index: number, c: Command, events: ChangeEvent[]): Result {
    switch (c.type) {
      case 'put':
        return this.put(index, c, events);
      case 'delete':
        return this.delete(c, events);
      case 'touch':
        return this.touch(c);
      case 'lock':
        return this.lock(c);
      case 'unlock':
        return this.unlock(c);
      case 'expire':
        return this.expire(c, events);
      case 'evict':
        return this.evict(c, events);
      case 'clearRegion':
        return this.clearRegion(index, c, events);
      case 'putCache':
        return this.putCache(c);
      case 'dropCache':
        return this.dropCache(index, c, events);
    }
  }

  private cacheOf(name: string): CacheState | undefined {
    return this.state.caches.get(name);
  }

  private put(index: number, c: PutCommand, events: ChangeEvent[]): PutResult {
    const cache = this.cacheOf(c.cache);
    if (!cache) return failure('cache_not_found', `cache "${c.cache}" does not exist`);
    const what = itemName(c.cache, c.region, c.key);
    const existing = cache.find(c.region, c.key);
    const live = existing !== undefined && existing.isLive(c.now) ? existing : undefined;
    // Checked in this order: the lock (who may write), then the condition (on what), then room.
    const verdict = lockVerdict(live, c.lockHandle, c.now, what);
    if ('code' in verdict) return verdict;
    if (c.condition.kind === 'ifNoneMatch' && live) return failure('precondition_failed', `${what} exists (If-None-Match: *)`);
    if (c.condition.kind === 'ifMatch' && live?.version !== c.condition.version) {
      return failure('precondition_failed', live ? `${what} is at version ${live.version}, not ${c.condition.version}` : `${what} does not exist (If-Match)`);
    }
    const content = {
      // A copy: the command's value may be a view into a larger buffer (a log entry, a network frame) that must not be pinned.
      value: copyBytes(c.value),
      contentType: c.contentType,
      version: index,
      expiresAt: c.expiresAt,
      tags: Object.freeze([...new Set(c.tags)]),
      lock: c.unlock ? null : verdict.lock,
    };
    const room = this.roomFor(cache, itemBytes(c.region, c.key, content), existing?.bytes ?? 0);
    if (room) return room;
    // An expired item still present is replaced as if absent: the key is created anew.
    if (existing) this.state.rewrite(existing, content);
    else this.state.insert(new Item(cache, c.region, c.key, content));
    events.push({ type: 'put', cache: c.cache, region: c.region, key: c.key, version: index });
    return { code: 'ok', version: index, created: live === undefined };
  }

  /**
   * With eviction 'none', a write that would take the cache past this
   * partition's share of maxBytes is refused. With 'lru' the write goes
   * through and the leader evicts afterwards — unless the item alone exceeds
   * the share, when no eviction could make room.
   */
  private roomFor(cache: CacheState, newBytes: number, oldBytes: number): { code: 'cache_full'; message: string } | null {
    const limit = this.state.limitBytes(cache);
    if (limit === null) return null;
    const after = cache.settings.eviction === 'none' ? cache.bytes - oldBytes + newBytes : newBytes;
    // A write that does not grow the cache is let through even above the limit (after maxBytes was lowered, say).
    if (after <= limit || newBytes <= oldBytes) return null;
    return failure('cache_full', `cache "${cache.name}" would hold ${after} bytes in this partition; its share of maxBytes is ${Math.floor(limit)}`);
  }

  private delete(c: DeleteCommand, events: ChangeEvent[]): DeleteResult {
    const cache = this.cacheOf(c.cache);
    if (!cache) return failure('cache_not_found', `cache "${c.cache}" does not exist`);
    const what = itemName(c.cache, c.region, c.key);
    const item = cache.find(c.region, c.key);
    // An expired item is already gone for the client; the expire command will remove it.
    if (!item || !item.isLive(c.now)) return failure('not_found', `${what} does not exist`);
    const verdict = lockVerdict(item, c.lockHandle, c.now, what);
    if ('code' in verdict) return verdict;
    if (c.ifMatch !== null && item.version !== c.ifMatch) return failure('precondition_failed', `${what} is at version ${item.version}, not ${c.ifMatch}`);
    this.state.remove(item);
    events.push({ type: 'delete', cache: c.cache, region: c.region, key: c.key, version: item.version });
    return { code: 'ok', version: item.version };
  }

  /** Resets the expiry (ResetObjectTimeout). The value is not written, so the version stays; a lock does not forbid it. */
  private touch(c: TouchCommand): TouchResult {
    const cache = this.cacheOf(c.cache);
    if (!cache) return failure('cache_not_found', `cache "${c.cache}" does not exist`);
    const item = cache.find(c.region, c.key);
    if (!item || !item.isLive(c.now)) return failure('not_found', `${itemName(c.cache, c.region, c.key)} does not exist`);
    item.expiresAt = c.expiresAt;
    this.state.expiry.update(item);
    return { code: 'ok', version: item.version, expiresAt: item.expiresAt };
  }

  private lock(c: LockCommand): LockResult {
    const cache = this.cacheOf(c.cache);
    if (!cache) return failure('cache_not_found', `cache "${c.cache}" does not exist`);
    const what = itemName(c.cache, c.region, c.key);
    const item = cache.find(c.region, c.key);
    if (!item || !item.isLive(c.now)) return failure('not_found', `${what} does not exist`);
    const held = item.liveLock(c.now);
    // The same handle again is a retried proposal: it extends its own lock.
    if (held && held.handle !== c.handle) return failure('locked', `${what} is locked by another handle`);
    item.lock = { handle: c.handle, expiresAt: c.lockExpiresAt };
    return { code: 'ok', item: view(item), handle: c.handle, lockExpiresAt: c.lockExpiresAt };
  }

  private unlock(c: UnlockCommand): UnlockResult {
    const cache = this.cacheOf(c.cache);
    if (!cache) return failure('cache_not_found', `cache "${c.cache}" does not exist`);
    const what = itemName(c.cache, c.region, c.key);
    const item = cache.find(c.region, c.key);
    if (!item || !item.isLive(c.now)) return failure('not_found', `${what} does not exist`);
    if (item.liveLock(c.now)?.handle !== c.handle) return failure('lock_not_held', `${what} is not locked by this handle`);
    item.lock = null;
    return { code: 'ok' };
  }

  private expire(c: ExpireCommand, events: ChangeEvent[]): RemoveResult {
    let removed = 0;
    for (const r of c.items) {
      const item = this.cacheOf(r.cache)?.find(r.region, r.key);
      if (!item || item.version !== r.version || item.isLive(c.now)) continue;
      this.state.remove(item);
      item.cache.expirations++;
      removed++;
      events.push({ type: 'expire', cache: r.cache, region: r.region, key: r.key, version: r.version });
    }
    return { code: 'ok', removed };
  }

  private evict(c: EvictCommand, events: ChangeEvent[]): RemoveResult {
    let removed = 0;
    for (const r of c.items) {
      const item = this.cacheOf(r.cache)?.find(r.region, r.key);
      // Rewritten since the leader chose it: it is no longer the least recently used.
      if (!item || item.version !== r.version) continue;
      this.state.remove(item);
      item.cache.evictions++;
      removed++;
      events.push({ type: 'evict', cache: r.cache, region: r.region, key: r.key, version: r.version });
    }
    return { code: 'ok', removed };
  }

  private clearRegion(index: number, c: ClearRegionCommand, events: ChangeEvent[]): ClearRegionResult {
    const cache = this.cacheOf(c.cache);
    if (!cache) return failure('cache_not_found', `cache "${c.cache}" does not exist`);
    const items = this.state.removeSpace(cache, c.region);
    if (items.length > 0) events.push({ type: 'clear', cache: c.cache, region: c.region, key: null, version: index });
    // Expired items go too, but only live ones were there for the client.
    return { code: 'ok', removed: items.filter((i) => i.isLive(c.now)).length };
  }

  private putCache(c: PutCacheCommand): PutCacheResult {
    const existing = this.cacheOf(c.name);
    if (existing) {
      // New limits apply to later writes; items already stored stay (with 'lru' the leader evicts down to the new share).
      existing.settings = { ...c.settings };
      return { code: 'ok', created: false, settings: { ...existing.settings } };
    }
    if (this.state.caches.size >= MAX_CACHES) return failure('bad_request', `a partition holds at most ${MAX_CACHES} caches`);
    const cache = this.state.createCache(c.name, c.settings);
    return { code: 'ok', created: true, settings: { ...cache.settings } };
  }

  private dropCache(index: number, c: DropCacheCommand, events: ChangeEvent[]): DropCacheResult {
    if (c.name === DEFAULT_CACHE) return failure('bad_request', 'the default cache cannot be dropped');
    const cache = this.cacheOf(c.name);
    if (!cache) return failure('cache_not_found', `cache "${c.name}" does not exist`);
    const removed = cache.items;
    this.state.dropCache(cache);
    if (removed > 0) events.push({ type: 'clear', cache: c.name, region: null, key: null, version: index });
    return { code: 'ok', removed };
  }

  // ---- reads (any replica; `now` from the caller's clock) ----

  hasCache(name: string): boolean {
    return this.state.caches.has(name);
  }

  /** The item, or null when missing, expired at `now`, or its cache does not exist (see hasCache). */
  get(cache: string, region: string | null, key: string, now: number): ItemView | null {
    const item = this.cacheOf(cache)?.find(region, key);
    return item && item.isLive(now) ? view(item) : null;
  }

  /**
   * The live items of a region carrying any or all of `tags` (no tags: all),
   * sorted by key. Candidates come from the tag index, not a scan.
   */
  listRegion(cache: string, region: string, options: ListOptions, now: number): ItemView[] {
    const space = this.cacheOf(cache)?.spaces.get(region);
    if (!space) return [];
    const tags = [...new Set(options.tags ?? [])];
    let keys: Iterable<string>;
    if (tags.length === 0) {
      keys = space.items.keys();
    } else if ((options.match ?? 'any') === 'any') {
      const union = new Set<string>();
      for (const t of tags) for (const k of space.tagIndex.get(t) ?? []) union.add(k);
      keys = union;
    } else {
      const sets = tags.map((t) => space.tagIndex.get(t) ?? new Set<string>()).sort((a, b) => a.size - b.size);
      keys = [...sets[0]!].filter((k) => sets.every((s) => s.has(k)));
    }
    const out: ItemView[] = [];
    for (const k of keys) {
      const item = space.items.get(k)!;
      if (item.isLive(now)) out.push(view(item));
    }
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return options.limit === undefined ? out : out.slice(0, options.limit);
  }

  /** Caches and their settings, by name. */
  listCaches(): { name: string; settings: CacheSettings }[] {
    return [...this.state.caches.values()].map((c) => ({ name: c.name, settings: { ...c.settings } })).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  cacheSettings(name: string): CacheSettings | null {
    const c = this.cacheOf(name);
    return c ? { ...c.settings } : null;
  }

  /** This partition's share of a cache's stats (the host sums over partitions); null if no such cache. */
  stats(name: string): CacheStats | null {
    const c = this.cacheOf(name);
    if (!c) return null;
    return { items: c.items, bytes: c.bytes, hits: c.hits, misses: c.misses, evictions: c.evictions, expirations: c.expirations };
  }

  // ---- leader-local, not replicated ----

  /** Counts a read served by this replica as leader. */
  recordRead(cache: string, hit: boolean): void {
    const c = this.cacheOf(cache);
    if (!c) return;
    if (hit) c.hits++;
    else c.misses++;
  }

  /** Marks an item as just used (a read or a lock served here), for LRU eviction. */
  touchRecency(cache: string, region: string | null, key: string): void {
    const c = this.cacheOf(cache);
    const item = c?.find(region, key);
    if (item) c!.recency.use(item);
  }

  /** Up to `limit` items whose expiry is ≤ now, earliest first: the items of the next expire command. */
  expiredItems(now: number, limit = MAX_ITEMS_PER_COMMAND): ItemVersionRef[] {
    return this.state.expiry.expired(now, Math.min(limit, MAX_ITEMS_PER_COMMAND)).map(ref);
  }

  /** Bytes by which `cache` exceeds this partition's share of its maxBytes with eviction 'lru' (0 if none). */
  bytesToFree(cache: string): number {
    const c = this.cacheOf(cache);
    if (!c || c.settings.eviction !== 'lru') return 0;
    const limit = this.state.limitBytes(c);
    return limit === null ? 0 : Math.max(0, Math.ceil(c.bytes - limit));
  }

  /** The least recently used items of `cache` that together free at least `bytesToFree` (or all of them): the items of the next evict command. */
  lruCandidates(cache: string, bytesToFree: number): ItemVersionRef[] {
    const out: ItemVersionRef[] = [];
    const c = this.cacheOf(cache);
    if (!c) return out;
    let freed = 0;
    for (const item of c.recency.fromOldest()) {
      if (freed >= bytesToFree || out.length >= MAX_ITEMS_PER_COMMAND) break;
      out.push(ref(item));
      freed += item.bytes;
    }
    return out;
  }

  /**
   * Leader, for the node-wide memory cap: the least recently used items of
   * `cache` (its own, so a cache with eviction 'none' never loses items to
   * another's writes) that free at least `bytesToFree`, passing over the items
   * `skip` names (`itemKey`): the one being written, and those already chosen
   * by an evict command in flight. `bytes` is what they free together.
   */
  evictionFor(cache: string, bytesToFree: number, skip: ReadonlySet<string>): { items: ItemVersionRef[]; bytes: number } {
    const items: ItemVersionRef[] = [];
    let bytes = 0;
    const c = this.cacheOf(cache);
    if (!c) return { items, bytes };
    for (const item of c.recency.fromOldest()) {
      if (bytes >= bytesToFree || items.length >= MAX_ITEMS_PER_COMMAND) break;
      if (skip.has(itemKey(c.name, item.region, item.key))) continue;
      items.push(ref(item));
      bytes += item.bytes;
    }
    return { items, bytes };
  }

  /**
   * Leader, before admitting a put: the bytes it would add to this partition
   * (its accounted size less the item it replaces; an expired item still
   * counts until expired). 0 or less: the write does not grow anything.
   */
  putGrowth(cache: string, region: string | null, key: string, content: Pick<ItemView, 'value' | 'contentType' | 'tags'>): number {
    const old = this.cacheOf(cache)?.find(region, key)?.bytes ?? 0;
    return itemBytes(region, key, { ...content, tags: [...new Set(content.tags)] }) - old;
  }

  /** The bytes every cache of this partition accounts for together (the node sums its partitions for --max-memory). */
  accountedBytes(): number {
    let n = 0;
    for (const c of this.state.caches.values()) n += c.bytes;
    return n;
  }

  /**
   * The live items at `now` and every cache's settings, as records (backup).
   * Versions, locks and counters are left out: a restore renumbers versions
   * and starts unlocked.
   */
  exportContent(now: number): { caches: CacheRecord[]; items: ItemRecord[] } {
    const items: ItemRecord[] = [];
    for (const cache of this.state.caches.values()) {
      for (const space of cache.spaces.values()) {
        for (const it of space.items.values()) {
          if (!it.isLive(now)) continue;
          items.push({ cache: cache.name, region: space.region, key: it.key, value: it.value, contentType: it.contentType, expiresAt: it.expiresAt, tags: [...it.tags] });
        }
      }
    }
    return { caches: this.listCaches(), items };
  }

  // ---- snapshots ----

  /** The whole replicated state, with a format byte and a checksum. Leader-local hits, misses and recency are not in it. */
  snapshot(): Uint8Array {
    return encodeSnapshot(this.state);
  }

  /** The state machine a snapshot describes; throws SnapshotError if it is corrupt. */
  static restore(bytes: Uint8Array): CacheStateMachine {
    const sm = new CacheStateMachine();
    sm.state = decodeSnapshot(bytes);
    return sm;
  }

  /** Asserts the internal indexes agree with the items (tests). */
  checkInvariants(): void {
    this.state.check();
  }
}
