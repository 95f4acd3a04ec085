// The simulated disk under one node's LevelGroupStorage: a model of what
// Velo's real persistence rests on — LevelDB, and its write-ahead log file —
// at the level where crashes and bit flips act on it.
//
// The node writes through the real storage code: storage/level-storage.ts
// turns each Ready into LevelDB put/delete operations with the real codec,
// this disk takes them as the BatchSink that LevelStore would be, and a
// restart rebuilds the group with the real recovery (GroupLoader in
// storage/level-store.ts). Only LevelDB itself is simulated, and only what
// durability depends on:
//
// - A commit writes the staged operations as ONE log record (a LevelDB
//   WriteBatch: sequence, count, then each put or delete), in LevelDB's log
//   format: 32 KiB blocks of physical records, each with a checksum over its
//   type and payload, a 2-byte length and a type (full, or first/middle/last
//   fragment of a record that spans blocks); a block's last < 7 bytes are
//   zero padding. The record is synced (fsync) if any operation asked for it
//   (LevelStore: every batch but those that only move commit indexes).
// - Recovery reads the log the way LevelDB's log reader does, with
//   paranoid_checks off (LevelDB's default; classic-level cannot turn it on):
//   a record cut short at the end of the file is a torn write and is dropped
//   silently; a physical record whose checksum or length is wrong is dropped
//   with the rest of its block, reported only to LevelDB's info log; a zeroed
//   header skips the rest of its block silently. Accepted batches are applied
//   in order to the tables, and the log starts afresh — LevelDB writes a
//   recovered log into a level-0 table on every open.
// - Tables are a key-value map. LevelDB does not verify table block
//   checksums on reads (verify_checksums is off and classic-level does not
//   expose it), and Velo's values carry no checksum of their own, so no
//   corruption of table data is modelled as detectable.
//
// Crashes: a process crash (kill -9) keeps every byte written — it is in the
// page cache — except that a write in progress can stop short (torn). A
// power loss keeps the synced prefix of the log; of the bytes after it, as
// LazyFS does, the file keeps any prefix, and within it a page may never
// have reached the disk (zeros) or a sector may hold garbage (a torn or
// corrupted write). Synced bytes are never damaged by a crash: a torn sector
// holds either its old or its new contents, and synced bytes are in both.
// Bit rot of synced bytes (bitRot) is a separate fault: the real storage
// does not detect it (LevelDB drops the record silently; see FINDINGS.md),
// so only the test that demonstrates that uses it.

import { crc32 } from 'node:zlib';
import type { BatchSink, LevelOp, LoadedGroup } from '../../storage/level-storage.js';
import { GroupLoader } from '../../storage/level-store.js';
import type { Prng } from './prng.js';

export const LOG_BLOCK_BYTES = 32 * 1024;
const HEADER_BYTES = 7;
const PAGE_BYTES = 4096;
const SECTOR_BYTES = 512;
/** A WriteBatch's header: sequence (8 bytes) and count (4). */
const BATCH_HEADER_BYTES = 12;

const enum RecordType {
  Zero = 0,
  Full = 1,
  First = 2,
  Middle = 3,
  Last = 4,
}

const enum OpTag {
  Delete = 0,
  Put = 1,
}

/** Storage bugs the tests can inject (never on outside test/), as raft's InjectedBugs. */
export interface DiskBugs {
  /** LevelStore writes every batch with sync: false, and the host acts on it as durable. */
  batchWithoutSync?: boolean;
  /** Recovery reads the log without checksums and replays what it can parse of a torn record. */
  recoveryIgnoresChecksums?: boolean;
}

export type CrashKind = 'process' | 'power';

