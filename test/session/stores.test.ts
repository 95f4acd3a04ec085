// The Express and Fastify session stores against a real node over HTTP, in
// real apps on loopback ports: where sessions live and for how long, and
// exclusive locking — two overlapping writes of one session both land with
// it and one is lost without it, whose scripts open each request's gate in
// a fixed order instead of relying on time.
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { VeloClient } from '../../src/client/client.js';
import { LockedError } from '../../src/client/errors.js';
import { SessionConflictError, VeloFastifySessionStore, VeloSessionStore } from '../../src/session/index.js';
import type { VeloSessionStoreOptions } from '../../src/session/index.js';
import { until } from '../../scripts/poll.js';
import { serveNode } from '../support/served-node.js';
import type { Served } from '../support/served-node.js';
import { expressApp, fastifyApp } from './apps.js';
import { Browser } from './browser.js';
import type { AppOptions, TestApp } from './apps.js';

type AnyStore = VeloSessionStore | VeloFastifySessionStore;

interface Framework {
  name: 'express' | 'fastify';
  store(o: VeloSessionStoreOptions): AnyStore;
  app(store: AnyStore, o: AppOptions): Promise<TestApp>;
  hookHint: RegExp;
}

const FRAMEWORKS: Framework[] = [
  { name: 'express', store: (o) => new VeloSessionStore(o), app: (s, o) => expressApp(s as VeloSessionStore, o), hookHint: /store\.middleware\(\)/ },
  { name: 'fastify', store: (o) => new VeloFastifySessionStore(o), app: (s, o) => fastifyApp(s as VeloFastifySessionStore, o), hookHint: /store\.plugin/ },
];

let served: Served;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  served = await serveNode({ maxValueBytes: 1 << 20 });
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  await served?.close();
});

/** Counts the lock attempts of this client that another handle refused: the sign that a request is waiting. */
function countRefusedLocks(client: VeloClient): { refused: number } {
  const seen = { refused: 0 };
  const cacheOf = client.cache.bind(client);
  client.cache = (name?: string) => {
    const cache = cacheOf(name);
    const lock = cache.lock.bind(cache);
    cache.lock = async (key, timeoutMs) => {
      try {
        return await lock(key, timeoutMs);
      } catch (err) {
        if (err instanceof LockedError) seen.refused++;
        throw err;
      }
    };
    return cache;
  };
  return seen;
}

async function instance(fw: Framework, storeOpts: Omit<VeloSessionStoreOptions, 'client'> = {}, appOpts: AppOptions = {}) {
  const client = new VeloClient({ nodes: [served.base] });
  const refusals = countRefusedLocks(client);
  const store = fw.store({ client, ...storeOpts });
  const app = await fw.app(store, appOpts);
  cleanups.push(() => client.close(), () => app.close());
  return { client, store, app, refusals, browser: new Browser(app.base) };
}

async function item(cache: string, key: string) {
  const r = await fetch(`${served.base}/v1/caches/${encodeURIComponent(cache)}/items/${encodeURIComponent(key)}`);
  const body = await r.text();
  return {
    status: r.status,
    contentType: r.headers.get('content-type'),
    expiresAt: r.headers.has('x-velo-expires-at') ? Number(r.headers.get('x-velo-expires-at')) : null,
    value: r.status === 200 ? (JSON.parse(body) as { items?: string[]; cookie?: unknown }) : null,
    body,
  };
}

/** Takes the session item's lock as another app would, over HTTP. */
async function lockFromElsewhere(key: string, timeoutMs: number): Promise<string> {
  const r = await fetch(`${served.base}/v1/caches/sessions/items/${encodeURIComponent(key)}/lock?timeoutMs=${timeoutMs}`, { method: 'POST' });
  expect(r.status).toBe(200);
  return r.headers.get('x-velo-lock-handle')!;
}

async function unlockFromElsewhere(key: string, handle: string): Promise<number> {
  return (await fetch(`${served.base}/v1/caches/sessions/items/${encodeURIComponent(key)}/unlock`, { method: 'POST', headers: { 'x-velo-lock-handle': handle } })).status;
}

