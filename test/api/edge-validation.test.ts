// Validation at the edge (API.md Conventions, Security "Inputs that can
// never hurt a node"), against one node over real HTTP: a wrong type is
// refused, never coerced; an unknown field or query parameter is refused by
// name; a client's mistake is a 4xx in the contract's format, never a 500
// naming an internal class; Fastify's and Node's own refusals speak the
// contract too. Every refusal leaves the node's state as it was.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { contractErrorProblem, nodeState } from '../support/node-state.js';
import { rawExchange, rawRequest } from '../support/raw-http.js';
import { serveNode } from '../support/served-node.js';
import type { Served } from '../support/served-node.js';

const PARTITIONS = 4;
const MAX_VALUE = 1024;
let served: Served;
let base: string;
let port: number;

beforeAll(async () => {
  served = await serveNode({ maxValueBytes: MAX_VALUE, partitions: PARTITIONS });
  base = served.base;
  port = Number(new URL(base).port);
  // Something to lose: an item in a region with a tag, and a cache of our own.
  expect((await fetch(`${base}/v1/caches/kept`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"eviction":"none"}' })).status).toBe(201);
  expect((await fetch(`${base}/v1/caches/default/regions/r/items/k?tags=t`, { method: 'PUT', body: 'v' })).status).toBe(201);
});

afterAll(async () => {
  await served.close();
});

interface Answer {
  status: number;
  body: string;
}

/** Sends a request that must be refused: the answer, after checking it is a 4xx in the contract's format that changed nothing. */
async function refused(send: () => Promise<Answer>): Promise<{ status: number; code: string; message: string }> {
  const before = await nodeState(base, PARTITIONS);
  const a = await send();
  expect(a.status, a.body).toBeGreaterThanOrEqual(400);
  expect(a.status, a.body).toBeLessThan(500);
  expect(contractErrorProblem(a.body)).toBeNull();
  expect((await nodeState(base, PARTITIONS)).full).toBe(before.full);
  const { error } = JSON.parse(a.body) as { error: { code: string; message: string } };
  return { status: a.status, ...error };
}

const viaFetch = (path: string, init: RequestInit = {}) => async (): Promise<Answer> => {
  const r = await fetch(`${base}${path}`, init);
  return { status: r.status, body: await r.text() };
};
const json = (method: string, body: string): RequestInit => ({ method, headers: { 'content-type': 'application/json' }, body });

describe('no coercion: a wrong type is a 400 naming the field', () => {
  test.each([
    ['a string for an integer', '{"defaultTtlMs":"5"}', 'defaultTtlMs'],
    ['an array for an integer', '{"defaultTtlMs":[5]}', 'defaultTtlMs'],
    ['a boolean for an integer', '{"defaultTtlMs":true}', 'defaultTtlMs'],
    ['null for an integer', '{"defaultTtlMs":null}', 'defaultTtlMs'],
    ['a string for maxBytes', '{"maxBytes":"10"}', 'maxBytes'],
    ['an array for a string', '{"eviction":["lru"]}', 'eviction'],
    ['a number for a string', '{"eviction":1}', 'eviction'],
  ])('%s: %s', async (_what, body, field) => {
    const e = await refused(viaFetch('/v1/caches/coerced', json('PUT', body)));
    expect(e).toMatchObject({ status: 400, code: 'bad_request' });
    expect(e.message).toContain(`"${field}"`);
    expect((await fetch(`${base}/v1/caches/coerced/stats`)).status).toBe(404);
  });

  test('a member id given as a number is refused, not turned into a string', async () => {
    const e = await refused(viaFetch('/v1/cluster/members', json('POST', '{"id":7,"raft":"127.0.0.1:1","http":"127.0.0.1:2"}')));
    expect(e.code).toBe('bad_request');
    expect(e.message).toContain('"id"');
  });
});

describe('unknown fields and query parameters are refused by name', () => {
  test('an unknown body field in cache settings', async () => {
    const e = await refused(viaFetch('/v1/caches/extra', json('PUT', '{"eviction":"lru","maxbytes":10}')));
    expect(e).toMatchObject({ status: 400, code: 'bad_request', message: 'unknown body field "maxbytes"' });
  });

  test('an unknown body field in a member', async () => {
    const e = await refused(viaFetch('/v1/cluster/members', json('POST', '{"id":"n9","raft":"127.0.0.1:1","http":"127.0.0.1:2","role":"voter"}')));
    expect(e.message).toBe('unknown body field "role"');
  });

  test.each([
    ['PUT', '/v1/caches/default/items/k?ttl=5'],
    ['GET', '/v1/caches/default/items/k?consistent=local'],
    ['DELETE', '/v1/caches/default/items/k?force=true'],
    ['POST', '/v1/caches/default/items/k/touch?ttlMs=1000&ttl=5'],
    ['POST', '/v1/caches/default/items/k/lock?timeoutMs=1000&ttl=5'],
    ['POST', '/v1/caches/default/items/k/unlock?ttl=5'],
    ['GET', '/v1/caches/default/regions/r/items?tags=t'],
    ['DELETE', '/v1/caches/default/regions/r?ttl=5'],
    ['GET', '/v1/caches?ttl=5'],
    ['PUT', '/v1/caches/other?ttl=5'],
    ['DELETE', '/v1/caches/kept?ttl=5'],
    ['GET', '/v1/caches/default/stats?ttl=5'],
    ['GET', '/v1/caches/default/events?ttl=5'],
    ['GET', '/v1/cluster?ttl=5'],
    ['DELETE', '/v1/cluster/members/n9?forced=true'],
    ['GET', '/v1/admin/partitions/0/digest?ttl=5'],
    ['GET', '/v1/admin/partitions/0/export?ttl=5'],
    ['POST', '/v1/admin/load?ttl=5'],
    ['GET', '/healthz?ttl=5'],
    ['GET', '/readyz?ttl=5'],
    ['GET', '/metrics?ttl=5'],
  ])('%s %s', async (method, path) => {
    const name = [...new URL(path, base).searchParams.keys()].at(-1)!;
    const init: RequestInit = method === 'PUT' && path.includes('/items/') ? { method, body: 'changed' } : method === 'PUT' ? json(method, '{}') : { method };
    const e = await refused(viaFetch(path, init));
    expect(e).toMatchObject({ status: 400, code: 'bad_request', message: `unknown query parameter "${name}"` });
  });
});

describe('client mistakes that answered 500 with an internal class name are 400s', () => {
  test.each([
    ['defaultTtlMs past what a command can hold', '/v1/caches/huge', json('PUT', '{"defaultTtlMs":1e300}')],
    ['maxBytes past what a command can hold', '/v1/caches/huge', json('PUT', '{"maxBytes":1e20}')],
    ['more tags than an item may carry', `/v1/caches/default/regions/r/items/k?tags=${Array.from({ length: 65 }, (_, i) => `t${i}`).join(',')}`, { method: 'PUT', body: 'v' }],
    ['a Content-Type past its limit', '/v1/caches/default/items/k', { method: 'PUT', body: 'v', headers: { 'content-type': `a/${'b'.repeat(1100)}` } }],
    ['If-Match version 0 on a write', '/v1/caches/default/items/k', { method: 'PUT', body: 'v', headers: { 'if-match': '"0"' } }],
    ['If-Match version 0 on a delete', '/v1/caches/default/regions/r/items/k', { method: 'DELETE', headers: { 'if-match': '0' } }],
    ['a ttlMs whose expiry is past what a command can hold', `/v1/caches/default/items/k?ttlMs=${Number.MAX_SAFE_INTEGER}`, { method: 'PUT', body: 'v' }],
    ['a touch ttlMs past it', `/v1/caches/default/regions/r/items/k/touch?ttlMs=${Number.MAX_SAFE_INTEGER}`, { method: 'POST' }],
    ['a lock timeoutMs past it', `/v1/caches/default/regions/r/items/k/lock?timeoutMs=${Number.MAX_SAFE_INTEGER}`, { method: 'POST' }],
  ])('%s', async (_what, path, init: RequestInit) => {
    const e = await refused(viaFetch(path, init));
    expect(e).toMatchObject({ status: 400, code: 'bad_request' });
  });
});

describe('a refusal the node can decide alone is decided before anything is proposed', () => {
  test('dropping the default cache: 400, and no partition’s log moves (the fuzzer found it went through every log first)', async () => {
    expect(await refused(viaFetch('/v1/caches/default', { method: 'DELETE' }))).toMatchObject({ status: 400, code: 'bad_request', message: 'the default cache cannot be dropped' });
  });
});

describe("Fastify's and Node's own refusals are in the contract's format", () => {
  const raw = (target: string, headers: [string, string][] = [], method = 'GET', body?: Uint8Array) => async (): Promise<Answer> => {
    const r = await rawRequest(port, { method, target, headers, ...(body ? { body } : {}) });
    return { status: r.status, body: r.body.toString() };
  };

  test('a route that does not exist: 404 not_found', async () => {
    expect(await refused(raw('/v1/nothing/here'))).toMatchObject({ status: 404, code: 'not_found' });
    expect(await refused(raw('/v1/caches/default/items/k', [], 'PATCH'))).toMatchObject({ status: 404, code: 'not_found' });
  });

  test.each([['%ZZ'], ['%C0%AF'], ['%ED%A0%80'], ['%']])('a path that is not valid percent-encoded UTF-8 (%s): 400 bad_request', async (bad) => {
    expect(await refused(raw(`/v1/caches/default/items/${bad}`))).toMatchObject({ status: 400, code: 'bad_request' });
  });

  test('a name past the router’s parameter length: 414 uri_too_long', async () => {
    expect(await refused(raw(`/v1/caches/default/items/${'k'.repeat(3000)}`))).toMatchObject({ status: 414, code: 'uri_too_long' });
  });

  test('headers past Node’s limit: 431 headers_too_large', async () => {
    expect(await refused(raw('/v1/caches', [['x-filler', 'x'.repeat(20_000)]]))).toMatchObject({ status: 431, code: 'headers_too_large' });
  });

  test('bytes that are not HTTP: 400 bad_request', async () => {
    const a = await rawExchange(port, Buffer.from('HELLO there\r\n\r\n'));
    expect(a.status).toBe(400);
    expect(contractErrorProblem(a.body.toString())).toBeNull();
  });

  test('a body that is not JSON, an empty JSON body, a media type no route takes', async () => {
    expect(await refused(viaFetch('/v1/caches/bad', json('PUT', '{"eviction":')))).toMatchObject({ status: 400, code: 'bad_request' });
    expect(await refused(raw('/v1/caches/bad', [['content-type', 'application/json']], 'PUT', Buffer.alloc(0)))).toMatchObject({ status: 400, code: 'bad_request' });
    expect(await refused(viaFetch('/v1/caches/bad', { method: 'PUT', headers: { 'content-type': 'application/xml' }, body: '<a/>' }))).toMatchObject({ status: 415, code: 'unsupported_media_type' });
  });

  test('a body past the limit: 413 value_too_large', async () => {
    expect(await refused(viaFetch('/v1/caches/default/items/big', { method: 'PUT', body: 'x'.repeat(MAX_VALUE + 1) }))).toMatchObject({ status: 413, code: 'value_too_large' });
    expect(await refused(viaFetch('/v1/caches/big', json('PUT', `{"eviction":"${'x'.repeat(MAX_VALUE)}"}`)))).toMatchObject({ status: 413, code: 'value_too_large' });
  });

  test('an Expect other than 100-continue: 417 expectation_failed (Node answered it with an empty body)', async () => {
    expect(await refused(raw('/v1/caches', [['Expect', 'something']]))).toMatchObject({ status: 417, code: 'expectation_failed' });
  });

  test('a prototype-polluting body is refused and pollutes nothing', async () => {
    await refused(viaFetch('/v1/caches/proto', json('PUT', '{"__proto__":{"eviction":"none"}}')));
    await refused(viaFetch('/v1/caches/proto', json('PUT', '{"constructor":{"prototype":{"polluted":1}}}')));
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });
});