/** What happened to the disk over a run; each fault case is counted where it really took effect. */
export interface DiskStats {
  /** Log records (batches) written, and those synced. */
  batches: number;
  syncedBatches: number;
  powerLosses: number;
  /** Crashes armed to fall inside a write, and that did. */
  tornWrites: number;
  /** Records a crash left partly in the file, found torn and dropped by recovery. */
  tornBatches: number;
  /** Unsynced records a power loss kept out of the file, zeroed, or took down with a damaged neighbour. */
  lostUnsyncedBatches: number;
  /** Records a crash or bit rot garbled… */
  corruptionsInjected: number;
  /** …and of those, the ones recovery refused rather than applied. */
  corruptionsDetected: number;
  /** Bad physical records the log reader reported (checksum, length, type, a broken fragment chain). */
  badRecordsReported: number;
  /** Records recovery accepted whose bytes differ from what was written (must stay 0 without bugs). */
  corruptAccepted: number;
  /** Synced records recovery did not give back (only bit rot, or a bug, can do that). */
  syncedBatchesLost: number;
}

export function emptyDiskStats(): DiskStats {
  return {
    batches: 0,
    syncedBatches: 0,
    powerLosses: 0,
    tornWrites: 0,
    tornBatches: 0,
    lostUnsyncedBatches: 0,
    corruptionsInjected: 0,
    corruptionsDetected: 0,
    badRecordsReported: 0,
    corruptAccepted: 0,
    syncedBatchesLost: 0,
  };
}

/** A byte range a fault damaged, and what it held before. */
interface Damage {
  from: number;
  to: number;
  kind: 'garbage' | 'zeros';
  original: Buffer;
}

export class SimDisk implements BatchSink {
  readonly stats: DiskStats = emptyDiskStats();
  /** Key (latin1, so that string order is LevelDB's byte order) → value: what earlier opens flushed into tables. */
  private readonly tables = new Map<string, Buffer>();
  /** The current log file's bytes; `written` of them handed to the OS, the first `synced` made durable by fsync. */
  private log = Buffer.alloc(64 * 1024);
  private written = 0;
  private synced = 0;
  /**
   * Where each record of the current log starts (the header of its first
   * fragment) and ends; the first `syncedRecords` are synced (fsync makes
   * everything before it durable, so they are always a prefix). Plain
   * numbers rather than objects: thousands per node, kept until a crash.
   */
  private recordStart: number[] = [];
  private recordEnd: number[] = [];
  private syncedRecords = 0;
  /** Damage since the last recovery, to tell which records a fault hit. */
  private damage: Damage[] = [];
  /** Whether bit rot struck since the last recovery. */
  private rotted = false;
  private sequence = 0;
  private pending: { ops: LevelOp[]; sync: boolean } = { ops: [], sync: false };

  constructor(
    private readonly rng: Prng,
    private readonly bugs: DiskBugs = {},
  ) {}

  // ------------------------------------------------------------ BatchSink

  push(ops: LevelOp[], sync: boolean): void {
    for (const op of ops) this.pending.ops.push(op);
    if (sync) this.pending.sync = true;
  }

  durable(): Promise<void> {
    throw new Error('the simulated disk commits when its node says so (commit()), never on its own');
  }

  // ------------------------------------------------------------ writing

  hasPending(): boolean {
    return this.pending.ops.length > 0;
  }

  /** LevelStore.commit(): everything staged as one batch, synced if any of it asked to be. */
  commit(): void {
    const { ops, sync } = this.pending;
    if (ops.length === 0) return;
    this.pending = { ops: [], sync: false };
    this.appendRecord(++this.sequence, ops);
    this.stats.batches++;
    if (sync && !this.bugs.batchWithoutSync) {
      this.synced = this.written;
      this.syncedRecords = this.recordStart.length;
      this.stats.syncedBatches++;
    }
  }

  /**
   * The process dies while LevelDB writes the staged batch: only a prefix of
   * its record reaches the file (a write stops at a page boundary when the
   * process is killed; any byte will do here). The caller crashes the node.
   */
  commitTorn(): void {
    const { ops } = this.pending;
    if (ops.length === 0) throw new Error('commitTorn() with nothing staged');
    this.pending = { ops: [], sync: false };
    this.appendRecord(++this.sequence, ops);
    this.stats.batches++;
    this.stats.tornWrites++;
    const last = this.recordStart.length - 1;
    this.written = this.rng.range(this.recordStart[last]! + 1, this.recordEnd[last]! - 1);
  }

