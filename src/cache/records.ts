// Items outside the log: the binary records in which a partition's content
// is exported (backup) and loaded back (restore's bulk writes). Unlike a
// snapshot, a record holds only what a user wrote — cache, region, key,
// value, content type, expiry instant, tags — and not versions, locks or
// counters, which a restore renumbers or drops. This is a public format:
// API.md ("Backup and bulk load") documents it for tools outside the node.
//
// Encoding, with the primitives of bytes.ts:
//   records:          "VELR", format byte, item count, items
//   partition export: "VELP", format byte, partition, index, cache count,
//                     caches (name, defaultTtlMs, maxBytes?, eviction 0 lru /
//                     1 none), item count, items
//   item:             cache, region?, key, content type, expiresAt?,
//                     tag count, tags, value
// Integrity is the carrier's business (the backup file checksums every
// section; HTTP bodies ride on TCP): decoding checks structure and limits.

import { DecodeError, copyBytes, Reader, Writer } from './bytes.js';
import type { CacheSettings } from './commands.js';
import { MAX_CACHES, MAX_CONTENT_TYPE_BYTES, MAX_NAME_BYTES, MAX_TAGS_PER_ITEM, MAX_VALUE_BYTES } from './limits.js';
import { CommandError, checkName, checkSettings, checkTags } from './validate.js';

export const RECORDS_FORMAT = 1;
const RECORDS_MAGIC = [0x56, 0x45, 0x4c, 0x52]; // "VELR"
const EXPORT_MAGIC = [0x56, 0x45, 0x4c, 0x50]; // "VELP"

/** One item as a user wrote it. */
export interface ItemRecord {
  cache: string;
  region: string | null;
  key: string;
  value: Uint8Array;
  contentType: string;
  /** Epoch ms; null: never expires. */
  expiresAt: number | null;
  tags: string[];
}

export interface CacheRecord {
  name: string;
  settings: CacheSettings;
}

/** A partition's content at one committed log index. */
export interface PartitionExport {
  partition: number;
  /** The log index the content was read at: it holds every write committed up to it. */
  index: number;
  caches: CacheRecord[];
  items: ItemRecord[];
}

/** Records that are truncated, malformed, or of an unknown format. */
export class RecordsError extends Error {
  readonly code = 'bad_records';
  constructor(message: string) {
    super(message);
    this.name = 'RecordsError';
  }
}

function writeItem(w: Writer, r: ItemRecord): void {
  w.string(r.cache);
  w.bool(r.region !== null);
  if (r.region !== null) w.string(r.region);
  w.string(r.key);
  w.string(r.contentType);
  w.bool(r.expiresAt !== null);
  if (r.expiresAt !== null) w.uvarint(r.expiresAt);
  w.uvarint(r.tags.length);
  for (const t of r.tags) w.string(t);
  w.bytes(r.value);
}

function readItem(r: Reader): ItemRecord {
  const cache = r.string('cache name', MAX_NAME_BYTES);
  checkName('cache name', cache);
  const region = r.bool('region present') ? r.string('region', MAX_NAME_BYTES) : null;
  if (region !== null) checkName('region', region);
  const key = r.string('key', MAX_NAME_BYTES);
  checkName('key', key);
  const contentType = r.string('content type', MAX_CONTENT_TYPE_BYTES);
  if (contentType.length === 0) throw new DecodeError('empty content type');
  const expiresAt = r.bool('expiresAt present') ? r.uvarint('expiresAt') : null;
  const nt = r.uvarint('tag count');
  if (nt > MAX_TAGS_PER_ITEM) throw new DecodeError(`${nt} tags exceeds the limit of ${MAX_TAGS_PER_ITEM}`);
  const tags: string[] = [];
  for (let i = 0; i < nt; i++) tags.push(r.string('tag', MAX_NAME_BYTES));
  checkTags(region, tags);
  // A copy: a view would pin the whole body for as long as the item lives.
  const value = copyBytes(r.bytes('value', MAX_VALUE_BYTES));
  return { cache, region, key, value, contentType, expiresAt, tags };
}

