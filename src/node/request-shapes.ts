// What a well-formed forwarded request and answer look like, field by field:
// a peer's bytes become a NodeRequest or a NodeResponse only after every
// field has been checked here, never by a cast. A peer is authenticated (peer
// TLS) but may still run other code, or be broken: what it sends is input.

import type { NodeRequest } from './requests.js';
import { WireError } from './wire.js';

/** A check of one value: the reason it is wrong, or null. */
type Check = (v: unknown) => string | null;

const MAX_STRING_CHARS = 64 * 1024;
const MAX_LIST = 100_000;

const str: Check = (v) => (typeof v === 'string' && v.length <= MAX_STRING_CHARS ? null : 'a string');
const nat: Check = (v) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? null : 'a non-negative integer');
const int: Check = (v) => (typeof v === 'number' && Number.isSafeInteger(v) ? null : 'an integer');
const bool: Check = (v) => (typeof v === 'boolean' ? null : 'a boolean');
const nullOr = (c: Check): Check => (v) => (v === null ? null : c(v) && `null or ${c(v)}`);
const oneOf = (...values: string[]): Check => (v) => (typeof v === 'string' && values.includes(v) ? null : `one of ${values.join(', ')}`);
const listOf = (c: Check): Check => (v) => {
  if (!Array.isArray(v) || v.length > MAX_LIST) return 'a list';
  for (const x of v) if (c(x) !== null) return `a list of ${c(x)}`;
  return null;
};

/** An object with exactly these fields (those in `optional` may be absent). */
function shape(fields: Record<string, Check>, optional: readonly string[] = []): Check {
  return (v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'an object';
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!Object.hasOwn(fields, k)) return `an object without the field ${JSON.stringify(k.slice(0, 40))}`;
    for (const [k, c] of Object.entries(fields)) {
      if (!Object.hasOwn(o, k)) {
        if (optional.includes(k)) continue;
        return `an object with the field ${k}`;
      }
      const why = c(o[k]);
      if (why !== null) return `${k}: ${why}`;
    }
    return null;
  };
}

const ref = shape({ cache: str, region: nullOr(str), key: str });
const settings = shape({ defaultTtlMs: nat, maxBytes: nullOr(nat), eviction: oneOf('lru', 'none') });
const loadItem = shape({ ref, contentType: str, expiresAt: nullOr(nat), tags: listOf(str) });
const role = oneOf('read', 'write', 'admin');

const META: Record<string, Check> = {
  register: shape({ type: str, id: str, raft: str, http: str, member: str }),
  setStatus: shape({ type: str, id: str, status: oneOf('draining', 'removed'), force: bool }, ['force']),
  setTarget: shape({ type: str, partition: nat, from: listOf(str), replicas: listOf(str) }),
  moveDone: shape({ type: str, partition: nat, replicas: listOf(str) }),
  addToken: shape({ type: str, name: str, role, caches: nullOr(listOf(str)), hash: str, createdAt: nat }),
  bootstrapAdmin: shape({ type: str, hash: str, createdAt: nat }),
  revokeToken: shape({ type: str, name: str }),
};
const metaCommand: Check = (v) => {
  const type = (v as { type?: unknown } | null)?.type;
  const c = typeof type === 'string' && Object.hasOwn(META, type) ? META[type]! : null;
  return c === null ? `a metadata command (one of ${Object.keys(META).join(', ')})` : c(v);
};

/** Every op a node forwards, with its fields (the value of put and putMany travels as the body). */
const REQUESTS: Record<NodeRequest['op'], Check> = {
  put: shape({ op: str, partition: nat, ref, contentType: str, ttlMs: nullOr(nat), expiresAt: nullOr(nat), tags: listOf(str), ifMatch: nullOr(nat), ifNoneMatch: bool, lockHandle: nullOr(str), unlock: bool }, ['expiresAt']),
  get: shape({ op: str, partition: nat, ref, consistency: oneOf('strong', 'local') }),
  delete: shape({ op: str, partition: nat, ref, ifMatch: nullOr(nat), lockHandle: nullOr(str) }),
  touch: shape({ op: str, partition: nat, ref, ttlMs: nat }),
  lock: shape({ op: str, partition: nat, ref, timeoutMs: nat }),
  unlock: shape({ op: str, partition: nat, ref, handle: str }),
  listRegion: shape({ op: str, partition: nat, cache: str, region: str, tags: listOf(str), match: oneOf('any', 'all') }),
  clearRegion: shape({ op: str, partition: nat, cache: str, region: str }),
  putCache: shape({ op: str, partition: nat, name: str, settings }),
  dropCache: shape({ op: str, partition: nat, name: str }),
  catalog: shape({ op: str, partition: nat }),
  events: shape({ op: str, partition: nat, after: nullOr(shape({ index: nat, seq: nat })), limit: nat }),
  stats: shape({ op: str, partition: nat, cache: str }),
  putMany: shape({ op: str, partition: nat, items: listOf(loadItem), sizes: listOf(nat) }),
  export: shape({ op: str, partition: nat, exportId: nullOr(str), offset: nat }),
  meta: shape({ op: str, partition: int, command: metaCommand }),
  memberOf: shape({ op: str, partition: int, member: str }),
  groups: shape({ op: str, partition: int }),
  probe: shape({ op: str, partition: int, http: str }),
  memory: shape({ op: str, partition: int, bytes: nat, capBytes: nat }),
};

/** Throws a WireError unless `header` is a well-formed request of a known op. */
export function checkRequestHeader(header: Record<string, unknown>, bodyBytes: number): void {
  const op = header.op;
  if (typeof op !== 'string' || !Object.hasOwn(REQUESTS, op)) throw new WireError(`unknown op ${JSON.stringify(typeof op === 'string' ? op.slice(0, 40) : op)}`);
  const why = REQUESTS[op as NodeRequest['op']](header);
  if (why !== null) throw new WireError(`${op}: ${why}`);
  if (op === 'putMany') {
    const { items, sizes } = header as { items: unknown[]; sizes: number[] };
    let total = 0;
    for (const s of sizes) total += s;
    if (sizes.length !== items.length || total !== bodyBytes) throw new WireError(`putMany: ${items.length} items, ${sizes.length} sizes, ${total} of ${bodyBytes} value bytes`);
  }
}

const failure = shape({ ok: bool, code: str, message: str, retry: oneOf('safe', 'indeterminate', 'no'), leader: nullOr(str) });
const success = shape({ ok: bool, result: (v) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? null : 'an object'), hasValue: bool });

/** Throws a WireError unless `header` is a well-formed answer: a success with a result object, or a failure with a known code. */
export function checkResponseHeader(header: Record<string, unknown>, isErrorCode: (code: string) => boolean): void {
  const why = header.ok === true ? success(header) : header.ok === false ? failure(header) : 'neither ok nor an error';
  if (why !== null) throw new WireError(`answer: ${why}`);
  if (header.ok === false && !isErrorCode(header.code as string)) throw new WireError(`answer: unknown error code ${JSON.stringify(String(header.code).slice(0, 40))}`);
}
