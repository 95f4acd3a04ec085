// The HTTP contract (API.md) against one real node over real HTTP.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { until } from '../../scripts/poll.js';
import { serveNode } from '../support/served-node.js';
import type { Served } from '../support/served-node.js';

let served: Served;
let base: string;

beforeAll(async () => {
  served = await serveNode({ maxValueBytes: 1024 });
  base = served.base;
});

afterAll(async () => {
  await served.close();
});

const item = (key: string, cache = 'default') => `${base}/v1/caches/${cache}/items/${encodeURIComponent(key)}`;

const SHORT_TTL_MS = 300;

interface TimedRead {
  startedAt: number;
  endedAt: number;
  status: number;
  expiresAt: number | null;
}

/** Reads `key` until it is gone (the state is the synchronisation point, polled): every read, timed. */
async function readUntilGone(key: string): Promise<TimedRead[]> {
  const reads: TimedRead[] = [];
  await until(`${key} to expire`, async () => {
    const startedAt = Date.now();
    const r = await fetch(item(key));
    await r.arrayBuffer();
    const header = r.headers.get('x-velo-expires-at');
    reads.push({ startedAt, endedAt: Date.now(), status: r.status, expiresAt: header === null ? null : Number(header) });
    return r.status !== 200;
  }, 10_000, 20);
  return reads;
}

describe('items over HTTP', () => {
  test('PUT creates (201) then replaces (200); GET returns the same bytes, type and ETag', async () => {
    const body = new Uint8Array([0, 1, 2, 255]);
    const r1 = await fetch(item('bytes'), { method: 'PUT', body, headers: { 'content-type': 'application/x-test' } });
    expect(r1.status).toBe(201);
    const j1 = (await r1.json()) as { version: string; created: boolean };
    expect(j1.created).toBe(true);
    expect(r1.headers.get('etag')).toBe(`"${j1.version}"`);
    const r2 = await fetch(item('bytes'), { method: 'PUT', body: 'v2', headers: { 'content-type': 'text/plain' } });
    expect(r2.status).toBe(200);
    const j2 = (await r2.json()) as { version: string };
    expect(Number(j2.version)).toBeGreaterThan(Number(j1.version));
    const g = await fetch(item('bytes'));
    expect(g.status).toBe(200);
    expect(g.headers.get('content-type')).toBe('text/plain');
    expect(g.headers.get('etag')).toBe(`"${j2.version}"`);
    expect(await g.text()).toBe('v2');
  });

  test('a value keeps its exact bytes, the default type is application/octet-stream', async () => {
    const body = new Uint8Array(300).map((_, i) => (i * 7) & 255);
    await fetch(item('raw'), { method: 'PUT', body });
    const g = await fetch(item('raw'));
    expect(g.headers.get('content-type')).toBe('application/octet-stream');
    expect(new Uint8Array(await g.arrayBuffer())).toEqual(body);
  });

  test('If-None-Match: * creates only; If-Match compares the version', async () => {
    expect((await fetch(item('cas'), { method: 'PUT', body: 'a', headers: { 'if-none-match': '*' } })).status).toBe(201);
    expect((await fetch(item('cas'), { method: 'PUT', body: 'b', headers: { 'if-none-match': '*' } })).status).toBe(412);
    const v = (await fetch(item('cas'))).headers.get('etag')!;
    expect((await fetch(item('cas'), { method: 'PUT', body: 'c', headers: { 'if-match': '"1"' } })).status).toBe(412);
    expect((await fetch(item('cas'), { method: 'PUT', body: 'c', headers: { 'if-match': v } })).status).toBe(200);
    expect((await fetch(item('cas'), { method: 'PUT', body: 'd', headers: { 'if-match': v } })).status).toBe(412);
    expect(await (await fetch(item('cas'))).text()).toBe('c');
  });

  test('DELETE answers 204, then 404; GET of a missing key is 404 with a JSON error', async () => {
    await fetch(item('gone'), { method: 'PUT', body: 'x' });
    expect((await fetch(item('gone'), { method: 'DELETE' })).status).toBe(204);
    expect((await fetch(item('gone'), { method: 'DELETE' })).status).toBe(404);
    const g = await fetch(item('gone'));
    expect(g.status).toBe(404);
    expect(((await g.json()) as { error: { code: string } }).error.code).toBe('not_found');
  });

  test('ttlMs makes an item expire: X-Velo-Expires-At is set, and touch moves it', async () => {
    // The node runs in this process, on the same clock: each read's start and end bound the time the
    // node judged it at. No read may find the item gone before its expiry, or there after it.
    const misjudged = (reads: TimedRead[], expiresAt: number) =>
      reads.filter((r) => (r.status === 200 ? !(r.startedAt < expiresAt && r.expiresAt === expiresAt) : !(r.status === 404 && r.endedAt >= expiresAt)));

    // An item put with a short ttlMs expires on its own, at the time its header says.
    const putAt = Date.now();
    expect((await fetch(`${item('ttl')}?ttlMs=${SHORT_TTL_MS}`, { method: 'PUT', body: 'x' })).status).toBe(201);
    const putDone = Date.now();
    const reads = await readUntilGone('ttl');
    const seenAt = reads.find((r) => r.status === 200)?.expiresAt ?? null;
    if (seenAt !== null) {
      expect(seenAt).toBeGreaterThanOrEqual(putAt + SHORT_TTL_MS);
      expect(seenAt).toBeLessThanOrEqual(putDone + SHORT_TTL_MS);
    }
    expect(misjudged(reads, seenAt ?? putAt + SHORT_TTL_MS)).toEqual([]);

    // A long-lived item carries its expiry; a touch with a short ttlMs moves it, and the item expires then.
    const longAt = Date.now();
    await fetch(`${item('touched')}?ttlMs=60000`, { method: 'PUT', body: 'x' });
    const longDone = Date.now();
    const g = await fetch(item('touched'));
    expect(g.status).toBe(200);
    const at = Number(g.headers.get('x-velo-expires-at'));
    expect(at).toBeGreaterThanOrEqual(longAt + 60000);
    expect(at).toBeLessThanOrEqual(longDone + 60000);
    const touchAt = Date.now();
    const t = await fetch(`${item('touched')}/touch?ttlMs=${SHORT_TTL_MS}`, { method: 'POST' });
    const touchDone = Date.now();
    expect(t.status).toBe(200);
    const moved = ((await t.json()) as { expiresAt: number }).expiresAt;
    expect(moved).toBeGreaterThanOrEqual(touchAt + SHORT_TTL_MS);
    expect(moved).toBeLessThanOrEqual(touchDone + SHORT_TTL_MS);
    const touchedReads = await readUntilGone('touched');
    expect(misjudged(touchedReads, moved)).toEqual([]);
  });

  test('consistency=local answers from the local replica and says whether it may be stale', async () => {
    await fetch(item('loc'), { method: 'PUT', body: 'x' });
    const g = await fetch(`${item('loc')}?consistency=local`);
    expect(g.status).toBe(200);
    expect(g.headers.get('x-velo-stale')).toBe('false'); // the only replica leads
  });

  test('bad input gets a clear error and changes nothing', async () => {
    const cases: [string, RequestInit, number][] = [
      [`${item('bad')}?ttlMs=-5`, { method: 'PUT', body: 'x' }, 400],
      [`${item('bad')}?ttlMs=abc`, { method: 'PUT', body: 'x' }, 400],
      [`${item('bad')}?consistency=weird`, { method: 'GET' }, 400],
      [item('bad'), { method: 'PUT', body: 'x', headers: { 'if-match': 'garbage' } }, 400],
      [item('bad'), { method: 'PUT', body: 'x'.repeat(2000) }, 413],
      [item('k'.repeat(251)), { method: 'PUT', body: 'x' }, 400],
      [item('bad', 'nosuchcache'), { method: 'PUT', body: 'x' }, 404],
    ];
    for (const [url, init, status] of cases) {
      const r = await fetch(url, init);
      expect({ url: url.slice(base.length), status: r.status }).toEqual({ url: url.slice(base.length), status });
      const j = (await r.json()) as { error: { code: string; message: string } };
      expect(j.error.message.length).toBeGreaterThan(0);
    }
    expect((await fetch(item('bad'))).status).toBe(404);
  });
});

