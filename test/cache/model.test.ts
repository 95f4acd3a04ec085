// The state machine against a reference model that holds the same rules over
// a flat map and answers every read by a scan: equal results and equal
// reads after every command of random histories mean the indexes (spaces,
// tag index, expiry heap, recency list, byte counts) never drift.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { CacheStateMachine, type Command, type Result } from '../../src/cache/index.js';
import { ReferenceModel, type ModelResult } from './reference-model.js';
import { CACHES, historyArb, KEYS, REGIONS, T0, TAGS } from './support.js';

function comparable(r: Result): ModelResult {
  const out: ModelResult = { code: r.code };
  if ('version' in r) out.version = r.version;
  if ('created' in r) out.created = r.created;
  if ('removed' in r) out.removed = r.removed;
  if ('expiresAt' in r) out.expiresAt = r.expiresAt;
  if ('item' in r) out.version = r.item.version;
  return out;
}

function compareReads(sm: CacheStateMachine, model: ReferenceModel, now: number): void {
  for (const cache of CACHES) {
    const stats = sm.stats(cache);
    const m = model.caches.get(cache);
    expect(stats === null).toBe(m === undefined);
    if (!stats || !m) continue;
    expect(stats).toMatchObject({ bytes: model.bytes(cache), evictions: m.evictions, expirations: m.expirations });
    for (const region of REGIONS) {
      for (const key of KEYS) {
        const got = sm.get(cache, region, key, now);
        const want = model.get(cache, region, key, now);
        expect(got && { ...got, tags: [...got.tags] }).toEqual(
          want && { region, key, value: want.value, contentType: want.contentType, version: want.version, expiresAt: want.expiresAt, tags: want.tags },
        );
      }
      if (region === null) continue;
      const list = (tags: string[], match: 'any' | 'all') => sm.listRegion(cache, region, { tags, match }, now).map((i) => i.key);
      expect(list([], 'any')).toEqual(model.list(cache, region, [], 'any', now));
      for (const t of TAGS) expect(list([t], 'any')).toEqual(model.list(cache, region, [t], 'any', now));
      expect(list(['t1', 't2'], 'all')).toEqual(model.list(cache, region, ['t1', 't2'], 'all', now));
      expect(list(['t2', 't3'], 'any')).toEqual(model.list(cache, region, ['t2', 't3'], 'any', now));
    }
    for (const bytes of [1, 500, 2000, Infinity]) expect(sm.lruCandidates(cache, bytes)).toEqual(model.lru(cache, bytes));
  }
  expect(sm.expiredItems(now)).toEqual(model.expired(now));
}

describe('the state machine agrees with a reference model', () => {
  test('same results, same reads, after every command of random histories', () => {
    const codes = new Map<string, number>();
    fc.assert(
      fc.property(historyArb, (steps) => {
        const sm = new CacheStateMachine(2);
        const model = new ReferenceModel(2);
        let now = T0;
        let index = 0;
        for (const s of steps) {
          let c: Command;
          if (s.kind === 'advance') {
            now += s.ms;
            compareReads(sm, model, now);
            continue;
          }
          if (s.kind === 'readRecency') {
            sm.touchRecency(s.cache, s.region, s.key);
            model.touchRecency(s.cache, s.region, s.key);
            continue;
          }
          if (s.kind === 'expireDue') c = { type: 'expire', items: sm.expiredItems(now, 10), now };
          else if (s.kind === 'evictLru') c = { type: 'evict', items: sm.lruCandidates(s.cache, s.bytes) };
          else c = s.make(now);
          index++;
          const got = comparable(sm.apply(index, c).result);
          expect(got).toEqual(model.apply(index, c));
          const tally = `${c.type}:${got.code}`;
          codes.set(tally, (codes.get(tally) ?? 0) + 1);
          sm.checkInvariants();
          compareReads(sm, model, now);
        }
      }),
      { numRuns: 200 },
    );
    if (process.env.SHOW_TALLY) console.log([...codes].sort());
    // The histories reach every outcome worth checking (a generator that never does is a silent gap).
    for (const must of [
      'put:ok',
      'put:precondition_failed',
      'put:locked',
      'put:lock_not_held',
      'put:cache_full',
      'put:cache_not_found',
      'delete:ok',
      'delete:locked',
      'lock:ok',
      'lock:locked',
      'unlock:ok',
      'touch:ok',
      'expire:ok',
      'evict:ok',
      'clearRegion:ok',
      'dropCache:ok',
    ]) {
      expect(codes.get(must) ?? 0, must).toBeGreaterThan(0);
    }
  });
});
