import fc from 'fast-check';
import type { Arbitrary } from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  CommandError,
  decodeCommand,
  encodeCommand,
  MAX_ITEMS_PER_COMMAND,
  MAX_NAME_BYTES,
  MAX_TAGS_PER_ITEM,
  type Command,
} from '../../src/cache/index.js';
import { enc, put, T0 } from './support.js';

// Names of any Unicode (astral characters included), within 250 bytes of UTF-8 (≤ 4 bytes per code point).
const nameArb = fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 40 }).chain((ascii) =>
  fc.oneof(fc.constant(ascii), fc.string({ unit: 'binary', minLength: 1, maxLength: 60 })),
);
const regionArb = fc.option(nameArb, { nil: null });
const timeArb = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER - 1_000_000 });
const laterArb = fc.integer({ min: 1, max: 1_000_000 });
const versionArb = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const handleArb = fc.string({ minLength: 1, maxLength: 30 });
const refArb = fc.record({ cache: nameArb, region: regionArb, key: nameArb, version: versionArb });

export const commandArb: Arbitrary<Command> = fc.oneof(
  fc
    .record({
      cache: nameArb,
      region: regionArb,
      key: nameArb,
      // Past 4096 bytes the writer keeps a value by reference: both paths are covered.
      value: fc.oneof({ arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 4 }, fc.uint8Array({ minLength: 4090, maxLength: 5000 })),
      contentType: fc.string({ minLength: 1, maxLength: 80 }),
      now: timeArb,
      ttl: fc.option(laterArb, { nil: null }),
      tags: fc.array(nameArb, { maxLength: 5 }),
      condition: fc.oneof(
        fc.constant({ kind: 'none' as const }),
        fc.constant({ kind: 'ifNoneMatch' as const }),
        versionArb.map((version) => ({ kind: 'ifMatch' as const, version })),
      ),
      lockHandle: fc.option(handleArb, { nil: null }),
      unlock: fc.boolean(),
    })
    .map(({ ttl, now, tags, region, ...p }): Command => ({
      type: 'put',
      ...p,
      region,
      tags: region === null ? [] : tags,
      expiresAt: ttl === null ? null : now + ttl,
      now,
    })),
  fc
    .record({ cache: nameArb, region: regionArb, key: nameArb, ifMatch: fc.option(versionArb, { nil: null }), lockHandle: fc.option(handleArb, { nil: null }), now: timeArb })
    .map((p): Command => ({ type: 'delete', ...p })),
  fc
    .record({ cache: nameArb, region: regionArb, key: nameArb, now: timeArb, ttl: fc.option(laterArb, { nil: null }) })
    .map(({ ttl, ...p }): Command => ({ type: 'touch', ...p, expiresAt: ttl === null ? null : p.now + ttl })),
  fc
    .record({ cache: nameArb, region: regionArb, key: nameArb, handle: handleArb, now: timeArb, timeout: laterArb })
    .map(({ timeout, ...p }): Command => ({ type: 'lock', ...p, lockExpiresAt: p.now + timeout })),
  fc.record({ cache: nameArb, region: regionArb, key: nameArb, handle: handleArb, now: timeArb }).map((p): Command => ({ type: 'unlock', ...p })),
  fc.record({ items: fc.array(refArb, { maxLength: 5 }), now: timeArb }).map((p): Command => ({ type: 'expire', ...p })),
  fc.array(refArb, { maxLength: 5 }).map((items): Command => ({ type: 'evict', items })),
  fc.record({ cache: nameArb, region: nameArb, now: timeArb }).map((p): Command => ({ type: 'clearRegion', ...p })),
  fc
    .record({
      name: nameArb,
      settings: fc.record({ defaultTtlMs: timeArb, maxBytes: fc.option(versionArb, { nil: null }), eviction: fc.constantFrom('lru' as const, 'none' as const) }),
    })
    .map((p): Command => ({ type: 'putCache', ...p })),
  nameArb.map((name): Command => ({ type: 'dropCache', name })),
);