  /**
   * LevelDB's log writer: the batch as one record, in fragments that never
   * cross a block boundary (encoded in place when it fits in one).
   */
  private appendRecord(sequence: number, ops: LevelOp[]): void {
    const size = batchBytes(ops);
    this.reserve(size + HEADER_BYTES * (2 + Math.ceil(size / LOG_BLOCK_BYTES)));
    const log = this.log;
    let leftover = LOG_BLOCK_BYTES - (this.written % LOG_BLOCK_BYTES);
    if (leftover < HEADER_BYTES) {
      log.fill(0, this.written, this.written + leftover); // the block's trailer
      this.written += leftover;
      leftover = LOG_BLOCK_BYTES;
    }
    this.recordStart.push(this.written);
    if (HEADER_BYTES + size <= leftover) {
      encodeBatch(sequence, ops, log, this.written + HEADER_BYTES);
      this.writeHeader(this.written, RecordType.Full, size);
      this.written += HEADER_BYTES + size;
    } else {
      const payload = Buffer.allocUnsafe(size);
      encodeBatch(sequence, ops, payload, 0);
      let from = 0;
      let begin = true;
      while (begin || from < size) {
        const room = LOG_BLOCK_BYTES - (this.written % LOG_BLOCK_BYTES);
        if (room < HEADER_BYTES) {
          log.fill(0, this.written, this.written + room);
          this.written += room;
        }
        const avail = LOG_BLOCK_BYTES - (this.written % LOG_BLOCK_BYTES) - HEADER_BYTES;
        const n = Math.min(size - from, avail);
        const end = from + n === size;
        const type = begin ? (end ? RecordType.Full : RecordType.First) : end ? RecordType.Last : RecordType.Middle;
        begin = false;
        payload.copy(log, this.written + HEADER_BYTES, from, from + n);
        this.writeHeader(this.written, type, n);
        this.written += HEADER_BYTES + n;
        from += n;
      }
    }
    this.recordEnd.push(this.written);
  }

  /** A physical record's header at `at`, its payload already in place after it. */
  private writeHeader(at: number, type: RecordType, length: number): void {
    this.log[at + 6] = type;
    this.log.writeUInt16LE(length, at + 4);
    this.log.writeUInt32LE(checksum(this.log, at), at);
  }

  private reserve(bytes: number): void {
    if (this.written + bytes <= this.log.length) return;
    const bigger = Buffer.alloc(Math.max(this.log.length * 2, this.written + bytes));
    this.log.copy(bigger, 0, 0, this.written);
    this.log = bigger;
  }

  // ------------------------------------------------------------ faults

  /** What a crash leaves of the log file. */
  crash(kind: CrashKind): void {
    this.pending = { ops: [], sync: false }; // staged in memory only
    if (kind === 'process') return;
    this.stats.powerLosses++;
    const from = this.synced;
    const to = this.written;
    if (to <= from) return;
    // The file keeps some prefix of the unsynced bytes: none, all, or any.
    const r = this.rng.int(3);
    const keep = r === 0 ? from : r === 1 ? to : this.rng.range(from, to);
    this.written = keep;
    // Within what was kept, a page being written back may not have made it
    // (the file's size did, its data not: zeros), a sector of it may hold
    // garbage (torn), or a few bits may have been written wrong. Far likelier
    // than on real disks, so that the runs meet every case.
    for (let page = Math.floor(from / PAGE_BYTES) * PAGE_BYTES; page < keep; page += PAGE_BYTES) {
      const lo = Math.max(from, page);
      const hi = Math.min(keep, page + PAGE_BYTES);
      if (lo >= hi) continue;
      const roll = this.rng.int(8);
      if (roll === 0) this.damageRange(lo, hi, 'zeros');
      else if (roll === 1) {
        // One of the sectors that held unsynced bytes.
        const first = Math.floor(lo / SECTOR_BYTES);
        const sector = (first + this.rng.int(Math.floor((hi - 1) / SECTOR_BYTES) - first + 1)) * SECTOR_BYTES;
        this.damageRange(Math.max(lo, sector), Math.min(hi, sector + SECTOR_BYTES), 'garbage');
      } else if (roll === 2) {
        for (let flips = this.rng.range(1, 3); flips > 0; flips--) this.flipBit(this.rng.range(lo, hi - 1));
      }
    }
  }

