// The rules a command must meet before it is encoded, after it is decoded,
// and when it is applied: names within limits and well-formed Unicode,
// times as non-negative integer epoch ms, deadlines after the command's now.
// A command that breaks one never reaches the state.

import { utf8Length } from './bytes.js';
import type { CacheSettings, Command, ItemVersionRef } from './commands.js';
import { MAX_CONTENT_TYPE_BYTES, MAX_ITEMS_PER_COMMAND, MAX_LOCK_HANDLE_BYTES, MAX_NAME_BYTES, MAX_TAGS_PER_ITEM, MAX_VALUE_BYTES } from './limits.js';

/** A command that is malformed, beyond a limit, or whose bytes do not decode. */
export class CommandError extends Error {
  readonly code = 'bad_command';
  constructor(message: string) {
    super(message);
    this.name = 'CommandError';
  }
}

function fail(message: string): never {
  throw new CommandError(message);
}

export function checkName(what: string, s: unknown): void {
  if (typeof s !== 'string') fail(`${what} must be a string`);
  const n = utf8Length(s);
  if (n < 0) fail(`${what} is not well-formed Unicode (lone surrogate)`);
  if (n === 0 || n > MAX_NAME_BYTES) fail(`${what} must be 1–${MAX_NAME_BYTES} bytes of UTF-8, got ${n}`);
}

function checkRegion(region: unknown): void {
  if (region !== null) checkName('region', region);
}

function checkTime(what: string, t: unknown): void {
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) fail(`${what} must be a non-negative integer (epoch ms), got ${String(t)}`);
}

function checkVersion(what: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) fail(`${what} must be a positive integer, got ${String(v)}`);
}

function checkDeadline(what: string, t: number | null, now: number): void {
  if (t === null) return;
  checkTime(what, t);
  if (t <= now) fail(`${what} (${t}) must be after now (${now})`);
}

function checkHandle(h: unknown): void {
  if (typeof h !== 'string') fail('lock handle must be a string');
  const n = utf8Length(h);
  if (n <= 0 || n > MAX_LOCK_HANDLE_BYTES) fail(`lock handle must be 1–${MAX_LOCK_HANDLE_BYTES} bytes of UTF-8`);
}

function checkContentType(ct: unknown): void {
  if (typeof ct !== 'string') fail('content type must be a string');
  const n = utf8Length(ct);
  if (n <= 0 || n > MAX_CONTENT_TYPE_BYTES) fail(`content type must be 1–${MAX_CONTENT_TYPE_BYTES} bytes of UTF-8`);
}

export function checkTags(region: string | null, tags: unknown): void {
  if (!Array.isArray(tags)) fail('tags must be an array');
  if (tags.length > MAX_TAGS_PER_ITEM) fail(`${tags.length} tags; the limit is ${MAX_TAGS_PER_ITEM} per item`);
  if (tags.length > 0 && region === null) fail('tags are for region items only');
  for (const t of tags) checkName('tag', t);
}

export function checkSettings(s: CacheSettings): void {
  if (typeof s !== 'object' || s === null) fail('settings must be an object');
  checkTime('defaultTtlMs', s.defaultTtlMs);
  if (s.maxBytes !== null) checkVersion('maxBytes', s.maxBytes);
  if (s.eviction !== 'lru' && s.eviction !== 'none') fail(`eviction must be "lru" or "none", got ${String(s.eviction)}`);
}

function checkRefs(items: unknown): void {
  if (!Array.isArray(items)) fail('items must be an array');
  if (items.length > MAX_ITEMS_PER_COMMAND) fail(`${items.length} items; the limit is ${MAX_ITEMS_PER_COMMAND} per command`);
  for (const r of items as ItemVersionRef[]) {
    checkName('cache', r.cache);
    checkRegion(r.region);
    checkName('key', r.key);
    checkVersion('version', r.version);
  }
}

/** Throws CommandError unless `c` is a well-formed command within every limit. */
export function validateCommand(c: Command): void {
  switch (c.type) {
    case 'put':
      checkName('cache', c.cache);
      checkRegion(c.region);
      checkName('key', c.key);
      if (!(c.value instanceof Uint8Array)) fail('value must be a Uint8Array');
      if (c.value.length > MAX_VALUE_BYTES) fail(`value is ${c.value.length} bytes; the limit is ${MAX_VALUE_BYTES}`);
      checkContentType(c.contentType);
      checkTime('now', c.now);
      checkDeadline('expiresAt', c.expiresAt, c.now);
      checkTags(c.region, c.tags);
      if (c.condition.kind === 'ifMatch') checkVersion('If-Match version', c.condition.version);
      else if (c.condition.kind !== 'none' && c.condition.kind !== 'ifNoneMatch') fail('unknown condition');
      if (c.lockHandle !== null) checkHandle(c.lockHandle);
      if (typeof c.unlock !== 'boolean') fail('unlock must be a boolean');
      return;
    case 'delete':
      checkName('cache', c.cache);
      checkRegion(c.region);
      checkName('key', c.key);
      if (c.ifMatch !== null) checkVersion('If-Match version', c.ifMatch);
      if (c.lockHandle !== null) checkHandle(c.lockHandle);
      checkTime('now', c.now);
      return;
    case 'touch':
      checkName('cache', c.cache);
      checkRegion(c.region);
      checkName('key', c.key);
      checkTime('now', c.now);
      checkDeadline('expiresAt', c.expiresAt, c.now);
      return;
    case 'lock':
      checkName('cache', c.cache);
      checkRegion(c.region);
      checkName('key', c.key);
      checkHandle(c.handle);
      checkTime('now', c.now);
      checkDeadline('lockExpiresAt', c.lockExpiresAt, c.now);
      return;
    case 'unlock':
      checkName('cache', c.cache);
      checkRegion(c.region);
      checkName('key', c.key);
      checkHandle(c.handle);
      checkTime('now', c.now);
      return;
    case 'expire':
      checkRefs(c.items);
      checkTime('now', c.now);
      return;
    case 'evict':
      checkRefs(c.items);
      return;
    case 'clearRegion':
      checkName('cache', c.cache);
      checkName('region', c.region);
      checkTime('now', c.now);
      return;
    case 'putCache':
      checkName('cache name', c.name);
      checkSettings(c.settings);
      return;
    case 'dropCache':
      checkName('cache name', c.name);
      return;
    default:
      fail(`unknown command type ${String((c as { type: unknown }).type)}`);
  }
}
