// Embedded mode in one process. A real node started by startNode (no HTTP)
// serves every client operation through LocalBackend with the results and
// error classes the HTTP API gives; the retry rules and the event stream's
// plumbing are pinned with a scripted CacheService (a unit test: the node's
// failures cannot be provoked on cue), and bad options are refused with
// `velo start`'s own messages.
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort } from '../../scripts/ports.js';
import { until } from '../../scripts/poll.js';
import { parseStartFlags } from '../../src/cli/start.js';
import {
  BadRequestError,
  CacheFullError,
  CacheNotFoundError,
  HistoryLostError,
  IndeterminateError,
  InternalError,
  LockNotHeldError,
  LockedError,
  NotFoundError,
  PreconditionFailedError,
  UnavailableError,
  ValueTooLargeError,
  VeloClientError,
} from '../../src/client/errors.js';
import type { EventEnvelope, ItemAddress, PutCommand } from '../../src/client/backend.js';
import { LocalBackend } from '../../src/client/local-backend.js';
import { VeloClient } from '../../src/client/client.js';
import { startFlagsOf, startNode } from '../../src/embedded.js';
import type { EmbeddedNode, StartNodeOptions } from '../../src/embedded.js';
import { VeloError } from '../../src/node/errors.js';
import type { ErrorCode } from '../../src/node/errors.js';
import { NotApplied } from '../../src/node/group.js';
import type { CacheService, ItemView } from '../../src/node/service.js';

const MAX_VALUE_BYTES = 4096;
let embedded: EmbeddedNode;

beforeAll(async () => {
  embedded = await startNode({ id: 'n1', raft: `127.0.0.1:${await freePort()}`, partitions: 4, maxValueBytes: MAX_VALUE_BYTES });
  await until('every partition has a leader', async () => (await embedded.client.cluster()).partitions.every((p) => p.leader === 'n1'), 30_000);
}, 60_000);

afterAll(async () => {
  await embedded?.close();
});

