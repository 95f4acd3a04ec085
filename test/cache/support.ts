// Builders, a harness that hands out log indexes, and fast-check arbitraries
// for the cache state machine's tests.
import fc from 'fast-check';
import type { Arbitrary } from 'fast-check';
import {
  CacheStateMachine,
  type Applied,
  type CacheSettings,
  type Command,
  type DeleteCommand,
  type PutCommand,
  type ResultFor,
} from '../../src/cache/index.js';

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

export const T0 = 1_000_000;

export function put(key: string, o: Partial<PutCommand> = {}): PutCommand {
  return {
    type: 'put',
    cache: 'default',
    region: null,
    key,
    value: enc(`value of ${key}`),
    contentType: 'text/plain',
    expiresAt: null,
    tags: [],
    condition: { kind: 'none' },
    lockHandle: null,
    unlock: false,
    now: T0,
    ...o,
  };
}

export function del(key: string, o: Partial<DeleteCommand> = {}): DeleteCommand {
  return { type: 'delete', cache: 'default', region: null, key, ifMatch: null, lockHandle: null, now: T0, ...o };
}

export const settings = (o: Partial<CacheSettings> = {}): CacheSettings => ({ defaultTtlMs: 0, maxBytes: null, eviction: 'lru', ...o });

/** A state machine with a log: apply() hands out the next index. */
export class Harness {
  index = 0;
  constructor(readonly sm = new CacheStateMachine()) {}

  apply<C extends Command>(c: C): Applied<ResultFor[C['type']]> {
    return this.sm.apply(++this.index, c);
  }

  /** The result, asserting the invariants of the indexes after every step. */
  run<C extends Command>(c: C): ResultFor[C['type']] {
    const { result } = this.apply(c);
    this.sm.checkInvariants();
    return result;
  }
}

// ---- arbitraries ----

export const CACHES = ['default', 'c1', 'c2'];
export const REGIONS: (string | null)[] = [null, 'r1', 'r2'];
export const KEYS = ['a', 'b', 'c'];
export const TAGS = ['t1', 't2', 't3'];
const HANDLES = ['h1', 'h2', 'h3'];

/**
 * One step of a random history. Most steps are commands; 'expireDue' and
 * 'evictLru' become the expire and evict commands a leader would propose,
 * computed from the state at that point; 'advance' moves the leader's clock.
 */
export type Step =
  | { kind: 'command'; make: (now: number) => Command }
  | { kind: 'expireDue' }
  | { kind: 'evictLru'; cache: string; bytes: number }
  | { kind: 'readRecency'; cache: string; region: string | null; key: string }
  | { kind: 'advance'; ms: number };

// Mostly the default cache, which always exists: other caches come and go with putCache and dropCache.
const cacheArb = fc.oneof({ arbitrary: fc.constant(CACHES[0]!), weight: 4 }, fc.constantFrom(...CACHES.slice(1)));
/** Mostly the caches that come and go (for putCache and dropCache). */
const otherCacheArb = fc.oneof({ arbitrary: fc.constantFrom(...CACHES.slice(1)), weight: 4 }, fc.constant(CACHES[0]!));
const regionArb = fc.oneof({ arbitrary: fc.constant(null), weight: 2 }, { arbitrary: fc.constant('r1'), weight: 2 }, fc.constant('r2'));
const keyArb = fc.constantFrom(...KEYS);
const handleArb = fc.constantFrom(...HANDLES);
const ttlArb = fc.option(fc.integer({ min: 1, max: 300 }), { nil: null, freq: 2 });
const versionArb = fc.integer({ min: 1, max: 60 });

