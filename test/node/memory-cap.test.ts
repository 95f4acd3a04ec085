// NodeMemory (src/node/memory-cap.ts) on its own: admission against every
// replica's node, in-flight growth counted, LRU room chosen once.
import { describe, expect, test } from 'vitest';
import { NodeMemory, defaultMaxMemoryBytes } from '../../src/node/memory-cap.js';
import { VeloError } from '../../src/node/errors.js';
import type { ItemVersionRef } from '../../src/cache/index.js';

const MiB = 1 << 20;
const key = (r: ItemVersionRef) => r.key;
const items = (n: number): ItemVersionRef[] => Array.from({ length: n }, (_, i) => ({ cache: 'c', region: null, key: `k${i}`, version: i + 1 }));

function admit(m: NodeMemory, growthBytes: number, eviction: 'lru' | 'none', replicas = ['n1', 'n2', 'n3'], pool = items(10), each = 1000) {
  return m.admitPut({
    partition: 0, replicas, growthBytes, cache: 'c', eviction, written: 'w', itemKey: key,
    choose: (bytes, skip) => {
      const out: ItemVersionRef[] = [];
      let freed = 0;
      for (const r of pool) if (freed < bytes && !skip.has(r.key)) (out.push(r), (freed += each));
      return { items: out, bytes: freed };
    },
  });
}

describe('NodeMemory', () => {
  test('the default cap is half the machine less headroom, never below 64 MiB', () => {
    expect(defaultMaxMemoryBytes(16 * 1024 * MiB)).toBe(8 * 1024 * MiB - 256 * MiB);
    expect(defaultMaxMemoryBytes(256 * MiB)).toBe(64 * MiB);
  });

  test('a follower node past its cap refuses the write at the leader with node_full naming it', () => {
    let local = 0;
    const m = new NodeMemory('n1', 10 * MiB, () => local);
    m.record('n2', { bytes: 100, capBytes: 64 * MiB });
    m.record('n3', { bytes: 2 * MiB - 10, capBytes: 2 * MiB });
    expect(() => admit(m, 100, 'none')).toThrowError(VeloError);
    try {
      admit(m, 100, 'none');
    } catch (e) {
      expect((e as VeloError).code).toBe('node_full');
      expect((e as VeloError).message).toContain('node n3');
    }
    // A partition n3 holds no replica of is not held back by it.
    expect(admit(m, 100, 'none', ['n1', 'n2']).evict).toEqual([]);
    // The leader's own node counts what its replicas hold now.
    local = 10 * MiB;
    expect(() => admit(m, 1, 'none', ['n1', 'n2'])).toThrowError(/node n1/);
  });

  test('growth admitted and not yet settled counts toward the leader node until it settles', () => {
    const m = new NodeMemory('n1', 2 * MiB, () => 0);
    const first = admit(m, MiB + 1, 'none', ['n1']);
    expect(m.report().bytes).toBe(MiB + 1);
    expect(() => admit(m, MiB, 'none', ['n1'])).toThrowError(/node n1/);
    first.settle();
    first.settle(); // twice is once
    expect(m.report().bytes).toBe(0);
    expect(admit(m, MiB, 'none', ['n1']).evict).toEqual([]);
  });

  test('an LRU cache at the cap evicts enough for the write and the excess, and never names an item twice while in flight', () => {
    const m = new NodeMemory('n1', 10 * MiB, () => 0);
    m.record('n2', { bytes: 10 * MiB + 1000, capBytes: 10 * MiB }); // 1000 over already
    const a = admit(m, 1500, 'lru');
    // The growth (1500) and the excess it would make (1000 + 1500): three items of 1000.
    expect(a.evict.map(key)).toEqual(['k0', 'k1', 'k2']);
    // n2 now counts 1500 less (until it reports again): 600 more takes it 100 over, and one item makes room.
    const b = admit(m, 600, 'lru');
    expect(b.evict.map(key)).toEqual(['k3']);
    a.settle();
    b.settle();
    m.record('n2', { bytes: 10 * MiB + 1000, capBytes: 10 * MiB });
    expect(admit(m, 500, 'lru').evict.map(key)).toEqual(['k0', 'k1']);
  });

  test('an LRU cache with too little to evict refuses with node_full', () => {
    const m = new NodeMemory('n1', 10 * MiB, () => 10 * MiB - 100);
    expect(() => admit(m, 3000, 'lru', ['n1'], items(2))).toThrowError(/only 2000 evictable bytes/);
  });

  test('a write that does not grow is admitted at the cap; a malformed peer report is ignored', () => {
    const m = new NodeMemory('n1', 10 * MiB, () => 10 * MiB);
    expect(admit(m, 0, 'none').evict).toEqual([]);
    m.record('n2', { bytes: -1, capBytes: 5 });
    m.record('n2', { bytes: '9', capBytes: 5 });
    m.record('n2', null);
    expect(m.standing('n2')).toBeUndefined();
  });
});