describe('every client operation through LocalBackend, against a real embedded node', () => {
  test('startNode without http serves no HTTP API and reports its raft address', async () => {
    expect(embedded.httpAddress).toBeNull();
    expect(embedded.id).toBe('n1');
    const view = await embedded.client.cluster();
    expect(view.node).toBe('n1');
    expect(view.members).toEqual([{ id: 'n1', http: '', raft: embedded.raftAddress, state: 'up', status: 'active', replicas: 4, leaders: 4 }]);
    expect(view.partitions).toHaveLength(4);
  });

  test('get, put, add, compare-and-set and delete answer as the API does', async () => {
    const c = embedded.client.cache();
    expect(await c.get('a')).toBeUndefined();
    expect(await c.getItem('a')).toBeNull();
    const p1 = await c.put('a', { n: 1 });
    expect(p1.created).toBe(true);
    const p2 = await c.put('a', { n: 2 });
    expect(p2.created).toBe(false);
    expect(Number(p2.version)).toBeGreaterThan(Number(p1.version));
    expect(await c.get('a')).toEqual({ n: 2 });
    expect(await c.getItem('a')).toEqual({ value: { n: 2 }, version: p2.version, contentType: 'application/json', expiresAt: null, tags: [] });
    expect(await c.get('a', { consistency: 'local' })).toEqual({ n: 2 });

    await expect(c.add('a', 1)).rejects.toMatchObject({ constructor: PreconditionFailedError, code: 'precondition_failed', status: 412 });
    await c.add('b', 'fresh');
    expect(await c.get('b')).toBe('fresh');

    await expect(c.compareAndSet('a', 3, p1.version)).rejects.toMatchObject({ constructor: PreconditionFailedError, status: 412 });
    await expect(c.compareAndSet('nothing-here', 3, p1.version)).rejects.toBeInstanceOf(PreconditionFailedError);
    const cas = await c.compareAndSet('a', 3, p2.version);
    expect(await c.getItem('a')).toMatchObject({ value: 3, version: cas.version });

    await expect(c.delete('a', { ifMatch: p2.version })).rejects.toBeInstanceOf(PreconditionFailedError);
    expect(await c.delete('a', { ifMatch: cas.version })).toBe(true);
    expect(await c.delete('a')).toBe(false);
    expect(await c.get('a')).toBeUndefined();
  });

  test('touch resets the expiry; touch and lock of a missing key are NotFoundError', async () => {
    const c = embedded.client.cache();
    const put = await c.put('t', 'v', { ttlMs: 60_000 });
    const before = Date.now();
    const t = await c.touch('t', 120_000);
    expect(t.version).toBe(put.version);
    expect(t.expiresAt).toBeGreaterThanOrEqual(before + 120_000);
    expect((await c.getItem('t'))!.expiresAt).toBe(t.expiresAt);
    await expect(c.touch('missing', 1000)).rejects.toMatchObject({ constructor: NotFoundError, code: 'not_found', status: 404 });
    await expect(c.lock('missing', 1000)).rejects.toMatchObject({ constructor: NotFoundError, code: 'not_found', status: 404 });
  });

  test('lock, put under the lock, put-and-unlock and unlock give the API’s answers and error classes', async () => {
    const c = embedded.client.cache();
    await c.put('l', 'v1');
    const { item, handle } = await c.lock<string>('l', 30_000);
    expect(item.value).toBe('v1');
    expect(typeof handle).toBe('string');
    await expect(c.put('l', 'intruder')).rejects.toMatchObject({ constructor: LockedError, code: 'locked', status: 423 });
    await expect(c.lock('l', 1000)).rejects.toBeInstanceOf(LockedError);
    await expect(c.delete('l')).rejects.toBeInstanceOf(LockedError);
    await c.put('l', 'v2', { lockHandle: handle });
    await expect(c.put('l', 'intruder')).rejects.toBeInstanceOf(LockedError);
    await c.putAndUnlock('l', 'v3', handle);
    expect(await c.get('l')).toBe('v3');
    await expect(c.unlock('l', handle)).rejects.toMatchObject({ constructor: LockNotHeldError, code: 'lock_not_held', status: 409 });
    const again = await c.lock('l', 30_000);
    await c.unlock('l', again.handle);
    await c.put('l', 'free');
    expect(await c.get('l')).toBe('free');
  });

  test('a region lists its items by tags and clears atomically; getMany leaves missing keys out', async () => {
    const c = embedded.client.cache();
    const r = c.region('r1');
    await r.put('x', 1, { tags: ['a'] });
    await r.put('y', 2, { tags: ['a', 'b'] });
    await r.put('z', Buffer.from([1, 2, 3]), { tags: ['b'] });
    expect((await r.list()).map((i) => i.key).sort()).toEqual(['x', 'y', 'z']);
    expect((await r.list({ tags: ['a'] })).map((i) => i.key).sort()).toEqual(['x', 'y']);
    expect((await r.list({ tags: ['a', 'b'], match: 'all' })).map((i) => i.key)).toEqual(['y']);
    const z = (await r.list({ tags: ['b'] })).find((i) => i.key === 'z')!;
    expect(Buffer.from(z.value as Uint8Array)).toEqual(Buffer.from([1, 2, 3]));
    expect(z).toMatchObject({ contentType: 'application/octet-stream', tags: ['b'], expiresAt: null });
    expect(await r.get('y')).toBe(2);
    expect(await c.get('y')).toBeUndefined();

    await c.put('m1', 'one');
    await c.put('m2', 'two');
    expect(Object.fromEntries(await c.getMany(['m1', 'm2', 'not-there']))).toEqual({ m1: 'one', m2: 'two' });

    expect(await r.clear()).toEqual({ removed: 3 });
    expect(await r.list()).toEqual([]);
    await expect(c.put('untaggable', 1, { tags: ['a'] })).rejects.toMatchObject({ constructor: BadRequestError, code: 'bad_request' });
  });

  test('caches are created idempotently, listed, counted and dropped', async () => {
    const client = embedded.client;
    const made = await client.createCache('second', { defaultTtlMs: 0, eviction: 'lru' });
    expect(made).toEqual({ created: true, settings: { defaultTtlMs: 0, maxBytes: null, eviction: 'lru' } });
    expect((await client.createCache('second')).created).toBe(false);
    expect((await client.listCaches()).map((c) => c.name)).toEqual(expect.arrayContaining(['default', 'second']));
    const s = client.cache('second');
    await s.put('k', 'v');
    expect(await s.get('k')).toBe('v');
    expect(await s.get('nope')).toBeUndefined();
    expect(await s.stats()).toMatchObject({ items: 1, hits: 1, misses: 1, evictions: 0, expirations: 0 });
    await client.dropCache('second');
    await expect(s.put('k', 'v')).rejects.toMatchObject({ constructor: CacheNotFoundError, code: 'cache_not_found', status: 404 });
    await expect(s.get('k')).rejects.toBeInstanceOf(CacheNotFoundError);
    await expect(client.createCache('bad', { eviction: 'fifo' as never })).rejects.toBeInstanceOf(BadRequestError);
  });

  test('a full cache without eviction is CacheFullError; a value over maxValueBytes is ValueTooLargeError', async () => {
    const client = embedded.client;
    await client.createCache('tiny', { maxBytes: 4 * 2048, eviction: 'none' });
    const t = client.cache('tiny');
    await expect(
      (async () => {
        for (let i = 0; i < 64; i++) await t.put(`k${i}`, Buffer.alloc(1024));
      })(),
    ).rejects.toMatchObject({ constructor: CacheFullError, code: 'cache_full', status: 507 });
    await expect(t.put('big', Buffer.alloc(MAX_VALUE_BYTES + 1))).rejects.toMatchObject({ constructor: ValueTooLargeError, code: 'value_too_large', status: 413 });
    await client.dropCache('tiny');
  });

  test('change events stream in commit order and resume exactly after a given event', async () => {
    const c = embedded.client;
    await c.createCache('evc');
    const ec = c.cache('evc');
    const s1 = ec.events({ key: 'k' });
    const it = s1[Symbol.asyncIterator]();
    // The stream's start is not observable from the client: write until it delivers.
    const got: { first: IteratorResult<EventEnvelope> | null } = { first: null };
    void it.next().then((r) => (got.first = r));
    let n = 0;
    await until(
      'the stream delivers a put',
      async () => {
        if (got.first !== null) return true;
        await ec.put('k', `warm${n++}`);
        return false;
      },
      15_000,
    );
    const v1 = await ec.put('k', 'one');
    const v2 = await ec.put('k', 'two');
    const seen: EventEnvelope[] = [got.first!.value as EventEnvelope];
    while (seen.at(-1)!.event.version !== v2.version) seen.push((await it.next()).value as EventEnvelope);
    const atOne = seen.find((e) => e.event.version === v1.version)!;
    expect(atOne.event).toEqual({ type: 'put', cache: 'evc', region: null, key: 'k', version: v1.version });
    s1.close();

    const v3 = await ec.put('k', 'three');
    await ec.delete('k');
    const s2 = ec.events({ key: 'k', lastEventId: atOne.id });
    const it2 = s2[Symbol.asyncIterator]();
    const resumed = [(await it2.next()).value, (await it2.next()).value, (await it2.next()).value] as EventEnvelope[];
    s2.close();
    expect(resumed.map((e) => [e.event.type, e.event.version])).toEqual([
      ['put', v2.version],
      ['put', v3.version],
      ['delete', v3.version],
    ]);

    const bad = ec.events({ lastEventId: 'not-an-event-id' });
    await expect(bad[Symbol.asyncIterator]().next()).rejects.toBeInstanceOf(BadRequestError);
    bad.close();
  });

  test('values handed out are copies: changing them does not change the cache', async () => {
    const c = embedded.client.cache();
    await c.put('bin', Buffer.from('hello'));
    const got = (await c.get<Buffer>('bin'))!;
    got[0] = 0x4a;
    expect((await c.get<Buffer>('bin'))!.toString()).toBe('hello');
    const item = (await c.getItem<Buffer>('bin', { consistency: 'local' }))!;
    item.value[1] = 0x4a;
    expect((await c.get<Buffer>('bin'))!.toString()).toBe('hello');
    const { item: locked, handle } = await c.lock<Buffer>('bin', 30_000);
    locked.value[2] = 0x4a;
    await c.unlock('bin', handle);
    expect((await c.get<Buffer>('bin'))!.toString()).toBe('hello');
    const r = c.region('copies');
    await r.put('v', Buffer.from('hello'));
    const listed = (await r.list<Buffer>())[0]!;
    (listed.value as Buffer)[3] = 0x4a;
    expect((await r.get<Buffer>('v'))!.toString()).toBe('hello');
  });
});