function writeMagic(w: Writer, magic: number[]): void {
  for (const b of magic) w.u8(b);
  w.u8(RECORDS_FORMAT);
}

function readMagic(r: Reader, magic: number[], what: string): void {
  for (const b of magic) if (r.u8('magic') !== b) throw new DecodeError(`not ${what} (bad magic)`);
  const format = r.u8('format');
  if (format !== RECORDS_FORMAT) throw new DecodeError(`unknown ${what} format ${format} (this code knows ${RECORDS_FORMAT})`);
}

/** A count that cannot exceed what is left: every record takes at least one byte. */
function readCount(r: Reader, what: string, max = Infinity): number {
  const n = r.uvarint(`${what} count`);
  if (n > Math.min(max, r.remaining)) throw new DecodeError(`${what} count ${n} is impossible here`);
  return n;
}

function decoding<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof DecodeError || e instanceof CommandError) throw new RecordsError(`malformed ${what}: ${e.message}`);
    throw e;
  }
}

export function encodeRecords(items: readonly ItemRecord[]): Uint8Array {
  const w = new Writer();
  writeMagic(w, RECORDS_MAGIC);
  w.uvarint(items.length);
  for (const it of items) writeItem(w, it);
  return w.finish();
}

/** The records in `bytes`, or a RecordsError: malformed input is refused whole. */
export function decodeRecords(bytes: Uint8Array): ItemRecord[] {
  return decoding('item records', () => {
    const r = new Reader(bytes);
    readMagic(r, RECORDS_MAGIC, 'Velo item records');
    const out: ItemRecord[] = [];
    for (let n = readCount(r, 'items'); n > 0; n--) out.push(readItem(r));
    r.end('item records');
    return out;
  });
}

export function encodePartitionExport(e: PartitionExport): Uint8Array {
  const w = new Writer();
  writeMagic(w, EXPORT_MAGIC);
  w.uvarint(e.partition);
  w.uvarint(e.index);
  w.uvarint(e.caches.length);
  for (const c of e.caches) {
    w.string(c.name);
    w.uvarint(c.settings.defaultTtlMs);
    w.bool(c.settings.maxBytes !== null);
    if (c.settings.maxBytes !== null) w.uvarint(c.settings.maxBytes);
    w.u8(c.settings.eviction === 'lru' ? 0 : 1);
  }
  w.uvarint(e.items.length);
  for (const it of e.items) writeItem(w, it);
  return w.finish();
}

export function decodePartitionExport(bytes: Uint8Array): PartitionExport {
  return decoding('partition export', () => {
    const r = new Reader(bytes);
    readMagic(r, EXPORT_MAGIC, 'a Velo partition export');
    const partition = r.uvarint('partition');
    const index = r.uvarint('index');
    const caches: CacheRecord[] = [];
    const names = new Set<string>();
    for (let n = readCount(r, 'caches', MAX_CACHES); n > 0; n--) {
      const name = r.string('cache name', MAX_NAME_BYTES);
      checkName('cache name', name);
      if (names.has(name)) throw new DecodeError(`cache ${name} twice`);
      names.add(name);
      const defaultTtlMs = r.uvarint('defaultTtlMs');
      const maxBytes = r.bool('maxBytes present') ? r.uvarint('maxBytes') : null;
      const ev = r.u8('eviction');
      if (ev > 1) throw new DecodeError(`unknown eviction policy ${ev}`);
      const settings: CacheSettings = { defaultTtlMs, maxBytes, eviction: ev === 0 ? 'lru' : 'none' };
      checkSettings(settings);
      caches.push({ name, settings });
    }
    const items: ItemRecord[] = [];
    for (let n = readCount(r, 'items'); n > 0; n--) {
      const it = readItem(r);
      if (!names.has(it.cache)) throw new DecodeError(`item ${it.key} of unknown cache ${it.cache}`);
      items.push(it);
    }
    r.end('partition export');
    return { partition, index, caches, items };
  });
}
