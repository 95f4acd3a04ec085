import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { partitionOf, placePartitions } from '../../src/node/partition-map.js';

describe('partition map', () => {
  test('every item of a region hashes to the region’s partition, whatever its key', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), fc.string(), (cache, region, k1, k2) => {
        expect(partitionOf(16, cache, region, k1)).toBe(partitionOf(16, cache, region, k2));
      }),
    );
  });

  test('keys spread over all partitions roughly evenly', () => {
    const counts = new Array(16).fill(0);
    for (let i = 0; i < 16_000; i++) counts[partitionOf(16, 'default', null, `key-${i}`)]++;
    for (const c of counts) expect(c).toBeGreaterThan(700); // mean 1000
  });

  test('a key and a region of the same name are different places in general', () => {
    let differ = 0;
    for (let i = 0; i < 100; i++) if (partitionOf(16, 'c', `n${i}`, 'x') !== partitionOf(16, 'c', null, `n${i}`)) differ++;
    expect(differ).toBeGreaterThan(80);
  });

  test('replicas and preferred leaders are spread evenly over the nodes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 5 }), (n, p, r) => {
        const nodes = Array.from({ length: n }, (_, i) => `n${i + 1}`);
        const placement = placePartitions(nodes, p, r);
        const replicas = new Map<string, number>();
        const leaders = new Map<string, number>();
        for (const part of placement) {
          expect(new Set(part.replicas).size).toBe(Math.min(r, n));
          for (const id of part.replicas) replicas.set(id, (replicas.get(id) ?? 0) + 1);
          leaders.set(part.replicas[0]!, (leaders.get(part.replicas[0]!) ?? 0) + 1);
        }
        const rc = nodes.map((id) => replicas.get(id) ?? 0);
        const lc = nodes.map((id) => leaders.get(id) ?? 0);
        expect(Math.max(...rc) - Math.min(...rc)).toBeLessThanOrEqual(1);
        expect(Math.max(...lc) - Math.min(...lc)).toBeLessThanOrEqual(1);
      }),
      { numRuns: 2000 },
    );
  });

  test('bad shapes are refused with a clear error', () => {
    expect(() => placePartitions([], 16, 3)).toThrow(/at least one node/);
    expect(() => placePartitions(['a'], 0, 3)).toThrow(/partitions/);
    expect(() => placePartitions(['a'], 4, 0)).toThrow(/replicas/);
  });
});