/** Whether the item can be locked now (and then unlocks it again). */
async function lockable(key: string): Promise<boolean> {
  const r = await fetch(`${served.base}/v1/caches/sessions/items/${encodeURIComponent(key)}/lock?timeoutMs=5000`, { method: 'POST' });
  if (r.status !== 200) return false;
  expect(await unlockFromElsewhere(key, r.headers.get('x-velo-lock-handle')!)).toBe(204);
  return true;
}

function storeCall(store: AnyStore, op: 'set' | 'destroy', sid: string, sess?: object): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: unknown) => (err ? reject(err) : resolve());
    if (op === 'set') (store as { set(sid: string, s: object, cb: (err?: unknown) => void): void }).set(sid, sess!, done);
    else (store as { destroy(sid: string, cb: (err?: unknown) => void): void }).destroy(sid, done);
  });
}

describe.each(FRAMEWORKS)('the $name session store', (fw) => {
  test('a session saved through one app instance is seen through another with the same cookie, as JSON in its own cache, created on first use', async () => {
    const cache = `sessions-${fw.name}-shared`;
    const a = await instance(fw, { cache });
    const b = await instance(fw, { cache });
    expect((await item(cache, 'nothing')).body).toMatch(/cache_not_found/);

    const first = await a.browser.request('POST', '/append?item=x');
    expect(first).toMatchObject({ status: 200, body: { items: ['x'] } });
    const stored = await item(cache, first.body!.id!);
    expect(stored.status).toBe(200);
    expect(stored.contentType).toMatch(/^application\/json/);
    expect(stored.value).toMatchObject({ items: ['x'], cookie: expect.any(Object) });

    const onB = a.browser.on(b.app.base);
    expect(await onB.request('GET', '/session')).toMatchObject({ status: 200, body: { id: first.body!.id, items: ['x'] } });
    expect(await onB.request('POST', '/append?item=y')).toMatchObject({ status: 200, body: { items: ['x', 'y'] } });
    expect(await a.browser.request('GET', '/session')).toMatchObject({ body: { id: first.body!.id, items: ['x', 'y'] } });
  });

  test('the item lives as long as the cookie: maxAge when set, one day for a browser-session cookie; the prefix makes the key', async () => {
    const withMaxAge = await instance(fw, { prefix: 'app1:' }, { maxAgeMs: 60_000 });
    const before = Date.now();
    const r = await withMaxAge.browser.request('POST', '/append?item=x');
    const after = Date.now();
    expect((await item('sessions', r.body!.id!)).status).toBe(404);
    const { expiresAt } = await item('sessions', `app1:${r.body!.id}`);
    expect(expiresAt).toBeGreaterThanOrEqual(before + 60_000 - 1000);
    expect(expiresAt).toBeLessThanOrEqual(after + 60_000 + 1000);

    const plain = await instance(fw);
    const p = await plain.browser.request('POST', '/append?item=x');
    const day = (await item('sessions', p.body!.id!)).expiresAt!;
    expect(day).toBeGreaterThanOrEqual(before + 86_400_000 - 1000);
    expect(day).toBeLessThanOrEqual(Date.now() + 86_400_000 + 1000);
  });

  test('a request on an unchanged session pushes its expiry forward', async () => {
    const a = await instance(fw, {}, { maxAgeMs: 60_000 });
    const id = (await a.browser.request('POST', '/append?item=x')).body!.id!;
    const first = (await item('sessions', id)).expiresAt!;
    // An expect() inside until() would only count as "not yet": what each read answered is kept and checked after.
    const wrong: unknown[] = [];
    await until('a later expiry after a read of the session', async () => {
      const body = (await a.browser.request('GET', '/session')).body;
      if (body?.id !== id || JSON.stringify(body.items) !== JSON.stringify(['x'])) wrong.push(body);
      return wrong.length > 0 || (await item('sessions', id)).expiresAt! > first;
    }, 5_000, 20);
    expect(wrong, 'reads of the session that answered another one').toEqual([]);
  });

  test('logout destroys the item, and the old cookie then gets a fresh, empty session', async () => {
    const a = await instance(fw);
    const id = (await a.browser.request('POST', '/append?item=x')).body!.id!;
    const old = a.browser.cookie;
    expect((await a.browser.request('POST', '/logout')).status).toBe(204);
    expect((await item('sessions', id)).status).toBe(404);
    a.browser.cookie = old;
    const after = await a.browser.request('GET', '/session');
    expect(after.body!.items).toEqual([]);
    expect(after.body!.id).not.toBe(id);
  });

  test('a session expires with its cookie: the item is gone after maxAge, and the old cookie gets a fresh session', async () => {
    const a = await instance(fw, {}, { maxAgeMs: 400 });
    const id = (await a.browser.request('POST', '/append?item=x')).body!.id!;
    expect((await item('sessions', id)).status).toBe(200);
    await until('the session item expired', async () => (await item('sessions', id)).status === 404, 10_000, 25);
    const after = await a.browser.request('GET', '/session');
    expect(after.body!.items).toEqual([]);
    expect(after.body!.id).not.toBe(id);
  });

  test('a session whose cookie has already expired is destroyed, not written', async () => {
    const { store } = await instance(fw);
    const sid = `expired-${fw.name}`;
    await storeCall(store, 'set', sid, { cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000).toISOString() }, items: ['x'] });
    expect((await item('sessions', sid)).status).toBe(200);
    await storeCall(store, 'set', sid, { cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() - 1).toISOString() }, items: ['y'] });
    expect((await item('sessions', sid)).status).toBe(404);
  });

  test('without locking, two overlapping appends to one session lose one (the second write replaces the first)', async () => {
    const a = await instance(fw);
    await a.browser.request('POST', '/append?item=first');
    const first = a.browser.request('POST', '/append?item=a&gate=a');
    await a.app.gates.arrived('a'); // a has read [first]
    const second = a.browser.request('POST', '/append?item=b&gate=b');
    await a.app.gates.arrived('b'); // b has read [first] too
    a.app.gates.open('a');
    expect((await first).body!.items).toEqual(['first', 'a']);
    a.app.gates.open('b');
    expect((await second).body!.items).toEqual(['first', 'b']);
    expect((await a.browser.request('GET', '/session')).body!.items).toEqual(['first', 'b']);
  });

  for (const where of ['one app instance', 'two app instances'] as const) {
    test(`with locking, two overlapping appends to one session through ${where} both land: the second waits for the first's lock`, async () => {
      const a = await instance(fw, { locking: true });
      const b = where === 'one app instance' ? a : await instance(fw, { locking: true });
      await a.browser.request('POST', '/append?item=first');
      const id = (await a.browser.request('GET', '/session')).body!.id!;
      const browserB = a.browser.on(b.app.base);

      const first = a.browser.request('POST', '/append?item=a&gate=a');
      await a.app.gates.arrived('a'); // a holds the lock, and has read [first]
      const second = browserB.request('POST', '/append?item=b&gate=b');
      await until('b refused the lock', async () => b.refusals.refused > 0, 10_000, 5);
      expect(b.app.gates.hasArrived('b')).toBe(false);
      a.app.gates.open('a');
      expect(await first).toMatchObject({ status: 200, body: { items: ['first', 'a'] } });
      await b.app.gates.arrived('b');
      b.app.gates.open('b');
      expect(await second).toMatchObject({ status: 200, body: { items: ['first', 'a', 'b'] } });
      expect((await item('sessions', id)).value!.items).toEqual(['first', 'a', 'b']);
    });
  }

  test('with locking, a request waits at most waitMs for a lock held elsewhere, then answers 503 session_busy', async () => {
    const a = await instance(fw, { locking: { waitMs: 300 } });
    const id = (await a.browser.request('POST', '/append?item=x')).body!.id!;
    const handle = await lockFromElsewhere(id, 30_000);
    const started = Date.now();
    const r = await a.browser.request('POST', '/append?item=y');
    expect(r).toMatchObject({ status: 503, body: { error: { code: 'session_busy' } } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    expect(await unlockFromElsewhere(id, handle)).toBe(204);
    expect((await item('sessions', id)).value!.items).toEqual(['x']);
  });

  test('with locking, the lock of a holder that died expires after its timeout, and the waiting request then goes on', async () => {
    const a = await instance(fw, { locking: { waitMs: 10_000 } });
    const id = (await a.browser.request('POST', '/append?item=x')).body!.id!;
    await lockFromElsewhere(id, 400); // and never unlocks
    expect(await a.browser.request('POST', '/append?item=y')).toMatchObject({ status: 200, body: { items: ['x', 'y'] } });
  });

  test('with locking, a failing route releases its lock', async () => {
    const a = await instance(fw, { locking: { timeoutMs: 60_000 } });
    const id = (await a.browser.request('POST', '/append?item=x')).body!.id!;
    expect((await a.browser.request('GET', '/boom')).status).toBe(500);
    // Released when the request ended, not after the 60 s lock timeout.
    await until('the session lockable again', () => lockable(id), 3_000, 20);
  });

  test('with locking, an aborted request releases its lock when its response closes', async () => {
    const a = await instance(fw, { locking: { timeoutMs: 60_000 } });
    const id = (await a.browser.request('POST', '/append?item=x')).body!.id!;
    const abort = new AbortController();
    const aborted = a.browser.request('POST', '/append?item=lost&gate=a', abort.signal).catch((err: unknown) => err);
    await a.app.gates.arrived('a');
    expect(await lockable(id)).toBe(false);
    abort.abort();
    await aborted;
    await until('the session lockable again', () => lockable(id), 3_000, 20);
    a.app.gates.open('a');
    expect(await a.browser.request('POST', '/append?item=y')).toMatchObject({ status: 200, body: { items: ['x', 'y'] } });
  });

  test('with locking on and the hook not installed, loading a session fails with an error that names the hook', async () => {
    const withHook = await instance(fw, { locking: true });
    await withHook.browser.request('POST', '/append?item=x');
    const without = await instance(fw, { locking: true }, { hook: false });
    const r = await withHook.browser.on(without.app.base).request('GET', '/session');
    expect(r.status).toBe(500);
    expect(r.body!.error!.message).toMatch(fw.hookHint);
  });
});