const putArb: Arbitrary<Step> = fc
  .record({
    cache: cacheArb,
    region: regionArb,
    key: keyArb,
    value: fc.uint8Array({ maxLength: 40 }),
    contentType: fc.constantFrom('text/plain', 'application/json', 'application/octet-stream'),
    ttl: ttlArb,
    tags: fc.subarray(TAGS),
    condition: fc.oneof(
      { arbitrary: fc.constant({ kind: 'none' as const }), weight: 4 },
      { arbitrary: fc.constant({ kind: 'ifNoneMatch' as const }), weight: 1 },
      { arbitrary: versionArb.map((version) => ({ kind: 'ifMatch' as const, version })), weight: 1 },
    ),
    lockHandle: fc.oneof({ arbitrary: fc.constant(null), weight: 3 }, handleArb),
    unlock: fc.boolean(),
  })
  .map((p) => ({
    kind: 'command',
    make: (now: number): Command => ({
      type: 'put',
      cache: p.cache,
      region: p.region,
      key: p.key,
      value: p.value,
      contentType: p.contentType,
      expiresAt: p.ttl === null ? null : now + p.ttl,
      tags: p.region === null ? [] : p.tags,
      condition: p.condition,
      lockHandle: p.lockHandle,
      unlock: p.unlock,
      now,
    }),
  }));

const itemRefArb = fc.record({ cache: cacheArb, region: regionArb, key: keyArb });

const command = (make: (now: number) => Command): Step => ({ kind: 'command', make });
const refsArb = fc.array(fc.record({ cache: cacheArb, region: regionArb, key: keyArb, version: versionArb }), { maxLength: 3 });

const deleteArb = fc
  .record({ ref: itemRefArb, ifMatch: fc.option(versionArb, { nil: null, freq: 2 }), handle: fc.option(handleArb, { nil: null, freq: 2 }) })
  .map(({ ref, ifMatch, handle }) => command((now) => ({ type: 'delete', ...ref, ifMatch, lockHandle: handle, now })));
const touchArb = fc.record({ ref: itemRefArb, ttl: ttlArb }).map(({ ref, ttl }) => command((now) => ({ type: 'touch', ...ref, expiresAt: ttl === null ? null : now + ttl, now })));
const lockArb = fc
  .record({ ref: itemRefArb, handle: handleArb, timeout: fc.integer({ min: 1, max: 300 }) })
  .map(({ ref, handle, timeout }) => command((now) => ({ type: 'lock', ...ref, handle, lockExpiresAt: now + timeout, now })));
const unlockArb = fc.record({ ref: itemRefArb, handle: handleArb }).map(({ ref, handle }) => command((now) => ({ type: 'unlock', ...ref, handle, now })));
const putCacheArb = fc
  .record({
    name: otherCacheArb,
    defaultTtlMs: fc.constantFrom(0, 100),
    maxBytes: fc.option(fc.integer({ min: 400, max: 6000 }), { nil: null, freq: 2 }),
    eviction: fc.constantFrom('lru' as const, 'none' as const),
  })
  .map(({ name, ...s }) => command(() => ({ type: 'putCache', name, settings: s })));

export const stepArb: Arbitrary<Step> = fc.oneof(
  { arbitrary: putArb, weight: 12 },
  { arbitrary: deleteArb, weight: 3 },
  { arbitrary: touchArb, weight: 1 },
  { arbitrary: lockArb, weight: 3 },
  { arbitrary: unlockArb, weight: 2 },
  { arbitrary: refsArb.map((items) => command((now) => ({ type: 'expire', items, now }))), weight: 1 },
  { arbitrary: refsArb.map((items) => command(() => ({ type: 'evict', items }))), weight: 1 },
  { arbitrary: fc.record({ cache: cacheArb, region: fc.constantFrom('r1', 'r2') }).map(({ cache, region }) => command((now) => ({ type: 'clearRegion', cache, region, now }))), weight: 1 },
  { arbitrary: putCacheArb, weight: 2 },
  { arbitrary: otherCacheArb.map((name) => command(() => ({ type: 'dropCache', name }))), weight: 1 },
  { arbitrary: fc.constant({ kind: 'expireDue' as const }), weight: 2 },
  { arbitrary: fc.record({ cache: cacheArb, bytes: fc.integer({ min: 1, max: 800 }) }).map((s) => ({ kind: 'evictLru' as const, ...s })), weight: 1 },
  { arbitrary: itemRefArb.map((r) => ({ kind: 'readRecency' as const, ...r })), weight: 2 },
  { arbitrary: fc.integer({ min: 1, max: 120 }).map((ms) => ({ kind: 'advance' as const, ms })), weight: 4 },
);

