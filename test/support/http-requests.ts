// fast-check arbitraries of HTTP requests for the edge fuzzer: the real
// routes (API.md) with names, query parameters, headers and bodies that are
// valid, nearly valid or junk; paths and methods from no route at all; and
// framing a client should never send. Raw requests (test/support/raw-http.ts),
// so bad percent-encoding and odd methods reach the node as written.
//
// Valid values are chosen so the node never changes state on its own after
// a request (the fuzzer compares state around every 4xx): TTLs, lock
// timeouts and cache sizes that are valid are far beyond the test's length,
// and nothing valid ever changes membership or creates a token (a token
// would turn authentication on; the membership tests own membership).
import fc from 'fast-check';
import { encodeRecords } from '../../src/cache/index.js';
import type { RawRequest } from './raw-http.js';

const DAY_MS = 86_400_000;

/** Names as they go into a path: encoded valid names, and junk written raw. */
const validName = fc.constantFrom('default', 'fz', 'fz2', 'k', 'k1', 'a b', 'ключ', '🗝', 'x'.repeat(250), 'a/b', 'a?b', 'a#b', '.', '..');
const junkPathName = fc.constantFrom('', '%ZZ', '%', '%C0%AF', '%ED%A0%80', '%FF', '%00', 'x'.repeat(251), 'x'.repeat(1100), 'é'.repeat(126), '%2F', 'a%20', '..%2F..%2F');
const pathName = fc.oneof({ weight: 4, arbitrary: validName.map(encodeURIComponent) }, { weight: 1, arbitrary: junkPathName });
/** Mostly a cache that exists, so that requests reach the state machine. */
const cacheName = fc.oneof({ weight: 3, arbitrary: fc.constantFrom('default', 'fz') }, { weight: 1, arbitrary: pathName });

/** A query string from named parameters, each value valid, junk, or repeated. */
function query(params: Record<string, fc.Arbitrary<string>>): fc.Arbitrary<string> {
  // Each named parameter is given half the time, repeated (an array where a scalar is expected) one time in ten.
  const entries = Object.entries(params).map(([k, v]) => fc.option(fc.tuple(fc.constant(k), v, fc.integer({ min: 0, max: 9 }).map((n) => n === 0)), { freq: 2 }));
  // One request in eight carries a parameter no route knows.
  const unknown = fc.oneof(
    { weight: 7, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('x', 'ttl', '__proto__', 'constructor[prototype][x]', 'a[b]', '%ZZ', ''), fc.constantFrom('1', '', '%ZZ', 'y'), fc.constant(false)) },
  );
  return fc.tuple(fc.tuple(...entries), unknown).map(([given, extra]) => {
    const parts: string[] = [];
    for (const e of [...given, extra]) {
      if (e === null) continue;
      const [k, v, twice] = e;
      parts.push(`${k}=${v}`);
      if (twice) parts.push(`${k}=${v}`);
    }
    return parts.length === 0 ? '' : `?${parts.join('&')}`;
  });
}

const junkNumber = fc.constantFrom('0', '-1', '1.5', '1e3', 'abc', '', '0x10', String(Number.MAX_SAFE_INTEGER), '99999999999999999999', '%ZZ', ' 5');
const ttlMs = fc.oneof({ weight: 3, arbitrary: fc.constant(String(DAY_MS)) }, { weight: 2, arbitrary: junkNumber });
const tags = fc.oneof(fc.constantFrom('t1', 't1,t2', '', ',', 't1,,t2', 'x'.repeat(251)), fc.constant(Array.from({ length: 65 }, (_, i) => `t${i}`).join(',')));

/** JSON values of every kind, for bodies and for fields of the wrong type. */
const junkJsonValue = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1.5, 1e300, '', '5', 'lru', [], [5], ['lru'], {}, { a: 1 }),
  fc.string({ maxLength: 8 }),
  fc.integer(),
);

/**
 * A valid body with exactly one defect: a field of the wrong type, a required
 * one missing, or an unknown one. A replacement that happens to be valid
 * too (`"caches": null` means every cache) is dropped when `mayBeValid` says so.
 */
function withOneDefect(valid: Record<string, unknown>, required: string[], mayBeValid: (b: Record<string, unknown>) => boolean = () => false): fc.Arbitrary<Record<string, unknown>> {
  const keys = Object.keys(valid);
  return fc.oneof(
    fc.tuple(fc.constantFrom(...keys), junkJsonValue).map(([k, v]) => ({ ...valid, [k]: v })).filter((b) => JSON.stringify(b) !== JSON.stringify(valid)),
    ...(required.length > 0 ? [fc.constantFrom(...required).map((k) => Object.fromEntries(Object.entries(valid).filter(([key]) => key !== k)))] : []),
    fc.tuple(fc.constantFrom('extra', 'role', 'Id', '__proto__x'), junkJsonValue).map(([k, v]) => ({ ...valid, [k]: v })),
  ).filter((b) => !mayBeValid(b));
}

