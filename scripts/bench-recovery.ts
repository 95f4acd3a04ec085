// Recovery benchmark: how long a persistent node takes to come back after
// kill -9, and what its data costs on disk. One real node with --data-dir is
// bulk-loaded (POST /v1/admin/load) with N items of 256-byte values, killed
// with SIGKILL, restarted, and timed from spawn until /readyz answers 200 and
// strong reads of a sample of keys return what was loaded — twice.
// Prints one JSON line.
//
//   node dist/scripts/bench-recovery.js [--items 1000000] [--batch 2000] [--in-flight 4] [--sample 200]

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeRecords } from '../src/cache/index.js';
import type { ItemRecord } from '../src/cache/index.js';
import { freePort, intFlag } from './ports.js';
import { until } from './poll.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
const VALUE_BYTES = 256;
const RECORDS_CONTENT_TYPE = 'application/x-velo-records';

const keyOf = (i: number) => `k${i}`;

/**
 * Item i's value: 256 pseudo-random bytes seeded by i (xorshift32), so that a
 * read proves it got the right item and LevelDB's compression cannot shrink
 * the data below what real values would cost.
 */
function valueOf(i: number): Uint8Array {
  const v = Buffer.alloc(VALUE_BYTES);
  let x = (i + 1) * 2654435761 >>> 0 || 1;
  for (let o = 0; o < VALUE_BYTES; o += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    v.writeUInt32LE(x >>> 0, o);
  }
  return v;
}

function item(i: number): ItemRecord {
  return { cache: 'default', region: null, key: keyOf(i), value: valueOf(i), contentType: 'application/octet-stream', expiresAt: null, tags: [] };
}

class Node {
  proc: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    private readonly http: string,
    private readonly raft: string,
    private readonly dataDir: string,
  ) {}

  url(path: string): string {
    return `http://${this.http}${path}`;
  }

  /** Spawns the node; resolves once it prints that it serves. */
  start(): Promise<void> {
    const args = [MAIN, 'start', '--id', 'n1', '--http', this.http, '--raft', this.raft, '--peers', `n1=${this.raft}`, '--data-dir', this.dataDir, '--log-level', 'warn'];
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    this.proc = proc;
    this.exited = new Promise((r) => proc.once('exit', () => r()));
    return new Promise((resolve, reject) => {
      proc.stdout!.on('data', (c: Buffer) => {
        if (c.toString().includes('serving http://')) resolve();
      });
      proc.once('exit', (code, signal) => reject(new Error(`the node exited (${code ?? signal}) before serving`)));
    });
  }

  async kill(): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGKILL');
    await this.exited;
    this.proc = null;
  }
}


type LoadAnswer = { written: number; failed: { index: number; code: string; message: string; retry: 'safe' | 'indeterminate' | 'no' }[] };

/**
 * Loads items [0, count) in batches, `inFlight` requests at a time. Failed
 * items are loaded again: a load is an upsert of the same value, so even an
 * indeterminate one is safe to repeat. Polls `onProgress` after each batch.
 */
