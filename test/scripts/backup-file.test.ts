// The backup file format: what is written reads back the same, and a file
// that is truncated, corrupt in any byte or followed by anything is refused
// with a message that says what is wrong — before a restore writes anything.
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  BACKUP_MAGIC,
  BackupFileError,
  BackupWriter,
  bufferSource,
  encodeBackup,
  mergeCaches,
  openFileSource,
  readLayout,
  readSection,
  verifyBackup,
} from '../../scripts/backup-file.js';
import type { BackupMeta } from '../../scripts/backup-file.js';
import { decodePartitionExport, encodePartitionExport } from '../../src/cache/index.js';
import type { ItemRecord, PartitionExport } from '../../src/cache/index.js';

const bytes = (s: string) => new TextEncoder().encode(s);

const meta: BackupMeta = {
  createdAt: '2026-01-02T03:04:05.000Z',
  completedAt: '2026-01-02T03:04:06.000Z',
  source: 'http://127.0.0.1:7070',
  cluster: { partitions: 3, replicas: 3, members: [{ id: 'n1', http: '127.0.0.1:7001' }] },
  caches: [
    { name: 'default', settings: { defaultTtlMs: 0, maxBytes: null, eviction: 'lru' } },
    { name: 'sessions', settings: { defaultTtlMs: 60_000, maxBytes: 1_000_000, eviction: 'none' } },
  ],
};

function item(key: string, over: Partial<ItemRecord> = {}): ItemRecord {
  return { cache: 'default', region: null, key, value: bytes(`value of ${key}`), contentType: 'text/plain', expiresAt: null, tags: [], ...over };
}

// Three partitions: one with items of every shape, one empty, one with a binary value.
const exports: PartitionExport[] = [
  {
    partition: 0,
    index: 42,
    caches: meta.caches,
    items: [
      item('a'),
      item('s1', { cache: 'sessions', region: 'eu', tags: ['red', 'blue'], contentType: 'application/json', value: bytes('{"u":1}'), expiresAt: 1_900_000_000_000 }),
      item('ünïcode key', { expiresAt: 1_800_000_000_123 }),
    ],
  },
  { partition: 1, index: 7, caches: meta.caches, items: [] },
  { partition: 2, index: 100_000, caches: meta.caches, items: [item('bin', { value: new Uint8Array([0, 255, 1, 254, 0]), contentType: 'application/octet-stream' })] },
];
const exportBytes = exports.map((e) => encodePartitionExport(e));
const file = encodeBackup(meta, exportBytes);

/** Where each part of `file` lies: [start, end) of magic, header length, header, header crc, then per section. */
function regions(): { name: string; start: number; end: number }[] {
  const out: { name: string; start: number; end: number }[] = [];
  let at = 0;
  const add = (name: string, n: number) => {
    out.push({ name, start: at, end: at + n });
    at += n;
  };
  add('magic', 8);
  const headerBytes = Buffer.from(file).readUInt32BE(8);
  add('header length', 4);
  add('header', headerBytes);
  add('header checksum', 4);
  exportBytes.forEach((b, i) => {
    add(`section ${i} length`, 4);
    add(`section ${i} body`, b.length);
    add(`section ${i} checksum`, 4);
  });
  expect(at).toBe(file.length);
  return out;
}

async function refusal(b: Uint8Array): Promise<string> {
  try {
    await verifyBackup(bufferSource(b, 'b.velo'));
  } catch (e) {
    expect(e).toBeInstanceOf(BackupFileError);
    return (e as Error).message;
  }
  throw new Error('the file was accepted');
}

