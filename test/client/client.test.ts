// VeloClient and CacheClient end to end: every operation of API.md, typed,
// against a real node behind its real HTTP API — values through the
// serializer, each error class with its code and status, events with
// resume, caches, and the near cache in front of 'local' reads.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CacheClient, VeloClient } from '../../src/client/client.js';
import type { Serializer } from '../../src/client/serializer.js';
import type { EventEnvelope } from '../../src/client/backend.js';
import {
  BadRequestError,
  CacheFullError,
  CacheNotFoundError,
  HistoryLostError,
  LockNotHeldError,
  LockedError,
  NotFoundError,
  PreconditionFailedError,
  ValueTooLargeError,
  VeloClientError,
} from '../../src/client/errors.js';
import * as publicApi from '../../src/client/index.js';
import { until } from '../../scripts/poll.js';
import { InProcessCluster } from './in-process-cluster.js';

const MAX_VALUE_BYTES = 64 * 1024;
const EVENT_LOG_CAPACITY = 64;

let cluster: InProcessCluster;
let client: VeloClient;
let cache: CacheClient;
const clients: VeloClient[] = [];
function newClient(opts: Omit<ConstructorParameters<typeof VeloClient>[0], 'nodes'> = {}): VeloClient {
  const c = new VeloClient({ nodes: cluster.addresses(), ...opts });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  cluster = await InProcessCluster.start(['n1'], { partitions: 4, tickMs: 10, maxValueBytes: MAX_VALUE_BYTES, eventLogCapacity: EVENT_LOG_CAPACITY });
  client = newClient();
  cache = client.cache();
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await cluster?.close();
}, 30_000);

/** The error a promise rejects with (fails the test if it resolves). */
async function failure(p: Promise<unknown>): Promise<VeloClientError> {
  try {
    await p;
  } catch (e) {
    return e as VeloClientError;
  }
  throw new Error('expected the operation to fail');
}

describe('values', () => {
  test('JSON by default: any JSON value comes back equal, as application/json', async () => {
    for (const [key, value] of [['obj', { name: 'Ada', langs: ['en', 'fr'], n: 1.5 }], ['arr', [1, null, 'x']], ['str', 'hello'], ['num', 42], ['nul', null], ['bool', false]] as const) {
      await cache.put(key, value);
      expect(await cache.get(key)).toEqual(value);
      expect((await cache.getItem(key))!.contentType).toBe('application/json');
    }
  });

  test('Buffers and Uint8Arrays are stored as they are and come back as Buffers', async () => {
    const bytes = Buffer.from([0, 1, 2, 255, 254]);
    await cache.put('bin', bytes);
    const got = await cache.get<Buffer>('bin');
    expect(Buffer.isBuffer(got)).toBe(true);
    expect(got!.equals(bytes)).toBe(true);
    expect((await cache.getItem('bin'))!.contentType).toBe('application/octet-stream');
    await cache.put('u8', new Uint8Array([9, 8, 7]));
    expect([...(await cache.get<Buffer>('u8'))!]).toEqual([9, 8, 7]);
  });

  test('a custom serializer is used both ways, with its content type', async () => {
    const upper: Serializer = {
      serialize: (v) => ({ bytes: Buffer.from(String(v).toUpperCase()), contentType: 'text/x-shout' }),
      deserialize: (bytes, type) => `${type}:${Buffer.from(bytes).toString()}`,
    };
    const c = newClient({ serializer: upper }).cache();
    await c.put('shout', 'quiet words');
    expect(await c.get('shout')).toBe('text/x-shout:QUIET WORDS');
    // The stored bytes are the serializer's: a default client reads them as a Buffer.
    expect((await cache.get<Buffer>('shout'))!.toString()).toBe('QUIET WORDS');
  });

  test('undefined cannot be stored: BadRequestError before anything is sent', async () => {
    const e = await failure(cache.put('undef', undefined));
    expect(e).toBeInstanceOf(BadRequestError);
    expect(e.message).toMatch(/undefined/);
    expect(await cache.get('undef')).toBeUndefined();
  });
});

