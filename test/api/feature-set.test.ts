// The Velocity feature set over real HTTP against one node: locks, regions
// and tags, optimistic concurrency on DELETE, eviction, statistics.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { serveNode } from '../support/served-node.js';
import type { Served } from '../support/served-node.js';

let served: Served;
let base: string;

beforeAll(async () => {
  served = await serveNode({ maxValueBytes: 64 * 1024 });
  base = served.base;
});

afterAll(async () => {
  await served.close();
});

const item = (key: string, cache = 'default') => `${base}/v1/caches/${cache}/items/${key}`;
const regionItem = (region: string, key: string) => `${base}/v1/caches/default/regions/${region}/items/${key}`;

describe('pessimistic locking', () => {
  test('lock returns the value and a handle; others get 423; the handle writes, keeps or releases the lock', async () => {
    await fetch(item('doc'), { method: 'PUT', body: 'v1' });
    const l = await fetch(`${item('doc')}/lock?timeoutMs=60000`, { method: 'POST' });
    expect(l.status).toBe(200);
    expect(await l.text()).toBe('v1');
    const handle = l.headers.get('x-velo-lock-handle')!;
    expect(handle).toMatch(/^[0-9a-f-]{36}$/);
    expect((await fetch(`${item('doc')}/lock?timeoutMs=60000`, { method: 'POST' })).status).toBe(423);
    expect((await fetch(item('doc'), { method: 'PUT', body: 'intruder' })).status).toBe(423);
    expect((await fetch(item('doc'), { method: 'DELETE' })).status).toBe(423);
    expect((await fetch(item('doc'), { method: 'PUT', body: 'v2', headers: { 'x-velo-lock-handle': handle } })).status).toBe(200);
    expect((await fetch(item('doc'), { method: 'PUT', body: 'still locked' })).status).toBe(423);
    expect((await fetch(`${item('doc')}?unlock=true`, { method: 'PUT', body: 'v3', headers: { 'x-velo-lock-handle': handle } })).status).toBe(200);
    expect((await fetch(item('doc'), { method: 'PUT', body: 'v4' })).status).toBe(200);
    expect(await (await fetch(item('doc'))).text()).toBe('v4');
  });

  test('unlock with the wrong handle is 409; with the right one 204; locking a missing item is 404', async () => {
    await fetch(item('u'), { method: 'PUT', body: 'x' });
    const handle = (await fetch(`${item('u')}/lock?timeoutMs=60000`, { method: 'POST' })).headers.get('x-velo-lock-handle')!;
    expect((await fetch(`${item('u')}/unlock`, { method: 'POST', headers: { 'x-velo-lock-handle': 'not-the-handle' } })).status).toBe(409);
    expect((await fetch(`${item('u')}/unlock`, { method: 'POST', headers: { 'x-velo-lock-handle': handle } })).status).toBe(204);
    expect((await fetch(item('u'), { method: 'PUT', body: 'free' })).status).toBe(200);
    expect((await fetch(`${item('nothing-here')}/lock?timeoutMs=1000`, { method: 'POST' })).status).toBe(404);
    expect((await fetch(`${item('u')}/lock`, { method: 'POST' })).status).toBe(400);
  });

  test('a lock expires by itself at the instant the leader fixed', async () => {
    await fetch(item('short'), { method: 'PUT', body: 'x' });
    const l = await fetch(`${item('short')}/lock?timeoutMs=300`, { method: 'POST' });
    const expiresAt = Number(l.headers.get('x-velo-lock-expires-at'));
    expect((await fetch(item('short'), { method: 'PUT', body: 'early' })).status).toBe(423);
    // Poll: writes fail before the deadline and succeed after it.
    for (;;) {
      const before = Date.now();
      const r = await fetch(item('short'), { method: 'PUT', body: 'late' });
      if (r.status === 200) {
        expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
        break;
      }
      expect(r.status).toBe(423);
      expect(before).toBeLessThanOrEqual(expiresAt + 50);
      await new Promise((res) => setTimeout(res, 20));
    }
  });
});

describe('optimistic concurrency', () => {
  test('DELETE with If-Match removes only the current version', async () => {
    const v = ((await (await fetch(item('om'), { method: 'PUT', body: 'a' })).json()) as { version: string }).version;
    await fetch(item('om'), { method: 'PUT', body: 'b' });
    expect((await fetch(item('om'), { method: 'DELETE', headers: { 'if-match': `"${v}"` } })).status).toBe(412);
    const v2 = (await fetch(item('om'))).headers.get('etag')!;
    expect((await fetch(item('om'), { method: 'DELETE', headers: { 'if-match': v2 } })).status).toBe(204);
  });
});

