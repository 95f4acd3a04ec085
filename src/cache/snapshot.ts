// The replicated state of a partition as bytes, for raft snapshots.
//
// Layout: "VELC", a format byte, the body, then the CRC-32 of everything
// before it (4 bytes, big-endian). Body, with the primitives of bytes.ts:
//   maxBytesShare, appliedIndex, cache count, then per cache:
//     name, defaultTtlMs, maxBytes?, eviction (0 lru, 1 none), evictions,
//     expirations, space count, then per space:
//       region?, item count, then per item:
//         key, value, content type, version, expiresAt?, tag count, tags,
//         lock? (handle, expiresAt)
// Caches, spaces and items are written in their maps' order, which is the
// same on every replica that applied the same log, so replicas' snapshots
// are byte-identical. Leader-local data (hits, misses, recency) is left out;
// on restore, recency is rebuilt oldest version first, which is the order
// puts alone would have made.

import { DecodeError, copyBytes, Reader, Writer, crc32 } from './bytes.js';
import type { CacheSettings } from './commands.js';
import { CommandError, checkName, checkSettings, checkTags } from './validate.js';
import { MAX_CACHES, MAX_CONTENT_TYPE_BYTES, MAX_LOCK_HANDLE_BYTES, MAX_NAME_BYTES, MAX_TAGS_PER_ITEM, MAX_VALUE_BYTES } from './limits.js';
import { DEFAULT_CACHE, Item, PartitionState, type ItemContent, type Lock } from './partition-state.js';

/** A snapshot that is truncated, corrupt, or of a format this code does not know. */
export class SnapshotError extends Error {
  readonly code = 'bad_snapshot';
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotError';
  }
}

const MAGIC = [0x56, 0x45, 0x4c, 0x43]; // "VELC"
/** Bumped when the layout changes; restore refuses a format it does not know. */
export const SNAPSHOT_FORMAT = 1;
const CRC_BYTES = 4;

export function encodeSnapshot(s: PartitionState): Uint8Array {
  const w = new Writer();
  for (const b of MAGIC) w.u8(b);
  w.u8(SNAPSHOT_FORMAT);
  w.uvarint(s.maxBytesShare);
  w.uvarint(s.appliedIndex);
  w.uvarint(s.caches.size);
  for (const cache of s.caches.values()) {
    w.string(cache.name);
    w.uvarint(cache.settings.defaultTtlMs);
    w.bool(cache.settings.maxBytes !== null);
    if (cache.settings.maxBytes !== null) w.uvarint(cache.settings.maxBytes);
    w.u8(cache.settings.eviction === 'lru' ? 0 : 1);
    w.uvarint(cache.evictions);
    w.uvarint(cache.expirations);
    w.uvarint(cache.spaces.size);
    for (const space of cache.spaces.values()) {
      w.bool(space.region !== null);
      if (space.region !== null) w.string(space.region);
      w.uvarint(space.items.size);
      for (const item of space.items.values()) {
        w.string(item.key);
        w.bytes(item.value);
        w.string(item.contentType);
        w.uvarint(item.version);
        w.bool(item.expiresAt !== null);
        if (item.expiresAt !== null) w.uvarint(item.expiresAt);
        w.uvarint(item.tags.length);
        for (const t of item.tags) w.string(t);
        w.bool(item.lock !== null);
        if (item.lock !== null) {
          w.string(item.lock.handle);
          w.uvarint(item.lock.expiresAt);
        }
      }
    }
  }
  const body = w.length;
  const out = w.finish(CRC_BYTES);
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(body, crc32(out, body));
  return out;
}

function corrupt(message: string): never {
  throw new DecodeError(message);
}

/** A count that cannot exceed what is left: every record takes at least one byte, so a huge count is garbage, not a long loop. */
function readCount(r: Reader, what: string, max = Infinity): number {
  const n = r.uvarint(`${what} count`);
  if (n > Math.min(max, r.remaining)) corrupt(`${what} count ${n} is impossible here`);
  return n;
}

