import { describe, expect, test } from 'vitest';
import { CacheStateMachine, DEFAULT_SETTINGS, ITEM_OVERHEAD_BYTES, MAX_CACHES, TAG_OVERHEAD_BYTES } from '../../src/cache/index.js';
import { del, enc, Harness, put, settings, T0 } from './support.js';

describe('caches', () => {
  test('default always exists with default settings; other caches must be created first', () => {
    const h = new Harness();
    expect(h.sm.listCaches()).toEqual([{ name: 'default', settings: DEFAULT_SETTINGS }]);
    expect(h.run(put('k', { cache: 'users' }))).toMatchObject({ code: 'cache_not_found' });
    expect(h.run(del('k', { cache: 'users' }))).toMatchObject({ code: 'cache_not_found' });
    expect(h.run({ type: 'putCache', name: 'users', settings: settings({ defaultTtlMs: 60_000 }) })).toEqual({
      code: 'ok',
      created: true,
      settings: settings({ defaultTtlMs: 60_000 }),
    });
    expect(h.run(put('k', { cache: 'users' }))).toMatchObject({ code: 'ok', created: true });
    expect(h.sm.cacheSettings('users')).toEqual(settings({ defaultTtlMs: 60_000 }));
  });

  test('putCache on an existing cache changes its settings and keeps its items', () => {
    const h = new Harness();
    h.run({ type: 'putCache', name: 'c', settings: settings() });
    h.run(put('k', { cache: 'c' }));
    expect(h.run({ type: 'putCache', name: 'c', settings: settings({ eviction: 'none', maxBytes: 10_000 }) })).toMatchObject({ code: 'ok', created: false });
    expect(h.sm.get('c', null, 'k', T0)).not.toBeNull();
    expect(h.sm.cacheSettings('c')).toEqual(settings({ eviction: 'none', maxBytes: 10_000 }));
  });

  test('dropCache removes the cache and all its items here, with one clear event', () => {
    const h = new Harness();
    h.run({ type: 'putCache', name: 'c', settings: settings() });
    h.run(put('a', { cache: 'c', expiresAt: T0 + 10 }));
    h.run(put('b', { cache: 'c', region: 'r', tags: ['t'] }));
    h.run(put('a'));
    const { result, events } = h.apply({ type: 'dropCache', name: 'c' });
    h.sm.checkInvariants();
    expect(result).toEqual({ code: 'ok', removed: 2 });
    expect(events).toEqual([{ type: 'clear', cache: 'c', region: null, key: null, version: h.index }]);
    expect(h.sm.hasCache('c')).toBe(false);
    expect(h.sm.stats('c')).toBeNull();
    expect(h.sm.get('default', null, 'a', T0)).not.toBeNull();
    expect(h.sm.expiredItems(T0 + 10)).toEqual([]); // its items left the expiry index too
    // Re-created, it starts empty.
    h.run({ type: 'putCache', name: 'c', settings: settings() });
    expect(h.sm.get('c', null, 'a', T0)).toBeNull();
    expect(h.sm.stats('c')).toMatchObject({ items: 0, bytes: 0 });
  });

  test('the default cache cannot be dropped; a missing cache answers cache_not_found', () => {
    const h = new Harness();
    expect(h.run({ type: 'dropCache', name: 'default' })).toMatchObject({ code: 'bad_request' });
    expect(h.run({ type: 'dropCache', name: 'nope' })).toMatchObject({ code: 'cache_not_found' });
    expect(h.sm.hasCache('default')).toBe(true);
  });

  test(`a partition holds at most ${MAX_CACHES} caches`, () => {
    const h = new Harness();
    for (let i = 1; i < MAX_CACHES; i++) expect(h.apply({ type: 'putCache', name: `c${i}`, settings: settings() }).result.code).toBe('ok');
    expect(h.run({ type: 'putCache', name: 'one-too-many', settings: settings() })).toMatchObject({ code: 'bad_request' });
    expect(h.run({ type: 'putCache', name: 'c1', settings: settings({ defaultTtlMs: 5 }) })).toMatchObject({ code: 'ok', created: false });
  });
});

describe('memory accounting', () => {
  test('an item counts key, region, value, content type, tags (UTF-8 bytes) and the fixed overheads', () => {
    const h = new Harness();
    h.run(put('ké', { region: 'rég', value: new Uint8Array(100), contentType: 'text/plain', tags: ['t1', 'tâg'] }));
    const expected = ITEM_OVERHEAD_BYTES + 3 + 4 + 100 + 10 + 2 + 4 + 2 * TAG_OVERHEAD_BYTES;
    expect(h.sm.stats('default')).toMatchObject({ items: 1, bytes: expected });
  });

  test('replacing, deleting, expiring and evicting adjust the bytes exactly', () => {
    const h = new Harness();
    h.run(put('k', { value: new Uint8Array(10) }));
    const small = h.sm.stats('default')!.bytes;
    h.run(put('k', { value: new Uint8Array(110) }));
    expect(h.sm.stats('default')!.bytes).toBe(small + 100);
    h.run(put('e', { value: new Uint8Array(10), expiresAt: T0 + 1 }));
    h.run(put('v', { value: new Uint8Array(10) }));
    h.run(del('k'));
    expect(h.sm.stats('default')).toMatchObject({ items: 2, bytes: 2 * small });
    h.run({ type: 'expire', items: h.sm.expiredItems(T0 + 1), now: T0 + 1 });
    h.run({ type: 'evict', items: [{ cache: 'default', region: null, key: 'v', version: 4 }] });
    expect(h.sm.stats('default')).toEqual({ items: 0, bytes: 0, hits: 0, misses: 0, evictions: 1, expirations: 1 });
  });

  test('locking does not change the bytes', () => {
    const h = new Harness();
    h.run(put('k'));
    const before = h.sm.stats('default')!.bytes;
    h.run({ type: 'lock', cache: 'default', region: null, key: 'k', handle: 'a-long-lock-handle', lockExpiresAt: T0 + 5, now: T0 });
    expect(h.sm.stats('default')!.bytes).toBe(before);
  });
});

