// What apply() and the reads answer. Every failure carries a stable `code`
// that the HTTP layer maps to a status (API.md) and a human `message`.

import type { CacheSettings, CommandType } from './commands.js';

/** Failure codes and the HTTP status API.md gives each. */
export const FAILURE_STATUS = {
  not_found: 404,
  cache_not_found: 404,
  precondition_failed: 412,
  locked: 423,
  lock_not_held: 409,
  cache_full: 507,
  bad_request: 400,
} as const;

export type FailureCode = keyof typeof FAILURE_STATUS;

export interface Failure<C extends FailureCode> {
  code: C;
  message: string;
}

export interface ItemView {
  region: string | null;
  key: string;
  /** The stored bytes, not a copy: callers must not modify them. */
  value: Uint8Array;
  contentType: string;
  /** The log index of the entry that last wrote the item. */
  version: number;
  expiresAt: number | null;
  tags: readonly string[];
}

export type PutResult =
  | { code: 'ok'; version: number; created: boolean }
  | Failure<'cache_not_found' | 'precondition_failed' | 'locked' | 'lock_not_held' | 'cache_full'>;

export type DeleteResult =
  | { code: 'ok'; version: number }
  | Failure<'cache_not_found' | 'not_found' | 'precondition_failed' | 'locked' | 'lock_not_held'>;

export type TouchResult = { code: 'ok'; version: number; expiresAt: number | null } | Failure<'cache_not_found' | 'not_found'>;

export type LockResult = { code: 'ok'; item: ItemView; handle: string; lockExpiresAt: number } | Failure<'cache_not_found' | 'not_found' | 'locked'>;

export type UnlockResult = { code: 'ok' } | Failure<'cache_not_found' | 'not_found' | 'lock_not_held'>;

/** expire and evict: how many of the named items were still at that version (and, for expire, still expired). */
export type RemoveResult = { code: 'ok'; removed: number };

export type ClearRegionResult = { code: 'ok'; removed: number } | Failure<'cache_not_found'>;

export type PutCacheResult = { code: 'ok'; created: boolean; settings: CacheSettings } | Failure<'bad_request'>;

export type DropCacheResult = { code: 'ok'; removed: number } | Failure<'cache_not_found' | 'bad_request'>;

/** The result type of each command type, so that apply(put) is typed PutResult. */
export interface ResultFor {
  put: PutResult;
  delete: DeleteResult;
  touch: TouchResult;
  lock: LockResult;
  unlock: UnlockResult;
  expire: RemoveResult;
  evict: RemoveResult;
  clearRegion: ClearRegionResult;
  putCache: PutCacheResult;
  dropCache: DropCacheResult;
}

export type Result = ResultFor[CommandType];

/**
 * A change to the items, in apply order (API.md "Change events").
 * - put: `version` is the new version.
 * - delete, expire, evict: `version` is the version removed.
 * - clear: a region was cleared (`region` set), or a whole cache was dropped
 *   (`region` null); `key` is null and `version` is the command's log index.
 * Commands that change no item's value or existence (touch, lock, unlock,
 * putCache) and failed commands yield none.
 */
export interface ChangeEvent {
  type: 'put' | 'delete' | 'expire' | 'evict' | 'clear';
  cache: string;
  region: string | null;
  key: string | null;
  version: number;
}

export interface Applied<R extends Result = Result> {
  result: R;
  events: ChangeEvent[];
}

export interface CacheStats {
  items: number;
  bytes: number;
  /** Leader-local (recordRead), not replicated: 0 on a follower and after restore. */
  hits: number;
  misses: number;
  evictions: number;
  expirations: number;
}

export interface ListOptions {
  /** No tags: every item of the region. */
  tags?: readonly string[];
  /** 'any' (default): items with at least one of the tags; 'all': items with every one. */
  match?: 'any' | 'all';
  /** At most this many items (the first by key). */
  limit?: number;
}
