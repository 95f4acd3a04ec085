// backup() and restore() against a scripted node on loopback: what they
// retry (503, a body cut short, items the node reports as safe to retry),
// what they give up on and how they say it, what a restore skips, and that
// nothing is written before the checks pass. The real cluster is in
// test/cluster/backup.test.ts; here each failure is produced on purpose.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { bufferSource, encodeBackup, openFileSource, verifyBackup } from '../../scripts/backup-file.js';
import type { BackupMeta } from '../../scripts/backup-file.js';
import { backup } from '../../scripts/backup.js';
import type { ProgressState } from '../../scripts/backup.js';
import { batches, restore } from '../../scripts/restore.js';
import { decodeRecords, encodePartitionExport } from '../../src/cache/index.js';
import type { CacheRecord, ItemRecord, PartitionExport } from '../../src/cache/index.js';

type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => void;

let server: Server;
let url: string;
let handler: Handler = (_req, _body, res) => res.writeHead(500).end();
let dir: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, Buffer.concat(chunks), res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  dir = await mkdtemp(join(tmpdir(), 'velo-backup-restore-'));
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  handler = (_req, _body, res) => res.writeHead(500).end();
});

const sendJson = (res: ServerResponse, status: number, v: unknown, headers: Record<string, string> = {}) =>
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(v));
const unavailable = (res: ServerResponse) => sendJson(res, 503, { error: { code: 'unavailable', message: 'no leader yet' } }, { 'retry-after': '0' });

const text = (s: string) => new TextEncoder().encode(s);
const item = (key: string, over: Partial<ItemRecord> = {}): ItemRecord => ({ cache: 'default', region: null, key, value: text(`v-${key}`), contentType: 'text/plain', expiresAt: null, tags: [], ...over });
const CACHES: CacheRecord[] = [
  { name: 'default', settings: { defaultTtlMs: 0, maxBytes: null, eviction: 'lru' } },
  { name: 'sessions', settings: { defaultTtlMs: 60_000, maxBytes: 123_456, eviction: 'none' } },
];
const meta: BackupMeta = {
  createdAt: new Date(0).toISOString(),
  completedAt: new Date(0).toISOString(),
  source: 'http://test',
  cluster: { partitions: 2, replicas: 3, members: [] },
  caches: CACHES,
};

describe('batches', () => {
  test('close at the item limit and before the byte limit, and put an oversized item alone', () => {
    const small = Array.from({ length: 5 }, (_, i) => item(`k${i}`));
    expect([...batches(small, 2, 1 << 20)].map((b) => b.length)).toEqual([2, 2, 1]);
    const big = item('big', { value: new Uint8Array(5000) });
    const sizes = [...batches([small[0]!, big, small[1]!, small[2]!], 100, 1000)].map((b) => b.map((i) => i.key));
    expect(sizes).toEqual([['k0'], ['big'], ['k1', 'k2']]);
    expect([...batches([], 10, 10)]).toEqual([]);
  });
});