describe('startNode takes the options of velo start', () => {
  const messageOf = (argv: string[]) => {
    try {
      parseStartFlags(argv);
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error(`velo start accepts ${argv.join(' ')}`);
  };

  test('bad options are refused with the CLI’s messages', async () => {
    const cases: [StartNodeOptions, string[]][] = [
      [{ partitions: 0 }, ['--partitions', '0']],
      [{ replicas: 1.5 }, ['--replicas', '1.5']],
      [{ requestTimeoutMs: 5 }, ['--request-timeout-ms', '5']],
      [{ id: 'bad id' }, ['--id', 'bad id']],
      [{ id: 'n1', peers: { n2: '127.0.0.1:7102' } }, ['--id', 'n1', '--peers', 'n2=127.0.0.1:7102']],
      [{ peers: new Map([['n1', 'nowhere']]) }, ['--peers', 'n1=nowhere']],
      [{ peers: 'n1=127.0.0.1:1,n1=127.0.0.1:2' }, ['--peers', 'n1=127.0.0.1:1,n1=127.0.0.1:2']],
      [{ raft: '127.0.0.1:99999' }, ['--raft', '127.0.0.1:99999']],
      [{ logLevel: 'loud' as never }, ['--log-level', 'loud']],
      [{ dataDir: ' ' }, ['--data-dir', ' ']],
    ];
    for (const [options, argv] of cases) {
      await expect(startNode(options), JSON.stringify(argv)).rejects.toMatchObject({ message: messageOf(argv) });
    }
    await expect(startNode({ partitons: 4 } as never)).rejects.toThrow('unknown option "partitons"');
    await expect(startNode({ partitions: '4' as never })).rejects.toThrow('partitions (--partitions) must be a number, got string');
    await expect(startNode({ peers: { n1: '127.0.0.1:1,n2=127.0.0.1:2' } })).rejects.toThrow('--peers entries are ID=HOST:PORT, got "n1=127.0.0.1:1,n2=127.0.0.1:2"');
  });

  test('peers may be a Map, a Record or the CLI’s string, with the same result', () => {
    const asString = startFlagsOf({ id: 'n2', peers: 'n1=127.0.0.1:7101,n2=127.0.0.1:7102' });
    const asMap = startFlagsOf({ id: 'n2', peers: new Map([['n1', '127.0.0.1:7101'], ['n2', '127.0.0.1:7102']]) });
    const asRecord = startFlagsOf({ id: 'n2', peers: { n1: '127.0.0.1:7101', n2: '127.0.0.1:7102' } });
    expect(asMap).toEqual(asString);
    expect(asRecord).toEqual(asString);
    // Without raft, the node listens where peers says it is, as velo start does.
    expect(asString.flags.raft).toBe('127.0.0.1:7102');
    expect(asString.serveHttp).toBe(false);
    expect(startFlagsOf({ http: '127.0.0.1:7001' }).serveHttp).toBe(true);
    expect(startFlagsOf({ http: '127.0.0.1:7001', serveHttp: false }).serveHttp).toBe(false);
  });

  test('adminTokenFile is --admin-token-file', () => {
    expect(startFlagsOf({ adminTokenFile: '/run/velo/admin.token' }).flags.adminTokenFile).toBe('/run/velo/admin.token');
    expect(startFlagsOf({}).flags.adminTokenFile).toBeNull();
  });

  test('a port in use is one clear error, as velo start gives it', async () => {
    const port = await freePort();
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(port, '127.0.0.1', resolve));
    try {
      await expect(startNode({ raft: `127.0.0.1:${port}` })).rejects.toThrow(`127.0.0.1:${port} is already in use (--raft)`);
      await expect(startNode({ http: `127.0.0.1:${port}`, raft: `127.0.0.1:${await freePort()}` })).rejects.toThrow(`127.0.0.1:${port} is already in use (--http)`);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

});

describe('an embedded node that also serves HTTP', () => {
  let served: EmbeddedNode;
  let overHttp: VeloClient;

  beforeAll(async () => {
    served = await startNode({ http: `127.0.0.1:${await freePort()}`, raft: `127.0.0.1:${await freePort()}`, partitions: 2, maxValueBytes: MAX_VALUE_BYTES, nearCache: true });
    await until('the node is ready', async () => (await fetch(`http://${served.httpAddress}/readyz`)).status === 200, 30_000);
    overHttp = new VeloClient({ nodes: [served.httpAddress!] });
  }, 60_000);

  afterAll(async () => {
    await overHttp?.close();
    await served?.close();
  });

  test('its HTTP API and its embedded client see the same items', async () => {
    await served.client.cache().put('shared', 'through the client');
    const r = await fetch(`http://${served.httpAddress}/v1/caches/default/items/shared`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(await r.json()).toBe('through the client');
    expect((await fetch(`http://${served.httpAddress}/v1/caches/default/items/raw`, { method: 'PUT', body: 'over http' })).status).toBe(201);
    expect((await served.client.cache().get<Buffer>('raw'))!.toString()).toBe('over http');
    expect((await served.client.cluster()).members[0]!.http).toBe(served.httpAddress);
  });

  test('client options reach its client: a near cache kept honest by the in-process event stream', async () => {
    const c = served.client.cache();
    await c.put('hot', 'v1');
    // A read is kept once the cache's event stream is open: read until one is.
    await until('a read is kept in the near cache', async () => (await c.get('hot', { consistency: 'local' })) === 'v1' && served.client.nearCacheStats()!.fills > 0, 10_000);
    const hits = served.client.nearCacheStats()!.hits;
    expect(await c.get('hot', { consistency: 'local' })).toBe('v1');
    expect(served.client.nearCacheStats()!.hits).toBe(hits + 1);
    await overHttp.cache().put('hot', 'v2');
    await until('the write over HTTP reaches the near cache', async () => (await c.get('hot', { consistency: 'local' })) === 'v2', 10_000);
    expect(served.client.nearCacheStats()!.invalidations).toBeGreaterThan(0);
  });

  test('every operation gives the same results and error classes through LocalBackend as over HTTP', async () => {
    const local = await transcript(served.client, 'local');
    const http = await transcript(overHttp, 'http');
    expect(local).toEqual(http);
    // And the transcript is the API's, not two backends agreeing on something else.
    expect(Object.fromEntries(local as [string, unknown][])).toMatchObject({
      'get missing': undefined,
      'put new': { version: 'a.v1', created: true },
      'put again': { version: 'a.v2', created: false },
      'add existing': ['PreconditionFailedError', 'precondition_failed', 412],
      'compare-and-set stale': ['PreconditionFailedError', 'precondition_failed', 412],
      'delete missing': false,
      'touch missing': ['NotFoundError', 'not_found', 404],
      'put over a lock': ['LockedError', 'locked', 423],
      'unlock released': ['LockNotHeldError', 'lock_not_held', 409],
      'too large': ['ValueTooLargeError', 'value_too_large', 413],
      'put after drop': ['CacheNotFoundError', 'cache_not_found', 404],
    });
  }, 60_000);

  test('close() stops the HTTP API and the node, once however often it is called', async () => {
    const http = served.httpAddress!;
    const raft = served.raftAddress;
    await Promise.all([served.close(), served.close()]);
    await served.close();
    // Nothing of the node is left listening.
    const canListen = (addr: string) =>
      new Promise<boolean>((resolve) => {
        const s = createServer();
        s.once('error', () => resolve(false));
        s.listen(Number(addr.split(':')[1]), '127.0.0.1', () => s.close(() => resolve(true)));
      });
    expect(await canListen(http)).toBe(true);
    expect(await canListen(raft)).toBe(true);
  });
});

/**
 * The same operations through a client, in a cache of their own, as
 * [what, result] or [what, [error class, code, status]] — versions renamed
 * v1, v2, … in order of appearance, lock handles and expiry instants
 * reduced to their presence, bytes to text.
 */
async function transcript(client: VeloClient, cacheName: string): Promise<[string, unknown][]> {
  const out: [string, unknown][] = [];
  const versions = new Map<string, string>();
  // Versions are log indexes of the item's partition: comparable per key only.
  const norm = (v: unknown, item: string, field = ''): unknown => {
    if (v instanceof Uint8Array) return `bytes:${Buffer.from(v).toString()}`;
    if (v instanceof Map) return norm(Object.fromEntries([...v].sort(([a], [b]) => (a < b ? -1 : 1))), item);
    if (Array.isArray(v)) return v.map((x) => norm(x, item));
    if (typeof v === 'string' && field === 'version') {
      const id = `${item}@${v}`;
      if (!versions.has(id)) versions.set(id, `${item}.v${[...versions.keys()].filter((k) => k.startsWith(`${item}@`)).length + 1}`);
      return versions.get(id);
    }
    if (field === 'handle') return typeof v === 'string' && v.length > 0 ? 'a handle' : v;
    if (field === 'expiresAt') return typeof v === 'number' ? 'an instant' : v;
    if (typeof v === 'object' && v !== null) {
      const key = (v as { key?: unknown }).key;
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x, typeof key === 'string' ? key : item, k)]));
    }
    return v;
  };
  /** `item`: the key the step is about, whose versions its answer holds. */
  const step = async (item: string, what: string, op: () => Promise<unknown>) => {
    try {
      out.push([what, norm(await op(), item)]);
    } catch (e) {
      const err = e as VeloClientError;
      out.push([what, [err.constructor.name, err.code, err.status]]);
    }
  };
  await step('', 'create cache', () => client.createCache(cacheName, { defaultTtlMs: 0 }));
  const c = client.cache(cacheName);
  const r = c.region('reg');
  await step('a', 'get missing', () => c.get('a'));
  await step('a', 'put new', () => c.put('a', { n: 1 }));
  await step('a', 'put again', () => c.put('a', { n: 2 }));
  await step('a', 'get item', () => c.getItem('a'));
  await step('a', 'add existing', () => c.add('a', 0));
  await step('b', 'add new', () => c.add('b', Buffer.from('bee')));
  await step('a', 'compare-and-set stale', () => c.compareAndSet('a', 3, '1'));
  const current = (await c.getItem('a'))!.version;
  await step('a', 'compare-and-set current', () => c.compareAndSet('a', 3, current));
  await step('a', 'delete if stale', () => c.delete('a', { ifMatch: current }));
  await step('a', 'delete', () => c.delete('a'));
  await step('a', 'delete missing', () => c.delete('a'));
  await step('a', 'touch missing', () => c.touch('a', 60_000));
  await step('b', 'touch', () => c.touch('b', 60_000));
  await step('a', 'lock missing', () => c.lock('a', 10_000));
  const locked = await c.lock('b', 10_000);
  await step('b', 'locked item', async () => locked.item);
  await step('b', 'put over a lock', () => c.put('b', 'intruder'));
  await step('b', 'lock a locked item', () => c.lock('b', 10_000));
  await step('b', 'put under the lock', () => c.put('b', 'holder', { lockHandle: locked.handle }));
  await step('b', 'put and unlock', () => c.putAndUnlock('b', 'released', locked.handle));
  await step('b', 'unlock released', () => c.unlock('b', locked.handle));
  await step('b', 'get after', () => c.getItem('b'));
  await step('x', 'region put x', () => r.put('x', 1, { tags: ['t1'] }));
  await step('y', 'region put y', () => r.put('y', 'why', { tags: ['t1', 't2'], ttlMs: 60_000 }));
  await step('', 'list', async () => (await r.list()).sort((p, q) => (p.key < q.key ? -1 : 1)));
  await step('', 'list all of', () => r.list({ tags: ['t1', 't2'], match: 'all' }));
  await step('', 'get many', () => r.getMany(['x', 'y', 'z']));
  await step('', 'clear', () => r.clear());
  await step('', 'list cleared', () => r.list());
  await step('t', 'tags outside a region', () => c.put('t', 1, { tags: ['t1'] }));
  await step('big', 'too large', () => c.put('big', Buffer.alloc(MAX_VALUE_BYTES + 1)));
  await step('', 'stats', () => c.stats());
  await step('', 'drop cache', () => client.dropCache(cacheName));
  await step('a', 'put after drop', () => c.put('a', 1));
  await step('a', 'get after drop', () => c.get('a'));
  return out;
}