  /** Bit rot: one bit of a synced log record flips (the real storage does not detect it: FINDINGS.md). */
  bitRot(): boolean {
    if (this.syncedRecords === 0) return false;
    const rec = this.rng.int(this.syncedRecords);
    this.flipBit(this.rng.range(this.recordStart[rec]!, this.recordEnd[rec]! - 1));
    return true;
  }

  /** The current log's records as laid out, for tests: where each starts and ends, and whether it is synced. */
  logRecords(): { start: number; end: number; synced: boolean }[] {
    return this.recordStart.map((start, i) => ({ start, end: this.recordEnd[i]!, synced: i < this.syncedRecords }));
  }

  /** Flips a bit of the log at byte `at` (bitRot picks one at random). */
  flipBit(at: number): void {
    if (!(at >= 0 && at < this.written)) throw new RangeError(`no byte ${at} in a log of ${this.written}`);
    if (at < this.synced) this.rotted = true;
    this.damage.push({ from: at, to: at + 1, kind: 'garbage', original: Buffer.from(this.log.subarray(at, at + 1)) });
    this.log[at]! ^= 1 << this.rng.int(8);
  }

  private damageRange(from: number, to: number, kind: Damage['kind']): void {
    this.damage.push({ from, to, kind, original: Buffer.from(this.log.subarray(from, to)) });
    for (let i = from; i < to; i++) this.log[i] = kind === 'zeros' ? 0 : this.rng.int(256);
  }

  /** Whether a fault changed any byte of log[from, to). */
  private changed(from: number, to: number): boolean {
    for (const d of this.damage) {
      const lo = Math.max(from, d.from);
      const hi = Math.min(to, d.to);
      for (let i = lo; i < hi; i++) if (this.log[i] !== d.original[i - d.from]) return true;
    }
    return false;
  }

  // ------------------------------------------------------------ recovery

  /**
   * LevelDB's open, then Velo's: replays the log into the tables, starts a new
   * log, and reads the groups back with the real GroupLoader. Throws what
   * LevelStore.open() would (the node then refuses to start).
   */
  recover(): Map<number, LoadedGroup> {
    const read = this.bugs.recoveryIgnoresChecksums ? readLogIgnoringChecksums(this.log, this.written) : readLog(this.log, this.written);
    const accepted = new Set<number>();
    for (const r of read.records) {
      accepted.add(r.start);
      if (r.payload.length < BATCH_HEADER_BYTES) continue; // LevelDB: "log record too small", skipped
      applyBatch(r.payload, this.tables);
    }
    this.account(accepted, read.rejected);
    this.log = Buffer.alloc(64 * 1024);
    this.written = 0;
    this.synced = 0;
    this.recordStart = [];
    this.recordEnd = [];
    this.syncedRecords = 0;
    this.damage = [];
    this.rotted = false;
    const loader = new GroupLoader();
    const keys = [...this.tables.keys()].filter((k) => k.charCodeAt(0) === 0x67).sort(); // "g": the group records
    for (const k of keys) loader.add(Buffer.from(k, 'latin1'), this.tables.get(k)!);
    return loader.finish();
  }

  /** Classifies every record written since the last recovery by what became of it. */
  private account(accepted: Set<number>, rejected: number): void {
    const s = this.stats;
    s.badRecordsReported += rejected;
    for (let i = 0; i < this.recordStart.length; i++) {
      const rec = { start: this.recordStart[i]!, end: this.recordEnd[i]!, synced: i < this.syncedRecords };
      const garbled = this.damage.some((d) => d.kind === 'garbage' && d.from < rec.end && d.to > rec.start);
      if (garbled) s.corruptionsInjected++;
      if (accepted.has(rec.start)) {
        // Accepted whole: as written, unless a fault changed its bytes (or the file ends inside it).
        if (rec.end > this.written || this.changed(rec.start, rec.end)) s.corruptAccepted++;
        continue;
      }
      if (rec.synced) {
        // Crashes never touch synced bytes: only bit rot (or an injected bug) may cost a synced record.
        if (!this.rotted && !this.bugs.recoveryIgnoresChecksums) throw new Error(`the simulated disk lost a synced record at ${rec.start} that no fault touched`);
        s.syncedBatchesLost++;
      }
      if (garbled) s.corruptionsDetected++;
      else if (rec.start < this.written && rec.end > this.written) s.tornBatches++;
      else if (!rec.synced) s.lostUnsyncedBatches++;
    }
  }
}

