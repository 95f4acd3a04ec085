// Access tokens (API.md "Security"): what a token may do (its role and the
// caches it is limited to), how its secret is made, and how a presented
// secret is found among the stored hashes. Pure: no I/O beyond the random
// bytes of a new secret. The records live in the cluster's metadata
// (cluster-meta.ts), so every member holds the same ones.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const ROLES = ['read', 'write', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** What a request presents once its token is known: the decoration api/ puts on every request (req.auth). */
export interface Principal {
  name: string;
  role: Role;
  /** null: every cache. Else exact names, or prefixes ending in `*`. */
  caches: string[] | null;
}

/** A token as the metadata holds it: never the secret, only its SHA-256. */
export interface TokenRecord extends Principal {
  /** Lower-case hex SHA-256 of the secret. */
  hash: string;
  /** Epoch ms, fixed by the node that proposed it. */
  createdAt: number;
}

/** Names are short identifiers: they appear in logs and in the DELETE path. */
export const TOKEN_NAME_PATTERN = '^[A-Za-z0-9._-]{1,64}$';
export const MAX_TOKENS = 1000;
/** Cache patterns per token, and bytes of each (a cache name is at most 250 bytes, a prefix the same plus `*`). */
export const MAX_TOKEN_CACHES = 64;
export const MAX_CACHE_PATTERN_BYTES = 251;
/** 256 random bits: guessing is hopeless, so one unsalted SHA-256 is an adequate hash to store. */
export const SECRET_BYTES = 32;
const SECRET_PREFIX = 'velo_';
/** A presented secret longer than this is no token of ours: refused before it is hashed. */
export const MAX_SECRET_CHARS = 256;
/** The first admin token of a cluster, proposed from --admin-token-file. */
export const BOOTSTRAP_TOKEN_NAME = 'admin';

const RANK: Record<Role, number> = { read: 0, write: 1, admin: 2 };

/** A fresh secret: `velo_` and 43 characters of base64url. */
export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(SECRET_BYTES).toString('base64url');
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Whether `s` could be a secret this code made or accepts from a file: printable, no spaces, bounded. */
export function wellFormedSecret(s: string): boolean {
  return s.length >= 16 && s.length <= MAX_SECRET_CHARS && /^[\x21-\x7e]+$/.test(s);
}

/**
 * The record whose hash matches `secret`, or null. Every stored hash is
 * compared, in constant time each, so the time taken says nothing about
 * which record (or how much of a hash) matched.
 */
export function findToken(records: readonly TokenRecord[], secret: string): TokenRecord | null {
  if (!wellFormedSecret(secret)) return null;
  const presented = Buffer.from(hashSecret(secret), 'hex');
  let found: TokenRecord | null = null;
  for (const r of records) {
    const stored = Buffer.from(r.hash, 'hex');
    if (stored.length === presented.length && timingSafeEqual(stored, presented) && found === null) found = r;
  }
  return found;
}

/** Whether `has` includes what `needs` may do: admin ⊃ write ⊃ read. */
export function roleAllows(has: Role, needs: Role): boolean {
  return RANK[has] >= RANK[needs];
}

/** Whether a token limited to `caches` (null: none) may touch cache `name`: an exact name, or a prefix ending in `*`. */
export function cacheAllowed(caches: readonly string[] | null, name: string): boolean {
  if (caches === null) return true;
  return caches.some((p) => (p.endsWith('*') ? name.startsWith(p.slice(0, -1)) : name === p));
}

/** Why a cache pattern is unusable, or null: non-empty, bounded, `*` only as its last character. */
export function cachePatternProblem(p: string): string | null {
  if (p.length === 0) return 'a cache pattern must not be empty';
  if (Buffer.byteLength(p, 'utf8') > MAX_CACHE_PATTERN_BYTES) return `cache pattern "${p.slice(0, 40)}…" is longer than ${MAX_CACHE_PATTERN_BYTES} bytes`;
  if (p.slice(0, -1).includes('*')) return `cache pattern "${p}" may hold "*" only as its last character (a prefix)`;
  return null;
}
