// The commands of a partition's log, and their binary encoding.
//
// Every input that depends on time or chance — expiry instants, lock handles
// and deadlines, which items to evict — is chosen by the leader and carried
// here, with the leader's clock at proposal (`now`), so that apply() on every
// replica reaches the same state without reading a clock.
//
// Encoding: a format byte, a type byte, then the fields in declaration order:
// integers as unsigned LEB128 varints, strings as length-prefixed UTF-8, the
// value as length-prefixed raw bytes, null as a 0/1 flag before the field.
// No checksum: the raft log's storage guards its entries' integrity.

import { DecodeError, Reader, Writer } from './bytes.js';
import { CommandError, validateCommand } from './validate.js';
import { MAX_CONTENT_TYPE_BYTES, MAX_ITEMS_PER_COMMAND, MAX_LOCK_HANDLE_BYTES, MAX_NAME_BYTES, MAX_TAGS_PER_ITEM, MAX_VALUE_BYTES } from './limits.js';

export { CommandError, validateCommand } from './validate.js';

export type Eviction = 'lru' | 'none';

export interface CacheSettings {
  /** TTL the leader applies when a PUT names none; 0 means no expiry. */
  defaultTtlMs: number;
  /** The cache's limit over the whole cluster; each partition enforces its share. null: unbounded. */
  maxBytes: number | null;
  eviction: Eviction;
}

export type Condition = { kind: 'none' } | { kind: 'ifNoneMatch' } | { kind: 'ifMatch'; version: number };

/** One item at one version: expire and evict remove it only if it was not rewritten since. */
export interface ItemVersionRef {
  cache: string;
  region: string | null;
  key: string;
  version: number;
}

export interface PutCommand {
  type: 'put';
  cache: string;
  region: string | null;
  key: string;
  value: Uint8Array;
  contentType: string;
  /** Epoch ms chosen by the leader, after `now`; null: never expires. */
  expiresAt: number | null;
  /** Region items only. Duplicates are dropped on apply. */
  tags: string[];
  condition: Condition;
  lockHandle: string | null;
  /** With the lock's handle: write and release the lock (PutAndUnlock). */
  unlock: boolean;
  now: number;
}

export interface DeleteCommand {
  type: 'delete';
  cache: string;
  region: string | null;
  key: string;
  ifMatch: number | null;
  lockHandle: string | null;
  now: number;
}

export interface TouchCommand {
  type: 'touch';
  cache: string;
  region: string | null;
  key: string;
  expiresAt: number | null;
  now: number;
}

export interface LockCommand {
  type: 'lock';
  cache: string;
  region: string | null;
  key: string;
  /** Chosen by the leader (unguessable, unique). */
  handle: string;
  lockExpiresAt: number;
  now: number;
}

export interface UnlockCommand {
  type: 'unlock';
  cache: string;
  region: string | null;
  key: string;
  handle: string;
  now: number;
}

export interface ExpireCommand {
  type: 'expire';
  items: ItemVersionRef[];
  /**
   * The leader's clock. An item is removed only if its version matches and
   * it is expired at `now`: a touch applied after the leader chose it keeps
   * the version but moves the expiry, and must win.
   */
  now: number;
}

export interface EvictCommand {
  type: 'evict';
  items: ItemVersionRef[];
}

export interface ClearRegionCommand {
  type: 'clearRegion';
  cache: string;
  region: string;
  now: number;
}

export interface PutCacheCommand {
  type: 'putCache';
  name: string;
  settings: CacheSettings;
}

export interface DropCacheCommand {
  type: 'dropCache';
  name: string;
}

export type Command =
  | PutCommand
  | DeleteCommand
  | TouchCommand
  | LockCommand
  | UnlockCommand
  | ExpireCommand
  | EvictCommand
  | ClearRegionCommand
  | PutCacheCommand
  | DropCacheCommand;

export type CommandType = Command['type'];

// ---- encoding ----

/** Bumped when the layout changes; a replica refuses a format it does not know. */
export const COMMAND_FORMAT = 1;

// Wire numbers of the command types: append only, never renumber.
const TYPE_CODE: Record<CommandType, number> = {
  put: 1,
  delete: 2,
  touch: 3,
  lock: 4,
  unlock: 5,
  expire: 6,
  evict: 7,
  clearRegion: 8,
  putCache: 9,
  dropCache: 10,
};
const CODE_TYPE = new Map<number, CommandType>(Object.entries(TYPE_CODE).map(([t, n]) => [n, t as CommandType]));