describe('items', () => {
  test('get of a missing key is undefined, getItem null; put reports created, then replaced', async () => {
    expect(await cache.get('fresh')).toBeUndefined();
    expect(await cache.getItem('fresh')).toBeNull();
    const first = await cache.put('fresh', 1);
    expect(first.created).toBe(true);
    const second = await cache.put('fresh', 2);
    expect(second.created).toBe(false);
    expect(BigInt(second.version)).toBeGreaterThan(BigInt(first.version));
    const item = await cache.getItem<number>('fresh');
    expect(item).toEqual({ value: 2, version: second.version, contentType: 'application/json', expiresAt: null, tags: [] });
  });

  test('ttlMs sets the expiry, and touch moves it', async () => {
    const before = Date.now();
    await cache.put('ttl', 'x', { ttlMs: 60_000 });
    const item = await cache.getItem('ttl');
    expect(item!.expiresAt).toBeGreaterThanOrEqual(before + 60_000);
    const touched = await cache.touch('ttl', 600_000);
    expect(touched.expiresAt).toBeGreaterThanOrEqual(before + 600_000);
    expect((await cache.getItem('ttl'))!.expiresAt).toBe(touched.expiresAt);
    expect((await cache.getItem('ttl'))!.version).toBe(touched.version);
  });

  test('an item past its TTL reads as missing', async () => {
    await cache.put('short', 'x', { ttlMs: 50 });
    await until('the item expired', async () => (await cache.get('short')) === undefined, 5000, 20);
    expect(await cache.getItem('short')).toBeNull();
  });

  test('add creates only: PreconditionFailedError (412) when the key exists', async () => {
    const { version } = await cache.add('added', 'first');
    expect(version).toMatch(/^\d+$/);
    const e = await failure(cache.add('added', 'second'));
    expect(e).toBeInstanceOf(PreconditionFailedError);
    expect([e.code, e.status]).toEqual(['precondition_failed', 412]);
    expect(await cache.get('added')).toBe('first');
  });

  test('compareAndSet replaces only the expected version', async () => {
    const { version: v1 } = await cache.put('cas', 'a');
    const { version: v2 } = await cache.compareAndSet('cas', 'b', v1);
    expect(await cache.get('cas')).toBe('b');
    const e = await failure(cache.compareAndSet('cas', 'c', v1));
    expect(e).toBeInstanceOf(PreconditionFailedError);
    expect(await cache.getItem('cas')).toMatchObject({ value: 'b', version: v2 });
    expect(await failure(cache.compareAndSet('cas-missing', 'x', v1))).toBeInstanceOf(PreconditionFailedError);
  });

  test('delete is true when it removed the item, false when missing, and honours ifMatch', async () => {
    const { version } = await cache.put('del', 1);
    expect(await failure(cache.delete('del', { ifMatch: String(Number(version) + 1000) }))).toBeInstanceOf(PreconditionFailedError);
    expect(await cache.delete('del', { ifMatch: version })).toBe(true);
    expect(await cache.delete('del')).toBe(false);
    expect(await cache.get('del')).toBeUndefined();
  });

  test('touch of a missing key is NotFoundError (404 not_found)', async () => {
    const e = await failure(cache.touch('no-such-key', 1000));
    expect(e).toBeInstanceOf(NotFoundError);
    expect([e.code, e.status]).toEqual(['not_found', 404]);
  });

  test('getMany reads many keys at once; missing keys are absent', async () => {
    const keys = Array.from({ length: 100 }, (_, i) => `many${i}`);
    for (const k of keys.filter((_, i) => i % 3 !== 0)) await cache.put(k, { k });
    const got = await cache.getMany<{ k: string }>([...keys, 'many1']);
    expect(got.size).toBe(keys.filter((_, i) => i % 3 !== 0).length);
    for (const [i, k] of keys.entries()) expect(got.get(k)).toEqual(i % 3 === 0 ? undefined : { k });
    expect((await cache.getMany([])).size).toBe(0);
  });
});