async function loadItems(node: Node, count: number, batchSize: number, inFlight: number, onProgress: () => Promise<void>): Promise<void> {
  const queue: number[][] = [];
  let nextFresh = 0;
  const nextBatch = (): number[] | null => {
    const retry = queue.shift();
    if (retry) return retry;
    if (nextFresh >= count) return null;
    const ids: number[] = [];
    for (; ids.length < batchSize && nextFresh < count; nextFresh++) ids.push(nextFresh);
    return ids;
  };
  let pending = 0; // batches in flight or queued for retry: the load ends when none are left
  const worker = async () => {
    for (;;) {
      const ids = nextBatch();
      if (ids === null) {
        if (pending === 0) return;
        // Another worker's batch may still fail and come back: wait for it.
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      pending++;
      try {
        const body = encodeRecords(ids.map(item));
        const r = await fetch(node.url('/v1/admin/load'), { method: 'POST', headers: { 'Content-Type': RECORDS_CONTENT_TYPE }, body: body as Uint8Array<ArrayBuffer> });
        if (r.status !== 200) {
          const text = await r.text();
          if (r.status >= 500) {
            queue.push(ids); // the whole batch again
            continue;
          }
          throw new Error(`load answered ${r.status}: ${text}`);
        }
        const out = (await r.json()) as LoadAnswer;
        const again: number[] = [];
        for (const f of out.failed) {
          if (f.retry === 'no') throw new Error(`item ${keyOf(ids[f.index]!)} was refused: ${f.code}: ${f.message}`);
          again.push(ids[f.index]!);
        }
        if (again.length > 0) queue.push(again);
        await onProgress();
      } finally {
        pending--;
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await dirBytes(p);
    else if (e.isFile()) total += (await stat(p)).size;
  }
  return total;
}

/** The largest value of a metric about event-loop pauses, in seconds, if the node exports one. */
async function eventLoopPauseSeconds(node: Node): Promise<number | null> {
  const text = await (await fetch(node.url('/metrics'))).text();
  let peak: number | null = null;
  for (const line of text.split('\n')) {
    const m = /^([a-z_]*event_?loop[a-z_]*(?:max|lag|delay)[a-z_]*)(?:\{[^}]*\})? ([0-9.eE+-]+)$/.exec(line);
    if (!m || m[1]!.endsWith('_count') || m[1]!.endsWith('_sum') || m[1]!.endsWith('_bucket')) continue;
    const v = Number(m[2]) * (m[1]!.includes('_ms') || m[1]!.endsWith('milliseconds') ? 1e-3 : 1);
    if (Number.isFinite(v)) peak = Math.max(peak ?? 0, v);
  }
  return peak;
}

/** Seconds from spawn until the node is ready and strong reads of `sample` keys return their loaded values. */
async function timeRestart(node: Node, sample: number[]): Promise<number> {
  const t0 = performance.now();
  await node.start();
  await until('/readyz', async () => (await fetch(node.url('/readyz'))).status === 200, 600_000, 20);
  const left = new Set(sample);
  await until(
    'strong reads of the sample',
    async () => {
      for (const i of [...left]) {
        const r = await fetch(node.url(`/v1/caches/default/items/${keyOf(i)}`));
        if (r.status !== 200) return false;
        if (!Buffer.from(await r.arrayBuffer()).equals(valueOf(i))) throw new Error(`${keyOf(i)} came back with the wrong value`);
        left.delete(i);
      }
      return true;
    },
    600_000,
    20,
  );
  return (performance.now() - t0) / 1000;
}

async function main(): Promise<void> {
  const items = intFlag('items', 1_000_000);
  const batch = intFlag('batch', 2000);
  const inFlight = intFlag('in-flight', 4);
  const sampleSize = Math.min(items, intFlag('sample', 200));
  const dataDir = await mkdtemp(join(tmpdir(), 'velo-bench-recovery-'));
  const node = new Node(`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`, dataDir);
  try {
    await node.start();
    await until('/readyz', async () => (await fetch(node.url('/readyz'))).status === 200, 60_000);

    let peakPause: number | null = null;
    let lastProbe = 0;
    const probe = async () => {
      // The metric is cumulative or a gauge; sampling it once a second is enough to see the peak.
      if (performance.now() - lastProbe < 1000) return;
      lastProbe = performance.now();
      const p = await eventLoopPauseSeconds(node).catch(() => null);
      if (p !== null) peakPause = Math.max(peakPause ?? 0, p);
    };
    const t0 = performance.now();
    await loadItems(node, items, batch, inFlight, probe);
    const loadSeconds = (performance.now() - t0) / 1000;
    lastProbe = 0;
    await probe();
    const diskBytes = await dirBytes(dataDir);

    // Spread over the whole key range, so that every partition is read.
    const sample = Array.from({ length: sampleSize }, (_, k) => Math.floor((k * items) / sampleSize));
    await node.kill();
    const restartSeconds = await timeRestart(node, sample);
    await node.kill();
    const secondRestartSeconds = await timeRestart(node, sample);
    const diskBytesAfterRestarts = await dirBytes(dataDir);

    const round = (x: number, digits = 3) => Number(x.toFixed(digits));
    process.stdout.write(
      `${JSON.stringify({
        items,
        valueBytes: VALUE_BYTES,
        loadSeconds: round(loadSeconds),
        itemsPerSecond: Math.round(items / loadSeconds),
        diskBytes,
        diskBytesPerMillionItems: Math.round((diskBytes * 1_000_000) / items),
        diskBytesAfterRestarts,
        restartSeconds: round(restartSeconds),
        secondRestartSeconds: round(secondRestartSeconds),
        ...(peakPause !== null ? { peakEventLoopPauseMs: round(peakPause * 1000, 1) } : {}),
      })}\n`,
    );
  } finally {
    await node.kill();
    await rm(dataDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`bench-recovery: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
