import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Harness, put, T0 } from './support.js';

const keys = (items: { key: string }[]): string[] => items.map((i) => i.key);

function tagged(): Harness {
  const h = new Harness();
  h.run(put('a', { region: 'r', tags: ['red'] }));
  h.run(put('b', { region: 'r', tags: ['red', 'big'] }));
  h.run(put('c', { region: 'r', tags: ['big'] }));
  h.run(put('d', { region: 'r' }));
  h.run(put('e', { region: 'other', tags: ['red'] }));
  return h;
}

describe('regions and tags', () => {
  test('no tags lists every item of the region, sorted by key', () => {
    const h = tagged();
    expect(keys(h.sm.listRegion('default', 'r', {}, T0))).toEqual(['a', 'b', 'c', 'd']);
    expect(keys(h.sm.listRegion('default', 'other', {}, T0))).toEqual(['e']);
    expect(h.sm.listRegion('default', 'none', {}, T0)).toEqual([]);
    expect(h.sm.listRegion('nocache', 'r', {}, T0)).toEqual([]);
  });

  test('match any: items with at least one of the tags', () => {
    const h = tagged();
    expect(keys(h.sm.listRegion('default', 'r', { tags: ['red'] }, T0))).toEqual(['a', 'b']);
    expect(keys(h.sm.listRegion('default', 'r', { tags: ['red', 'big'], match: 'any' }, T0))).toEqual(['a', 'b', 'c']);
    expect(keys(h.sm.listRegion('default', 'r', { tags: ['blue'] }, T0))).toEqual([]);
  });

  test('match all: items with every one of the tags', () => {
    const h = tagged();
    expect(keys(h.sm.listRegion('default', 'r', { tags: ['red', 'big'], match: 'all' }, T0))).toEqual(['b']);
    expect(keys(h.sm.listRegion('default', 'r', { tags: ['red', 'blue'], match: 'all' }, T0))).toEqual([]);
    expect(keys(h.sm.listRegion('default', 'r', { tags: ['big', 'big'], match: 'all' }, T0))).toEqual(['b', 'c']);
  });

  test('a rewrite replaces the tags in the index; duplicates in a put are dropped', () => {
    const h = tagged();
    h.run(put('b', { region: 'r', tags: ['blue', 'blue'] }));
    expect(keys(h.sm.listRegion('default', 'r', { tags: ['red'] }, T0))).toEqual(['a']);
    expect(keys(h.sm.listRegion('default', 'r', { tags: ['blue'] }, T0))).toEqual(['b']);
    expect(h.sm.get('default', 'r', 'b', T0)!.tags).toEqual(['blue']);
  });

  test('expired items are left out of listings', () => {
    const h = new Harness();
    h.run(put('a', { region: 'r', tags: ['t'], expiresAt: T0 + 5 }));
    h.run(put('b', { region: 'r', tags: ['t'] }));
    expect(keys(h.sm.listRegion('default', 'r', { tags: ['t'] }, T0 + 4))).toEqual(['a', 'b']);
    expect(keys(h.sm.listRegion('default', 'r', { tags: ['t'] }, T0 + 5))).toEqual(['b']);
  });

  test('limit returns the first items by key', () => {
    const h = tagged();
    expect(keys(h.sm.listRegion('default', 'r', { limit: 2 }, T0))).toEqual(['a', 'b']);
  });

  test('clearRegion removes the whole region at once with one clear event, and only that region', () => {
    const h = tagged();
    h.run(put('a', { tags: [] })); // default space, same key
    const bytesBefore = h.sm.stats('default')!.bytes;
    const { result, events } = h.apply({ type: 'clearRegion', cache: 'default', region: 'r', now: T0 });
    h.sm.checkInvariants();
    expect(result).toEqual({ code: 'ok', removed: 4 });
    expect(events).toEqual([{ type: 'clear', cache: 'default', region: 'r', key: null, version: h.index }]);
    expect(h.sm.listRegion('default', 'r', {}, T0)).toEqual([]);
    expect(h.sm.listRegion('default', 'r', { tags: ['red'] }, T0)).toEqual([]);
    expect(keys(h.sm.listRegion('default', 'other', {}, T0))).toEqual(['e']);
    expect(h.sm.get('default', null, 'a', T0)).not.toBeNull();
    expect(h.sm.stats('default')!.items).toBe(2);
    expect(h.sm.stats('default')!.bytes).toBeLessThan(bytesBefore);
    expect(h.sm.expiredItems(Number.MAX_SAFE_INTEGER)).toEqual([]);
  });

  test('clearing an empty region is ok and yields no event; in a missing cache it answers cache_not_found', () => {
    const h = new Harness();
    expect(h.apply({ type: 'clearRegion', cache: 'default', region: 'r', now: T0 })).toEqual({ result: { code: 'ok', removed: 0 }, events: [] });
    expect(h.run({ type: 'clearRegion', cache: 'nope', region: 'r', now: T0 })).toMatchObject({ code: 'cache_not_found' });
  });

  test('tag queries agree with a scan of the region, for any items and any query', () => {
    const TAGS = ['t1', 't2', 't3', 't4'];
    fc.assert(
      fc.property(
        fc.array(fc.record({ key: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'), tags: fc.subarray(TAGS), del: fc.boolean() }), { maxLength: 30 }),
        fc.subarray(TAGS),
        fc.constantFrom('any' as const, 'all' as const),
        (writes, query, match) => {
          const h = new Harness();
          const truth = new Map<string, string[]>();
          for (const w of writes) {
            if (w.del) {
              h.run({ type: 'delete', cache: 'default', region: 'r', key: w.key, ifMatch: null, lockHandle: null, now: T0 });
              truth.delete(w.key);
            } else {
              h.run(put(w.key, { region: 'r', tags: w.tags }));
              truth.set(w.key, w.tags);
            }
          }
          const expected = [...truth]
            .filter(([, tags]) => query.length === 0 || (match === 'any' ? query.some((t) => tags.includes(t)) : query.every((t) => tags.includes(t))))
            .map(([k]) => k)
            .sort();
          expect(keys(h.sm.listRegion('default', 'r', { tags: query, match }, T0))).toEqual(expected);
        },
      ),
    );
  });
});
