// The pure rules of the session stores: how long a session lives (its
// cookie's), which options are accepted, and how lock waiters back off.
import { describe, expect, test } from 'vitest';
import type { VeloClient } from '../../src/client/client.js';
import {
  DEFAULT_LOCK_TIMEOUT_MS,
  DEFAULT_LOCK_WAIT_MS,
  DEFAULT_SESSION_CACHE,
  DEFAULT_SESSION_TTL_MS,
  resolveSessionStoreOptions,
  sessionKey,
  sessionTtlMs,
} from '../../src/session/options.js';
import type { VeloSessionStoreOptions } from '../../src/session/options.js';
import { LOCK_RETRY_FIRST_MS, LOCK_RETRY_MAX_MS, lockRetryPauseMs } from '../../src/session/session-lock.js';
import { seededRandom } from '../support/random.js';

const NOW = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;

describe('sessionTtlMs: a session lives as long as its cookie', () => {
  test('maxAge (ms) is the TTL, rounded up so that the item never dies before the cookie', () => {
    expect(sessionTtlMs({ maxAge: 60_000 }, NOW, DAY)).toBe(60_000);
    expect(sessionTtlMs({ maxAge: 1234.2 }, NOW, DAY)).toBe(1235);
  });

  test('maxAge wins over expires, as express-session and @fastify/session compute maxAge from expires', () => {
    expect(sessionTtlMs({ maxAge: 5_000, expires: new Date(NOW + 60_000) }, NOW, DAY)).toBe(5_000);
  });

  test('expires as a Date, an ISO string (a session read back from JSON) or epoch ms: the time left', () => {
    expect(sessionTtlMs({ expires: new Date(NOW + 90_000) }, NOW, DAY)).toBe(90_000);
    expect(sessionTtlMs({ expires: new Date(NOW + 90_000).toISOString(), originalMaxAge: 90_000 }, NOW, DAY)).toBe(90_000);
    expect(sessionTtlMs({ expires: NOW + 1 }, NOW, DAY)).toBe(1);
  });

  test('a cookie with neither (a browser-session cookie, or a null maxAge) gets the default', () => {
    expect(sessionTtlMs({}, NOW, DAY)).toBe(DAY);
    expect(sessionTtlMs({ maxAge: null, expires: null }, NOW, 42)).toBe(42);
    expect(sessionTtlMs(undefined, NOW, 42)).toBe(42);
    expect(sessionTtlMs({ expires: 'not a date' }, NOW, 42)).toBe(42);
  });

  test('an expired cookie gives zero or less: the stores destroy such a session instead of writing it', () => {
    expect(sessionTtlMs({ maxAge: 0 }, NOW, DAY)).toBeLessThanOrEqual(0);
    expect(sessionTtlMs({ maxAge: -5 }, NOW, DAY)).toBeLessThanOrEqual(0);
    expect(sessionTtlMs({ expires: new Date(NOW) }, NOW, DAY)).toBeLessThanOrEqual(0);
    expect(sessionTtlMs({ expires: new Date(NOW - 1000).toISOString() }, NOW, DAY)).toBeLessThanOrEqual(0);
  });

  test('a live express-session Cookie: its maxAge counts down to its expiry; without one, the default', async () => {
    // Its typings declare no constructor arguments; express-session itself builds it from the cookie options.
    const Cookie = (await import('express-session')).default.Cookie as unknown as new (options: object) => object;
    const express = new Cookie({ maxAge: 30_000 });
    const ttl = sessionTtlMs(express, Date.now(), DAY);
    expect(ttl).toBeGreaterThan(29_000);
    expect(ttl).toBeLessThanOrEqual(30_000);
    expect(sessionTtlMs(new Cookie({}), Date.now(), DAY)).toBe(DAY);
  });
});

const client = { cache: () => null } as unknown as VeloClient;
const opts = (o: Partial<VeloSessionStoreOptions> & Record<string, unknown>) => ({ client, ...o }) as VeloSessionStoreOptions;