// ---------------------------------------------------------------- LocalBackend's rules, with a scripted node

/** A CacheService whose methods answer from a script; any method not scripted fails the test. */
function scripted(methods: Partial<Record<keyof CacheService, (...args: never[]) => unknown>>): { service: CacheService; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const service = new Proxy({} as CacheService, {
    get(_t, prop: string) {
      return (...args: never[]) => {
        calls.set(prop, (calls.get(prop) ?? 0) + 1);
        const m = methods[prop as keyof CacheService];
        if (!m) throw new Error(`the test did not script ${prop}`);
        return m(...args);
      };
    },
  });
  return { service, calls };
}

/** Fails with each error in turn, then answers `result`. */
function failing<T>(errors: (() => Error)[], result: T): () => Promise<T> {
  let i = 0;
  return async () => {
    const e = errors[i++];
    if (e) throw e();
    return result;
  };
}

const unavailable = () => new VeloError('unavailable', 'partition 0 did not answer in time', 1);
const timeout = () => new VeloError('timeout', 'the proposal timed out');
const notApplied = () => new NotApplied('the entry was replaced by a new leader’s');

const ref: ItemAddress = { cache: 'default', region: null, key: 'k' };
const view: ItemView = { value: new Uint8Array([1, 2, 3]), contentType: 'application/octet-stream', version: '7', expiresAt: null, tags: [] };
const putCmd = (over: Partial<PutCommand> = {}): PutCommand => ({
  ...ref,
  value: new Uint8Array([9]),
  contentType: 'application/octet-stream',
  ttlMs: null,
  tags: [],
  ifMatch: null,
  ifNoneMatch: false,
  lockHandle: null,
  unlock: false,
  ...over,
});

