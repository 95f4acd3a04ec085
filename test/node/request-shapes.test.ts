// Forwarded requests and answers are decoded only when well-formed: every op
// a node sends survives the round trip, and anything else is a WireError,
// never a cast.

import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse, type NodeRequest } from '../../src/node/requests.js';
import { WireError, encodeEnvelope } from '../../src/node/wire.js';

const ref = { cache: 'default', region: null, key: 'k' };
const VALUE = new Uint8Array([1, 2, 3]);
const SENT: NodeRequest[] = [
  { op: 'put', partition: 3, ref, contentType: 'text/plain', ttlMs: null, tags: ['a'], ifMatch: 4, ifNoneMatch: false, lockHandle: null, unlock: false, value: VALUE },
  { op: 'put', partition: 3, ref: { ...ref, region: 'r' }, contentType: 'x', ttlMs: 10, expiresAt: 1_800_000_000_000, tags: [], ifMatch: null, ifNoneMatch: true, lockHandle: 'h', unlock: true, value: VALUE },
  { op: 'get', partition: 0, ref, consistency: 'strong' },
  { op: 'delete', partition: 1, ref, ifMatch: null, lockHandle: null },
  { op: 'touch', partition: 1, ref, ttlMs: 5 },
  { op: 'lock', partition: 1, ref, timeoutMs: 5 },
  { op: 'unlock', partition: 1, ref, handle: 'h' },
  { op: 'listRegion', partition: 2, cache: 'c', region: 'r', tags: ['t'], match: 'all' },
  { op: 'clearRegion', partition: 2, cache: 'c', region: 'r' },
  { op: 'putCache', partition: 0, name: 'c', settings: { defaultTtlMs: 0, maxBytes: null, eviction: 'lru' } },
  { op: 'dropCache', partition: 0, name: 'c' },
  { op: 'catalog', partition: 0 },
  { op: 'events', partition: 0, after: { index: 3, seq: 1 }, limit: 10 },
  { op: 'events', partition: 0, after: null, limit: 10 },
  { op: 'stats', partition: 0, cache: 'c' },
  { op: 'putMany', partition: 0, items: [{ ref, contentType: 'x', expiresAt: null, tags: [] }, { ref, contentType: 'y', expiresAt: 5, tags: ['t'] }], sizes: [1, 2], value: VALUE },
  { op: 'export', partition: 0, exportId: null, offset: 0 },
  { op: 'meta', partition: -1, command: { type: 'register', id: 'n4', raft: 'h:1', http: 'h:2', member: 'n4@5' } },
  { op: 'meta', partition: -1, command: { type: 'setStatus', id: 'n4', status: 'draining' } },
  { op: 'meta', partition: -1, command: { type: 'setTarget', partition: 2, from: ['n1'], replicas: ['n2'] } },
  { op: 'meta', partition: -1, command: { type: 'addToken', name: 't', role: 'read', caches: null, hash: 'x', createdAt: 1 } },
  { op: 'memberOf', partition: 2, member: 'n1@3' },
  { op: 'groups', partition: -1 },
  { op: 'probe', partition: -1, http: '' },
  { op: 'memory', partition: -1, bytes: 10, capBytes: 100 },
];

const header = (h: object, body?: Uint8Array) => encodeEnvelope(h, body);

describe('forwarded requests', () => {
  test('every op a node sends decodes to what was sent', () => {
    for (const r of SENT) expect(decodeRequest(encodeRequest(r))).toEqual(r);
  });

  test.each([
    ['an unknown op', { op: 'drop-everything', partition: 0 }, /unknown op "drop-everything"/],
    ['a field of the wrong type', { op: 'get', partition: 0, ref, consistency: 'always' }, /get: consistency: one of strong, local/],
    ['a missing field', { op: 'touch', partition: 1, ref }, /touch: an object with the field ttlMs/],
    ['an unknown field', { op: 'catalog', partition: 0, admin: true }, /catalog: an object without the field "admin"/],
    ['a negative partition', { op: 'get', partition: -3, ref, consistency: 'local' }, /partition: a non-negative integer/],
    ['a ref that is not one', { op: 'get', partition: 0, ref: { cache: 1 }, consistency: 'local' }, /ref: cache: a string/],
    ['an unknown metadata command', { op: 'meta', partition: -1, command: { type: 'becomeLeader' } }, /a metadata command/],
    ['a metadata command with a bad role', { op: 'meta', partition: -1, command: { type: 'addToken', name: 't', role: 'root', caches: null, hash: 'x', createdAt: 1 } }, /role: one of read, write, admin/],
    ['cache settings with a bad eviction', { op: 'putCache', partition: 0, name: 'c', settings: { defaultTtlMs: 0, maxBytes: null, eviction: 'random' } }, /settings: eviction/],
  ])('%s is a WireError', (_what, h, message) => {
    expect(() => decodeRequest(header(h))).toThrow(WireError);
    expect(() => decodeRequest(header(h))).toThrow(message);
  });

  test('putMany sizes must cut exactly its value; other ops carry none', () => {
    const many = { op: 'putMany', partition: 0, items: [{ ref, contentType: 'x', expiresAt: null, tags: [] }], sizes: [5] };
    expect(() => decodeRequest(header(many, VALUE))).toThrow(/putMany: 1 items, 1 sizes, 5 of 3 value bytes/);
    expect(() => decodeRequest(header({ op: 'catalog', partition: 0 }, VALUE))).toThrow(/catalog carries no value/);
  });

  test('answers: a success with a result object, or a failure with a known code', () => {
    expect(decodeResponse(encodeResponse({ ok: true, result: { a: 1 }, value: VALUE }))).toEqual({ ok: true, result: { a: 1 }, value: VALUE });
    expect(decodeResponse(encodeResponse({ ok: false, code: 'conflict', message: 'm', retry: 'no', leader: null }))).toEqual({ ok: false, code: 'conflict', message: 'm', retry: 'no', leader: null });
    expect(() => decodeResponse(header({ ok: false, code: 'pwned', message: 'm', retry: 'no', leader: null }))).toThrow(/unknown error code "pwned"/);
    expect(() => decodeResponse(header({ ok: true, result: [1], hasValue: false }))).toThrow(/result: an object/);
    expect(() => decodeResponse(header({ ok: 'yes' }))).toThrow(/neither ok nor an error/);
  });

  test('any JSON header, and any bytes, decode or throw a WireError: nothing else escapes', () => {
    let cases = 0;
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue().map((v) => header(typeof v === 'object' && v !== null && !Array.isArray(v) ? v : { v })), fc.uint8Array({ maxLength: 200 })), (bytes) => {
        cases++;
        for (const decode of [decodeRequest, decodeResponse]) {
          try {
            decode(bytes);
          } catch (e) {
            expect(e).toBeInstanceOf(WireError);
          }
        }
      }),
      { seed: 16, numRuns: 2000 },
    );
    expect(cases).toBe(2000);
  });
});