describe('locks', () => {
  test('lock reads and locks; others get LockedError (423) until unlock', async () => {
    await cache.put('locked', { n: 1 });
    const { item, handle } = await cache.lock<{ n: number }>('locked', 10_000);
    expect(item.value).toEqual({ n: 1 });
    expect(handle).toBeTruthy();
    const again = await failure(cache.lock('locked', 1000));
    expect(again).toBeInstanceOf(LockedError);
    expect([again.code, again.status]).toEqual(['locked', 423]);
    expect(await failure(cache.put('locked', { n: 2 }))).toBeInstanceOf(LockedError);
    // With the handle, a put writes and keeps the lock.
    await cache.put('locked', { n: 3 }, { lockHandle: handle });
    expect(await failure(cache.put('locked', { n: 4 }))).toBeInstanceOf(LockedError);
    await cache.unlock('locked', handle);
    await cache.put('locked', { n: 5 });
    expect(await cache.get('locked')).toEqual({ n: 5 });
  });

  test('putAndUnlock writes and releases; a handle that no longer holds the lock is LockNotHeldError (409)', async () => {
    await cache.put('pau', 'v0');
    const { handle } = await cache.lock('pau', 10_000);
    const r = await cache.putAndUnlock('pau', 'v1', handle);
    expect(r.created).toBe(false);
    expect(await cache.get('pau')).toBe('v1');
    const e = await failure(cache.unlock('pau', handle));
    expect(e).toBeInstanceOf(LockNotHeldError);
    expect([e.code, e.status]).toEqual(['lock_not_held', 409]);
    // Released: another lock succeeds.
    const next = await cache.lock('pau', 1000);
    await cache.unlock('pau', next.handle);
  });

  test('lock of a missing key is NotFoundError', async () => {
    expect(await failure(cache.lock('not-there', 1000))).toBeInstanceOf(NotFoundError);
  });
});

describe('regions', () => {
  test('items listed by tags (any, all), then cleared at once', async () => {
    const r = cache.region('catalog');
    expect(r.regionName).toBe('catalog');
    await r.put('apple', { p: 1 }, { tags: ['fruit', 'red'] });
    await r.put('cherry', { p: 2 }, { tags: ['fruit', 'red', 'small'] });
    await r.put('banana', Buffer.from('yellow'), { tags: ['fruit'] });
    await r.put('brick', { p: 9 }, { tags: ['red'] });
    const keys = async (opts?: { tags?: string[]; match?: 'any' | 'all' }) => (await r.list(opts)).map((i) => i.key).sort();
    expect(await keys()).toEqual(['apple', 'banana', 'brick', 'cherry']);
    expect(await keys({ tags: ['small', 'red'] })).toEqual(['apple', 'brick', 'cherry']);
    expect(await keys({ tags: ['fruit', 'red'], match: 'all' })).toEqual(['apple', 'cherry']);
    const listed = await r.list<unknown>({ tags: ['fruit'] });
    expect(listed.find((i) => i.key === 'apple')).toMatchObject({ value: { p: 1 }, contentType: 'application/json', tags: ['fruit', 'red'] });
    expect((listed.find((i) => i.key === 'banana')!.value as Buffer).toString()).toBe('yellow');
    // The same key outside the region is another item.
    expect(await cache.get('apple')).toBeUndefined();
    expect(await r.clear()).toEqual({ removed: 4 });
    expect(await r.list()).toEqual([]);
    expect(await r.get('apple')).toBeUndefined();
  });

  test('list, clear and tags are for region clients only; regions do not nest', async () => {
    expect(await failure(cache.list())).toBeInstanceOf(BadRequestError);
    expect(await failure(cache.clear())).toBeInstanceOf(BadRequestError);
    expect(await failure(cache.put('t', 1, { tags: ['x'] }))).toBeInstanceOf(BadRequestError);
    expect(() => cache.region('a').region('b')).toThrow(BadRequestError);
  });
});