function scratchBytes(frags: Buffer[]): number {
  let n = 0;
  for (const f of frags) n += f.length;
  return n;
}

/** Of the physical record at `at`: over its type byte and payload, as LevelDB's (CRC32C, masked; any CRC models it). */
function checksum(log: Buffer, at: number): number {
  return crc32(log.subarray(at + 6, at + HEADER_BYTES + log.readUInt16LE(at + 4))) >>> 0;
}

// ------------------------------------------------------------ WriteBatch

function batchBytes(ops: LevelOp[]): number {
  let size = BATCH_HEADER_BYTES;
  for (const op of ops) {
    size += 1 + varintBytes(op.key.length) + op.key.length;
    if (op.type === 'put') size += varintBytes(op.value.length) + op.value.length;
  }
  return size;
}

/** A WriteBatch (sequence, count, then each operation) into `b` at `at`. */
function encodeBatch(sequence: number, ops: LevelOp[], b: Buffer, at: number): void {
  b.writeUInt32LE(sequence % 0x100000000, at);
  b.writeUInt32LE(Math.floor(sequence / 0x100000000), at + 4);
  b.writeUInt32LE(ops.length, at + 8);
  at += BATCH_HEADER_BYTES;
  for (const op of ops) {
    b[at++] = op.type === 'put' ? OpTag.Put : OpTag.Delete;
    at = writeVarint(b, at, op.key.length);
    at += op.key.copy(b, at);
    if (op.type === 'put') {
      at = writeVarint(b, at, op.value.length);
      at += op.value.copy(b, at);
    }
  }
}

/**
 * Applies a batch's operations in order. As LevelDB's replay with
 * paranoid_checks off, a malformed batch has applied the operations before
 * the bad one, and the error is ignored.
 */
function applyBatch(b: Buffer, tables: Map<string, Buffer>): void {
  let at = BATCH_HEADER_BYTES;
  while (at < b.length) {
    const tag = b[at++];
    const k = readSlice(b, at);
    if (!k) return;
    at = k.next;
    if (tag === OpTag.Delete) tables.delete(k.slice.toString('latin1'));
    else if (tag === OpTag.Put) {
      const v = readSlice(b, at);
      if (!v) return;
      at = v.next;
      tables.set(k.slice.toString('latin1'), Buffer.from(v.slice));
    } else return;
  }
}

function readSlice(b: Buffer, at: number): { slice: Buffer; next: number } | null {
  let len = 0;
  let shift = 0;
  for (;;) {
    if (at >= b.length || shift > 28) return null;
    const byte = b[at++]!;
    len |= (byte & 0x7f) << shift;
    if (byte < 0x80) break;
    shift += 7;
  }
  if (at + len > b.length) return null;
  return { slice: b.subarray(at, at + len), next: at + len };
}

function varintBytes(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n >>>= 7;
    bytes++;
  }
  return bytes;
}