describe('backup', () => {
  const exports: PartitionExport[] = [
    { partition: 0, index: 10, caches: CACHES, items: [item('a'), item('s', { cache: 'sessions', region: 'eu', tags: ['t'] })] },
    { partition: 1, index: 20, caches: CACHES, items: [item('b', { expiresAt: 4_000_000_000_000 })] },
  ];
  const cluster = { node: 'n1', members: [{ id: 'n1', http: '127.0.0.1:1', raft: '127.0.0.1:2', state: 'up' }], partitions: [0, 1].map((id) => ({ id, replicas: ['n1', 'n2', 'n3'], leader: 'n1', term: 1, commitIndex: 5 })) };

  test('retries a 503 and an export cut short, and writes a file that verifies', async () => {
    const tries = [0, 0];
    handler = (req, _body, res) => {
      if (req.url === '/v1/cluster') return sendJson(res, 200, cluster);
      const p = Number(/partitions\/(\d+)\/export/.exec(req.url!)![1]);
      const body = encodePartitionExport(exports[p]!);
      const attempt = tries[p]!++;
      if (p === 1 && attempt === 0) return unavailable(res);
      res.writeHead(200, { 'content-type': 'application/x-velo-export', 'content-length': String(body.length), 'x-velo-index': String(exports[p]!.index) });
      // The second try of partition 1 breaks off mid-body, as when the leader dies while streaming.
      if (p === 1 && attempt === 1) {
        res.write(body.subarray(0, 5));
        return void setImmediate(() => res.socket?.destroy());
      }
      res.end(body);
    };
    const file = join(dir, 'retried.velo');
    const seen: ProgressState[] = [];
    const s = await backup({ to: file, cluster: url, onProgress: (p) => seen.push({ ...p }) });
    expect(tries).toEqual([1, 3]);
    expect(s).toMatchObject({ file, partitions: 2, items: 3, caches: 2 });
    expect(seen.at(-1)).toMatchObject({ phase: 'export', partitionsDone: 2, partitionsTotal: 2, bytesTotal: null });
    const src = await openFileSource(file);
    try {
      const { header } = await verifyBackup(src);
      expect(header.cluster).toEqual({ partitions: 2, replicas: 3, members: [{ id: 'n1', http: '127.0.0.1:1' }] });
      expect(header.caches).toEqual(CACHES);
      expect(header.partitions.map((p) => [p.partition, p.index, p.items]).sort()).toEqual([[0, 10, 2], [1, 20, 1]]);
    } finally {
      await src.close();
    }
  });

  test('a partition that keeps failing fails the backup with its reason, and leaves neither the file nor a temporary one', async () => {
    handler = (req, _body, res) => {
      if (req.url === '/v1/cluster') return sendJson(res, 200, cluster);
      if (req.url!.includes('/partitions/1/')) return sendJson(res, 400, { error: { code: 'bad_request', message: 'no partition 1' } });
      const body = encodePartitionExport(exports[0]!);
      res.writeHead(200, { 'content-type': 'application/x-velo-export', 'content-length': String(body.length) }).end(body);
    };
    const sub = await mkdtemp(join(dir, 'failed-'));
    await expect(backup({ to: join(sub, 'x.velo'), cluster: url })).rejects.toThrow('GET /v1/admin/partitions/1/export: bad_request: no partition 1 (HTTP 400)');
    expect(await readdir(sub)).toEqual([]);
  });

  test('an abort (Ctrl-C) mid-backup rejects with its reason and leaves neither the file nor a temporary one', async () => {
    const ac = new AbortController();
    handler = (req, _body, res) => {
      if (req.url === '/v1/cluster') return sendJson(res, 200, cluster);
      // Partition 0 arrives; partition 1 never answers, and the user gives up.
      if (req.url!.includes('/partitions/1/')) return void ac.abort(new Error('interrupted by SIGINT'));
      const body = encodePartitionExport(exports[0]!);
      res.writeHead(200, { 'content-type': 'application/x-velo-export', 'content-length': String(body.length) }).end(body);
    };
    const sub = await mkdtemp(join(dir, 'aborted-'));
    await expect(backup({ to: join(sub, 'x.velo'), cluster: url, signal: ac.signal, concurrency: 1 })).rejects.toThrow('interrupted by SIGINT');
    expect(await readdir(sub)).toEqual([]);
  });
});

