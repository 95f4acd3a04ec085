// velo backup and velo restore as real processes against real 3-node
// clusters: a backup taken while writes keep coming holds every write
// acknowledged before it began, and a restore into a fresh cluster brings
// each one back exactly (value bytes, content type, tags, region, expiry
// instant, cache settings). A corrupt or truncated file, and a non-empty
// target without --overwrite, are refused with exit code 1, one clear line,
// and no change to the target.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { decodePartitionExport } from '../../src/cache/index.js';
import { openFileSource, verifyBackup } from '../../scripts/backup-file.js';
import { ProcessCluster, freePort } from './process-cluster.js';

const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));
const nodes = ['n1', 'n2', 'n3'];

let source: ProcessCluster;
let target: ProcessCluster;
let dir: string;
let backupFile: string;

beforeAll(async () => {
  // Different partition counts: a restore goes through the normal write path, not partition by partition.
  [source, target] = await Promise.all([
    ProcessCluster.start(nodes, ['--partitions', '8', '--log-level', 'warn']),
    ProcessCluster.start(nodes, ['--partitions', '4', '--log-level', 'warn']),
  ]);
  await Promise.all([source.allReady(), target.allReady()]);
  dir = await mkdtemp(join(tmpdir(), 'velo-backup-'));
  backupFile = join(dir, 'cluster.velo');
}, 90_000);

