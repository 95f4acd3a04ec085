// Backup and bulk load over real HTTP against one node: a partition's
// export holds every acknowledged write with what a restore needs; a load
// writes items keeping expiry instants, tags, regions and content types; a
// malformed load writes nothing.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { decodePartitionExport, encodeRecords } from '../../src/cache/index.js';
import type { ItemRecord, PartitionExport } from '../../src/cache/index.js';
import { partitionOf } from '../../src/node/partition-map.js';
import { serveNode } from '../support/served-node.js';
import type { Served } from '../support/served-node.js';

const PARTITIONS = 4;
const MAX_VALUE = 1024 * 1024;
let served: Served;
let base: string;

beforeAll(async () => {
  served = await serveNode({ maxValueBytes: MAX_VALUE, partitions: PARTITIONS });
  base = served.base;
});

afterAll(async () => {
  await served.close();
});

const bytes = (s: string) => new TextEncoder().encode(s);

async function load(items: ItemRecord[], contentType = 'application/x-velo-records'): Promise<Response> {
  return fetch(`${base}/v1/admin/load`, { method: 'POST', headers: { 'content-type': contentType }, body: Buffer.from(encodeRecords(items)) });
}

async function exportOf(partition: number): Promise<{ status: number; index: number; e: PartitionExport }> {
  const r = await fetch(`${base}/v1/admin/partitions/${partition}/export`);
  expect(r.headers.get('content-type')).toBe('application/x-velo-export');
  const body = new Uint8Array(await r.arrayBuffer());
  expect(body.length).toBe(Number(r.headers.get('content-length')));
  return { status: r.status, index: Number(r.headers.get('x-velo-index')), e: decodePartitionExport(body) };
}

async function exportAll(): Promise<Map<string, ItemRecord>> {
  const out = new Map<string, ItemRecord>();
  for (let p = 0; p < PARTITIONS; p++) for (const it of (await exportOf(p)).e.items) out.set(`${it.cache}/${it.region ?? ''}/${it.key}`, it);
  return out;
}

describe('bulk load', () => {
  test('writes every item with its value, content type, region, tags and exact expiry instant', async () => {
    await fetch(`${base}/v1/caches/sessions`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ defaultTtlMs: 0, maxBytes: null, eviction: 'lru' }) });
    const expiresAt = Date.now() + 3_600_000;
    const items: ItemRecord[] = [
      { cache: 'default', region: null, key: 'plain', value: bytes('p'), contentType: 'text/plain', expiresAt: null, tags: [] },
      { cache: 'sessions', region: 'eu', key: 's1', value: bytes('{"u":1}'), contentType: 'application/json', expiresAt, tags: ['red', 'blue'] },
      { cache: 'default', region: null, key: 'bin', value: new Uint8Array([0, 255, 7]), contentType: 'application/octet-stream', expiresAt, tags: [] },
    ];
    const r = await load(items);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ written: 3, failed: [] });
    const s1 = await fetch(`${base}/v1/caches/sessions/regions/eu/items/s1`);
    expect(s1.status).toBe(200);
    expect(await s1.text()).toBe('{"u":1}');
    expect(s1.headers.get('content-type')).toBe('application/json');
    expect(s1.headers.get('x-velo-expires-at')).toBe(String(expiresAt));
    expect(s1.headers.get('x-velo-tags')).toBe('red,blue');
    const bin = await fetch(`${base}/v1/caches/default/items/bin`);
    expect(new Uint8Array(await bin.arrayBuffer())).toEqual(new Uint8Array([0, 255, 7]));
    expect(bin.headers.get('x-velo-expires-at')).toBe(String(expiresAt));
  });

  test('reports each item it could not write by its index, and writes the others', async () => {
    const items: ItemRecord[] = [
      { cache: 'default', region: null, key: 'ok-1', value: bytes('1'), contentType: 'text/plain', expiresAt: null, tags: [] },
      { cache: 'nope', region: null, key: 'x', value: bytes('x'), contentType: 'text/plain', expiresAt: null, tags: [] },
      { cache: 'default', region: null, key: 'big', value: new Uint8Array(MAX_VALUE + 1), contentType: 'text/plain', expiresAt: null, tags: [] },
      { cache: 'default', region: null, key: 'past', value: bytes('p'), contentType: 'text/plain', expiresAt: Date.now() - 1000, tags: [] },
      { cache: 'default', region: null, key: 'ok-2', value: bytes('2'), contentType: 'text/plain', expiresAt: null, tags: [] },
    ];
    const r = await load(items);
    const body = (await r.json()) as { written: number; failed: { index: number; code: string; retry: string }[] };
    expect(body.written).toBe(2);
    expect(body.failed.map((f) => [f.index, f.code, f.retry])).toEqual([
      [1, 'cache_not_found', 'no'],
      [2, 'value_too_large', 'no'],
      [3, 'bad_request', 'no'],
    ]);
    expect((await fetch(`${base}/v1/caches/default/items/ok-2`)).status).toBe(200);
    expect((await fetch(`${base}/v1/caches/default/items/big`)).status).toBe(404);
  });

  test('a malformed body, or one of another type, is refused whole and writes nothing', async () => {
    const good = encodeRecords([{ cache: 'default', region: null, key: 'torn', value: bytes('t'), contentType: 'text/plain', expiresAt: null, tags: [] }]);
    const before = await exportAll();
    for (const body of [good.subarray(0, good.length - 1), bytes('garbage'), new Uint8Array(0)]) {
      const r = await fetch(`${base}/v1/admin/load`, { method: 'POST', headers: { 'content-type': 'application/x-velo-records' }, body: Buffer.from(body) });
      expect(r.status).toBe(400);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('bad_request');
    }
    expect((await load([], 'application/json')).status).toBe(400);
    expect(await exportAll()).toEqual(before);
    expect((await fetch(`${base}/v1/caches/default/items/torn`)).status).toBe(404);
  });
});

