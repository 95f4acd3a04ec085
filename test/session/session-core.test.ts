// The locking store's writes against a real node over HTTP, one request
// scope at a time: a write never overwrites a session that this request did
// not lock, and the request's own second write is checked against its first.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { VeloClient } from '../../src/client/client.js';
import { SessionStoreCore } from '../../src/session/session-core.js';
import type { SessionRecord } from '../../src/session/session-core.js';
import { SessionConflictError, SessionStoreError } from '../../src/session/session-lock.js';
import type { RequestScope } from '../../src/session/session-lock.js';
import { serveNode } from '../support/served-node.js';
import type { Served } from '../support/served-node.js';

let served: Served;
let client: VeloClient;
let core: SessionStoreCore;

beforeAll(async () => {
  served = await serveNode({ maxValueBytes: 1 << 20 });
  client = new VeloClient({ nodes: [served.base] });
  core = new SessionStoreCore({ client, locking: { timeoutMs: 60_000, waitMs: 2_000 } }, 'install the hook');
  await client.createCache('sessions');
});
afterAll(async () => {
  await client?.close();
  await served?.close();
});

const session = (items: string[]): SessionRecord => ({ cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000).toISOString() }, items });
const inScope = <T>(scope: RequestScope, fn: () => Promise<T>) => core.scopes.run(scope, fn);

async function stored(key: string): Promise<unknown> {
  return client.cache('sessions').get(key, { consistency: 'strong' });
}

describe('the locking session store, one request at a time', () => {
  test('a new session is created with add; another request creating the same id is refused, not allowed to overwrite', async () => {
    const one = core.openScope();
    const two = core.openScope();
    expect(await inScope(one, () => core.get('new-1'))).toBeNull();
    expect(await inScope(two, () => core.get('new-1'))).toBeNull();
    await inScope(one, () => core.set('new-1', session(['one'])));
    await expect(inScope(two, () => core.set('new-1', session(['two'])))).rejects.toBeInstanceOf(SessionConflictError);
    expect(await stored('new-1')).toMatchObject({ items: ['one'] });
    await Promise.all([core.end(one), core.end(two)]);
  });

  test("a request's second write is a compare-and-set against its first: it lands unless someone changed the session in between", async () => {
    const req = core.openScope();
    await inScope(req, () => core.set('twice', session(['a'])));
    await inScope(req, () => core.set('twice', session(['a', 'b'])));
    expect(await stored('twice')).toMatchObject({ items: ['a', 'b'] });

    const other = core.openScope();
    expect(await inScope(other, () => core.get('twice'))).toMatchObject({ items: ['a', 'b'] });
    await inScope(other, () => core.set('twice', session(['other'])));
    await expect(inScope(req, () => core.set('twice', session(['a', 'b', 'c'])))).rejects.toBeInstanceOf(SessionConflictError);
    expect(await stored('twice')).toMatchObject({ items: ['other'] });
    await Promise.all([core.end(req), core.end(other)]);
  });

  test('a loaded session stays locked until the request writes it, and a reload within the request does not wait for itself', async () => {
    await client.cache('sessions').put('held', session(['x']));
    const req = core.openScope();
    expect(await inScope(req, () => core.get('held'))).toMatchObject({ items: ['x'] });
    await expect(client.cache('sessions').put('held', session(['intruder']))).rejects.toThrow(/locked/);
    expect(await inScope(req, () => core.get('held'))).toMatchObject({ items: ['x'] });
    await inScope(req, () => core.set('held', session(['x', 'y'])));
    await client.cache('sessions').put('held', session(['after']));
    await core.end(req);
  });

  test('ending a request unlocks what it still holds; after its end, it can no longer write', async () => {
    await client.cache('sessions').put('ended', session(['x']));
    const req = core.openScope();
    await inScope(req, () => core.get('ended'));
    await core.end(req);
    const next = core.openScope();
    expect(await inScope(next, () => core.get('ended'))).toMatchObject({ items: ['x'] });
    await expect(inScope(req, () => core.set('ended', session(['late'])))).rejects.toBeInstanceOf(SessionConflictError);
    await inScope(next, () => core.set('ended', session(['x', 'next'])));
    expect(await stored('ended')).toMatchObject({ items: ['x', 'next'] });
    await core.end(next);
  });

  test('outside any request scope, loading a session is refused with the hint to install the hook', async () => {
    await expect(core.get('anything')).rejects.toThrow(SessionStoreError);
    await expect(core.get('anything')).rejects.toThrow(/install the hook/);
  });

  test('destroy outside a request waits for the holder, then removes the session', async () => {
    await client.cache('sessions').put('logout', session(['x']));
    const req = core.openScope();
    await inScope(req, () => core.get('logout'));
    const destroyed = core.destroy('logout');
    await inScope(req, () => core.set('logout', session(['x', 'y'])));
    await destroyed;
    expect(await stored('logout')).toBeUndefined();
    await core.end(req);
  });
});