function writeNullable<T>(w: Writer, v: T | null, write: (v: T) => void): void {
  w.bool(v !== null);
  if (v !== null) write(v);
}

function writeItemRef(w: Writer, c: { cache: string; region: string | null; key: string }): void {
  w.string(c.cache);
  writeNullable(w, c.region, (r) => w.string(r));
  w.string(c.key);
}

const CONDITION_CODE = { none: 0, ifNoneMatch: 1, ifMatch: 2 } as const;
const EVICTION_CODE = { lru: 0, none: 1 } as const;

/** The command's bytes. Throws CommandError if it is malformed or beyond a limit. */
export function encodeCommand(c: Command): Uint8Array {
  validateCommand(c);
  const w = new Writer(c.type === 'put' ? 512 + Math.min(c.value.length, 4096) : 512);
  w.u8(COMMAND_FORMAT);
  w.u8(TYPE_CODE[c.type]);
  switch (c.type) {
    case 'put':
      writeItemRef(w, c);
      w.bytes(c.value);
      w.string(c.contentType);
      writeNullable(w, c.expiresAt, (t) => w.uvarint(t));
      w.uvarint(c.tags.length);
      for (const t of c.tags) w.string(t);
      w.u8(CONDITION_CODE[c.condition.kind]);
      if (c.condition.kind === 'ifMatch') w.uvarint(c.condition.version);
      writeNullable(w, c.lockHandle, (h) => w.string(h));
      w.bool(c.unlock);
      w.uvarint(c.now);
      break;
    case 'delete':
      writeItemRef(w, c);
      writeNullable(w, c.ifMatch, (v) => w.uvarint(v));
      writeNullable(w, c.lockHandle, (h) => w.string(h));
      w.uvarint(c.now);
      break;
    case 'touch':
      writeItemRef(w, c);
      writeNullable(w, c.expiresAt, (t) => w.uvarint(t));
      w.uvarint(c.now);
      break;
    case 'lock':
      writeItemRef(w, c);
      w.string(c.handle);
      w.uvarint(c.lockExpiresAt);
      w.uvarint(c.now);
      break;
    case 'unlock':
      writeItemRef(w, c);
      w.string(c.handle);
      w.uvarint(c.now);
      break;
    case 'expire':
    case 'evict':
      w.uvarint(c.items.length);
      for (const r of c.items) {
        writeItemRef(w, r);
        w.uvarint(r.version);
      }
      if (c.type === 'expire') w.uvarint(c.now);
      break;
    case 'clearRegion':
      w.string(c.cache);
      w.string(c.region);
      w.uvarint(c.now);
      break;
    case 'putCache':
      w.string(c.name);
      w.uvarint(c.settings.defaultTtlMs);
      writeNullable(w, c.settings.maxBytes, (m) => w.uvarint(m));
      w.u8(EVICTION_CODE[c.settings.eviction]);
      break;
    case 'dropCache':
      w.string(c.name);
      break;
  }
  return w.finish();
}

// ---- decoding ----

function readNullable<T>(r: Reader, what: string, read: () => T): T | null {
  return r.bool(`${what} present`) ? read() : null;
}

function readItemRef(r: Reader): { cache: string; region: string | null; key: string } {
  const cache = r.string('cache', MAX_NAME_BYTES);
  const region = readNullable(r, 'region', () => r.string('region', MAX_NAME_BYTES));
  const key = r.string('key', MAX_NAME_BYTES);
  return { cache, region, key };
}

function readCount(r: Reader, what: string, max: number): number {
  const n = r.uvarint(`${what} count`);
  if (n > max) throw new DecodeError(`${n} ${what}; the limit is ${max}`);
  return n;
}