describe('restore', () => {
  /** A fake node: an empty catalog unless told otherwise; load answers come from `loadAnswer`. */
  function fakeNode(opts: { items?: number; loadAnswer?: (items: ItemRecord[], call: number) => { status: number; body: unknown } } = {}) {
    const log = { cachePuts: [] as string[], loaded: [] as ItemRecord[], loadCalls: 0, maxInFlight: 0, inFlight: 0, firstLoadAfterPuts: true };
    handler = (req, body, res) => {
      if (req.method === 'GET' && req.url === '/v1/caches') return sendJson(res, 200, { caches: [{ name: 'default', settings: CACHES[0]!.settings }, { name: 'other', settings: CACHES[0]!.settings }] });
      if (req.method === 'GET' && req.url!.endsWith('/stats')) return sendJson(res, 200, { items: req.url!.includes('other') ? (opts.items ?? 0) : 0 });
      if (req.method === 'PUT') {
        if (log.loadCalls > 0) log.firstLoadAfterPuts = false;
        log.cachePuts.push(`${decodeURIComponent(req.url!.split('/').at(-1)!)} ${body.toString()}`);
        return sendJson(res, 200, {});
      }
      if (req.method === 'POST' && req.url === '/v1/admin/load') {
        // A plain Uint8Array, so that the values decode as Uint8Arrays, as the items were written.
        const items = decodeRecords(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
        const call = log.loadCalls++;
        log.maxInFlight = Math.max(log.maxInFlight, ++log.inFlight);
        // Answer later, so that concurrent requests overlap.
        setTimeout(() => {
          log.inFlight--;
          const a = opts.loadAnswer?.(items, call) ?? { status: 200, body: { written: items.length, failed: [] } };
          if (a.status === 200) {
            const failed = new Set((a.body as { failed: { index: number }[] }).failed.map((f) => f.index));
            items.forEach((it, i) => failed.has(i) || log.loaded.push(it));
          }
          sendJson(res, a.status, a.body, a.status === 503 ? { 'retry-after': '0' } : {});
        }, 5);
        return;
      }
      res.writeHead(404).end();
    };
    return log;
  }

  async function backupFile(name: string, exports: PartitionExport[]): Promise<string> {
    const file = join(dir, name);
    await writeFile(file, encodeBackup(meta, exports.map((e) => encodePartitionExport(e))));
    return file;
  }

  const many = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => item(`${prefix}${i}`));

  test('creates the caches first, loads every live item once with a few requests in flight, and skips the expired', async () => {
    const now = 1_000_000;
    const exports: PartitionExport[] = [
      { partition: 0, index: 1, caches: CACHES, items: [...many(250, 'a'), item('gone', { expiresAt: now }), item('kept', { expiresAt: now + 1, cache: 'sessions' })] },
      { partition: 1, index: 2, caches: CACHES, items: many(130, 'b') },
    ];
    const log = fakeNode();
    const seen: ProgressState[] = [];
    const s = await restore({ from: await backupFile('ok.velo', exports), cluster: url, batchItems: 20, inFlight: 3, now: () => now, onProgress: (p) => seen.push({ ...p }) });
    expect(log.cachePuts).toEqual(CACHES.map((c) => `${c.name} ${JSON.stringify(c.settings)}`));
    expect(log.firstLoadAfterPuts).toBe(true);
    expect(s).toMatchObject({ partitions: 2, caches: 2, items: 381, expired: 1 });
    expect(log.loaded.map((i) => i.key).sort()).toEqual([...many(250, 'a'), item('kept'), ...many(130, 'b')].map((i) => i.key).sort());
    expect(log.loaded.find((i) => i.key === 'kept')).toEqual(exports[0]!.items.at(-1));
    expect(log.loadCalls).toBe(Math.ceil(251 / 20) + Math.ceil(130 / 20));
    expect(log.maxInFlight).toBeGreaterThan(1);
    expect(log.maxInFlight).toBeLessThanOrEqual(3);
    const last = seen.at(-1)!;
    expect(last).toMatchObject({ phase: 'load', partitionsDone: 2, partitionsTotal: 2 });
    expect(last.bytesDone).toBeCloseTo(last.bytesTotal!, 3);
    expect(seen.some((p) => p.phase === 'verify')).toBe(true);
  });

  test('retries a 503 and the items the node reports as safe or indeterminate; reports the others by name', async () => {
    const exports: PartitionExport[] = [{ partition: 0, index: 1, caches: CACHES, items: [item('x'), item('y'), item('z', { cache: 'sessions', region: 'eu' })] }];
    const log = fakeNode({
      loadAnswer: (items, call) => {
        if (call === 0) return { status: 503, body: { error: { code: 'unavailable', message: 'no leader' } } };
        if (call === 1) {
          return {
            status: 200,
            body: {
              written: 0,
              failed: [
                { index: 0, code: 'unavailable', message: 'x', retry: 'safe' },
                { index: 1, code: 'timeout', message: 'y', retry: 'indeterminate' },
                { index: 2, code: 'cache_full', message: 'no room', retry: 'no' },
              ],
            },
          };
        }
        return { status: 200, body: { written: items.length, failed: [] } };
      },
    });
    await expect(restore({ from: await backupFile('partial.velo', exports), cluster: url })).rejects.toThrow(
      'restore incomplete: 1 item(s) could not be written (2 were): cache "sessions" region "eu" key "z": cache_full: no room',
    );
    expect(log.loaded.map((i) => i.key)).toEqual(['x', 'y']);
    expect(log.loadCalls).toBe(3);
  });

  test('a cluster holding items is refused by name without --overwrite, before any write; with it, restore writes', async () => {
    const exports: PartitionExport[] = [{ partition: 0, index: 1, caches: CACHES, items: [item('x')] }];
    const file = await backupFile('nonempty.velo', exports);
    let log = fakeNode({ items: 3 });
    await expect(restore({ from: file, cluster: url })).rejects.toThrow('the target cluster is not empty: cache "other" holds 3 item(s)');
    expect(log.cachePuts).toEqual([]);
    expect(log.loadCalls).toBe(0);
    log = fakeNode({ items: 3 });
    expect((await restore({ from: file, cluster: url, overwrite: true })).items).toBe(1);
    expect(log.loaded.map((i) => i.key)).toEqual(['x']);
  });

  test('a damaged file is refused before the cluster is even asked', async () => {
    const good = encodeBackup(meta, [encodePartitionExport({ partition: 0, index: 1, caches: CACHES, items: [item('x')] })]);
    await verifyBackup(bufferSource(good));
    const file = join(dir, 'damaged.velo');
    const b = Buffer.from(good);
    b[b.length - 6]! ^= 1;
    await writeFile(file, b);
    let asked = 0;
    handler = (_req, _body, res) => {
      asked++;
      res.writeHead(500).end();
    };
    await expect(restore({ from: file, cluster: url })).rejects.toThrow(/damaged\.velo: section 2 of 2 \(partition 0\) is corrupt: its checksum/);
    expect(asked).toBe(0);
  });
});
