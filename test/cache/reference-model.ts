// A reference model of the cache state machine: the same rules over one flat
// map, with every read a full scan and no index at all. The model-based test
// checks that the real machine's indexes (spaces, tag index, expiry heap,
// recency list, byte counts) give the same answers as this.
import type { CacheSettings, Command, ItemVersionRef } from '../../src/cache/index.js';
import { ITEM_OVERHEAD_BYTES, TAG_OVERHEAD_BYTES } from '../../src/cache/index.js';

interface MItem {
  cache: string;
  region: string | null;
  key: string;
  value: Uint8Array;
  contentType: string;
  version: number;
  expiresAt: number | null;
  tags: string[];
  lock: { handle: string; expiresAt: number } | null;
}

interface MCache {
  settings: CacheSettings;
  evictions: number;
  expirations: number;
}

const id = (cache: string, region: string | null, key: string): string => JSON.stringify([cache, region, key]);
const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8');
const sizeOf = (i: MItem): number =>
  ITEM_OVERHEAD_BYTES + utf8(i.key) + (i.region === null ? 0 : utf8(i.region)) + i.value.length + utf8(i.contentType) + i.tags.reduce((n, t) => n + utf8(t) + TAG_OVERHEAD_BYTES, 0);
const live = (i: MItem | undefined, now: number): i is MItem => i !== undefined && (i.expiresAt === null || i.expiresAt > now);
const liveLock = (i: MItem, now: number) => (i.lock && i.lock.expiresAt > now ? i.lock : null);

/** What the model answers: the code and the fields the test compares. */
export type ModelResult = { code: string; version?: number; created?: boolean; removed?: number; expiresAt?: number | null };

export class ReferenceModel {
  caches = new Map<string, MCache>([['default', { settings: { defaultTtlMs: 0, maxBytes: null, eviction: 'lru' }, evictions: 0, expirations: 0 }]]);
  items = new Map<string, MItem>();
  /** ids, least recently used first */
  recency: string[] = [];

  constructor(readonly share = 1) {}

  private use(i: string): void {
    this.recency = this.recency.filter((x) => x !== i);
    this.recency.push(i);
  }

  private drop(i: string): void {
    this.items.delete(i);
    this.recency = this.recency.filter((x) => x !== i);
  }

  bytes(cache: string): number {
    let n = 0;
    for (const i of this.items.values()) if (i.cache === cache) n += sizeOf(i);
    return n;
  }

  touchRecency(cache: string, region: string | null, key: string): void {
    if (this.items.has(id(cache, region, key))) this.use(id(cache, region, key));
  }

