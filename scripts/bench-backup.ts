// Backup and restore rates on real processes: a 3-node in-memory cluster is
// loaded with N items of V-byte values (through /v1/admin/load, the fast
// path), backed up to a file, and the file restored into a second fresh
// 3-node cluster. Prints one JSON line; MB are 10^6 bytes of backup file.
//
//   node dist/scripts/bench-backup.js [--items 200000] [--value-bytes 256] [--partitions 16]

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeRecords } from '../src/cache/index.js';
import type { ItemRecord } from '../src/cache/index.js';
import { backup, eachLimited, requestWithRetry } from './backup.js';
import { restore } from './restore.js';
import { freePort, intFlag } from './ports.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

/** Three in-memory members started together; resolves once every one answers /readyz. */
async function startCluster(partitions: number, procs: ChildProcess[]): Promise<string[]> {
  const ids = ['n1', 'n2', 'n3'];
  const http = await Promise.all(ids.map(async () => `127.0.0.1:${await freePort()}`));
  const raft = await Promise.all(ids.map(async () => `127.0.0.1:${await freePort()}`));
  const peers = ids.map((id, i) => `${id}=${raft[i]}`).join(',');
  await Promise.all(
    ids.map((id, i) => {
      const proc = spawn(process.execPath, [MAIN, 'start', '--id', id, '--http', http[i]!, '--raft', raft[i]!, '--peers', peers, '--partitions', String(partitions), '--log-level', 'warn'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      procs.push(proc);
      return new Promise<void>((resolve, reject) => {
        proc.stdout!.on('data', (c: Buffer) => c.toString().includes('serving') && resolve());
        proc.once('exit', (code) => reject(new Error(`${id} exited with ${code} before serving`)));
      });
    }),
  );
  for (const h of http) {
    for (let i = 0; ; i++) {
      const ok = await fetch(`http://${h}/readyz`).then((r) => r.status === 200, () => false);
      if (ok) break;
      if (i > 600) throw new Error(`${h} never became ready`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return http.map((h) => `http://${h}`);
}

/** N items through the bulk load, batches spread over the members. */
async function fill(bases: string[], items: number, valueBytes: number): Promise<void> {
  const batch = 2000;
  const starts = Array.from({ length: Math.ceil(items / batch) }, (_, i) => i * batch);
  await eachLimited(starts, 4, async (start) => {
    const records: ItemRecord[] = [];
    for (let i = start; i < Math.min(items, start + batch); i++) {
      const value = new Uint8Array(valueBytes);
      for (let b = 0; b < valueBytes; b++) value[b] = (i * 7 + b) & 0xff;
      records.push({ cache: 'default', region: null, key: `item-${i}`, value, contentType: 'application/octet-stream', expiresAt: null, tags: [] });
    }
    const base = bases[(start / batch) % bases.length]!;
    const out = await requestWithRetry(
      base,
      '/v1/admin/load',
      { method: 'POST', headers: { 'content-type': 'application/x-velo-records' }, body: encodeRecords(records) as Uint8Array<ArrayBuffer> },
      (r) => r.json() as Promise<{ written: number; failed: unknown[] }>,
    );
    if (out.failed.length > 0) throw new Error(`load failed for ${out.failed.length} items: ${JSON.stringify(out.failed[0])}`);
  });
}

async function itemsIn(base: string): Promise<number> {
  return ((await (await fetch(`${base}/v1/caches/default/stats`)).json()) as { items: number }).items;
}

async function main(): Promise<void> {
  const items = intFlag('items', 200_000);
  const valueBytes = intFlag('value-bytes', 256);
  const partitions = intFlag('partitions', 16);
  const procs: ChildProcess[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'velo-bench-backup-'));
  try {
    const source = await startCluster(partitions, procs);
    await fill(source, items, valueBytes);
    if ((await itemsIn(source[0]!)) !== items) throw new Error('the source does not hold every item loaded');
    const file = join(dir, 'bench.velo');
    const b = await backup({ to: file, cluster: source[0]! });
    // The source stops before the target starts: each measurement has the machine to itself.
    for (const p of procs.splice(0)) p.kill('SIGKILL');
    const target = await startCluster(partitions, procs);
    const r = await restore({ from: file, cluster: target[0]! });
    const restored = await itemsIn(target[1]!);
    if (restored !== items) throw new Error(`the target holds ${restored} items, not ${items}`);
    const round = (n: number, d = 3) => Number(n.toFixed(d));
    console.log(
      JSON.stringify({
        items,
        valueBytes,
        partitions,
        fileBytes: b.bytes,
        backupSeconds: round(b.seconds),
        backupMBps: round(b.bytes / 1e6 / b.seconds, 1),
        restoreSeconds: round(r.seconds),
        restoreMBps: round(r.bytes / 1e6 / r.seconds, 1),
      }),
    );
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`bench-backup: ${(e as Error).message}`);
  process.exit(1);
});
