import fc from 'fast-check';
import { crc32 } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { CacheStateMachine, SnapshotError } from '../../src/cache/index.js';
import { CACHES, enc, historyArb, KEYS, play, put, REGIONS, T0, TAGS } from './support.js';

/** Everything a client or the leader can observe of a state machine at `now`. */
function observe(sm: CacheStateMachine, now: number): unknown {
  const caches = sm.listCaches();
  return {
    applied: sm.appliedIndex,
    caches,
    per: caches.map(({ name }) => ({
      stats: sm.stats(name),
      bytesToFree: sm.bytesToFree(name),
      lru: sm.lruCandidates(name, Infinity),
      items: REGIONS.flatMap((r) => KEYS.map((k) => sm.get(name, r, k, now))),
      lists: ['r1', 'r2'].map((r) => [
        sm.listRegion(name, r, {}, now),
        ...TAGS.map((t) => sm.listRegion(name, r, { tags: [t, 'zz'], match: 'any' }, now)),
        sm.listRegion(name, r, { tags: ['t1', 't2'], match: 'all' }, now),
      ]),
    })),
    expired: sm.expiredItems(now + 500),
  };
}

/** What a handle-less write meets at each item: 'locked' where a live lock holds it. Changes nothing but the applied index. */
function probeLocks(sm: CacheStateMachine, now: number): string[] {
  const out: string[] = [];
  for (const cache of CACHES)
    for (const region of REGIONS)
      for (const key of KEYS) {
        const c = put(key, { cache, region, now, condition: { kind: 'ifMatch', version: Number.MAX_SAFE_INTEGER } });
        out.push(sm.apply(sm.appliedIndex + 1, c).result.code);
      }
  return out;
}