const ID = /^[A-Za-z0-9._-]{1,64}$/;
const isName = (v: unknown) => typeof v === 'string' && ID.test(v);
/** A member body the route could accept: one would change the membership. */
const memberMayBeValid = (b: Record<string, unknown>) =>
  Object.keys(b).every((k) => ['id', 'raft', 'http', 'member'].includes(k)) && isName(b.id) && typeof b.raft === 'string' && typeof b.http === 'string' && (b.member === undefined || typeof b.member === 'string');
/** A token body the route could accept: one would turn authentication on. */
const tokenMayBeValid = (b: Record<string, unknown>) =>
  Object.keys(b).every((k) => ['name', 'role', 'caches'].includes(k)) && isName(b.name) && typeof b.role === 'string' && (b.caches === undefined || b.caches === null || Array.isArray(b.caches));

/** Cache settings: valid ones that can never evict or fill up, and junk. */
const settingsBody = fc.oneof(
  fc.record({ defaultTtlMs: fc.constantFrom(0, DAY_MS), maxBytes: fc.constantFrom(null, 2 ** 30), eviction: fc.constantFrom('lru', 'none') }, { requiredKeys: [] }),
  withOneDefect({ defaultTtlMs: 0, maxBytes: null, eviction: 'lru' }, []),
);

/** Bodies in every encoding: JSON text (valid, broken, deep, with a BOM), bytes that are not UTF-8, nothing. */
function jsonBody(valid: fc.Arbitrary<unknown>): fc.Arbitrary<{ contentType: string | null; body: Uint8Array | undefined }> {
  const text = (s: string) => new TextEncoder().encode(s);
  return fc.oneof(
    { weight: 6, arbitrary: valid.map((v) => ({ contentType: 'application/json', body: text(JSON.stringify(v)) })) },
    { weight: 1, arbitrary: fc.constantFrom('{', '{"a":', '[]', 'null', '"x"', '1', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}', '\uFEFF{}', '{"a":1,"a":2}').map((s) => ({ contentType: 'application/json', body: text(s) })) },
    { weight: 1, arbitrary: fc.constantFrom(200, 2000).map((d) => ({ contentType: 'application/json', body: text('['.repeat(d) + ']'.repeat(d)) })) },
    { weight: 1, arbitrary: fc.constantFrom('text/plain', 'application/xml', 'application/x-www-form-urlencoded', 'multipart/form-data', 'application/json; charset=latin1', '').map((ct) => ({ contentType: ct, body: text('a=1') })) },
    { weight: 1, arbitrary: fc.constant({ contentType: 'application/json', body: Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d]) }) },
    { weight: 1, arbitrary: fc.constant({ contentType: null, body: undefined }) },
  );
}

const valueBody = fc.oneof(
  { weight: 6, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 1, arbitrary: fc.constantFrom(4097, 20_000).map((n) => new Uint8Array(n).fill(0x61)) },
);
const contentType = fc.option(fc.constantFrom('text/plain', 'application/json', 'application/octet-stream', '', ';', 'a/' + 'b'.repeat(1100), 'text/plain; charset=utf-8', 'ü/ü'), { freq: 2 });
const etag = fc.constantFrom('"1"', '"2"', '"999999"', '"0"', '0', '"abc"', 'W/"3"', '*', '', '"', `"${'9'.repeat(40)}"`);
const handle = fc.oneof(fc.uuid(), fc.constantFrom('', 'x'.repeat(129), 'handle'));

interface Shape {
  method: string;
  path: string;
  headers: [string, string][];
  body?: Uint8Array;
}

const withBody = (method: string, path: string, headers: [string, string][], b: { contentType: string | null; body: Uint8Array | undefined }): Shape => ({
  method,
  path,
  headers: b.contentType === null ? headers : [...headers, ['Content-Type', b.contentType]],
  ...(b.body ? { body: b.body } : {}),
});