function flipped(at: number, mask = 0x01): Uint8Array {
  const b = Uint8Array.from(file);
  b[at]! ^= mask;
  return b;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'velo-backup-file-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('round trip', () => {
  test('the header and every section read back as written', async () => {
    const src = bufferSource(file);
    const seen: PartitionExport[] = [];
    const layout = await verifyBackup(src, (_i, _l, e) => seen.push(e));
    expect(layout.header).toEqual({
      format: 1,
      ...meta,
      partitions: [
        { partition: 0, index: 42, items: 3, bytes: exportBytes[0]!.length },
        { partition: 1, index: 7, items: 0, bytes: exportBytes[1]!.length },
        { partition: 2, index: 100_000, items: 1, bytes: exportBytes[2]!.length },
      ],
    });
    expect(seen).toEqual(exports);
    for (let i = 0; i < exports.length; i++) expect(await readSection(src, layout, i)).toEqual(exports[i]);
  });

  test('the streaming writer writes the same bytes as encodeBackup, renames into place and leaves no temporary file', async () => {
    const target = join(dir, 'streamed.velo');
    const w = await BackupWriter.create(target);
    // Concurrent appends land in call order.
    await Promise.all(exportBytes.map((b) => w.addPartition(b, decodePartitionExport(b))));
    expect(await readdir(dir)).not.toContain('streamed.velo');
    const size = await w.finish(meta);
    expect(size).toBe(file.length);
    expect(Buffer.compare(await readFile(target), file)).toBe(0);
    expect((await readdir(dir)).filter((f) => f.includes('streamed'))).toEqual(['streamed.velo']);
    const src = await openFileSource(target);
    try {
      expect((await verifyBackup(src)).header.partitions.map((p) => p.partition)).toEqual([0, 1, 2]);
    } finally {
      await src.close();
    }
  });

  test('the backup and its temporary file are readable by their owner only (0600), even under umask 0', async () => {
    const target = join(dir, 'private.velo');
    const umask = process.umask(0);
    try {
      const w = await BackupWriter.create(target);
      await w.addPartition(exportBytes[0]!, exports[0]!);
      const temporary = (await readdir(dir)).filter((f) => f.includes('private') && f.endsWith('.sections'));
      expect(temporary.length).toBe(1);
      expect((await stat(join(dir, temporary[0]!))).mode & 0o777).toBe(0o600);
      await w.finish(meta);
    } finally {
      process.umask(umask);
    }
    expect((await stat(target)).mode & 0o777).toBe(0o600);
  });

  test('an aborted writer leaves neither the target nor a temporary file, and an existing target untouched', async () => {
    const target = join(dir, 'aborted.velo');
    await writeFile(target, 'the previous backup');
    const w = await BackupWriter.create(target);
    await w.addPartition(exportBytes[0]!, exports[0]!);
    await w.abort();
    expect((await readdir(dir)).filter((f) => f.includes('aborted'))).toEqual(['aborted.velo']);
    expect(await readFile(target, 'utf8')).toBe('the previous backup');
  });

  test('the caches of exports read at different moments merge with the last export winning', () => {
    const a = [{ name: 'x', settings: { defaultTtlMs: 1, maxBytes: null, eviction: 'lru' as const } }];
    const b = [{ name: 'x', settings: { defaultTtlMs: 2, maxBytes: 5, eviction: 'none' as const } }, { name: 'w', settings: { defaultTtlMs: 0, maxBytes: null, eviction: 'lru' as const } }];
    expect(mergeCaches([{ caches: a }, { caches: b }])).toEqual([b[1], b[0]]);
    expect(mergeCaches([{ caches: b }, { caches: a }])).toEqual([b[1], a[0]]);
  });
});