describe('cache_full (eviction "none")', () => {
  const itemBytes = (valueBytes: number) => ITEM_OVERHEAD_BYTES + 1 + valueBytes + 'text/plain'.length;

  test('a put that would take the cache past maxBytes answers cache_full (507) and stores nothing', () => {
    const h = new Harness();
    h.run({ type: 'putCache', name: 'c', settings: settings({ eviction: 'none', maxBytes: 2 * itemBytes(100) }) });
    expect(h.run(put('a', { cache: 'c', value: new Uint8Array(100) }))).toMatchObject({ code: 'ok' });
    expect(h.run(put('b', { cache: 'c', value: new Uint8Array(100) }))).toMatchObject({ code: 'ok' }); // exactly at the limit
    expect(h.run(put('c', { cache: 'c', value: new Uint8Array(1) }))).toMatchObject({ code: 'cache_full' });
    expect(h.sm.get('c', null, 'c', T0)).toBeNull();
    expect(h.sm.stats('c')).toMatchObject({ items: 2, bytes: 2 * itemBytes(100) });
  });

  test('replacing an item counts only the difference; a write that does not grow the cache always goes through', () => {
    const h = new Harness();
    h.run({ type: 'putCache', name: 'c', settings: settings({ eviction: 'none', maxBytes: itemBytes(100) }) });
    h.run(put('a', { cache: 'c', value: new Uint8Array(100) }));
    expect(h.run(put('a', { cache: 'c', value: new Uint8Array(101) }))).toMatchObject({ code: 'cache_full' });
    expect(h.run(put('a', { cache: 'c', value: new Uint8Array(100) }))).toMatchObject({ code: 'ok' });
    h.run({ type: 'putCache', name: 'c', settings: settings({ eviction: 'none', maxBytes: 10 }) }); // lowered below what is held
    expect(h.run(put('a', { cache: 'c', value: new Uint8Array(50) }))).toMatchObject({ code: 'ok' });
    expect(h.run(put('a', { cache: 'c', value: new Uint8Array(60) }))).toMatchObject({ code: 'cache_full' });
  });

  test('the limit is this partition’s share: maxBytes / maxBytesShare', () => {
    const h = new Harness(new CacheStateMachine(4));
    h.run({ type: 'putCache', name: 'c', settings: settings({ eviction: 'none', maxBytes: 4 * itemBytes(100) }) });
    expect(h.run(put('a', { cache: 'c', value: new Uint8Array(100) }))).toMatchObject({ code: 'ok' });
    expect(h.run(put('b', { cache: 'c', value: new Uint8Array(1) }))).toMatchObject({ code: 'cache_full' });
  });

  test('with eviction "lru" the write goes through and the leader is told how much to free', () => {
    const h = new Harness();
    h.run({ type: 'putCache', name: 'c', settings: settings({ eviction: 'lru', maxBytes: itemBytes(100) }) });
    h.run(put('a', { cache: 'c', value: new Uint8Array(100) }));
    expect(h.sm.bytesToFree('c')).toBe(0);
    expect(h.run(put('b', { cache: 'c', value: new Uint8Array(100) }))).toMatchObject({ code: 'ok' });
    expect(h.sm.bytesToFree('c')).toBe(itemBytes(100));
    const victims = h.sm.lruCandidates('c', h.sm.bytesToFree('c'));
    expect(victims).toEqual([{ cache: 'c', region: null, key: 'a', version: 2 }]);
    const { events } = h.apply({ type: 'evict', items: victims });
    expect(events).toEqual([{ type: 'evict', cache: 'c', region: null, key: 'a', version: 2 }]);
    expect(h.sm.bytesToFree('c')).toBe(0);
    expect(h.sm.stats('c')).toMatchObject({ items: 1, evictions: 1 });
    // An item that alone exceeds the share could never fit: refused even with lru.
    expect(h.run(put('huge', { cache: 'c', value: new Uint8Array(101) }))).toMatchObject({ code: 'cache_full' });
  });
});

describe('stats', () => {
  test('hits and misses are counted by recordRead, locally', () => {
    const h = new Harness();
    h.sm.recordRead('default', true);
    h.sm.recordRead('default', true);
    h.sm.recordRead('default', false);
    h.sm.recordRead('nope', true);
    expect(h.sm.stats('default')).toMatchObject({ hits: 2, misses: 1 });
    expect(h.sm.stats('nope')).toBeNull();
  });

  test('evictions and expirations count only items actually removed', () => {
    const h = new Harness();
    h.run(put('k', { expiresAt: T0 + 1 }));
    h.run({ type: 'evict', items: [{ cache: 'default', region: null, key: 'k', version: 99 }] });
    h.run({ type: 'expire', items: [{ cache: 'default', region: null, key: 'k', version: 1 }], now: T0 });
    expect(h.sm.stats('default')).toMatchObject({ evictions: 0, expirations: 0, items: 1 });
  });

  test('each value is stored once: the same bytes are not counted twice across replace', () => {
    const h = new Harness();
    for (let i = 0; i < 10; i++) h.run(put('k', { value: enc('x'.repeat(1000)) }));
    expect(h.sm.stats('default')!.bytes).toBe(ITEM_OVERHEAD_BYTES + 1 + 1000 + 10);
  });
});