function readCommand(r: Reader, type: CommandType): Command {
  switch (type) {
    case 'put': {
      const ref = readItemRef(r);
      const value = r.bytes('value', MAX_VALUE_BYTES);
      const contentType = r.string('content type', MAX_CONTENT_TYPE_BYTES);
      const expiresAt = readNullable(r, 'expiresAt', () => r.uvarint('expiresAt'));
      const tags: string[] = [];
      for (let n = readCount(r, 'tags', MAX_TAGS_PER_ITEM); n > 0; n--) tags.push(r.string('tag', MAX_NAME_BYTES));
      const cond = r.u8('condition');
      let condition: Condition;
      if (cond === CONDITION_CODE.none) condition = { kind: 'none' };
      else if (cond === CONDITION_CODE.ifNoneMatch) condition = { kind: 'ifNoneMatch' };
      else if (cond === CONDITION_CODE.ifMatch) condition = { kind: 'ifMatch', version: r.uvarint('If-Match version') };
      else throw new DecodeError(`unknown condition ${cond}`);
      const lockHandle = readNullable(r, 'lock handle', () => r.string('lock handle', MAX_LOCK_HANDLE_BYTES));
      const unlock = r.bool('unlock');
      const now = r.uvarint('now');
      return { type, ...ref, value, contentType, expiresAt, tags, condition, lockHandle, unlock, now };
    }
    case 'delete': {
      const ref = readItemRef(r);
      const ifMatch = readNullable(r, 'If-Match', () => r.uvarint('If-Match version'));
      const lockHandle = readNullable(r, 'lock handle', () => r.string('lock handle', MAX_LOCK_HANDLE_BYTES));
      return { type, ...ref, ifMatch, lockHandle, now: r.uvarint('now') };
    }
    case 'touch': {
      const ref = readItemRef(r);
      const expiresAt = readNullable(r, 'expiresAt', () => r.uvarint('expiresAt'));
      return { type, ...ref, expiresAt, now: r.uvarint('now') };
    }
    case 'lock': {
      const ref = readItemRef(r);
      const handle = r.string('lock handle', MAX_LOCK_HANDLE_BYTES);
      const lockExpiresAt = r.uvarint('lockExpiresAt');
      return { type, ...ref, handle, lockExpiresAt, now: r.uvarint('now') };
    }
    case 'unlock': {
      const ref = readItemRef(r);
      const handle = r.string('lock handle', MAX_LOCK_HANDLE_BYTES);
      return { type, ...ref, handle, now: r.uvarint('now') };
    }
    case 'expire':
    case 'evict': {
      const items: ItemVersionRef[] = [];
      for (let n = readCount(r, 'items', MAX_ITEMS_PER_COMMAND); n > 0; n--) items.push({ ...readItemRef(r), version: r.uvarint('version') });
      return type === 'expire' ? { type, items, now: r.uvarint('now') } : { type, items };
    }
    case 'clearRegion': {
      const cache = r.string('cache', MAX_NAME_BYTES);
      const region = r.string('region', MAX_NAME_BYTES);
      return { type, cache, region, now: r.uvarint('now') };
    }
    case 'putCache': {
      const name = r.string('cache name', MAX_NAME_BYTES);
      const defaultTtlMs = r.uvarint('defaultTtlMs');
      const maxBytes = readNullable(r, 'maxBytes', () => r.uvarint('maxBytes'));
      const ev = r.u8('eviction');
      if (ev !== EVICTION_CODE.lru && ev !== EVICTION_CODE.none) throw new DecodeError(`unknown eviction policy ${ev}`);
      return { type, name, settings: { defaultTtlMs, maxBytes, eviction: ev === EVICTION_CODE.lru ? 'lru' : 'none' } };
    }
    case 'dropCache':
      return { type, name: r.string('cache name', MAX_NAME_BYTES) };
  }
}

/**
 * The command in `bytes`, whole and valid, or a CommandError: never half a
 * command. The value is a view into `bytes` (apply copies what it keeps).
 */
export function decodeCommand(bytes: Uint8Array): Command {
  let c: Command;
  try {
    const r = new Reader(bytes);
    const format = r.u8('format');
    if (format !== COMMAND_FORMAT) throw new DecodeError(`unknown command format ${format} (this replica knows ${COMMAND_FORMAT})`);
    const code = r.u8('type');
    const type = CODE_TYPE.get(code);
    if (type === undefined) throw new DecodeError(`unknown command type ${code}`);
    c = readCommand(r, type);
    r.end(`${type} command`);
  } catch (e) {
    if (e instanceof DecodeError) throw new CommandError(`undecodable command: ${e.message}`);
    throw e;
  }
  validateCommand(c);
  return c;
}
