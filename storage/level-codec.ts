// The binary layout of Velo's LevelDB database (format version 1).
//
// Keys (fixed-width big-endian numbers, so LevelDB's byte order is the
// numeric order and one group's entries are one contiguous, index-sorted
// range that a snapshot can delete and recovery can scan):
//   "m"                                  meta: JSON {clusterId, nodeId, formatVersion}
//   "g" <group u32> "h"                  hard state
//   "g" <group u32> "s"                  latest snapshot (metadata + data)
//   "g" <group u32> "e" <index u64>      one log entry
//   "v" <group u32>                      the last vote of a destroyed replica of the group
// Values:
//   hard state  term u64 | commit u64 | hasVote u8 | vote utf-8  (a kept vote too, commit 0)
//   entry       term u64 | index u64 | type u8 | data
//   snapshot    index u64 | term u64 | confLen u32 | conf JSON utf-8 | data
// Numbers are integers in [0, 2^53): u64 fields are written as two u32
// halves because JavaScript numbers are exact only up to 2^53. Data is
// stored raw (never JSON): an entry costs 17 bytes of header, a snapshot
// (possibly several MiB) is one value.

import type { ConfState, Entry, EntryType, HardState, Snapshot } from '../raft/types.js';

export const FORMAT_VERSION = 1;
export const META_KEY = Buffer.from('m');

const G = 0x67; // 'g'
export const enum Kind {
  Entry = 0x65, // 'e'
  HardState = 0x68, // 'h'
  Snapshot = 0x73, // 's'
}

export function groupKey(group: number, kind: Kind.HardState | Kind.Snapshot): Buffer {
  const k = Buffer.allocUnsafe(6);
  k[0] = G;
  k.writeUInt32BE(checkGroup(group), 1);
  k[5] = kind;
  return k;
}

export function entryKey(group: number, index: number): Buffer {
  const k = Buffer.allocUnsafe(14);
  k[0] = G;
  k.writeUInt32BE(checkGroup(group), 1);
  k[5] = Kind.Entry;
  writeU64(k, 6, index);
  return k;
}

/** The bounds of all of one group's entry keys, for an iterator (gte/lt). */
export function entryRange(group: number): { gte: Buffer; lt: Buffer } {
  const gte = Buffer.alloc(6);
  gte[0] = G;
  gte.writeUInt32BE(checkGroup(group), 1);
  gte[5] = Kind.Entry;
  const lt = Buffer.from(gte);
  lt[5] = Kind.Entry + 1;
  return { gte, lt };
}

const V = 0x76; // 'v'
/** Keys of kept votes sort after every group key. */
export const VOTE_RANGE = { gte: Buffer.from([V]), lt: Buffer.from([V + 1]) };

/** The key under which a destroyed replica of `group` keeps its last vote. */
export function voteKey(group: number): Buffer {
  const k = Buffer.allocUnsafe(5);
  k[0] = V;
  k.writeUInt32BE(checkGroup(group), 1);
  return k;
}

/** The group of a kept-vote key. */
export function parseVoteKey(k: Uint8Array): number {
  const b = asBuffer(k);
  if (b[0] !== V || b.length !== 5) throw new Error(`unknown key ${b.toString('hex')}`);
  return b.readUInt32BE(1);
}

export type ParsedKey = { group: number; kind: Kind; index: number } | null;

/** A group key's parts; null for a key that is not a group key (meta). */
export function parseKey(k: Uint8Array): ParsedKey {
  const b = asBuffer(k);
  if (b[0] !== G || b.length < 6) return null;
  const group = b.readUInt32BE(1);
  const kind = b[5] as Kind;
  if (kind === Kind.Entry && b.length === 14) return { group, kind, index: readU64(b, 6) };
  if ((kind === Kind.HardState || kind === Kind.Snapshot) && b.length === 6) return { group, kind, index: 0 };
  throw new Error(`unknown key ${b.toString('hex')}`);
}

export function encodeHardState(hs: HardState): Buffer {
  const vote = hs.vote === null ? Buffer.alloc(0) : Buffer.from(hs.vote, 'utf8');
  const b = Buffer.allocUnsafe(17 + vote.length);
  writeU64(b, 0, hs.term);
  writeU64(b, 8, hs.commit);
  b[16] = hs.vote === null ? 0 : 1;
  vote.copy(b, 17);
  return b;
}

export function decodeHardState(v: Uint8Array): HardState {
  const b = asBuffer(v);
  if (b.length < 17) throw new Error('hard state value is truncated');
  return { term: readU64(b, 0), commit: readU64(b, 8), vote: b[16] === 0 ? null : b.toString('utf8', 17) };
}

export function encodeEntry(e: Entry): Buffer {
  const b = Buffer.allocUnsafe(17 + e.data.length);
  writeU64(b, 0, e.term);
  writeU64(b, 8, e.index);
  b[16] = e.type;
  b.set(e.data, 17);
  return b;
}

export function decodeEntry(v: Uint8Array): Entry {
  const b = asBuffer(v);
  if (b.length < 17) throw new Error('entry value is truncated');
  return { term: readU64(b, 0), index: readU64(b, 8), type: b[16] as EntryType, data: view(b, 17) };
}

export function encodeSnapshot(s: Snapshot): Buffer {
  const conf = Buffer.from(JSON.stringify(s.metadata.confState), 'utf8');
  const b = Buffer.allocUnsafe(20 + conf.length + s.data.length);
  writeU64(b, 0, s.metadata.index);
  writeU64(b, 8, s.metadata.term);
  b.writeUInt32BE(conf.length, 16);
  conf.copy(b, 20);
  b.set(s.data, 20 + conf.length);
  return b;
}

export function decodeSnapshot(v: Uint8Array): Snapshot {
  const b = asBuffer(v);
  if (b.length < 20) throw new Error('snapshot value is truncated');
  const confLen = b.readUInt32BE(16);
  if (b.length < 20 + confLen) throw new Error('snapshot value is truncated');
  const c = JSON.parse(b.toString('utf8', 20, 20 + confLen)) as ConfState;
  if (!Array.isArray(c.voters) || !Array.isArray(c.learners)) throw new Error('snapshot configuration is malformed');
  return {
    metadata: { index: readU64(b, 0), term: readU64(b, 8), confState: { voters: c.voters, learners: c.learners } },
    data: view(b, 20 + confLen),
  };
}

function checkGroup(group: number): number {
  if (!Number.isInteger(group) || group < 0 || group > 0xffffffff) throw new RangeError(`group id ${group} is not a u32`);
  return group;
}

function writeU64(b: Buffer, at: number, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${n} is not an integer in [0, 2^53)`);
  b.writeUInt32BE(Math.floor(n / 0x100000000), at);
  b.writeUInt32BE(n >>> 0, at + 4);
}

function readU64(b: Buffer, at: number): number {
  return b.readUInt32BE(at) * 0x100000000 + b.readUInt32BE(at + 4);
}

function asBuffer(v: Uint8Array): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.length);
}

/** A plain Uint8Array over the rest of `b`: callers compare and hash data as Uint8Array, not Buffer. */
function view(b: Buffer, from: number): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset + from, b.length - from);
}
