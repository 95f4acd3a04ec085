// The backup file: what `velo backup` writes and `velo restore` reads.
//
//   "VELOBAK1"                                   magic, 8 bytes
//   [u32 length][header JSON, UTF-8][u32 crc32]  the header section
//   [u32 length][partition export][u32 crc32]    one section per partition
//
// Integers are big-endian; a crc32 covers its section's bytes only. The
// header holds the cluster's shape, the caches and, per partition in file
// order, the log index its export was read at, its item count and its
// section's length, so a reader knows the file's exact size before it reads
// a section: a truncated file and trailing bytes are both refused, and a
// corrupt length field cannot send the reader off into the items.
// A partition export is src/cache's public format (encodePartitionExport):
// this file wraps those bytes unchanged.
//
// A writer appends sections to a temporary file as exports arrive (their
// indexes are only known then), and at the end writes header + sections to a
// second temporary file that it renames onto the target: an interrupted
// backup never leaves a half file under the target's name.

import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import { MAX_CACHES, MAX_NAME_BYTES, RecordsError, decodePartitionExport } from '../src/cache/index.js';
import type { CacheRecord, CacheSettings, PartitionExport } from '../src/cache/index.js';

export const BACKUP_FORMAT = 1;
export const BACKUP_MAGIC = Buffer.from('VELOBAK1', 'ascii');
/** Length field and checksum around each section. */
export const SECTION_OVERHEAD_BYTES = 8;
/** A section's length is a u32, so no partition export may reach 4 GiB. */
export const MAX_SECTION_BYTES = 0xffff_ffff;
/** The header is small JSON (a few hundred bytes per partition and cache); a bigger length is corruption. */
export const MAX_HEADER_BYTES = 16 * 1024 * 1024;
/** More partitions than any cluster has is corruption too. */
const MAX_PARTITIONS = 1 << 16;

/** One partition's section, as the header lists it. */
export interface SectionEntry {
  partition: number;
  /** The log index the export was read at: it holds every write committed up to it. */
  index: number;
  items: number;
  /** Length of the export bytes (without length field and checksum). */
  bytes: number;
}

export interface ClusterShape {
  partitions: number;
  replicas: number;
  members: { id: string; http: string }[];
}

export interface BackupHeader {
  format: number;
  /** ISO 8601, taken before the first export was requested: every write acknowledged before it is in the backup. */
  createdAt: string;
  /** ISO 8601, when the last export arrived. */
  completedAt: string;
  /** The URL the backup was taken through. */
  source: string;
  cluster: ClusterShape;
  /** The union of the partitions' cache catalogs (see mergeCaches). */
  caches: CacheRecord[];
  /** In file order. */
  partitions: SectionEntry[];
}

/** What the header holds besides the per-section entries, which the writer fills in. */
export type BackupMeta = Omit<BackupHeader, 'format' | 'partitions'>;

/** A backup file that is not one, is truncated, corrupt or malformed. Nothing was written when restore throws it. */
export class BackupFileError extends Error {
  readonly code = 'bad_backup';
  constructor(message: string) {
    super(message);
    this.name = 'BackupFileError';
  }
}

// ------------------------------------------------------------ pure encoding

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** [u32 length][bytes][u32 crc32], as three buffers so that the payload is never copied. */
export function sectionParts(bytes: Uint8Array): Uint8Array[] {
  if (bytes.length > MAX_SECTION_BYTES) throw new RangeError(`a section of ${bytes.length} bytes does not fit the format's u32 length (partition too large to back up in one section)`);
  return [u32(bytes.length), bytes, u32(crc32(bytes))];
}

export function encodeHeader(h: BackupHeader): Uint8Array {
  return Buffer.from(JSON.stringify(h), 'utf8');
}

/**
 * The caches of several partition exports as one catalog. Every partition
 * holds the whole catalog, but the exports are read at different moments, so
 * a cache changed during the backup can differ between them: the export read
 * last (the last of `exports`) is the most recent view, and wins.
 */
export function mergeCaches(exports: readonly Pick<PartitionExport, 'caches'>[]): CacheRecord[] {
  const byName = new Map<string, CacheSettings>();
  for (const e of exports) for (const c of e.caches) byName.set(c.name, { ...c.settings });
  return [...byName].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, settings]) => ({ name, settings }));
}

export function entryOf(bytes: Uint8Array, e: PartitionExport): SectionEntry {
  return { partition: e.partition, index: e.index, items: e.items.length, bytes: bytes.length };
}