describe('caches and operations over HTTP', () => {
  test('a cache is created with settings, listed, used and dropped', async () => {
    const put = await fetch(`${base}/v1/caches/sessions`, { method: 'PUT', body: JSON.stringify({ defaultTtlMs: 30000 }), headers: { 'content-type': 'application/json' } });
    expect(put.status).toBe(201);
    const list = (await (await fetch(`${base}/v1/caches`)).json()) as { caches: { name: string; settings: { defaultTtlMs: number } }[] };
    expect(list.caches.find((c) => c.name === 'sessions')?.settings.defaultTtlMs).toBe(30000);
    await fetch(item('s1', 'sessions'), { method: 'PUT', body: 'x' });
    expect((await fetch(item('s1', 'sessions'))).headers.get('x-velo-expires-at')).not.toBeNull();
    const stats = (await (await fetch(`${base}/v1/caches/sessions/stats`)).json()) as { items: number };
    expect(stats.items).toBe(1);
    expect((await fetch(`${base}/v1/caches/sessions`, { method: 'DELETE' })).status).toBe(204);
    expect((await fetch(item('s1', 'sessions'))).status).toBe(404);
  });

  test('bad cache settings and malformed JSON are refused with 400 and change nothing', async () => {
    for (const body of [JSON.stringify({ eviction: 'random' }), JSON.stringify({ defaultTtlMs: -1 }), '{"defaultTtlMs": 5', '[1,2]']) {
      const r = await fetch(`${base}/v1/caches/x`, { method: 'PUT', body, headers: { 'content-type': 'application/json' } });
      expect({ body, status: r.status }).toEqual({ body, status: 400 });
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('bad_request');
    }
    const list = (await (await fetch(`${base}/v1/caches`)).json()) as { caches: { name: string }[] };
    expect(list.caches.map((c) => c.name)).not.toContain('x');
  });

  test('healthz, readyz, cluster and metrics answer', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const c = (await (await fetch(`${base}/v1/cluster`)).json()) as { node: string; partitions: { leader: string }[] };
    expect(c.node).toBe('n1');
    expect(c.partitions.every((p) => p.leader === 'n1')).toBe(true);
    const m = await (await fetch(`${base}/metrics`)).text();
    expect(m).toMatch(/^velo_requests_total [1-9]\d*$/m);
    expect(m).toMatch(/^velo_raft_role\{partition="0"\} 3$/m);
    expect(m).toMatch(/^velo_raft_applied_index\{partition="0"\} \d+$/m);
    expect(m).toMatch(/^velo_proposal_seconds_count [1-9]\d*$/m);
    expect(m).toMatch(/^velo_http_requests_total\{method="PUT",route="\/v1\/caches\/:cache\/items\/:key",status="201"\} [1-9]\d*$/m);
  });
});