function readItem(r: Reader, s: PartitionState, region: string | null, versions: Set<number>): { key: string; content: ItemContent } {
  const key = r.string('key', MAX_NAME_BYTES);
  checkName('key', key);
  // A copy: a view would pin the whole snapshot buffer for as long as any item lives.
  const value = copyBytes(r.bytes('value', MAX_VALUE_BYTES));
  const contentType = r.string('content type', MAX_CONTENT_TYPE_BYTES);
  if (contentType.length === 0) corrupt('empty content type');
  const version = r.uvarint('version');
  if (version < 1 || version > s.appliedIndex) corrupt(`version ${version} outside 1..${s.appliedIndex}`);
  if (versions.has(version)) corrupt(`version ${version} held by two items`);
  versions.add(version);
  const expiresAt = r.bool('expiresAt present') ? r.uvarint('expiresAt') : null;
  const tags: string[] = [];
  for (let n = readCount(r, 'tags', MAX_TAGS_PER_ITEM); n > 0; n--) tags.push(r.string('tag', MAX_NAME_BYTES));
  checkTags(region, tags);
  if (new Set(tags).size !== tags.length) corrupt(`item ${key} has a tag twice`);
  let lock: Lock | null = null;
  if (r.bool('lock present')) {
    const handle = r.string('lock handle', MAX_LOCK_HANDLE_BYTES);
    if (handle.length === 0) corrupt('empty lock handle');
    lock = { handle, expiresAt: r.uvarint('lock expiresAt') };
  }
  return { key, content: { value, contentType, version, expiresAt, tags: Object.freeze(tags), lock } };
}

function readState(r: Reader): PartitionState {
  for (const b of MAGIC) if (r.u8('magic') !== b) corrupt('not a Velo cache snapshot (bad magic)');
  const format = r.u8('format');
  if (format !== SNAPSHOT_FORMAT) corrupt(`unknown snapshot format ${format} (this code knows ${SNAPSHOT_FORMAT})`);
  const share = r.uvarint('maxBytesShare');
  if (share < 1) corrupt('maxBytesShare is 0');
  const s = new PartitionState(share);
  s.appliedIndex = r.uvarint('appliedIndex');
  const versions = new Set<number>();
  for (let nc = readCount(r, 'caches', MAX_CACHES); nc > 0; nc--) {
    const name = r.string('cache name', MAX_NAME_BYTES);
    checkName('cache name', name);
    if (s.caches.has(name)) corrupt(`cache ${name} twice`);
    const defaultTtlMs = r.uvarint('defaultTtlMs');
    const maxBytes = r.bool('maxBytes present') ? r.uvarint('maxBytes') : null;
    const ev = r.u8('eviction');
    if (ev > 1) corrupt(`unknown eviction policy ${ev}`);
    const settings: CacheSettings = { defaultTtlMs, maxBytes, eviction: ev === 0 ? 'lru' : 'none' };
    checkSettings(settings);
    const cache = s.createCache(name, settings);
    cache.evictions = r.uvarint('evictions');
    cache.expirations = r.uvarint('expirations');
    const items: Item[] = [];
    for (let ns = readCount(r, 'regions'); ns > 0; ns--) {
      const region = r.bool('region present') ? r.string('region', MAX_NAME_BYTES) : null;
      if (region !== null) checkName('region', region);
      if (cache.spaces.has(region)) corrupt(`region ${String(region)} of cache ${name} twice`);
      const ni = readCount(r, 'items');
      if (ni === 0) corrupt(`empty region ${String(region)} in cache ${name}`);
      for (let i = 0; i < ni; i++) {
        const { key, content } = readItem(r, s, region, versions);
        if (cache.find(region, key)) corrupt(`item ${key} twice`);
        const item = new Item(cache, region, key, content);
        s.insert(item, false);
        items.push(item);
      }
    }
    // Recency is not in the snapshot: oldest write first is what the puts alone would have left.
    items.sort((a, b) => a.version - b.version);
    for (const item of items) cache.recency.append(item);
  }
  if (!s.caches.has(DEFAULT_CACHE)) corrupt('the default cache is missing');
  r.end('snapshot');
  return s;
}

/** The state in `bytes`, or a SnapshotError: a corrupt snapshot is refused whole. */
export function decodeSnapshot(bytes: Uint8Array): PartitionState {
  if (bytes.length < MAGIC.length + 1 + CRC_BYTES) throw new SnapshotError(`snapshot of ${bytes.length} bytes is truncated`);
  const body = bytes.length - CRC_BYTES;
  const stored = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(body);
  const actual = crc32(bytes, body);
  if (stored !== actual) throw new SnapshotError(`snapshot checksum mismatch (stored ${stored.toString(16)}, computed ${actual.toString(16)}): corrupt or truncated`);
  try {
    return readState(new Reader(bytes.subarray(0, body)));
  } catch (e) {
    if (e instanceof DecodeError || e instanceof CommandError) throw new SnapshotError(`corrupt snapshot: ${e.message}`);
    throw e;
  }
}