describe('snapshot and restore', () => {
  test('locks, expiries, tags, settings and counters survive a restore', () => {
    const sm = new CacheStateMachine(4);
    let i = 0;
    sm.apply(++i, { type: 'putCache', name: 'c', settings: { defaultTtlMs: 7, maxBytes: 1_000_000, eviction: 'none' } });
    sm.apply(++i, put('k', { cache: 'c', region: 'r', tags: ['x', 'y'], expiresAt: T0 + 50, value: enc('v') }));
    sm.apply(++i, { type: 'lock', cache: 'c', region: 'r', key: 'k', handle: 'h', lockExpiresAt: T0 + 40, now: T0 });
    sm.apply(++i, put('gone', { cache: 'c', expiresAt: T0 + 1 }));
    sm.apply(++i, { type: 'expire', items: sm.expiredItems(T0 + 1), now: T0 + 1 });
    const r = CacheStateMachine.restore(sm.snapshot());
    expect(r.cacheSettings('c')).toEqual({ defaultTtlMs: 7, maxBytes: 1_000_000, eviction: 'none' });
    expect(r.stats('c')).toEqual(sm.stats('c'));
    expect(r.stats('c')!.expirations).toBe(1);
    expect(r.get('c', 'r', 'k', T0)).toEqual(sm.get('c', 'r', 'k', T0));
    expect(r.listRegion('c', 'r', { tags: ['x', 'y'], match: 'all' }, T0).map((x) => x.key)).toEqual(['k']);
    expect(r.expiredItems(T0 + 50)).toEqual([{ cache: 'c', region: 'r', key: 'k', version: 2 }]);
    expect(r.apply(++i, put('k', { cache: 'c', region: 'r', now: T0 + 39 })).result.code).toBe('locked');
    expect(r.apply(++i, put('k', { cache: 'c', region: 'r', now: T0 + 39, lockHandle: 'h', unlock: true })).result.code).toBe('ok');
    expect(r.maxBytesShare).toBe(4);
  });

  test('restore(snapshot()) is equal in every observable way, and behaves the same afterwards', () => {
    fc.assert(
      fc.property(historyArb, historyArb, (history, future) => {
        const sm = new CacheStateMachine(2);
        // No leader-local recency moves before the snapshot, so that the rebuilt recency order must match too.
        play([sm], history.filter((s) => s.kind !== 'readRecency'));
        const now = T0 + 10_000;
        const restored = CacheStateMachine.restore(sm.snapshot());
        restored.checkInvariants();
        expect(restored.maxBytesShare).toBe(2);
        expect(observe(restored, now)).toEqual(observe(sm, now));
        expect(restored.snapshot()).toEqual(sm.snapshot());
        // Locks are not visible to reads: probe every item with a write that never succeeds (If-Match on an impossible version).
        // At the history's last instant, where its locks may still hold.
        const end = T0 + history.reduce((n, s) => n + (s.kind === 'advance' ? s.ms : 0), 0);
        expect(observe(restored, end)).toEqual(observe(sm, end));
        expect(probeLocks(restored, end)).toEqual(probeLocks(sm, end));
        // The same later commands give the same results on both.
        play([sm, restored], future, {
          index: sm.appliedIndex,
          now,
          after: (_c, _i, _now, [a, b]) => expect(b).toEqual(a),
        });
        restored.checkInvariants();
        expect(observe(restored, now + 10_000)).toEqual(observe(sm, now + 10_000));
        expect(restored.snapshot()).toEqual(sm.snapshot());
      }),
      { numRuns: 150 },
    );
  });

  test('two replicas fed the same commands reach byte-identical snapshots', () => {
    fc.assert(
      fc.property(historyArb, (history) => {
        const a = new CacheStateMachine(3);
        const b = new CacheStateMachine(3);
        // Leader-local calls (reads, recency) happen on one replica only: they must not reach the replicated state.
        a.recordRead('default', true);
        play([a, b], history, {
          after: (_c, _i, _now, [ra, rb]) => {
            expect(rb).toEqual(ra);
            a.touchRecency('default', null, 'a');
          },
        });
        expect(a.snapshot()).toEqual(b.snapshot());
      }),
      { numRuns: 200 },
    );
  });

  test('a snapshot holds values as raw bytes', () => {
    const sm = new CacheStateMachine();
    const value = new Uint8Array(50_000).fill(7);
    sm.apply(1, put('k', { value }));
    const snap = sm.snapshot();
    expect(snap.length).toBeLessThan(value.length + 200);
    expect(Buffer.from(snap).includes(Buffer.from(value))).toBe(true);
  });

  test('an empty machine round-trips', () => {
    const sm = new CacheStateMachine();
    const r = CacheStateMachine.restore(sm.snapshot());
    expect(r.listCaches()).toEqual(sm.listCaches());
    expect(r.appliedIndex).toBe(0);
  });

  function sample(): Uint8Array {
    const sm = new CacheStateMachine();
    let i = 0;
    sm.apply(++i, { type: 'putCache', name: 'c1', settings: { defaultTtlMs: 5, maxBytes: 10_000, eviction: 'none' } });
    for (const k of ['a', 'b', 'c', 'd']) sm.apply(++i, put(k, { cache: CACHES[i % 2]!, region: 'r1', tags: ['t1'], expiresAt: T0 + i }));
    expect(sm.apply(++i, { type: 'lock', cache: 'default', region: 'r1', key: 'a', handle: 'h', lockExpiresAt: T0 + 99, now: T0 }).result.code).toBe('ok');
    return sm.snapshot();
  }

  test('every truncation of a snapshot is refused with SnapshotError', () => {
    const snap = sample();
    for (let n = 0; n < snap.length; n++) expect(() => CacheStateMachine.restore(snap.subarray(0, n))).toThrow(SnapshotError);
  });

  test('any flipped byte is refused by the checksum', () => {
    const snap = sample();
    fc.assert(
      fc.property(fc.nat({ max: snap.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, x) => {
        const bad = snap.slice();
        bad[at]! ^= x;
        expect(() => CacheStateMachine.restore(bad)).toThrow(SnapshotError);
      }),
    );
  });

  test('garbage is refused with a clear error, never half restored', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        expect(() => CacheStateMachine.restore(b)).toThrow(SnapshotError);
      }),
    );
    expect(() => CacheStateMachine.restore(new Uint8Array(100))).toThrow(/checksum/);
  });

  test('a well-checksummed snapshot that breaks the rules is refused too (bad magic, format, structure)', () => {
    // Re-sign a modified body with a correct CRC, so that the parser, not the checksum, must catch it.
    const resign = (body: Uint8Array): Uint8Array => {
      const out = new Uint8Array(body.length + 4);
      out.set(body);
      new DataView(out.buffer).setUint32(body.length, crc32(body)); // zlib's CRC-32: an independent check of ours
      return out;
    };
    const snap = sample();
    const body = snap.subarray(0, snap.length - 4);
    const wrongFormat = body.slice();
    wrongFormat[4] = 99;
    expect(() => CacheStateMachine.restore(resign(wrongFormat))).toThrow(/unknown snapshot format 99/);
    const wrongMagic = body.slice();
    wrongMagic[0] = 0x58;
    expect(() => CacheStateMachine.restore(resign(wrongMagic))).toThrow(/magic/);
    const trailing = new Uint8Array(body.length + 1);
    trailing.set(body);
    expect(() => CacheStateMachine.restore(resign(trailing))).toThrow(/trailing/);
    // appliedIndex lowered below the items' versions: an impossible state.
    const lowIndex = body.slice();
    expect(lowIndex[6]).toBe(6); // magic 4, format 1, share 1, appliedIndex 6
    lowIndex[6] = 2;
    expect(() => CacheStateMachine.restore(resign(lowIndex))).toThrow(/version/);
  });
});