describe('regions and tags', () => {
  test('items by tags (any, all), all items, and an atomic clear', async () => {
    const put = (key: string, tags: string, body: string, type = 'application/json') =>
      fetch(`${regionItem('r1', key)}?tags=${tags}`, { method: 'PUT', body, headers: { 'content-type': type } });
    expect((await put('a', 'red,big', '{"n":1}')).status).toBe(201);
    expect((await put('b', 'red', '{"n":2}')).status).toBe(201);
    expect((await put('c', 'big', 'raw', 'text/plain')).status).toBe(201);
    type List = { items: { key: string; tags: string[]; value?: unknown; valueBase64?: string }[] };
    const list = async (q: string) => ((await (await fetch(`${base}/v1/caches/default/regions/r1/items${q}`)).json()) as List).items;
    expect((await list('')).map((i) => i.key)).toEqual(['a', 'b', 'c']);
    expect((await list('?tag=red')).map((i) => i.key)).toEqual(['a', 'b']);
    expect((await list('?tag=red&tag=big&match=any')).map((i) => i.key)).toEqual(['a', 'b', 'c']);
    expect((await list('?tag=red&tag=big&match=all')).map((i) => i.key)).toEqual(['a']);
    const all = await list('');
    expect(all[0]!.value).toEqual({ n: 1 });
    expect(Buffer.from(all[2]!.valueBase64!, 'base64').toString()).toBe('raw');
    expect((await fetch(regionItem('r1', 'a'))).headers.get('x-velo-tags')).toBe('red,big');
    const cleared = await fetch(`${base}/v1/caches/default/regions/r1`, { method: 'DELETE' });
    expect(await cleared.json()).toEqual({ removed: 3 });
    expect(await list('')).toEqual([]);
    expect((await fetch(regionItem('r1', 'a'))).status).toBe(404);
  });

  test('tags on an item outside a region are refused', async () => {
    expect((await fetch(`${item('t')}?tags=x`, { method: 'PUT', body: 'x' })).status).toBe(400);
  });
});

describe('eviction and statistics', () => {
  test('eviction "none": a write past maxBytes answers 507 cache_full', async () => {
    await fetch(`${base}/v1/caches/tight`, { method: 'PUT', body: JSON.stringify({ maxBytes: 8000, eviction: 'none' }), headers: { 'content-type': 'application/json' } });
    let full = 0;
    for (let i = 0; i < 40 && full === 0; i++) {
      const r = await fetch(item(`k${i}`, 'tight'), { method: 'PUT', body: 'x'.repeat(500) });
      if (r.status === 507) {
        full++;
        expect(((await r.json()) as { error: { code: string } }).error.code).toBe('cache_full');
      } else expect(r.status).toBe(201);
    }
    expect(full).toBe(1);
  });

  test('eviction "lru": the cache is brought under maxBytes, least recently used first, and evictions are counted', async () => {
    await fetch(`${base}/v1/caches/lru`, { method: 'PUT', body: JSON.stringify({ maxBytes: 40000, eviction: 'lru' }), headers: { 'content-type': 'application/json' } });
    await fetch(item('hot', 'lru'), { method: 'PUT', body: 'h'.repeat(1000) });
    for (let i = 0; i < 80; i++) {
      await fetch(item(`cold${i}`, 'lru'), { method: 'PUT', body: 'c'.repeat(1000) });
      expect((await fetch(item('hot', 'lru'))).status).toBe(200); // keeps "hot" recently used
    }
    type Stats = { items: number; bytes: number; evictions: number; hits: number; misses: number };
    let stats: Stats = { items: 0, bytes: Infinity, evictions: 0, hits: 0, misses: 0 };
    for (let i = 0; i < 500 && stats.bytes > 40000; i++) {
      stats = (await (await fetch(`${base}/v1/caches/lru/stats`)).json()) as Stats;
      if (stats.bytes > 40000) await new Promise((r) => setTimeout(r, 10));
    }
    expect(stats.bytes).toBeLessThanOrEqual(40000);
    expect(stats.evictions).toBeGreaterThan(0);
    expect(stats.hits).toBeGreaterThanOrEqual(80);
    expect((await fetch(item('hot', 'lru'))).status).toBe(200);
    expect((await fetch(item('cold0', 'lru'))).status).toBe(404);
    const after = (await (await fetch(`${base}/v1/caches/lru/stats`)).json()) as Stats;
    expect(after.misses).toBeGreaterThanOrEqual(1);
  });
});
