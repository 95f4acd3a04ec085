import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ExpiryHeap, type HeapEntry } from '../../src/cache/expiry-heap.js';
import { CacheStateMachine, MAX_ITEMS_PER_COMMAND } from '../../src/cache/index.js';
import { Harness, put, T0 } from './support.js';

describe('expiredItems', () => {
  test('lists items whose expiry ≤ now, earliest first, up to the limit, and nothing else', () => {
    const h = new Harness();
    h.run(put('late', { expiresAt: T0 + 30 }));
    h.run(put('early', { expiresAt: T0 + 10 }));
    h.run(put('never'));
    h.run(put('mid', { region: 'r', expiresAt: T0 + 20 }));
    expect(h.sm.expiredItems(T0 + 9)).toEqual([]);
    expect(h.sm.expiredItems(T0 + 20).map((r) => r.key)).toEqual(['early', 'mid']);
    expect(h.sm.expiredItems(T0 + 100, 2).map((r) => r.key)).toEqual(['early', 'mid']);
    expect(h.sm.expiredItems(T0 + 100)).toEqual([
      { cache: 'default', region: null, key: 'early', version: 2 },
      { cache: 'default', region: 'r', key: 'mid', version: 4 },
      { cache: 'default', region: null, key: 'late', version: 1 },
    ]);
  });

  test('follows rewrites and touches: an item leaves the index when it stops expiring', () => {
    const h = new Harness();
    h.run(put('k', { expiresAt: T0 + 10 }));
    h.run(put('k'));
    expect(h.sm.expiredItems(T0 + 100)).toEqual([]);
    h.run({ type: 'touch', cache: 'default', region: null, key: 'k', expiresAt: T0 + 50, now: T0 });
    expect(h.sm.expiredItems(T0 + 100)).toEqual([{ cache: 'default', region: null, key: 'k', version: 2 }]);
  });

  test('a leader loop of expiredItems → expire commands empties everything that expired', () => {
    const h = new Harness();
    for (let i = 0; i < 10_000; i++) h.apply(put(`k${i}`, { expiresAt: T0 + 1 + (i % 97) }));
    let rounds = 0;
    for (let due = h.sm.expiredItems(T0 + 1000); due.length > 0; due = h.sm.expiredItems(T0 + 1000)) {
      expect(due.length).toBeLessThanOrEqual(MAX_ITEMS_PER_COMMAND);
      h.apply({ type: 'expire', items: due, now: T0 + 1000 });
      rounds++;
    }
    expect(rounds).toBe(3);
    expect(h.sm.stats('default')).toMatchObject({ items: 0, expirations: 10_000 });
  });
});

describe('the expiry heap', () => {
  interface E extends HeapEntry {
    id: number;
  }

  test('agrees with a sorted list under random inserts, moves and removals, and keeps its indexes', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            id: fc.integer({ min: 0, max: 60 }),
            at: fc.option(fc.integer({ min: 0, max: 50 }), { nil: null, freq: 8 }),
            remove: fc.integer({ min: 0, max: 4 }).map((n) => n === 0), // one op in five removes
          }),
          { maxLength: 300, size: 'max' },
        ),
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 0, max: 40 }),
        (ops, now, limit) => {
          const heap = new ExpiryHeap<E>();
          const entries = new Map<number, E>();
          let version = 0;
          for (const op of ops) {
            let e = entries.get(op.id);
            if (op.remove) {
              if (e) heap.remove(e);
              entries.delete(op.id);
              continue;
            }
            if (!e) entries.set(op.id, (e = { id: op.id, expiresAt: null, version: 0, heapIndex: -1 }));
            e.expiresAt = op.at;
            e.version = ++version;
            heap.update(e);
            heap.check();
          }
          const expected = [...entries.values()]
            .filter((e) => e.expiresAt !== null && e.expiresAt <= now)
            .sort((a, b) => a.expiresAt! - b.expiresAt! || a.version - b.version)
            .slice(0, limit)
            .map((e) => e.id);
          expect(heap.expired(now, limit).map((e) => e.id)).toEqual(expected);
        },
      ),
    );
  });
});

describe('lruCandidates', () => {
  test('least recently written first, until the bytes to free are covered', () => {
    const h = new Harness();
    for (const k of ['a', 'b', 'c', 'd']) h.run(put(k, { value: new Uint8Array(100) }));
    const one = h.sm.stats('default')!.bytes / 4;
    expect(h.sm.lruCandidates('default', 1).map((r) => r.key)).toEqual(['a']);
    expect(h.sm.lruCandidates('default', one + 1).map((r) => r.key)).toEqual(['a', 'b']);
    expect(h.sm.lruCandidates('default', 0)).toEqual([]);
    expect(h.sm.lruCandidates('default', Infinity).map((r) => r.key)).toEqual(['a', 'b', 'c', 'd']);
    expect(h.sm.lruCandidates('nope', 1)).toEqual([]);
  });

  test('a read reported by touchRecency and a rewrite both make an item most recent', () => {
    const h = new Harness();
    for (const k of ['a', 'b', 'c']) h.run(put(k));
    h.sm.touchRecency('default', null, 'a');
    h.sm.touchRecency('default', null, 'missing'); // ignored
    expect(h.sm.lruCandidates('default', Infinity).map((r) => r.key)).toEqual(['b', 'c', 'a']);
    h.run(put('b'));
    expect(h.sm.lruCandidates('default', Infinity).map((r) => r.key)).toEqual(['c', 'a', 'b']);
  });

  test('an eviction chosen before a rewrite removes nothing: the rewritten item is recent again', () => {
    const h = new Harness();
    h.run(put('a'));
    h.run(put('b'));
    const victims = h.sm.lruCandidates('default', 1);
    h.run(put('a'));
    expect(h.run({ type: 'evict', items: victims })).toEqual({ code: 'ok', removed: 0 });
    expect(h.sm.get('default', null, 'a', T0)).not.toBeNull();
  });

  test('recency is leader-local: after restore it is the order of the writes', () => {
    const h = new Harness();
    for (const k of ['a', 'b', 'c']) h.run(put(k));
    h.sm.touchRecency('default', null, 'a');
    const restored = CacheStateMachine.restore(h.sm.snapshot());
    expect(restored.lruCandidates('default', Infinity).map((r) => r.key)).toEqual(['a', 'b', 'c']);
  });
});