/** A whole backup in memory (tests, small tools); the streaming BackupWriter writes the same bytes. */
export function encodeBackup(meta: BackupMeta, exports: readonly Uint8Array[]): Uint8Array {
  const entries = exports.map((b) => entryOf(b, decodePartitionExport(b)));
  const header = encodeHeader({ format: BACKUP_FORMAT, ...meta, partitions: entries });
  return Buffer.concat([BACKUP_MAGIC, ...sectionParts(header), ...exports.flatMap((b) => sectionParts(b))]);
}

/** The file's exact size according to its header. */
export function expectedSize(headerBytes: number, entries: readonly SectionEntry[]): number {
  return entries.reduce((n, e) => n + SECTION_OVERHEAD_BYTES + e.bytes, BACKUP_MAGIC.length + SECTION_OVERHEAD_BYTES + headerBytes);
}

// ------------------------------------------------------------ header checks

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown, max = Number.MAX_SAFE_INTEGER): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max;
}

function isName(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && Buffer.byteLength(v, 'utf8') <= MAX_NAME_BYTES;
}

/** The header's JSON as a BackupHeader, or the first thing wrong with it. */
export function checkHeader(v: unknown): BackupHeader {
  const bad = (what: string): never => {
    throw new Error(what);
  };
  if (!isObject(v)) return bad('not a JSON object');
  if (v.format !== BACKUP_FORMAT) return bad(`unknown format ${JSON.stringify(v.format)} (this velo reads format ${BACKUP_FORMAT})`);
  for (const f of ['createdAt', 'completedAt'] as const) {
    if (typeof v[f] !== 'string' || Number.isNaN(Date.parse(v[f]))) bad(`${f} is not a date`);
  }
  if (typeof v.source !== 'string') bad('source is not a string');
  const c = v.cluster;
  if (!isObject(c) || !isCount(c.partitions, MAX_PARTITIONS) || !isCount(c.replicas, 1024) || !Array.isArray(c.members)) return bad('cluster is not {partitions, replicas, members}');
  for (const m of c.members) if (!isObject(m) || typeof m.id !== 'string' || typeof m.http !== 'string') bad('a cluster member is not {id, http}');
  if (!Array.isArray(v.caches) || v.caches.length > MAX_CACHES) return bad('caches is not a list of at most ' + MAX_CACHES);
  const names = new Set<string>();
  for (const k of v.caches) {
    const s = isObject(k) ? k.settings : undefined;
    if (!isObject(k) || !isName(k.name) || !isObject(s)) return bad('a cache is not {name, settings}');
    if (names.has(k.name)) bad(`cache "${k.name}" is listed twice`);
    names.add(k.name);
    if (!isCount(s.defaultTtlMs) || !(s.maxBytes === null || (isCount(s.maxBytes) && s.maxBytes > 0)) || (s.eviction !== 'lru' && s.eviction !== 'none')) {
      bad(`cache "${k.name}" has malformed settings`);
    }
  }
  if (!Array.isArray(v.partitions) || v.partitions.length > MAX_PARTITIONS) return bad('partitions is not a list');
  const seen = new Set<number>();
  for (const p of v.partitions) {
    if (!isObject(p) || !isCount(p.partition, MAX_PARTITIONS) || !isCount(p.index) || !isCount(p.items) || !isCount(p.bytes, MAX_SECTION_BYTES)) return bad('a partition entry is not {partition, index, items, bytes}');
    if (seen.has(p.partition)) bad(`partition ${p.partition} is listed twice`);
    seen.add(p.partition);
  }
  return v as unknown as BackupHeader;
}

// ------------------------------------------------------------ reading

/** Random access to the backup's bytes: a file, or a buffer in tests. */
export interface ByteSource {
  readonly name: string;
  readonly size: number;
  read(position: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

export function bufferSource(bytes: Uint8Array, name = 'the backup'): ByteSource {
  return {
    name,
    size: bytes.length,
    read: async (position, length) => bytes.subarray(position, position + length),
    close: async () => {},
  };
}

export async function openFileSource(path: string): Promise<ByteSource> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new BackupFileError(err.code === 'ENOENT' ? `${path} does not exist` : `cannot open ${path}: ${err.message}`);
  }
  const size = (await fh.stat()).size;
  return {
    name: path,
    size,
    async read(position, length) {
      const buf = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(buf, got, length - got, position + got);
        // The size was checked against the header; a shorter read means the file shrank under us.
        if (bytesRead === 0) throw new BackupFileError(`${path} became shorter while being read`);
        got += bytesRead;
      }
      return buf;
    },
    close: () => fh.close(),
  };
}