describe('a damaged file is refused before anything is read from its sections', () => {
  test('every single flipped byte, anywhere in the file, is refused', async () => {
    for (let at = 0; at < file.length; at++) {
      for (const mask of [0x01, 0x80]) await expect(refusal(flipped(at, mask)), `byte ${at} ^ ${mask}`).resolves.toMatch(/b\.velo/);
    }
  });

  test('a flipped byte in each part of the file is named in the message', async () => {
    const expected: Record<string, RegExp> = {
      magic: /is not a Velo backup/,
      'header length': /truncated inside its header|header's length field|checksum/,
      header: /header section's checksum/,
      'header checksum': /header section's checksum/,
      'section 0 length': /section 2 of 4 \(partition 0\) is corrupt: its length field says/,
      'section 1 body': /section 3 of 4 \(partition 1\) is corrupt: its checksum is 0x[0-9a-f]{8}, the file says 0x[0-9a-f]{8}/,
      'section 2 checksum': /section 4 of 4 \(partition 2\) is corrupt: its checksum/,
    };
    const parts = regions();
    for (const [name, re] of Object.entries(expected)) {
      const r = parts.find((p) => p.name === name)!;
      for (const at of [r.start, Math.floor((r.start + r.end - 1) / 2), r.end - 1]) expect(await refusal(flipped(at)), `${name} at ${at}`).toMatch(re);
    }
  });

  test('a truncation at any point is refused, and says truncated', async () => {
    for (let n = 0; n < file.length; n++) {
      const msg = await refusal(file.subarray(0, n));
      if (n === 0) expect(msg).toBe('b.velo is empty');
      else expect(msg, `cut at ${n}`).toMatch(/truncated/);
    }
    const headerEnd = regions().find((p) => p.name === 'header checksum')!.end;
    expect(await refusal(file.subarray(0, headerEnd + 10))).toBe(`b.velo is truncated: it is ${headerEnd + 10} bytes, its header describes ${file.length} (the backup was cut short or copied incompletely)`);
  });

  test('trailing bytes after the last section are refused', async () => {
    expect(await refusal(Buffer.concat([file, Buffer.from([0])]))).toBe(`b.velo has 1 unexpected bytes after its last section (${file.length} bytes expected)`);
    // A whole extra section, well formed: still not what the header describes.
    const extra = exportBytes[1]!;
    const section = Buffer.alloc(extra.length + 8);
    section.writeUInt32BE(extra.length, 0);
    section.set(extra, 4);
    section.writeUInt32BE(crc32(extra), 4 + extra.length);
    expect(await refusal(Buffer.concat([file, section]))).toMatch(/unexpected bytes after its last section/);
  });

  test('a checksummed header that is not a backup header, or of an unknown format, is refused as malformed', async () => {
    const withHeader = (json: string) => {
      const h = Buffer.from(json);
      const len = Buffer.alloc(4);
      len.writeUInt32BE(h.length);
      const crc = Buffer.alloc(4);
      crc.writeUInt32BE(crc32(h));
      return Buffer.concat([BACKUP_MAGIC, len, h, crc]);
    };
    expect(await refusal(withHeader('{not json'))).toMatch(/^b\.velo has a malformed header: /);
    expect(await refusal(withHeader(JSON.stringify({ format: 2 })))).toBe('b.velo has a malformed header: unknown format 2 (this velo reads format 1)');
    const layout = await readLayout(bufferSource(file));
    const dup = { ...layout.header, partitions: [layout.header.partitions[0], layout.header.partitions[0]] };
    expect(await refusal(withHeader(JSON.stringify(dup)))).toBe('b.velo has a malformed header: partition 0 is listed twice');
  });

  test('a section with a valid checksum that does not decode, or disagrees with the header, is refused', async () => {
    const garbage = bytes('this is not a partition export');
    const bad = encodeBackupRaw([exportBytes[0]!, garbage], [exports[0]!, { ...exports[1]!, items: [] }]);
    expect(await refusal(bad)).toMatch(/^b\.velo: section 3 of 3 \(partition 1\) does not decode: malformed partition export: not a Velo partition export \(bad magic\)$/);
    const lying = encodeBackupRaw([exportBytes[0]!], [{ ...exports[0]!, index: 41 }]);
    expect(await refusal(lying)).toBe('b.velo: section 2 of 2 (partition 0) disagrees with the header: it holds partition 0 at index 42 with 3 items');
  });

  test('a missing file is named', async () => {
    await expect(openFileSource(join(dir, 'nope.velo'))).rejects.toThrow(/nope\.velo does not exist/);
  });
});

/** A backup whose header entries come from `claimed`, not from the bytes: for files that lie. */
function encodeBackupRaw(bodies: Uint8Array[], claimed: PartitionExport[]): Uint8Array {
  const header = Buffer.from(
    JSON.stringify({ format: 1, ...meta, partitions: claimed.map((e, i) => ({ partition: e.partition, index: e.index, items: e.items.length, bytes: bodies[i]!.length })) }),
  );
  const section = (b: Uint8Array) => {
    const s = Buffer.alloc(b.length + 8);
    s.writeUInt32BE(b.length, 0);
    s.set(b, 4);
    s.writeUInt32BE(crc32(b), 4 + b.length);
    return s;
  };
  return Buffer.concat([BACKUP_MAGIC, section(header), ...bodies.map(section)]);
}
