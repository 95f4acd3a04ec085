// Change events over real HTTP (Server-Sent Events): commit order, filters,
// exact resumption with Last-Event-ID, and a clear error when history is gone.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { serveNode } from '../support/served-node.js';
import type { Served } from '../support/served-node.js';
import { partitionOf } from '../../src/node/partition-map.js';
import { openSse } from '../support/sse.js';
import type { SseStream } from '../support/sse.js';

async function serve(eventLogCapacity?: number): Promise<Served> {
  return serveNode({ maxValueBytes: 1024, ...(eventLogCapacity ? { eventLogCapacity } : {}) });
}

let s: Served;
beforeAll(async () => {
  s = await serve();
});
afterAll(async () => {
  await s.close();
});

const item = (key: string) => `${s.base}/v1/caches/default/items/${key}`;

/** serveNode's partition count. */
const PARTITIONS = 4;

/** A key of the default cache in partition `p`. */
function keyIn(p: number, prefix: string): string {
  for (let i = 0; ; i++) if (partitionOf(PARTITIONS, 'default', null, `${prefix}${i}`) === p) return `${prefix}${i}`;
}

/** Reads `stream` until an event for each of `keys` has arrived. */
async function readUntilKeys(stream: SseStream, keys: string[]): Promise<void> {
  const has = () => keys.every((k) => stream.got.some((e) => e.data.key === k));
  for (let n = stream.got.length + 1; !has(); n = stream.got.length + 1) await stream.next(n);
}

describe('change events', () => {
  test('a stream delivers put and delete events with the written versions, in commit order per key', async () => {
    const stream = await openSse(`${s.base}/v1/caches/default/events`);
    expect(stream.res.headers.get('content-type')).toBe('text/event-stream');
    const v1 = ((await (await fetch(item('e1'), { method: 'PUT', body: 'a' })).json()) as { version: string }).version;
    const v2 = ((await (await fetch(item('e1'), { method: 'PUT', body: 'b' })).json()) as { version: string }).version;
    await fetch(item('e1'), { method: 'DELETE' });
    await stream.next(3);
    stream.close();
    expect(stream.got.map((e) => [e.data.type, e.data.key, e.data.version])).toEqual([
      ['put', 'e1', v1],
      ['put', 'e1', v2],
      ['delete', 'e1', v2],
    ]);
    expect(stream.got[0]!.id).toMatch(/^\d+\.\d+\.\d+~/);
  });

  test('filters by key and by region', async () => {
    const byKey = await openSse(`${s.base}/v1/caches/default/events?key=wanted`);
    const byRegion = await openSse(`${s.base}/v1/caches/default/events?region=r9`);
    await fetch(item('unwanted'), { method: 'PUT', body: 'x' });
    await fetch(item('wanted'), { method: 'PUT', body: 'x' });
    await fetch(`${s.base}/v1/caches/default/regions/r9/items/k`, { method: 'PUT', body: 'x' });
    await byKey.next(1);
    await byRegion.next(1);
    byKey.close();
    byRegion.close();
    expect(byKey.got.map((e) => e.data.key)).toEqual(['wanted']);
    expect(byRegion.got.map((e) => [e.data.region, e.data.key])).toEqual([['r9', 'k']]);
  });

  test('reconnecting with Last-Event-ID resumes exactly after it: nothing lost, nothing repeated', async () => {
    const first = await openSse(`${s.base}/v1/caches/default/events`);
    for (let i = 0; i < 10; i++) await fetch(item(`r${i}`), { method: 'PUT', body: 'x' });
    await first.next(10);
    first.close();
    const resumeAfter = first.got[3]!.id!;
    // Writes made while disconnected must arrive too.
    for (let i = 10; i < 15; i++) await fetch(item(`r${i}`), { method: 'PUT', body: 'x' });
    const second = await openSse(`${s.base}/v1/caches/default/events`, resumeAfter);
    // Then one marker per partition, written after everything else: the stream is read until every
    // marker has come, so that an event delivered twice before them is seen, not cut off by a count.
    const markers = Array.from({ length: PARTITIONS }, (_, p) => keyIn(p, 'marker-'));
    for (const m of markers) await fetch(item(m), { method: 'PUT', body: 'x' });
    await readUntilKeys(second, markers);
    second.close();
    // Order is commit order within a partition only, so "after the 4th event" is, in each partition,
    // every key written there that was not among the first four delivered, in the order written, then
    // its marker.
    const before = new Set(first.got.slice(0, 4).map((e) => e.data.key));
    const written = [...Array.from({ length: 15 }, (_, i) => `r${i}`), ...markers];
    const keys = second.got.map((e) => e.data.key as string);
    for (let p = 0; p < PARTITIONS; p++) {
      const inP = (k: string) => partitionOf(PARTITIONS, 'default', null, k) === p;
      expect({ partition: p, keys: keys.filter(inP) }).toEqual({ partition: p, keys: written.filter((k) => inP(k) && !before.has(k)) });
    }
    expect(keys.length).toBe(written.length - before.size);
  });

  test('expirations produce events', async () => {
    const stream = await openSse(`${s.base}/v1/caches/default/events?key=short`);
    await fetch(`${item('short')}?ttlMs=50`, { method: 'PUT', body: 'x' });
    await stream.next(2);
    stream.close();
    expect(stream.got.map((e) => e.data.type)).toEqual(['put', 'expire']);
  });

  test('a malformed Last-Event-ID is refused with 400 before streaming', async () => {
    const r = await fetch(`${s.base}/v1/caches/default/events`, { headers: { 'last-event-id': 'garbage' } });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe('bad_request');
  });

  test('when a partition no longer holds the history after Last-Event-ID, the stream says so with an error event', async () => {
    const small = await serve(5);
    try {
      const url = `${small.base}/v1/caches/default/events?key=h`;
      const first = await openSse(url);
      await fetch(`${small.base}/v1/caches/default/items/h`, { method: 'PUT', body: '0' });
      await first.next(1);
      first.close();
      for (let i = 1; i <= 10; i++) await fetch(`${small.base}/v1/caches/default/items/h`, { method: 'PUT', body: String(i) });
      const second = await openSse(url, first.got[0]!.id!);
      await second.next(1);
      second.close();
      expect(second.got[0]!.event).toBe('error');
      expect((second.got[0]!.data as { error: { code: string } }).error.code).toBe('history_lost');
    } finally {
      await small.close();
    }
  });
});