/** Where each section lies, from a header whose checksum and shape were verified. */
export interface BackupLayout {
  header: BackupHeader;
  /** Offset of each section's length field, in header order. */
  offsets: number[];
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;

/**
 * Reads and checks the magic, the header section and the file's size. A
 * file shorter or longer than its header describes is refused here, before
 * any section is read.
 */
export async function readLayout(src: ByteSource): Promise<BackupLayout> {
  const name = src.name;
  const magicLen = BACKUP_MAGIC.length;
  if (src.size === 0) throw new BackupFileError(`${name} is empty`);
  const head = Buffer.from(await src.read(0, Math.min(src.size, magicLen + 4)));
  const prefix = head.subarray(0, magicLen);
  if (!prefix.equals(BACKUP_MAGIC.subarray(0, prefix.length))) throw new BackupFileError(`${name} is not a Velo backup (it does not start with "VELOBAK1")`);
  if (head.length < magicLen + 4) throw new BackupFileError(`${name} is truncated: ${src.size} bytes, too short to hold a header`);
  const headerBytes = head.readUInt32BE(magicLen);
  if (headerBytes > MAX_HEADER_BYTES) throw new BackupFileError(`${name} is corrupt: the header's length field says ${headerBytes} bytes (at most ${MAX_HEADER_BYTES})`);
  const headerEnd = magicLen + SECTION_OVERHEAD_BYTES + headerBytes;
  if (headerEnd > src.size) throw new BackupFileError(`${name} is truncated inside its header: the header section needs ${headerEnd} bytes, the file has ${src.size} (or the header's length field is corrupt)`);
  const payload = await src.read(magicLen + 4, headerBytes + 4);
  const body = payload.subarray(0, headerBytes);
  const stored = Buffer.from(payload).readUInt32BE(headerBytes);
  const actual = crc32(body);
  if (stored !== actual) throw new BackupFileError(`${name} is corrupt: the header section's checksum is ${hex(actual)}, the file says ${hex(stored)}`);
  let header: BackupHeader;
  try {
    header = checkHeader(JSON.parse(Buffer.from(body).toString('utf8')));
  } catch (e) {
    // A matching checksum over malformed JSON: written by something else, or a newer velo.
    throw new BackupFileError(`${name} has a malformed header: ${(e as Error).message}`);
  }
  const size = expectedSize(headerBytes, header.partitions);
  if (src.size < size) throw new BackupFileError(`${name} is truncated: it is ${src.size} bytes, its header describes ${size} (the backup was cut short or copied incompletely)`);
  if (src.size > size) throw new BackupFileError(`${name} has ${src.size - size} unexpected bytes after its last section (${size} bytes expected)`);
  const offsets: number[] = [];
  let at = headerEnd;
  for (const e of header.partitions) {
    offsets.push(at);
    at += SECTION_OVERHEAD_BYTES + e.bytes;
  }
  return { header, offsets };
}

/**
 * Section `i` (in header order), with its checksum verified and its export
 * decoded and matched against the header's entry.
 */
export async function readSection(src: ByteSource, layout: BackupLayout, i: number): Promise<PartitionExport> {
  const entry = layout.header.partitions[i]!;
  const what = `${src.name}: section ${i + 2} of ${layout.header.partitions.length + 1} (partition ${entry.partition})`;
  const raw = await src.read(layout.offsets[i]!, entry.bytes + SECTION_OVERHEAD_BYTES);
  const view = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const length = view.readUInt32BE(0);
  if (length !== entry.bytes) throw new BackupFileError(`${what} is corrupt: its length field says ${length} bytes, the header says ${entry.bytes}`);
  const body = view.subarray(4, 4 + entry.bytes);
  const stored = view.readUInt32BE(4 + entry.bytes);
  const actual = crc32(body);
  if (stored !== actual) throw new BackupFileError(`${what} is corrupt: its checksum is ${hex(actual)}, the file says ${hex(stored)}`);
  let e: PartitionExport;
  try {
    // A plain Uint8Array: decoding copies each value out of it (Buffer's slice() would not), so the items do not pin the section.
    e = decodePartitionExport(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
  } catch (err) {
    if (err instanceof RecordsError) throw new BackupFileError(`${what} does not decode: ${err.message}`);
    throw err;
  }
  if (e.partition !== entry.partition || e.index !== entry.index || e.items.length !== entry.items) {
    throw new BackupFileError(`${what} disagrees with the header: it holds partition ${e.partition} at index ${e.index} with ${e.items.length} items`);
  }
  const known = new Set(layout.header.caches.map((c) => c.name));
  for (const c of e.caches) if (!known.has(c.name)) throw new BackupFileError(`${what} holds cache "${c.name}", which the header does not list`);
  return e;
}

/**
 * Checks the whole file — magic, header, size, every section's length,
 * checksum and decoding — holding one section in memory at a time.
 * Returns the layout; throws BackupFileError naming the first problem.
 */
export async function verifyBackup(src: ByteSource, onSection?: (i: number, layout: BackupLayout, e: PartitionExport) => void): Promise<BackupLayout> {
  const layout = await readLayout(src);
  for (let i = 0; i < layout.header.partitions.length; i++) {
    // Read first: `onSection?.(…, await readSection(…))` would skip the read when there is no callback.
    const e = await readSection(src, layout, i);
    onSection?.(i, layout, e);
  }
  return layout;
}

// ------------------------------------------------------------ writing

/** Writes all of `bytes` at `position` (one write may be partial); returns the position after them. */
async function writeAll(fh: FileHandle, bytes: Uint8Array, position: number): Promise<number> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
  return position + bytes.length;
}

async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => {});
}