describe('partition export', () => {
  test('holds every write acknowledged before it, at an index no lower than theirs, with every cache’s settings', async () => {
    await fetch(`${base}/v1/caches/limited`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ defaultTtlMs: 60_000, maxBytes: 1_000_000, eviction: 'none' }) });
    const versions = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const r = await fetch(`${base}/v1/caches/limited/items/e${i}`, { method: 'PUT', body: `value-${i}` });
      versions.set(`e${i}`, Number(((await r.json()) as { version: string }).version));
    }
    for (let p = 0; p < PARTITIONS; p++) {
      const { status, index, e } = await exportOf(p);
      expect(status).toBe(200);
      expect(e.partition).toBe(p);
      expect(e.index).toBe(index);
      expect(e.caches.find((c) => c.name === 'limited')?.settings).toEqual({ defaultTtlMs: 60_000, maxBytes: 1_000_000, eviction: 'none' });
      for (const [key, version] of versions) {
        if (partitionOf(PARTITIONS, 'limited', null, key) !== p) continue;
        expect(index).toBeGreaterThanOrEqual(version);
        const it = e.items.find((x) => x.cache === 'limited' && x.key === key);
        expect(new TextDecoder().decode(it?.value)).toBe(`value-${key.slice(1)}`);
        expect(it!.expiresAt).toBeGreaterThan(Date.now());
      }
    }
  });

  test('an export larger than one chunk arrives whole', async () => {
    // One region lives in one partition: ~6 MiB there spans two 4 MiB chunks.
    const big = (i: number) => new Uint8Array(900 * 1024).fill(i);
    const items: ItemRecord[] = Array.from({ length: 7 }, (_, i) => ({ cache: 'default', region: 'bulk', key: `b${i}`, value: big(i), contentType: 'application/octet-stream', expiresAt: null, tags: [] }));
    expect(await (await load(items)).json()).toEqual({ written: 7, failed: [] });
    const { e } = await exportOf(partitionOf(PARTITIONS, 'default', 'bulk', ''));
    const got = e.items.filter((x) => x.region === 'bulk').sort((a, b) => (a.key < b.key ? -1 : 1));
    expect(got.map((x) => x.key)).toEqual(['b0', 'b1', 'b2', 'b3', 'b4', 'b5', 'b6']);
    // Buffer.equals: a deep toEqual over 900 KiB arrays is slow.
    got.forEach((x, i) => expect(Buffer.from(x.value).equals(big(i)), x.key).toBe(true));
  });

  test('a partition number out of range is a clear 400', async () => {
    for (const p of ['4', '99', '-1', 'x']) {
      const r = await fetch(`${base}/v1/admin/partitions/${p}/export`);
      expect(r.status).toBe(400);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('bad_request');
    }
  });
});