describe('resolveSessionStoreOptions', () => {
  test('defaults: the sessions cache, no prefix, one day, locking off', () => {
    expect(resolveSessionStoreOptions({ client })).toEqual({ client, cache: DEFAULT_SESSION_CACHE, prefix: '', defaultTtlMs: DEFAULT_SESSION_TTL_MS, locking: null });
    expect(DEFAULT_SESSION_CACHE).toBe('sessions');
    expect(DEFAULT_SESSION_TTL_MS).toBe(DAY);
  });

  test('locking: true takes the default limits; an object may set either', () => {
    expect(resolveSessionStoreOptions(opts({ locking: true })).locking).toEqual({ timeoutMs: DEFAULT_LOCK_TIMEOUT_MS, waitMs: DEFAULT_LOCK_WAIT_MS });
    expect(resolveSessionStoreOptions(opts({ locking: { waitMs: 500 } })).locking).toEqual({ timeoutMs: DEFAULT_LOCK_TIMEOUT_MS, waitMs: 500 });
    expect(resolveSessionStoreOptions(opts({ locking: false })).locking).toBeNull();
  });

  test('bad options are refused with a message that names them', () => {
    expect(() => resolveSessionStoreOptions(undefined as unknown as VeloSessionStoreOptions)).toThrow(/client/);
    expect(() => resolveSessionStoreOptions({} as VeloSessionStoreOptions)).toThrow(/`client` must be a VeloClient/);
    expect(() => resolveSessionStoreOptions(opts({ cache: '' }))).toThrow(/`cache`/);
    expect(() => resolveSessionStoreOptions(opts({ cache: 'x'.repeat(251) }))).toThrow(/`cache`/);
    expect(() => resolveSessionStoreOptions(opts({ prefix: 7 as unknown as string }))).toThrow(/`prefix`/);
    expect(() => resolveSessionStoreOptions(opts({ defaultTtlMs: 0 }))).toThrow(/`defaultTtlMs` must be a positive integer/);
    expect(() => resolveSessionStoreOptions(opts({ defaultTtlMs: 1.5 }))).toThrow(/`defaultTtlMs`/);
    expect(() => resolveSessionStoreOptions(opts({ locking: { timeoutMs: -1 } }))).toThrow(/`locking.timeoutMs`/);
    expect(() => resolveSessionStoreOptions(opts({ locking: { waitMs: Number.NaN } }))).toThrow(/`locking.waitMs`/);
    expect(() => resolveSessionStoreOptions(opts({ locking: 'yes' as unknown as boolean }))).toThrow(/`locking` must be/);
  });

  test('a misspelt option is an error, not silently ignored', () => {
    expect(() => resolveSessionStoreOptions(opts({ lockng: true }))).toThrow(/unknown option 'lockng'/);
    expect(() => resolveSessionStoreOptions(opts({ locking: { timeout: 5 } as never }))).toThrow(/unknown option 'timeout'/);
  });
});

describe('sessionKey', () => {
  test('prefix plus id; an empty, non-string or too long id is refused', () => {
    expect(sessionKey('app1:', 'abc')).toBe('app1:abc');
    expect(() => sessionKey('', '')).toThrow(/non-empty/);
    expect(() => sessionKey('', 42)).toThrow(/number/);
    expect(() => sessionKey('p'.repeat(200), 'x'.repeat(51))).toThrow(/251 bytes/);
  });
});

describe('lockRetryPauseMs', () => {
  test('doubles from the first pause up to the cap, never below half of either (seeded draws)', () => {
    const random = seededRandom(7);
    for (let attempt = 0; attempt < 12; attempt++) {
      const ceiling = Math.min(LOCK_RETRY_MAX_MS, LOCK_RETRY_FIRST_MS * 2 ** attempt);
      for (let i = 0; i < 50; i++) {
        const ms = lockRetryPauseMs(attempt, random);
        expect(ms).toBeGreaterThanOrEqual(ceiling / 2);
        expect(ms).toBeLessThanOrEqual(ceiling);
      }
    }
    expect(lockRetryPauseMs(1_000, () => 1)).toBe(LOCK_RETRY_MAX_MS);
  });
});