describe('the express session store', () => {
  test('with locking, the late save of an aborted request is refused instead of overwriting later changes', async () => {
    const fw = FRAMEWORKS[0]!;
    const a = await instance(fw, { locking: { timeoutMs: 60_000 } });
    const id = (await a.browser.request('POST', '/append?item=x')).body!.id!;
    const store = a.store as VeloSessionStore;
    const saves: unknown[] = [];
    const set = store.set.bind(store);
    store.set = (sid, sess, cb) => set(sid, sess, (err) => (saves.push(err), cb?.(err)));

    const abort = new AbortController();
    const aborted = a.browser.request('POST', '/append?item=lost&gate=a', abort.signal).catch((err: unknown) => err);
    await a.app.gates.arrived('a');
    abort.abort();
    await aborted;
    await until('the session lockable again', () => lockable(id), 3_000, 20);
    expect(await a.browser.request('POST', '/append?item=y')).toMatchObject({ status: 200, body: { items: ['x', 'y'] } });
    a.app.gates.open('a');
    await until('the aborted request tried to save', async () => saves.length === 2, 5_000, 10);
    expect(saves[1]).toBeInstanceOf(SessionConflictError);
    expect((await item('sessions', id)).value!.items).toEqual(['x', 'y']);
  });
});

describe('the fastify session store', () => {
  test('with locking and rolling off, a request that does not save still releases its lock', async () => {
    const fw = FRAMEWORKS[1]!;
    const a = await instance(fw, { locking: { timeoutMs: 60_000 } }, { rolling: false });
    const id = (await a.browser.request('POST', '/append?item=x')).body!.id!;
    const before = (await item('sessions', id)).body;
    expect((await a.browser.request('GET', '/session')).body!.items).toEqual(['x']);
    await until('the session lockable again', () => lockable(id), 3_000, 20);
    expect((await item('sessions', id)).body).toBe(before);
  });
});