function writeVarint(b: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    b[at++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  b[at++] = n;
  return at;
}

// ------------------------------------------------------------ the log reader

interface ReadResult {
  /** Accepted logical records, by the offset of their first physical record. */
  records: { start: number; payload: Buffer }[];
  /** Bad physical records reported (checksum, length, type, a broken fragment chain). */
  rejected: number;
}

/**
 * LevelDB's log reader (db/log_reader.cc, as classic-level builds it), with
 * checksums verified and corruption reported to nobody: a torn tail is the
 * end of the log; a bad physical record costs the rest of its block.
 */
export function readLog(log: Buffer, length: number): ReadResult {
  const records: ReadResult['records'] = [];
  let rejected = 0;
  let scratch: Buffer[] = [];
  let inFragments = false;
  let fragmentStart = 0;
  for (let block = 0; block < length; block += LOG_BLOCK_BYTES) {
    const end = Math.min(block + LOG_BLOCK_BYTES, length);
    // As LevelDB's reader: only a block cut short is known to be the last.
    const eof = end - block < LOG_BLOCK_BYTES;
    let p = block;
    for (;;) {
      if (end - p < HEADER_BYTES) {
        if (eof) return { records, rejected }; // a trailer, or a header cut short: the end (a fragment in progress is dropped)
        break; // the next block
      }
      const len = log.readUInt16LE(p + 4);
      const type = log[p + 6]!;
      let bad = false;
      if (HEADER_BYTES + len > end - p) {
        if (eof) return { records, rejected }; // torn: the writer died inside this record
        bad = true; // "bad record length"
      } else if (type === RecordType.Zero && len === 0) {
        // Zeros (preallocated or never written back): skipped with the rest of the block, unreported.
        if (inFragments) rejected++; // "error in middle of record"
        inFragments = false;
        scratch = [];
        break;
      } else if (log.readUInt32LE(p) !== checksum(log, p)) {
        bad = true; // "checksum mismatch"
      }
      if (bad) {
        rejected++;
        if (inFragments) rejected++;
        inFragments = false;
        scratch = [];
        break; // the rest of the block is dropped
      }
      const frag = log.subarray(p + HEADER_BYTES, p + HEADER_BYTES + len);
      switch (type) {
        case RecordType.Full:
          if (inFragments && scratchBytes(scratch) > 0) rejected++; // "partial record without end" (an empty first fragment is a known writer quirk)
          records.push({ start: p, payload: Buffer.from(frag) });
          inFragments = false;
          scratch = [];
          break;
        case RecordType.First:
          if (inFragments && scratchBytes(scratch) > 0) rejected++;
          fragmentStart = p;
          scratch = [frag];
          inFragments = true;
          break;
        case RecordType.Middle:
          if (!inFragments) rejected++; // "missing start of fragmented record"
          else scratch.push(frag);
          break;
        case RecordType.Last:
          if (!inFragments) rejected++;
          else {
            scratch.push(frag);
            records.push({ start: fragmentStart, payload: Buffer.concat(scratch) });
            scratch = [];
            inFragments = false;
          }
          break;
        default:
          rejected++; // "unknown record type"
          if (inFragments) rejected++;
          inFragments = false;
          scratch = [];
      }
      p += HEADER_BYTES + len;
    }
  }
  return { records, rejected };
}

/**
 * The injected bug recoveryIgnoresChecksums: a reader that trusts lengths
 * and types without checksums, and keeps what it can of a record the file
 * ends inside — a plain append-only log without checksums would.
 */
function readLogIgnoringChecksums(log: Buffer, length: number): ReadResult {
  const records: ReadResult['records'] = [];
  let scratch: Buffer[] = [];
  let start = 0;
  for (let block = 0; block < length; block += LOG_BLOCK_BYTES) {
    const end = Math.min(block + LOG_BLOCK_BYTES, length);
    let p = block;
    while (end - p >= HEADER_BYTES) {
      const len = log.readUInt16LE(p + 4);
      const type = log[p + 6]!;
      if (type === RecordType.Zero && len === 0) break;
      const frag = log.subarray(p + HEADER_BYTES, Math.min(end, p + HEADER_BYTES + len));
      if (type === RecordType.Full || type === RecordType.First) {
        start = p;
        scratch = [];
      }
      scratch.push(frag);
      const cut = p + HEADER_BYTES + len > end;
      if (type === RecordType.Full || type === RecordType.Last || cut) {
        records.push({ start, payload: Buffer.concat(scratch) });
        scratch = [];
      }
      p += HEADER_BYTES + len;
    }
  }
  return { records, rejected: 0 };
}