/**
 * An item written, locked, and what the lock's holder (or an intruder) does next:
 * independent random steps rarely hit a locked item with the right handle.
 */
const lockSessionArb: Arbitrary<Step[]> = fc
  .record({
    ref: itemRefArb,
    value: fc.uint8Array({ maxLength: 20 }),
    handle: handleArb,
    timeout: fc.integer({ min: 1, max: 300 }),
    wait: fc.integer({ min: 0, max: 200 }),
    then: fc.constantFrom('putKeep', 'putUnlock', 'delete', 'unlock', 'intrude', 'wrongHandle'),
  })
  .map(({ ref, value, handle, timeout, wait, then }) => {
    const h = then === 'wrongHandle' ? `${handle}x` : then === 'intrude' ? null : handle;
    const next = command((now): Command => {
      if (then === 'delete') return { type: 'delete', ...ref, ifMatch: null, lockHandle: h, now };
      if (then === 'unlock' || then === 'wrongHandle') return { type: 'unlock', ...ref, handle: h!, now };
      return { type: 'put', ...ref, value, contentType: 'text/plain', expiresAt: null, tags: [], condition: { kind: 'none' }, lockHandle: h, unlock: then === 'putUnlock', now };
    });
    const create = command((now): Command => ({ type: 'put', ...ref, value, contentType: 'text/plain', expiresAt: null, tags: [], condition: { kind: 'none' }, lockHandle: null, unlock: false, now }));
    const lock = command((now) => ({ type: 'lock', ...ref, handle, lockExpiresAt: now + timeout, now }));
    return [create, lock, ...(wait > 0 ? [{ kind: 'advance' as const, ms: wait }] : []), next];
  });

// size 'max': lengths spread up to the maximum (fast-check's default favours short arrays).
export const historyArb: Arbitrary<Step[]> = fc
  .array(fc.oneof({ arbitrary: stepArb.map((s) => [s]), weight: 12 }, { arbitrary: lockSessionArb, weight: 1 }), { maxLength: 50, size: 'max' })
  .map((groups) => groups.flat());

export interface PlayOptions {
  /** Called after each command with what every machine answered. */
  after?: (c: Command, index: number, now: number, applied: Applied[]) => void;
  /** The log index before the first command (default 0). */
  index?: number;
  /** The leader's clock at the start (default T0). */
  now?: number;
}

/**
 * Turns steps into the commands a leader would propose and applies each to
 * every machine in `sms`, in order. The first machine is the leader:
 * expireDue and evictLru ask it what to propose.
 */
export function play(sms: CacheStateMachine[], steps: Step[], opts: PlayOptions = {}): Command[] {
  let now = opts.now ?? T0;
  let index = opts.index ?? 0;
  const leader = sms[0]!;
  const out: Command[] = [];
  for (const s of steps) {
    let c: Command;
    if (s.kind === 'advance') {
      now += s.ms;
      continue;
    } else if (s.kind === 'readRecency') {
      for (const sm of sms) sm.touchRecency(s.cache, s.region, s.key);
      continue;
    } else if (s.kind === 'expireDue') c = { type: 'expire', items: leader.expiredItems(now, 10), now };
    else if (s.kind === 'evictLru') c = { type: 'evict', items: leader.lruCandidates(s.cache, s.bytes) };
    else c = s.make(now);
    index++;
    const applied = sms.map((sm) => sm.apply(index, c));
    out.push(c);
    opts.after?.(c, index, now, applied);
  }
  return out;
}