describe('caches and errors', () => {
  test('createCache is idempotent; listCaches, stats and dropCache', async () => {
    const first = await client.createCache('orders', { defaultTtlMs: 0, maxBytes: null, eviction: 'lru' });
    expect(first.created).toBe(true);
    const again = await client.createCache('orders', { defaultTtlMs: 30_000 });
    expect(again).toEqual({ created: false, settings: { defaultTtlMs: 30_000, maxBytes: null, eviction: 'lru' } });
    expect((await client.listCaches()).map((c) => c.name)).toEqual(expect.arrayContaining(['default', 'orders']));
    const orders = client.cache('orders');
    await orders.put('o1', { total: 3 });
    expect((await orders.getItem('o1'))!.expiresAt).not.toBeNull();
    await orders.get('o1');
    await orders.get('o2');
    const stats = await orders.stats();
    // Two reads found o1 (getItem, get), one missed.
    expect(stats).toMatchObject({ items: 1, hits: 2, misses: 1 });
    expect(stats.bytes).toBeGreaterThan(0);
    await client.dropCache('orders');
    const e = await failure(orders.get('o1'));
    expect(e).toBeInstanceOf(CacheNotFoundError);
    expect([e.code, e.status]).toEqual(['cache_not_found', 404]);
    expect(await failure(orders.put('o1', 1))).toBeInstanceOf(CacheNotFoundError);
    expect(await failure(client.dropCache('orders'))).toBeInstanceOf(CacheNotFoundError);
  });

  test('a value over the node’s limit is ValueTooLargeError (413)', async () => {
    const e = await failure(cache.put('big', Buffer.alloc(MAX_VALUE_BYTES + 1)));
    expect(e).toBeInstanceOf(ValueTooLargeError);
    expect([e.code, e.status]).toEqual(['value_too_large', 413]);
  });

  test('a full cache without eviction is CacheFullError (507)', async () => {
    await client.createCache('tiny', { maxBytes: 4096, eviction: 'none' });
    const tiny = client.cache('tiny');
    let e: VeloClientError | null = null;
    for (let i = 0; i < 64 && e === null; i++) e = await tiny.put(`k${i}`, Buffer.alloc(1024)).then(() => null, (err: VeloClientError) => err);
    expect(e).toBeInstanceOf(CacheFullError);
    expect([e!.code, e!.status]).toEqual(['cache_full', 507]);
  });

  test('bad input fails with BadRequestError before anything is sent, and a bad request the node refuses too', async () => {
    for (const p of [cache.get(''), cache.put('x'.repeat(251), 1), cache.put('k', 1, { ttlMs: 0 }), cache.touch('k', -5), cache.lock('k', 1.5), cache.compareAndSet('k', 1, ''), cache.get('\ud800')]) {
      expect(await failure(p)).toBeInstanceOf(BadRequestError);
    }
    expect(() => client.cache('')).toThrow(BadRequestError);
    // Refused by the node (400): an unknown setting.
    const e = await failure(client.createCache('odd', { eviction: 'sometimes' as 'lru' }));
    expect(e).toBeInstanceOf(BadRequestError);
    expect(e.status).toBe(400);
  });

  test('bad options are refused when the client is built', () => {
    expect(() => new VeloClient({})).toThrow(/exactly one of nodes/);
    expect(() => new VeloClient({ nodes: [] })).toThrow(/at least one member/);
    expect(() => new VeloClient({ nodes: ['127.0.0.1:1'], timeoutMs: -1 })).toThrow(/timeoutMs/);
    expect(() => new VeloClient({ nodes: ['127.0.0.1:1'], consistency: 'eventual' as 'local' })).toThrow(/consistency/);
    expect(() => new VeloClient({ nodes: ['not a url:x'] })).toThrow(/not a node address/);
  });

  test('the package entry exports the client, the errors and the serializer', () => {
    expect(publicApi.VeloClient).toBe(VeloClient);
    expect(publicApi.CacheClient).toBe(CacheClient);
    expect(publicApi.IndeterminateError.prototype).toBeInstanceOf(publicApi.VeloClientError);
    expect(typeof publicApi.defaultSerializer.serialize).toBe('function');
    expect(typeof publicApi.errorFor).toBe('function');
  });
});

