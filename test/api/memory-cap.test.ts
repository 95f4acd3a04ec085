// The node-wide memory cap (--max-memory) on one real served node: writes
// past it answer 507 node_full while reads and deletes go on; a cache with
// eviction "lru" evicts its least recently used items instead.
import { afterEach, describe, expect, test } from 'vitest';
import { serveNode } from '../support/served-node.js';
import type { Served } from '../support/served-node.js';

const CAP_BYTES = 1 << 20;
const VALUE = new Uint8Array(16 * 1024).fill(7);

let served: Served | null = null;

afterEach(async () => {
  await served?.close();
  served = null;
});

async function gauge(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = new RegExp(`^${name} ([0-9]+)$`, 'm').exec(text);
  if (!m) throw new Error(`no ${name} in /metrics`);
  return Number(m[1]);
}

async function createCache(base: string, name: string, eviction: 'lru' | 'none'): Promise<void> {
  const r = await fetch(`${base}/v1/caches/${name}`, { method: 'PUT', body: JSON.stringify({ eviction }), headers: { 'content-type': 'application/json' } });
  expect(r.status).toBeLessThan(300);
}

const put = (base: string, cache: string, key: string) => fetch(`${base}/v1/caches/${cache}/items/${key}`, { method: 'PUT', body: VALUE });

describe('node memory cap', () => {
  test('/metrics shows the accounted bytes and the cap', async () => {
    served = await serveNode({ maxValueBytes: 1 << 20, maxMemoryBytes: CAP_BYTES });
    expect(await gauge(served.base, 'velo_memory_max_bytes')).toBe(CAP_BYTES);
    const before = await gauge(served.base, 'velo_memory_accounted_bytes');
    expect((await put(served.base, 'default', 'one')).status).toBe(201);
    expect(await gauge(served.base, 'velo_memory_accounted_bytes')).toBeGreaterThanOrEqual(before + VALUE.length);
  });

  test('writes to a cache that does not evict stop at 507 node_full; reads and deletes keep working', async () => {
    served = await serveNode({ maxValueBytes: 1 << 20, maxMemoryBytes: CAP_BYTES });
    const { base } = served;
    await createCache(base, 'fixed', 'none');
    const written: string[] = [];
    let refused: Response | null = null;
    for (let i = 0; i < 200 && refused === null; i++) {
      const r = await put(base, 'fixed', `k${i}`);
      if (r.status === 201) written.push(`k${i}`);
      else refused = r;
    }
    expect(refused?.status).toBe(507);
    const body = (await refused!.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('node_full');
    expect(body.error.message).toContain('--max-memory');
    // The cap held: what was admitted fits under it.
    expect(written.length).toBeGreaterThan(10);
    expect(await gauge(base, 'velo_memory_accounted_bytes')).toBeLessThanOrEqual(CAP_BYTES);
    // The refused write changed nothing; every admitted item is still there.
    expect((await fetch(`${base}/v1/caches/fixed/items/k${written.length}`)).status).toBe(404);
    for (const k of written) expect((await fetch(`${base}/v1/caches/fixed/items/${k}`)).status).toBe(200);
    // A write that does not grow anything still goes through at the cap.
    expect((await fetch(`${base}/v1/caches/fixed/items/${written[0]}`, { method: 'PUT', body: VALUE })).status).toBe(200);
    // Deletes work, and free room for a new write.
    expect((await fetch(`${base}/v1/caches/fixed/items/${written[1]}`, { method: 'DELETE' })).status).toBe(204);
    expect((await fetch(`${base}/v1/caches/fixed/items/${written[2]}`, { method: 'DELETE' })).status).toBe(204);
    expect((await put(base, 'fixed', 'after-delete')).status).toBe(201);
  });

  test('a cache with eviction "lru" evicts its least recently used items instead of refusing', async () => {
    served = await serveNode({ maxValueBytes: 1 << 20, maxMemoryBytes: CAP_BYTES });
    const { base } = served;
    await createCache(base, 'lru', 'lru');
    const writes = 3 * Math.ceil(CAP_BYTES / VALUE.length);
    for (let i = 0; i < writes; i++) expect((await put(base, 'lru', `k${i}`)).status).toBe(201);
    // Evictions are applied in the log before the write that needed them: the cap holds after every write.
    expect(await gauge(base, 'velo_memory_accounted_bytes')).toBeLessThanOrEqual(CAP_BYTES);
    const stats = (await (await fetch(`${base}/v1/caches/lru/stats`)).json()) as { items: number; evictions: number };
    expect(stats.evictions).toBeGreaterThan(0);
    expect(stats.items + stats.evictions).toBe(writes);
    // The newest write is there, the oldest was evicted.
    expect((await fetch(`${base}/v1/caches/lru/items/k${writes - 1}`)).status).toBe(200);
    expect((await fetch(`${base}/v1/caches/lru/items/k0`)).status).toBe(404);
  });
});