/**
 * Streams a backup to `file`: sections go to a temporary file as exports
 * arrive; finish() writes the final file beside the target and renames it
 * into place (atomic on POSIX); abort() removes every temporary file.
 */
export class BackupWriter {
  private readonly entries: SectionEntry[] = [];
  private sectionsBytes = 0;
  private writing: Promise<void> = Promise.resolve();
  private done = false;

  private constructor(
    readonly file: string,
    private readonly sectionsPath: string,
    private readonly sections: FileHandle,
  ) {}

  static async create(file: string): Promise<BackupWriter> {
    // Beside the target, so that the final rename stays within one filesystem.
    const path = join(dirname(file), `.${basename(file)}.${process.pid}-${randomBytes(4).toString('hex')}.sections`);
    let fh: FileHandle;
    try {
      fh = await open(path, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_RDWR, 0o600);
    } catch (e) {
      throw new Error(`cannot write beside ${file}: ${(e as Error).message}`);
    }
    return new BackupWriter(file, path, fh);
  }

  /** Appends one partition's export (`bytes`, already decoded as `decoded`). */
  async addPartition(bytes: Uint8Array, decoded: PartitionExport): Promise<void> {
    if (this.done) throw new Error('the backup writer is closed');
    const parts = sectionParts(bytes);
    // Claim the place before awaiting, and queue the write behind the previous
    // one (Node wants one write at a time per handle), so that concurrent calls
    // append one after the other.
    let at = this.sectionsBytes;
    this.sectionsBytes += SECTION_OVERHEAD_BYTES + bytes.length;
    this.entries.push(entryOf(bytes, decoded));
    const write = this.writing.then(async () => {
      for (const p of parts) at = await writeAll(this.sections, p, at);
    });
    this.writing = write.catch(() => {});
    await write;
  }

  get partitionsWritten(): number {
    return this.entries.length;
  }

  /** Writes the final file and renames it onto the target; returns its size in bytes. */
  async finish(meta: BackupMeta): Promise<number> {
    if (this.done) throw new Error('the backup writer is closed');
    this.done = true;
    const finalPath = this.sectionsPath.replace(/\.sections$/, '.part');
    try {
      const header = encodeHeader({ format: BACKUP_FORMAT, ...meta, partitions: this.entries });
      // A backup holds every value of the cluster: its owner's to read, like the data directory.
      const out = await open(finalPath, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY, 0o600);
      let at = 0;
      try {
        await this.writing;
        for (const part of [BACKUP_MAGIC, ...sectionParts(header)]) at = await writeAll(out, part, at);
        const chunk = Buffer.allocUnsafe(4 * 1024 * 1024);
        for (let from = 0; from < this.sectionsBytes; ) {
          const { bytesRead } = await this.sections.read(chunk, 0, Math.min(chunk.length, this.sectionsBytes - from), from);
          if (bytesRead === 0) throw new Error(`the temporary file ${this.sectionsPath} shrank while being copied`);
          at = await writeAll(out, chunk.subarray(0, bytesRead), at);
          from += bytesRead;
        }
        // Durable before it takes the target's name: a crash never leaves a renamed but empty file.
        await out.sync();
      } finally {
        await out.close();
      }
      await rename(finalPath, this.file);
      await syncDir(dirname(this.file));
      return at;
    } catch (e) {
      await removeQuietly(finalPath);
      throw e;
    } finally {
      await this.sections.close().catch(() => {});
      await removeQuietly(this.sectionsPath);
    }
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.writing;
    await this.sections.close().catch(() => {});
    await removeQuietly(this.sectionsPath);
  }
}

/** The rename is durable once the directory is synced; some filesystems refuse that, and then it is best effort. */
async function syncDir(dir: string): Promise<void> {
  try {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    // not supported here
  }
}