describe('LocalBackend retries only what is safe to retry', () => {
  test('a read is retried after unavailable and timeout, and answers', async () => {
    const { service, calls } = scripted({ get: failing([unavailable, timeout], { item: view, stale: null }) });
    const b = new LocalBackend(service, { timeoutMs: 5000 });
    expect((await b.get(ref, 'strong')).item!.version).toBe('7');
    expect(calls.get('get')).toBe(3);
  });

  test('an unconditional put is retried across a leader change', async () => {
    const { service, calls } = scripted({ put: failing([unavailable], { version: '8', created: false }) });
    const b = new LocalBackend(service, { timeoutMs: 5000 });
    expect(await b.put(putCmd())).toEqual({ version: '8', created: false });
    expect(calls.get('put')).toBe(2);
  });

  test('a write or lock whose outcome is unknown is IndeterminateError, never retried', async () => {
    const ops: [string, keyof CacheService, (b: LocalBackend) => Promise<unknown>][] = [
      ['compare-and-set', 'put', (b) => b.put(putCmd({ ifMatch: '7' }))],
      ['add', 'put', (b) => b.put(putCmd({ ifNoneMatch: true }))],
      ['put under a lock', 'put', (b) => b.put(putCmd({ lockHandle: 'h' }))],
      ['put-and-unlock', 'put', (b) => b.put(putCmd({ lockHandle: 'h', unlock: true }))],
      ['delete', 'delete', (b) => b.delete(ref, null, null)],
      ['touch', 'touch', (b) => b.touch(ref, 1000)],
      ['lock', 'lock', (b) => b.lock(ref, 1000)],
      ['unlock', 'unlock', (b) => b.unlock(ref, 'h')],
      ['clear region', 'clearRegion', (b) => b.clearRegion('default', 'r')],
      ['drop cache', 'dropCache', (b) => b.dropCache('c')],
    ];
    for (const [what, method, op] of ops) {
      for (const fail of [unavailable, timeout]) {
        const { service, calls } = scripted({ [method]: failing([fail], {}) });
        const err = await op(new LocalBackend(service, { timeoutMs: 5000 })).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err, what).toBeInstanceOf(IndeterminateError);
        expect((err as IndeterminateError).code).toBe('indeterminate');
        expect((err as IndeterminateError).cause, what).toBeInstanceOf(UnavailableError);
        expect(calls.get(method), what).toBe(1);
      }
    }
  });

  test('a conditional write the node certainly did not apply (NotApplied) is retried', async () => {
    const { service, calls } = scripted({ put: failing([notApplied, notApplied], { version: '9', created: false }) });
    const b = new LocalBackend(service, { timeoutMs: 5000 });
    expect(await b.put(putCmd({ ifMatch: '7' }))).toEqual({ version: '9', created: false });
    expect(calls.get('put')).toBe(3);
  });

  test('past the deadline: UnavailableError when nothing was applied, IndeterminateError when a put may have been', async () => {
    const read = scripted({ get: () => Promise.reject(unavailable()) });
    await expect(new LocalBackend(read.service, { timeoutMs: 300 }).get(ref, 'strong')).rejects.toMatchObject({ constructor: UnavailableError, code: 'unavailable', status: 503 });
    expect(read.calls.get('get')).toBeGreaterThan(1);
    const refused = scripted({ put: () => Promise.reject(notApplied()) });
    await expect(new LocalBackend(refused.service, { timeoutMs: 300 }).put(putCmd({ ifMatch: '7' }))).rejects.toBeInstanceOf(UnavailableError);
    const unknown = scripted({ put: () => Promise.reject(timeout()) });
    await expect(new LocalBackend(unknown.service, { timeoutMs: 300 }).put(putCmd())).rejects.toBeInstanceOf(IndeterminateError);
    expect(unknown.calls.get('put')).toBeGreaterThan(1);
  });

  test('the node’s errors become the API’s classes with its statuses, unretried', async () => {
    const table: [ErrorCode, new (...a: never[]) => VeloClientError, number][] = [
      ['not_found', NotFoundError, 404],
      ['cache_not_found', CacheNotFoundError, 404],
      ['precondition_failed', PreconditionFailedError, 412],
      ['locked', LockedError, 423],
      ['lock_not_held', LockNotHeldError, 409],
      ['cache_full', CacheFullError, 507],
      ['bad_request', BadRequestError, 400],
      ['value_too_large', ValueTooLargeError, 413],
      ['internal', InternalError, 500],
    ];
    for (const [code, cls, status] of table) {
      const { service, calls } = scripted({ get: () => Promise.reject(new VeloError(code, `a ${code}`)) });
      await expect(new LocalBackend(service).get(ref, 'strong'), code).rejects.toMatchObject({ constructor: cls, code, status, message: `a ${code}` });
      expect(calls.get('get')).toBe(1);
    }
    const bug = scripted({ get: () => Promise.reject(new TypeError('x is undefined')) });
    await expect(new LocalBackend(bug.service).get(ref, 'strong')).rejects.toMatchObject({ constructor: InternalError, code: 'internal', status: 500 });
  });

  test('bad input is BadRequestError before the node is asked', async () => {
    const { service, calls } = scripted({});
    const b = new LocalBackend(service, { maxValueBytes: 10 });
    const bad: [string, () => Promise<unknown>][] = [
      ['empty key', () => b.get({ ...ref, key: '' }, 'strong')],
      ['long key', () => b.get({ ...ref, key: 'k'.repeat(251) }, 'strong')],
      ['lone surrogate', () => b.delete({ ...ref, key: 'a\uD800' }, null, null)],
      ['tags outside a region', () => b.put(putCmd({ tags: ['t'] }))],
      ['zero ttl', () => b.put(putCmd({ ttlMs: 0 }))],
      ['fractional touch', () => b.touch(ref, 1.5)],
      ['lock without a timeout', () => b.lock(ref, 0)],
      ['unlock without a handle', () => b.unlock(ref, '')],
      ['unknown setting', () => b.putCache('c', { evictoin: 'lru' } as never)],
      ['negative default ttl', () => b.putCache('c', { defaultTtlMs: -1 })],
      ['bad consistency', () => b.get(ref, 'eventual' as never)],
    ];
    for (const [what, op] of bad) await expect(op(), what).rejects.toMatchObject({ constructor: BadRequestError, code: 'bad_request', status: 400 });
    await expect(b.put(putCmd({ value: new Uint8Array(11) }))).rejects.toMatchObject({ constructor: ValueTooLargeError, status: 413 });
    expect(calls.size).toBe(0);
  });

  test('values are copied on the way in and on the way out', async () => {
    const stored = new Uint8Array([1, 2, 3]);
    const seen: { value: Uint8Array | null } = { value: null };
    const { service } = scripted({
      put: (req: never) => {
        seen.value = (req as { value: Uint8Array }).value;
        return Promise.resolve({ version: '1', created: true });
      },
      get: () => Promise.resolve({ item: { ...view, value: stored }, stale: null }),
    });
    const b = new LocalBackend(service);
    const mine = new Uint8Array([5, 6, 7]);
    const pending = b.put(putCmd({ value: mine }));
    mine[0] = 0;
    await pending;
    expect([...seen.value!]).toEqual([5, 6, 7]);
    const out = (await b.get(ref, 'strong')).item!;
    out.value[0] = 0;
    expect([...stored]).toEqual([1, 2, 3]);
  });
});