describe('command encoding', () => {
  test('decode(encode(c)) equals c for every valid command', () => {
    fc.assert(
      fc.property(commandArb, (c) => {
        expect(decodeCommand(encodeCommand(c))).toEqual(c);
      }),
      { numRuns: 400 },
    );
  });

  test('the encoding is canonical: re-encoding the decoded command gives the same bytes', () => {
    fc.assert(
      fc.property(commandArb, (c) => {
        const b = encodeCommand(c);
        expect(encodeCommand(decodeCommand(b))).toEqual(b);
      }),
    );
  });

  test('a value travels as raw bytes: the encoding is the value plus a small header', () => {
    const value = new Uint8Array(100_000).fill(0xab);
    const b = encodeCommand(put('k', { value }));
    expect(b.length).toBeLessThan(value.length + 64);
    expect(Buffer.from(b).includes(Buffer.from(value))).toBe(true);
  });

  test('every strict prefix of an encoded command is refused with CommandError', () => {
    fc.assert(
      fc.property(commandArb, fc.nat(), (c, cut) => {
        const b = encodeCommand(c);
        const prefix = b.subarray(0, cut % b.length);
        expect(() => decodeCommand(prefix)).toThrow(CommandError);
      }),
      { numRuns: 300 },
    );
  });

  test('trailing bytes after a command are refused', () => {
    const b = encodeCommand(put('k'));
    const longer = new Uint8Array(b.length + 1);
    longer.set(b);
    expect(() => decodeCommand(longer)).toThrow(/trailing/);
  });

  test('random bytes either decode to a valid command or throw CommandError, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        try {
          const c = decodeCommand(b);
          // If garbage happens to decode, it is a whole, valid command that round-trips.
          expect(decodeCommand(encodeCommand(c))).toEqual(c);
        } catch (e) {
          expect(e).toBeInstanceOf(CommandError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('flipping any byte of a command never yields an exception other than CommandError', () => {
    fc.assert(
      fc.property(commandArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (c, at, x) => {
        const b = encodeCommand(c).slice();
        b[at % b.length]! ^= x;
        try {
          decodeCommand(b);
        } catch (e) {
          expect(e).toBeInstanceOf(CommandError);
        }
      }),
      { numRuns: 500 },
    );
  });

  test('unknown formats and types are refused by name', () => {
    const b = encodeCommand(put('k'));
    expect(() => decodeCommand(Uint8Array.of(9, ...b.subarray(1)))).toThrow(/unknown command format 9/);
    expect(() => decodeCommand(Uint8Array.of(b[0]!, 99, ...b.subarray(2)))).toThrow(/unknown command type 99/);
    expect(() => decodeCommand(new Uint8Array(0))).toThrow(CommandError);
  });

  test('invalid UTF-8 in a name is refused, not replaced', () => {
    const b = encodeCommand(put('kk')).slice();
    // layout: format, type, cache ("default": length 7 + 7 bytes), region flag 0, key length 2, 'k', 'k'
    const keyAt = 2 + 1 + 7 + 1 + 1;
    expect(String.fromCharCode(b[keyAt]!)).toBe('k');
    b[keyAt] = 0xff;
    expect(() => decodeCommand(b)).toThrow(/UTF-8/);
  });

  test('over-long varints and overflowing integers are refused', () => {
    const b = encodeCommand({ type: 'dropCache', name: 'x' });
    // the name's length written as an overlong varint (0x81 0x00 = 1)
    expect(() => decodeCommand(Uint8Array.of(b[0]!, b[1]!, 0x81, 0x00, 0x78))).toThrow(/overlong/);
    const huge = Uint8Array.of(b[0]!, b[1]!, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f);
    expect(() => decodeCommand(huge)).toThrow(CommandError);
  });

  test('limits are enforced on encode and decode', () => {
    const long = 'x'.repeat(MAX_NAME_BYTES + 1);
    expect(() => encodeCommand(put(long))).toThrow(/1–250 bytes/);
    expect(() => encodeCommand(put('é'.repeat(126)))).toThrow(CommandError); // 252 bytes of UTF-8 in 126 characters
    expect(() => encodeCommand(put('é'.repeat(125)))).not.toThrow();
    expect(() => encodeCommand(put(''))).toThrow(CommandError);
    expect(() => encodeCommand(put('\ud800'))).toThrow(/lone surrogate/);
    const tags = Array.from({ length: MAX_TAGS_PER_ITEM + 1 }, (_, i) => `t${i}`);
    expect(() => encodeCommand(put('k', { region: 'r', tags }))).toThrow(/tags/);
    expect(() => encodeCommand(put('k', { tags: ['t'] }))).toThrow(/region items only/);
    const items = Array.from({ length: MAX_ITEMS_PER_COMMAND + 1 }, (_, i) => ({ cache: 'default', region: null, key: `k${i}`, version: 1 }));
    expect(() => encodeCommand({ type: 'evict', items })).toThrow(/limit/);
    expect(() => encodeCommand(put('k', { expiresAt: T0 }))).toThrow(/after now/);
    expect(() => encodeCommand(put('k', { now: 1.5 }))).toThrow(/integer/);
    expect(() => encodeCommand({ type: 'putCache', name: 'c', settings: { defaultTtlMs: -1, maxBytes: null, eviction: 'lru' } })).toThrow(CommandError);
    expect(() => encodeCommand({ type: 'putCache', name: 'c', settings: { defaultTtlMs: 0, maxBytes: null, eviction: 'fifo' as 'lru' } })).toThrow(/eviction/);
  });

  test('decoded values are views; the encoding of a put holds the value bytes as-is', () => {
    const c = decodeCommand(encodeCommand(put('k', { value: enc('hello') })));
    expect(c.type === 'put' && new TextDecoder().decode(c.value)).toBe('hello');
  });
});