  apply(index: number, c: Command): ModelResult {
    switch (c.type) {
      case 'put': {
        const cache = this.caches.get(c.cache);
        if (!cache) return { code: 'cache_not_found' };
        const k = id(c.cache, c.region, c.key);
        const old = this.items.get(k);
        const cur = live(old, c.now) ? old : undefined;
        const lock = cur ? liveLock(cur, c.now) : null;
        if (lock && c.lockHandle !== lock.handle) return { code: 'locked' };
        if (!lock && c.lockHandle !== null) return { code: 'lock_not_held' };
        if (c.condition.kind === 'ifNoneMatch' && cur) return { code: 'precondition_failed' };
        if (c.condition.kind === 'ifMatch' && (!cur || cur.version !== c.condition.version)) return { code: 'precondition_failed' };
        const next: MItem = {
          cache: c.cache,
          region: c.region,
          key: c.key,
          value: c.value,
          contentType: c.contentType,
          version: index,
          expiresAt: c.expiresAt,
          tags: [...new Set(c.tags)],
          lock: c.unlock ? null : lock,
        };
        const max = cache.settings.maxBytes;
        if (max !== null) {
          const oldSize = old ? sizeOf(old) : 0;
          const after = cache.settings.eviction === 'none' ? this.bytes(c.cache) - oldSize + sizeOf(next) : sizeOf(next);
          if (after > max / this.share && sizeOf(next) > oldSize) return { code: 'cache_full' };
        }
        this.items.set(k, next);
        this.use(k);
        return { code: 'ok', version: index, created: !cur };
      }
      case 'delete': {
        if (!this.caches.has(c.cache)) return { code: 'cache_not_found' };
        const k = id(c.cache, c.region, c.key);
        const cur = this.items.get(k);
        if (!live(cur, c.now)) return { code: 'not_found' };
        const lock = liveLock(cur, c.now);
        if (lock && c.lockHandle !== lock.handle) return { code: 'locked' };
        if (!lock && c.lockHandle !== null) return { code: 'lock_not_held' };
        if (c.ifMatch !== null && cur.version !== c.ifMatch) return { code: 'precondition_failed' };
        this.drop(k);
        return { code: 'ok', version: cur.version };
      }
      case 'touch': {
        if (!this.caches.has(c.cache)) return { code: 'cache_not_found' };
        const cur = this.items.get(id(c.cache, c.region, c.key));
        if (!live(cur, c.now)) return { code: 'not_found' };
        cur.expiresAt = c.expiresAt;
        return { code: 'ok', version: cur.version, expiresAt: c.expiresAt };
      }
      case 'lock': {
        if (!this.caches.has(c.cache)) return { code: 'cache_not_found' };
        const cur = this.items.get(id(c.cache, c.region, c.key));
        if (!live(cur, c.now)) return { code: 'not_found' };
        const lock = liveLock(cur, c.now);
        if (lock && lock.handle !== c.handle) return { code: 'locked' };
        cur.lock = { handle: c.handle, expiresAt: c.lockExpiresAt };
        return { code: 'ok', version: cur.version };
      }
      case 'unlock': {
        if (!this.caches.has(c.cache)) return { code: 'cache_not_found' };
        const cur = this.items.get(id(c.cache, c.region, c.key));
        if (!live(cur, c.now)) return { code: 'not_found' };
        if (liveLock(cur, c.now)?.handle !== c.handle) return { code: 'lock_not_held' };
        cur.lock = null;
        return { code: 'ok' };
      }
      case 'expire':
      case 'evict': {
        let removed = 0;
        for (const r of c.items) {
          const k = id(r.cache, r.region, r.key);
          const cur = this.items.get(k);
          if (!cur || cur.version !== r.version) continue;
          if (c.type === 'expire' && live(cur, c.now)) continue;
          this.drop(k);
          this.caches.get(r.cache)![c.type === 'expire' ? 'expirations' : 'evictions']++;
          removed++;
        }
        return { code: 'ok', removed };
      }
      case 'clearRegion': {
        if (!this.caches.has(c.cache)) return { code: 'cache_not_found' };
        let removed = 0;
        for (const [k, i] of [...this.items]) {
          if (i.cache !== c.cache || i.region !== c.region) continue;
          if (live(i, c.now)) removed++;
          this.drop(k);
        }
        return { code: 'ok', removed };
      }
      case 'putCache': {
        const cur = this.caches.get(c.name);
        if (cur) cur.settings = { ...c.settings };
        else this.caches.set(c.name, { settings: { ...c.settings }, evictions: 0, expirations: 0 });
        return { code: 'ok', created: !cur };
      }
      case 'dropCache': {
        if (c.name === 'default') return { code: 'bad_request' };
        if (!this.caches.has(c.name)) return { code: 'cache_not_found' };
        let removed = 0;
        for (const [k, i] of [...this.items]) {
          if (i.cache !== c.name) continue;
          removed++;
          this.drop(k);
        }
        this.caches.delete(c.name);
        return { code: 'ok', removed };
      }
    }
  }

  get(cache: string, region: string | null, key: string, now: number): MItem | null {
    const i = this.items.get(id(cache, region, key));
    return live(i, now) ? i : null;
  }

  list(cache: string, region: string, tags: string[], match: 'any' | 'all', now: number): string[] {
    const out: string[] = [];
    for (const i of this.items.values()) {
      if (i.cache !== cache || i.region !== region || !live(i, now)) continue;
      const ok = tags.length === 0 || (match === 'any' ? tags.some((t) => i.tags.includes(t)) : tags.every((t) => i.tags.includes(t)));
      if (ok) out.push(i.key);
    }
    return out.sort();
  }

  expired(now: number): ItemVersionRef[] {
    return [...this.items.values()]
      .filter((i) => i.expiresAt !== null && i.expiresAt <= now)
      .sort((a, b) => a.expiresAt! - b.expiresAt! || a.version - b.version)
      .map((i) => ({ cache: i.cache, region: i.region, key: i.key, version: i.version }));
  }

  lru(cache: string, bytesToFree: number): ItemVersionRef[] {
    const out: ItemVersionRef[] = [];
    let freed = 0;
    for (const k of this.recency) {
      const i = this.items.get(k)!;
      if (i.cache !== cache) continue;
      if (freed >= bytesToFree) break;
      out.push({ cache: i.cache, region: i.region, key: i.key, version: i.version });
      freed += sizeOf(i);
    }
    return out;
  }
}