/** The item routes, in the default space or in a region. */
const itemRequest: fc.Arbitrary<Shape> = fc
  .tuple(cacheName, fc.option(pathName, { freq: 2 }), pathName)
  .chain(([cache, region, key]) => {
    const base = `/v1/caches/${cache}${region === null ? '' : `/regions/${region}`}/items/${key}`;
    const condition = fc.oneof(etag.map((v): [string, string] => ['If-Match', v]), fc.constantFrom<[string, string]>(['If-None-Match', '*'], ['If-None-Match', '"1"']), handle.map((h): [string, string] => ['X-Velo-Lock-Handle', h]));
    const conditions = fc.oneof({ weight: 2, arbitrary: fc.constant([] as [string, string][]) }, { weight: 1, arbitrary: fc.array(condition, { minLength: 1, maxLength: 2 }) });
    return fc.oneof(
      { weight: 3, arbitrary: fc.tuple(query({ ttlMs, tags, unlock: fc.constantFrom('true', 'false', 'yes') }), conditions, contentType, valueBody).map(([q, h, ct, body]) => ({
        method: 'PUT',
        path: base + q,
        headers: ct === null ? h : [...h, ['Content-Type', ct] as [string, string]],
        body,
      })) },
      fc.tuple(query({ consistency: fc.constantFrom('strong', 'local', 'eventual') }), fc.constantFrom('GET', 'HEAD')).map(([q, method]) => ({ method, path: base + q, headers: [] })),
      fc.tuple(query({}), conditions).map(([q, h]) => ({ method: 'DELETE', path: base + q, headers: h })),
      query({ ttlMs }).map((q) => ({ method: 'POST', path: `${base}/touch${q}`, headers: [] })),
      query({ timeoutMs: ttlMs }).map((q) => ({ method: 'POST', path: `${base}/lock${q}`, headers: [] })),
      fc.tuple(query({}), conditions).map(([q, h]) => ({ method: 'POST', path: `${base}/unlock${q}`, headers: h })),
    );
  });

const regionRequest: fc.Arbitrary<Shape> = fc.tuple(cacheName, pathName).chain(([cache, region]) =>
  fc.oneof(
    query({ tag: fc.constantFrom('t1', 't2', '', 'x'.repeat(251)), match: fc.constantFrom('any', 'all', 'none') }).map((q) => ({ method: 'GET', path: `/v1/caches/${cache}/regions/${region}/items${q}`, headers: [] })),
    query({}).map((q) => ({ method: 'DELETE', path: `/v1/caches/${cache}/regions/${region}${q}`, headers: [] })),
  ),
);

const cacheRequest: fc.Arbitrary<Shape> = cacheName.chain((cache) =>
  fc.oneof(
    query({}).map((q) => ({ method: 'GET', path: `/v1/caches${q}`, headers: [] })),
    fc.tuple(query({}), jsonBody(settingsBody)).map(([q, b]) => withBody('PUT', `/v1/caches/${cache}${q}`, [], b)),
    query({}).map((q) => ({ method: 'DELETE', path: `/v1/caches/${cache}${q}`, headers: [] })),
    query({}).map((q) => ({ method: 'GET', path: `/v1/caches/${cache}/stats${q}`, headers: [] })),
    fc.tuple(query({ region: pathName, key: pathName }), fc.option(fc.constantFrom('0', 'abc', '1-2', '99999999:1', ''), { freq: 2 })).map(([q, last]) => ({
      method: 'GET',
      path: `/v1/caches/${cache}/events${q}`,
      headers: last === null ? [] : [['Last-Event-ID', last] as [string, string]],
    })),
  ),
);

/** Membership and tokens: only bodies with a defect, and members that do not exist. */
const adminRequest: fc.Arbitrary<Shape> = fc.oneof(
  query({}).map((q) => ({ method: 'GET', path: `/v1/cluster${q}`, headers: [] })),
  jsonBody(withOneDefect({ id: 'n9', raft: '127.0.0.1:1', http: '127.0.0.1:2', member: 'n9@2' }, ['id', 'raft', 'http'], memberMayBeValid)).map((b) => withBody('POST', '/v1/cluster/members', [], b)),
  fc.tuple(fc.constantFrom('n9', 'zz', '%ZZ', 'x'.repeat(65), ''), query({ force: fc.constantFrom('true', 'false', '1') })).map(([id, q]) => ({ method: 'DELETE', path: `/v1/cluster/members/${id}${q}`, headers: [] })),
  fc.tuple(fc.constantFrom('0', '1', '3', '4', '99', '-1', 'x', '01', '1e2'), fc.constantFrom('digest', 'export'), query({})).map(([p, what, q]) => ({ method: 'GET', path: `/v1/admin/partitions/${p}/${what}${q}`, headers: [] })),
  jsonBody(withOneDefect({ name: 'fz', role: 'read', caches: ['fz*'] }, ['name', 'role'], tokenMayBeValid)).map((b) => withBody('POST', '/v1/admin/tokens', [], b)),
  query({}).map((q) => ({ method: 'GET', path: `/v1/admin/tokens${q}`, headers: [] })),
  fc.constantFrom('fz', 'admin', '%ZZ', '').map((n) => ({ method: 'DELETE', path: `/v1/admin/tokens/${n}`, headers: [] })),
  loadRequest(),
  fc.constantFrom('/healthz', '/readyz', '/metrics', '/healthz?x=1').map((path) => ({ method: 'GET', path, headers: [] })),
);