describe('LocalBackend events', () => {
  type Sink = { event(id: string, data: object): void; error(code: string, message: string): void };
  function eventNode() {
    const state = { sink: null as Sink | null, opened: false, stopped: 0 };
    const { service } = scripted({
      openEvents: (_f: never, sink: never) => {
        state.sink = sink as Sink;
        // Events the node applies while the stream is being opened are already the stream's.
        state.sink.event('e0', { type: 'put', cache: 'c', region: null, key: 'k0', version: '1' });
        return Promise.resolve(() => {
          state.stopped++;
        }).finally(() => (state.opened = true));
      },
    });
    return { service, state };
  }
  const filter = { cache: 'c', region: null, key: null, lastEventId: null };

  test('onOpen runs once the node has fixed the position; events come in order, as copies', async () => {
    const { service, state } = eventNode();
    const ctrl = new AbortController();
    let openedAtOnOpen: boolean | null = null;
    const it = new LocalBackend(service).events(filter, ctrl.signal, () => (openedAtOnOpen = state.opened))[Symbol.asyncIterator]();
    const first = await it.next();
    expect(openedAtOnOpen).toBe(true);
    expect(first.value).toEqual({ id: 'e0', event: { type: 'put', cache: 'c', region: null, key: 'k0', version: '1' } });
    const data = { type: 'delete', cache: 'c', region: null, key: 'k1', version: '2' };
    const waiting = it.next();
    state.sink!.event('e1', data);
    state.sink!.event('e2', { ...data, key: 'k2', version: '3' });
    data.key = 'changed';
    expect(((await waiting).value as EventEnvelope).event.key).toBe('k1');
    expect(((await it.next()).value as EventEnvelope).id).toBe('e2');
    ctrl.abort();
    expect((await it.next()).done).toBe(true);
    expect(state.stopped).toBe(1);
  });

  test('aborting while the consumer waits ends the stream and stops the node’s side', async () => {
    const { service, state } = eventNode();
    const ctrl = new AbortController();
    const it = new LocalBackend(service).events(filter, ctrl.signal)[Symbol.asyncIterator]();
    await it.next();
    const waiting = it.next();
    ctrl.abort();
    expect((await waiting).done).toBe(true);
    expect(state.stopped).toBe(1);
  });

  test('aborting while the consumer is away (the generator suspended at a yield) stops the node’s side at once', async () => {
    const { service, state } = eventNode();
    const ctrl = new AbortController();
    const it = new LocalBackend(service).events(filter, ctrl.signal)[Symbol.asyncIterator]();
    await it.next();
    ctrl.abort();
    expect(state.stopped).toBe(1);
    state.sink!.event('late', { type: 'put', cache: 'c', region: null, key: 'k9', version: '9' });
    expect((await it.next()).done).toBe(true);
    expect(state.stopped).toBe(1);
  });

  test('history_lost from the node is HistoryLostError, after the events before it', async () => {
    const { service, state } = eventNode();
    const it = new LocalBackend(service).events(filter, new AbortController().signal)[Symbol.asyncIterator]();
    await it.next();
    state.sink!.event('e1', { type: 'put', cache: 'c', region: null, key: 'k1', version: '2' });
    state.sink!.error('history_lost', 'partition 0 no longer holds the events');
    expect(((await it.next()).value as EventEnvelope).id).toBe('e1');
    await expect(it.next()).rejects.toMatchObject({ constructor: HistoryLostError, code: 'history_lost' });
    expect(state.stopped).toBe(1);
  });

  test('close() ends open streams and refuses new requests', async () => {
    const { service, state } = eventNode();
    const b = new LocalBackend(service);
    const it = b.events(filter, new AbortController().signal)[Symbol.asyncIterator]();
    await it.next();
    const waiting = it.next();
    await b.close();
    expect((await waiting).done).toBe(true);
    expect(state.stopped).toBe(1);
    await expect(b.get(ref, 'strong')).rejects.toBeInstanceOf(UnavailableError);
  });
});