afterAll(async () => {
  await Promise.all([source?.stop(), target?.stop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function velo(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.once('error', reject);
    p.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const base = (c: ProcessCluster, id = 'n1') => c.url(id, '');
const json = { 'content-type': 'application/json' };

function itemPath(cache: string, region: string | null, key: string): string {
  const r = region === null ? '' : `/regions/${encodeURIComponent(region)}`;
  return `/v1/caches/${encodeURIComponent(cache)}${r}/items/${encodeURIComponent(key)}`;
}

/** An item as a strong read on the source answered it, once its write was acknowledged. */
interface Observed {
  cache: string;
  region: string | null;
  key: string;
  value: Buffer;
  contentType: string | null;
  tags: string | null;
  expiresAt: string | null;
}

async function observe(c: ProcessCluster, via: string, cache: string, region: string | null, key: string): Promise<Observed | null> {
  const r = await fetch(c.url(via, itemPath(cache, region, key)));
  if (r.status === 404) return null;
  expect(r.status).toBe(200);
  return {
    cache,
    region,
    key,
    value: Buffer.from(await r.arrayBuffer()),
    contentType: r.headers.get('content-type'),
    tags: r.headers.get('x-velo-tags'),
    expiresAt: r.headers.get('x-velo-expires-at'),
  };
}

async function put(c: ProcessCluster, via: string, cache: string, region: string | null, key: string, value: Uint8Array, contentType: string, query = ''): Promise<void> {
  const r = await fetch(c.url(via, `${itemPath(cache, region, key)}${query}`), { method: 'PUT', body: value as Uint8Array<ArrayBuffer>, headers: { 'content-type': contentType } });
  expect(r.status, `PUT ${cache}/${region}/${key}: ${await r.clone().text()}`).toBeLessThan(300);
  await r.arrayBuffer();
}

async function caches(c: ProcessCluster): Promise<unknown> {
  return ((await (await fetch(c.url('n2', '/v1/caches'))).json()) as { caches: unknown[] }).caches;
}

/** Everything a cluster holds, partition by partition, read through the export route (versions are not in it). */
async function content(c: ProcessCluster): Promise<{ caches: unknown; items: string[] }> {
  const view = (await (await fetch(c.url('n1', '/v1/cluster'))).json()) as { partitions: { id: number }[] };
  const items: string[] = [];
  for (const p of view.partitions) {
    const r = await fetch(c.url('n3', `/v1/admin/partitions/${p.id}/export`));
    expect(r.status).toBe(200);
    const e = decodePartitionExport(new Uint8Array(await r.arrayBuffer()));
    for (const it of e.items) items.push(JSON.stringify({ ...it, value: Buffer.from(it.value).toString('hex') }));
  }
  return { caches: await caches(c), items: items.sort() };
}

// What the source held before the backup began, as read back from it.
const before: Observed[] = [];
/** Keys of the write load, acknowledged before the backup process was started. */
const loadAckedBefore: string[] = [];
let backupItems = 0;

const SETTINGS = {
  sessions: { defaultTtlMs: 3_600_000, maxBytes: 50_000_000, eviction: 'lru' },
  catalog: { defaultTtlMs: 0, maxBytes: 40_000_000, eviction: 'none' },
  later: { defaultTtlMs: 0, maxBytes: null, eviction: 'lru' },
} as const;

const loadValue = (key: string) => `${key}:`.repeat(20);

describe('velo backup and velo restore', () => {
  test('a backup taken during a write load holds every write acknowledged before it began', async () => {
    for (const [name, s] of Object.entries(SETTINGS)) {
      expect((await fetch(source.url('n1', `/v1/caches/${name}`), { method: 'PUT', headers: json, body: JSON.stringify(s) })).status).toBe(201);
    }
    const written: [string, string | null, string][] = [];
    const w = async (via: string, cache: string, region: string | null, key: string, value: Uint8Array, type: string, query = '') => {
      await put(source, via, cache, region, key, value, type, query);
      written.push([cache, region, key]);
    };
    const text = (s: string) => new TextEncoder().encode(s);
    const allBytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    for (let i = 0; i < 200; i++) {
      const via = nodes[i % 3]!;
      // The default cache: no expiry, or a TTL of its own; text, JSON and binary.
      await w(via, 'default', null, `plain-${i}`, text(`plain value ${i} `.repeat(1 + (i % 7))), 'text/plain; charset=utf-8', i % 2 ? `?ttlMs=${7_200_000 + i}` : '');
      // Sessions: the cache's default TTL, in regions, with tags.
      await w(via, 'sessions', `region-${i % 5}`, `s${i}`, text(JSON.stringify({ user: i, name: `ü-${i}` })), 'application/json', `?tags=${['a', 'b', 'c'].slice(0, 1 + (i % 3)).join(',')}`);
      // Catalog: binary values, no expiry, keys that need percent-encoding.
      if (i % 4 === 0) await w(via, 'catalog', null, `img ${i}/ü?#`, allBytes, 'image/png');
    }
    // A large value: many chunks of a section.
    await w('n2', 'catalog', 'big', 'blob', Uint8Array.from({ length: 600_000 }, (_, i) => (i * 31) & 0xff), 'application/octet-stream');
    // Written without expiry while the cache had no default TTL, which changed afterwards: it must stay without one.
    await w('n3', 'later', null, 'forever', text('keeps no expiry'), 'text/plain');
    expect((await fetch(source.url('n1', '/v1/caches/later'), { method: 'PUT', headers: json, body: JSON.stringify({ defaultTtlMs: 600_000 }) })).status).toBe(200);
    await w('n3', 'later', null, 'defaulted', text('expires with the new default'), 'text/plain');
    for (const [cache, region, key] of written) before.push((await observe(source, 'n1', cache, region, key))!);
    expect(before.every((o) => o !== null)).toBe(true);
    expect(before.find((o) => o.key === 'forever')!.expiresAt).toBeNull();
    expect(before.find((o) => o.key === 'defaulted')!.expiresAt).not.toBeNull();

    // The load: 6 writers of fresh keys, until the backup is over.
    let stop = false;
    let backupStarted = false;
    let ackedDuring = 0;
    /** When each write of the load was acknowledged (epoch ms, the clock of the backup's header). */
    const ackedAt: number[] = [];
    let next = 0;
    const writer = async (n: number) => {
      while (!stop) {
        const key = `load-${next++}`;
        await put(source, nodes[n % 3]!, 'default', null, key, text(loadValue(key)), 'text/plain');
        ackedAt.push(Date.now());
        if (!backupStarted) loadAckedBefore.push(key);
        else ackedDuring++;
      }
    };
    const writers = Array.from({ length: 6 }, (_, n) => writer(n));
    await source.until('the load under way', async () => loadAckedBefore.length >= 50);
    backupStarted = true;
    const run = await velo(['backup', '--to', backupFile, '--cluster', base(source, 'n2')]);
    stop = true;
    await Promise.all(writers);

    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    // Not a terminal: one summary line and no progress bar.
    const m = /^backup: 8 partitions, 4 caches, (\d+) items, [0-9.]+ MB in [0-9.]+ s \([0-9.]+ MB\/s\) to (.+)\n$/.exec(run.stdout);
    expect(m, run.stdout).not.toBeNull();
    expect(m![2]).toBe(backupFile);
    backupItems = Number(m![1]);
    // The load overlapped the backup itself — from before its first export was requested to after its
    // last arrived, as its header records — not only the start-up of the backup process.
    const src = await openFileSource(backupFile);
    const { header } = await verifyBackup(src).finally(() => src.close());
    const [from, to] = [Date.parse(header.createdAt), Date.parse(header.completedAt)];
    const overlapping = ackedAt.filter((t) => t > from && t < to).length;
    console.log(`backup exported from ${header.createdAt} to ${header.completedAt}: ${overlapping} load writes acknowledged meanwhile, ${ackedDuring} after the backup process was started`);
    expect(overlapping, `writes acknowledged between the backup's first export request (${header.createdAt}) and its last export (${header.completedAt})`).toBeGreaterThan(0);
    expect(backupItems).toBeGreaterThanOrEqual(before.length + loadAckedBefore.length);
    expect(backupItems).toBeLessThanOrEqual(before.length + loadAckedBefore.length + ackedDuring);
  }, 120_000);

  test('a flipped byte or a truncation is refused with one clear line, and the target is left as it was', async () => {
    const good = await readFile(backupFile);
    const emptyTarget = await content(target);
    expect(emptyTarget.items).toEqual([]);
    const damaged: [string, Buffer, RegExp][] = [];
    for (const at of [10, 200, Math.floor(good.length / 2), good.length - 3]) {
      const b = Buffer.from(good);
      b[at]! ^= 0x20;
      damaged.push([`flip-${at}.velo`, b, /is corrupt|malformed header|truncated inside its header/]);
    }
    for (const n of [0, 5, 100, Math.floor(good.length / 2), good.length - 1]) damaged.push([`cut-${n}.velo`, good.subarray(0, n), /is empty|is truncated/]);
    damaged.push(['trailing.velo', Buffer.concat([good, Buffer.from('x')]), /1 unexpected bytes after its last section/]);
    for (const [name, bytes, why] of damaged) {
      const file = join(dir, name);
      await writeFile(file, bytes);
      const run = await velo(['restore', '--from', file, '--cluster', base(target, 'n1')]);
      expect(run.status, name).toBe(1);
      expect(run.stdout, name).toBe('');
      const lines = run.stderr.split('\n').filter((l) => l !== '');
      expect(lines, name).toHaveLength(1);
      expect(lines[0], name).toMatch(new RegExp(`^velo: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      expect(lines[0], name).toMatch(why);
    }
    // Not even a cache was created.
    expect(await content(target)).toEqual(emptyTarget);
  }, 120_000);

  test('a restore into a fresh cluster brings back every acknowledged write exactly, with the cache settings', async () => {
    const run = await velo(['restore', '--from', backupFile, '--cluster', base(target, 'n2')]);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^restore: 8 partitions, 4 caches, ${backupItems} items, [0-9.]+ MB in [0-9.]+ s \\([0-9.]+ MB/s\\) from .+\\n$`));

    expect(await caches(target)).toEqual(await caches(source));
    for (const o of before) {
      const got = await observe(target, nodes[before.indexOf(o) % 3]!, o.cache, o.region, o.key);
      expect(got, `${o.cache}/${o.region}/${o.key}`).toEqual(o);
    }
    for (const key of loadAckedBefore) {
      const got = await observe(target, 'n3', 'default', null, key);
      expect(got?.value.toString(), key).toBe(loadValue(key));
    }
    // Nothing more than the backup held, nothing less.
    let items = 0;
    for (const name of ['default', ...Object.keys(SETTINGS)]) items += ((await (await fetch(target.url('n1', `/v1/caches/${name}/stats`))).json()) as { items: number }).items;
    expect(items).toBe(backupItems);
  }, 120_000);

  test('a restore into a cluster that holds items is refused without --overwrite, and writes over it with', async () => {
    const changed = before.find((o) => o.cache === 'catalog')!;
    await put(target, 'n1', changed.cache, changed.region, changed.key, new TextEncoder().encode('changed since'), 'text/plain');
    const now = await content(target);
    const refused = await velo(['restore', '--from', backupFile, '--cluster', base(target, 'n3')]);
    expect(refused.status).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/^velo: the target cluster is not empty: cache "[a-z]+" holds [0-9]+ item\(s\); restore into an empty cluster, or pass --overwrite .*\n$/);
    // A damaged file is refused before anything even with --overwrite.
    const cut = join(dir, 'cut-overwrite.velo');
    await writeFile(cut, (await readFile(backupFile)).subarray(0, 1000));
    expect((await velo(['restore', '--from', cut, '--cluster', base(target, 'n3'), '--overwrite'])).status).toBe(1);
    expect(await content(target)).toEqual(now);

    const run = await velo(['restore', '--from', backupFile, '--cluster', base(target, 'n3'), '--overwrite']);
    expect(run.status, run.stderr).toBe(0);
    expect(await observe(target, 'n2', changed.cache, changed.region, changed.key)).toEqual(changed);
  }, 120_000);

  test('bad command lines exit 2; an unreachable cluster exits 1 and leaves no file', async () => {
    for (const args of [['backup'], ['restore'], ['backup', '--to', 'x', '--bogus'], ['backup', '--to', 'x', '--cluster', 'ftp://x'], ['restore', '--from', 'x', 'extra']]) {
      const run = await velo(args);
      expect(run.status, args.join(' ')).toBe(2);
      expect(run.stderr).toMatch(/\(see velo --help\)\n$/);
    }
    const file = join(dir, 'never.velo');
    const nobody = `http://127.0.0.1:${await freePort()}`;
    const run = await velo(['backup', '--to', file, '--cluster', nobody]);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`^velo: cannot reach ${nobody}: connection refused`));
    await expect(readFile(file)).rejects.toThrow(/ENOENT/);
  }, 60_000);
});