/** Bulk loads: well-formed records (of items that never expire), the same cut or with a flipped byte, and junk. */
function loadRequest(): fc.Arbitrary<Shape> {
  const record = fc.record({
    cache: fc.constantFrom('default', 'fz', 'missing'),
    region: fc.constantFrom(null, 'r'),
    key: fc.constantFrom('k', 'k1', 'ключ'),
    value: fc.uint8Array({ maxLength: 16 }),
    contentType: fc.constantFrom('text/plain', 'application/octet-stream'),
    expiresAt: fc.constant(null),
    tags: fc.constant([] as string[]),
  });
  const records = fc.array(record, { minLength: 1, maxLength: 3 }).map((items) => encodeRecords(items));
  const damaged = fc.tuple(records, fc.nat(), fc.boolean()).map(([bytes, at, cut]) => {
    if (cut) return bytes.subarray(0, at % bytes.length);
    const b = Uint8Array.from(bytes);
    b[at % b.length]! ^= 0x5a;
    return b;
  });
  return fc.tuple(fc.oneof(records, damaged, fc.uint8Array({ maxLength: 64 })), fc.constantFrom('application/x-velo-records', 'application/json', 'text/plain')).map(([body, ct]) => ({
    method: 'POST',
    path: '/v1/admin/load',
    headers: [['Content-Type', ct]],
    body,
  }));
}

/** Paths no route matches, and methods no route takes. */
const junkRequest: fc.Arbitrary<Shape> = fc.oneof(
  fc.tuple(fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'FOO', 'get'), fc.array(fc.oneof(pathName, fc.string({ maxLength: 6 }).map(encodeURIComponent)), { maxLength: 6 }), fc.constantFrom('', '/v1', '/v2', '/v1/caches/default/items')).map(([method, segments, prefix]) => ({
    method,
    path: `${prefix}/${segments.join('/')}`,
    headers: [],
  })),
  fc.constantFrom('//v1/caches', '/v1//caches', '/v1/caches/', '/v1/caches/default/items/', '/v1/./caches', '/v1/caches/../cluster', '/%2e%2e/v1', '/v1/caches?%ZZ', '/v1/caches?a=%ZZ', `/${'a/'.repeat(2000)}`).map((path) => ({ method: 'GET', path, headers: [] })),
);

/** Framing a client should never send: Node's parser refuses it before Fastify sees it. */
const badFraming: fc.Arbitrary<RawRequest> = fc.constantFrom<RawRequest>(
  { method: 'PUT', target: '/v1/caches/default/items/k', headers: [['Content-Length', 'abc']], body: new Uint8Array(1) },
  { method: 'PUT', target: '/v1/caches/default/items/k', headers: [['Content-Length', '1'], ['Content-Length', '2']], body: new Uint8Array(2) },
  { method: 'PUT', target: '/v1/caches/default/items/k', headers: [['Transfer-Encoding', 'chunked']], body: new TextEncoder().encode('zz\r\nabc\r\n0\r\n\r\n') },
  { method: 'GET', target: '/v1/caches', headers: [['Bad Header', 'x']] },
  { method: 'GET', target: '/v1/caches', headers: [['X-Big', 'x'.repeat(20_000)]] },
  { method: 'GET', target: 'no-slash', headers: [] },
  { method: 'GET', target: '/v1/caches\u0000', headers: [] },
);

/** Extra headers one request in four carries. */
const extraHeaders = fc.oneof({ weight: 3, arbitrary: fc.constant([] as [string, string][]) }, { weight: 1, arbitrary: fc.array(
  fc.constantFrom<[string, string]>(['Accept', 'text/html'], ['Accept-Encoding', 'gzip, br'], ['X-Velo-Lock-Handle', 'x'], ['If-Match', '"1"'], ['Origin', 'null'], ['Cookie', 'a=b'], ['Expect', 'nothing'], ['Last-Event-ID', '1'], ['Authorization', 'Bearer nope'], ['Host', 'evil.example'], ['Host', 'localhost:1'], ['Origin', 'http://evil.example'], ['Origin', 'http://127.0.0.1:1']),
  { minLength: 1, maxLength: 2 },
) });

export const httpRequest: fc.Arbitrary<RawRequest> = fc.oneof(
  { weight: 1, arbitrary: badFraming },
  {
    weight: 19,
    arbitrary: fc
      .tuple(fc.oneof({ weight: 6, arbitrary: itemRequest }, { weight: 2, arbitrary: regionRequest }, { weight: 3, arbitrary: cacheRequest }, { weight: 3, arbitrary: adminRequest }, { weight: 2, arbitrary: junkRequest }), extraHeaders)
      .map(([s, extra]): RawRequest => ({ method: s.method, target: s.path, headers: [...s.headers, ...extra], ...(s.body ? { body: s.body } : {}) })),
  },
);