describe('events', () => {
  /** Reads a stream in the background into `got`, until it ends. */
  function collect(it: AsyncIterable<EventEnvelope>): { got: EventEnvelope[]; done: Promise<unknown> } {
    const got: EventEnvelope[] = [];
    const done = (async () => {
      for await (const e of it) got.push(e);
    })().catch((e: unknown) => e);
    return { got, done };
  }

  /**
   * A stream's position is fixed once the node answers, which the iterator
   * does not report: write `key` until the stream shows a write, and from
   * then on every write is in it.
   */
  async function primed(c: CacheClient, key: string, got: EventEnvelope[]): Promise<void> {
    await until('the stream is open', async () => {
      await c.put(key, 'priming');
      return got.length > 0;
    }, 10_000, 20);
  }

  test('a key’s changes arrive in order; lastEventId resumes exactly after an event', async () => {
    const stream = cache.events({ key: 'watched' });
    const { got, done } = collect(stream);
    await primed(cache, 'watched', got);
    const { version: v1 } = await cache.put('watched', 1);
    const { version: v2 } = await cache.put('watched', 2);
    expect(await cache.delete('watched')).toBe(true);
    await cache.put('other', 'not in this stream');
    await until('the delete arrived', async () => got.some((e) => e.event.type === 'delete'), 10_000, 10);
    stream.close();
    await done;
    const tail = got.slice(-3);
    expect(tail.map((e) => [e.event.type, e.event.key, e.event.cache, e.event.region])).toEqual([
      ['put', 'watched', 'default', null],
      ['put', 'watched', 'default', null],
      ['delete', 'watched', 'default', null],
    ]);
    expect(tail.map((e) => e.event.version).slice(0, 2)).toEqual([v1, v2]);
    expect(got.every((e) => e.event.key === 'watched')).toBe(true);
    const resumed = cache.events({ key: 'watched', lastEventId: tail[0]!.id });
    const again = collect(resumed);
    await until('two events after the resume point', async () => again.got.length >= 2, 10_000, 10);
    resumed.close();
    await again.done;
    expect(again.got.map((e) => e.id)).toEqual(tail.slice(1).map((e) => e.id));
  });

  test('close() ends an iteration that is waiting for the next event', async () => {
    const stream = cache.events({ key: 'quiet' });
    const { got, done } = collect(stream);
    stream.close();
    expect(await done).toBeUndefined();
    expect(got).toEqual([]);
  });

  test('resuming after history the node no longer holds is HistoryLostError', async () => {
    const r = cache.region('busy');
    const stream = r.events();
    const { got, done } = collect(stream);
    await primed(r, 'k', got);
    stream.close();
    await done;
    for (let i = 1; i <= EVENT_LOG_CAPACITY + 10; i++) await r.put('k', i);
    const late = collect(r.events({ lastEventId: got[0]!.id }));
    const e = (await late.done) as VeloClientError;
    expect(e).toBeInstanceOf(HistoryLostError);
    expect(e.code).toBe('history_lost');
    expect(late.got).toEqual([]);
  });
});

describe('near cache', () => {
  test('off by default: nearCacheStats is null', () => {
    expect(client.nearCacheStats()).toBeNull();
  });

  test('local reads are served from it once filled; strong reads bypass it; a write through any client invalidates it', async () => {
    const near = newClient({ nearCache: true, consistency: 'local' });
    const nc = near.cache();
    await cache.put('hot', 'v1');
    // The first fill starts the cache's event stream, so it is not kept: fill until one is.
    await until('a fill was kept', async () => {
      await nc.get('hot');
      return near.nearCacheStats()!.fills > 0;
    }, 10_000, 10);
    const hits = near.nearCacheStats()!.hits;
    expect(await nc.get('hot')).toBe('v1');
    expect(near.nearCacheStats()!.hits).toBe(hits + 1);
    expect(await nc.get('hot', { consistency: 'strong' })).toBe('v1');
    expect(near.nearCacheStats()!.hits).toBe(hits + 1);
    // Another client's write reaches it through the change events.
    await cache.put('hot', 'v2');
    await until('the near cache dropped v1', async () => (await nc.get('hot')) === 'v2', 10_000, 10);
    // Its own write is seen at once.
    await nc.put('hot', 'v3');
    expect(await nc.get('hot')).toBe('v3');
    expect(near.nearCacheStats()!.invalidations).toBeGreaterThan(0);
  });
});
