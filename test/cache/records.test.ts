// The records of backup and bulk load: what is encoded decodes to the same
// items; anything truncated, altered in structure or beyond a limit is
// refused whole with a RecordsError, never half-read.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { RecordsError, decodePartitionExport, decodeRecords, encodePartitionExport, encodeRecords } from '../../src/cache/index.js';
import type { ItemRecord, PartitionExport } from '../../src/cache/index.js';

const name = fc.string({ minLength: 1, maxLength: 12 });
const record: fc.Arbitrary<ItemRecord> = fc
  .record({
    cache: fc.constantFrom('default', 'sessions'),
    region: fc.option(name, { nil: null }),
    key: name,
    value: fc.uint8Array({ maxLength: 64 }),
    contentType: fc.constantFrom('text/plain', 'application/json', 'application/octet-stream'),
    expiresAt: fc.option(fc.integer({ min: 0, max: 2 ** 45 }), { nil: null }),
    tags: fc.uniqueArray(name, { maxLength: 4 }),
  })
  .map((r) => ({ ...r, tags: r.region === null ? [] : r.tags }));

const exported: fc.Arbitrary<PartitionExport> = fc.record({
  partition: fc.nat(255),
  index: fc.nat(),
  caches: fc.constant([
    { name: 'default', settings: { defaultTtlMs: 0, maxBytes: null, eviction: 'lru' as const } },
    { name: 'sessions', settings: { defaultTtlMs: 1200000, maxBytes: 1 << 30, eviction: 'none' as const } },
  ]),
  items: fc.array(record, { maxLength: 20 }),
});

describe('item records', () => {
  test('round trip', () => {
    fc.assert(fc.property(fc.array(record, { maxLength: 30 }), (items) => {
      expect(decodeRecords(encodeRecords(items))).toEqual(items);
    }), { seed: 7, numRuns: 300 });
  });

  test('a partition export round trips', () => {
    fc.assert(fc.property(exported, (e) => {
      expect(decodePartitionExport(encodePartitionExport(e))).toEqual(e);
    }), { seed: 8, numRuns: 300 });
  });

  test('every truncation of an export is refused whole', () => {
    fc.assert(
      fc.property(exported, fc.double({ min: 0, max: 1, noNaN: true }), (e, at) => {
        const bytes = encodePartitionExport(e);
        const cut = Math.floor(at * (bytes.length - 1));
        expect(() => decodePartitionExport(bytes.subarray(0, cut))).toThrow(RecordsError);
      }),
      { seed: 9, numRuns: 300 },
    );
  });

  test('trailing bytes, a bad magic, an unknown format and an item of an unknown cache are refused', () => {
    const e: PartitionExport = { partition: 1, index: 5, caches: [{ name: 'default', settings: { defaultTtlMs: 0, maxBytes: null, eviction: 'lru' } }], items: [] };
    const ok = encodePartitionExport(e);
    expect(() => decodePartitionExport(new Uint8Array([...ok, 0]))).toThrow(/trailing/);
    expect(() => decodePartitionExport(new Uint8Array([0x58, ...ok.subarray(1)]))).toThrow(/bad magic/);
    const f = ok.slice();
    f[4] = 9;
    expect(() => decodePartitionExport(f)).toThrow(/unknown .* format 9/);
    const item: ItemRecord = { cache: 'other', region: null, key: 'k', value: new Uint8Array(1), contentType: 'text/plain', expiresAt: null, tags: [] };
    expect(() => decodePartitionExport(encodePartitionExport({ ...e, items: [item] }))).toThrow(/unknown cache other/);
    expect(() => decodeRecords(encodeRecords([{ ...item, cache: 'default', tags: ['t'] }]))).toThrow(/tags are for region items only/);
    expect(() => decodeRecords(encodeRecords([{ ...item, key: '' }]))).toThrow(RecordsError);
  });
});
