// What a session store is configured with, checked once when it is built,
// and the one rule for how long a session lives in Velo: as long as its
// cookie. Both are pure, so that they are tested without a cluster.
import type { VeloClient } from '../client/client.js';

/** Item lock and wait limits of exclusive session locking (session-lock.ts). */
export interface SessionLockingOptions {
  /**
   * How long a request may hold its session's lock: a request that runs
   * longer, or an app that crashed holding it, loses it after this. Default 30 s.
   */
  timeoutMs?: number;
  /** How long a request waits for another request's lock before it fails with SessionBusyError (503). Default 10 s. */
  waitMs?: number;
}

export interface VeloSessionStoreOptions {
  client: VeloClient;
  /** The cache the sessions live in, created on first use. Default 'sessions'. */
  cache?: string;
  /** Put before each session id to make its key. Default ''. */
  prefix?: string;
  /** The lifetime of a session whose cookie has neither maxAge nor expires (a browser-session cookie). Default one day. */
  defaultTtlMs?: number;
  /** Exclusive session locking, off by default: true for the default limits. */
  locking?: boolean | SessionLockingOptions;
}

export interface ResolvedSessionStoreOptions {
  client: VeloClient;
  cache: string;
  prefix: string;
  defaultTtlMs: number;
  locking: Required<SessionLockingOptions> | null;
}

export const DEFAULT_SESSION_CACHE = 'sessions';
export const DEFAULT_SESSION_TTL_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_LOCK_TIMEOUT_MS = 30_000;
export const DEFAULT_LOCK_WAIT_MS = 10_000;
/** API.md: names are 1–250 bytes of UTF-8. */
const MAX_NAME_BYTES = 250;

const KNOWN = new Set(['client', 'cache', 'prefix', 'defaultTtlMs', 'locking']);
const KNOWN_LOCKING = new Set(['timeoutMs', 'waitMs']);

function positiveInteger(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw new TypeError(`${what} must be a positive integer (milliseconds), got ${String(value)}`);
  return value;
}

function unknownKeys(obj: object, known: Set<string>, what: string): void {
  for (const k of Object.keys(obj)) if (!known.has(k)) throw new TypeError(`${what}: unknown option '${k}' (known: ${[...known].join(', ')})`);
}

/** The options with their defaults, or a TypeError naming the first bad one. */
export function resolveSessionStoreOptions(opts: VeloSessionStoreOptions): ResolvedSessionStoreOptions {
  if (opts === null || typeof opts !== 'object') throw new TypeError('session store options must be an object with at least { client }');
  unknownKeys(opts, KNOWN, 'session store');
  const { client } = opts;
  if (client === null || typeof client !== 'object' || typeof (client as { cache?: unknown }).cache !== 'function') throw new TypeError('session store: `client` must be a VeloClient');

  const cache = opts.cache ?? DEFAULT_SESSION_CACHE;
  if (typeof cache !== 'string' || cache.length === 0 || Buffer.byteLength(cache) > MAX_NAME_BYTES) throw new TypeError(`session store: \`cache\` must be a name of 1–${MAX_NAME_BYTES} bytes`);
  const prefix = opts.prefix ?? '';
  if (typeof prefix !== 'string' || Buffer.byteLength(prefix) >= MAX_NAME_BYTES) throw new TypeError(`session store: \`prefix\` must be a string shorter than ${MAX_NAME_BYTES} bytes`);
  const defaultTtlMs = opts.defaultTtlMs === undefined ? DEFAULT_SESSION_TTL_MS : positiveInteger(opts.defaultTtlMs, 'session store: `defaultTtlMs`');

  let locking: ResolvedSessionStoreOptions['locking'] = null;
  if (opts.locking === true) locking = { timeoutMs: DEFAULT_LOCK_TIMEOUT_MS, waitMs: DEFAULT_LOCK_WAIT_MS };
  else if (opts.locking !== undefined && opts.locking !== false) {
    if (opts.locking === null || typeof opts.locking !== 'object') throw new TypeError('session store: `locking` must be a boolean or { timeoutMs?, waitMs? }');
    unknownKeys(opts.locking, KNOWN_LOCKING, 'session store locking');
    locking = {
      timeoutMs: opts.locking.timeoutMs === undefined ? DEFAULT_LOCK_TIMEOUT_MS : positiveInteger(opts.locking.timeoutMs, 'session store: `locking.timeoutMs`'),
      waitMs: opts.locking.waitMs === undefined ? DEFAULT_LOCK_WAIT_MS : positiveInteger(opts.locking.waitMs, 'session store: `locking.waitMs`'),
    };
  }
  return { client, cache, prefix, defaultTtlMs, locking };
}

/** The Velo key of a session id, or a TypeError when it cannot be one. */
export function sessionKey(prefix: string, sessionId: unknown): string {
  if (typeof sessionId !== 'string' || sessionId.length === 0) throw new TypeError(`a session id must be a non-empty string, got ${typeof sessionId === 'string' ? 'an empty string' : typeof sessionId}`);
  const key = prefix + sessionId;
  if (Buffer.byteLength(key) > MAX_NAME_BYTES) throw new TypeError(`session id too long: its key would be ${Buffer.byteLength(key)} bytes, Velo keys are at most ${MAX_NAME_BYTES}`);
  return key;
}

function instant(value: unknown): number | null {
  if (value instanceof Date) return value.getTime();
  // A session read back from Velo carries its cookie's expiry as JSON: an ISO string.
  if (typeof value === 'string' || typeof value === 'number') return new Date(value).getTime();
  return null;
}

/**
 * How many ms from `nowMs` a session lives: its cookie's `maxAge` when it is
 * a number, else until its `expires`, else `defaultTtlMs` (a cookie that
 * lives as long as the browser does, which the server cannot see end).
 * Zero or less: the cookie has already expired, so the session must not be
 * written. Rounded up, since Velo's TTLs are whole ms and a session must not
 * die before its cookie.
 */
export function sessionTtlMs(cookie: unknown, nowMs: number, defaultTtlMs: number): number {
  if (cookie !== null && typeof cookie === 'object') {
    const { maxAge, expires } = cookie as { maxAge?: unknown; expires?: unknown };
    if (typeof maxAge === 'number' && Number.isFinite(maxAge)) return Math.ceil(maxAge);
    const at = instant(expires);
    if (at !== null && Number.isFinite(at)) return Math.ceil(at - nowMs);
  }
  return defaultTtlMs;
}
