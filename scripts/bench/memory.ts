// Memory per item: resident memory of each Velo node (a fresh 3-node
// in-memory cluster; every node holds a replica of every item) before and
// after loading N items of V bytes through POST /v1/admin/load, beside
// redis-server holding the same N items (pipelined SETs).
//   per item = (VmRSS after − VmRSS before) / N
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { encodeRecords } from '../../src/cache/index.js';
import type { ItemRecord } from '../../src/cache/index.js';
import { freePort } from '../ports.js';
import { killTracked, spawnTracked } from './procs.js';
import { startVelo } from './systems.js';

export interface RssSample {
  node: string;
  beforeBytes: number;
  afterBytes: number;
  perItemBytes: number;
}

export type MemoryRow = { samples: RssSample[]; seconds: number } | { skipped: string };

export interface MemoryResult {
  items: number;
  valueBytes: number;
  velo: MemoryRow;
  redis: MemoryRow;
}

const LOAD_BATCH = 2000;
const LOADS_IN_FLIGHT = 4;

/** Resident memory of a process, from /proc/<pid>/status. */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) * 1024;
}

function itemKey(i: number): string {
  return `item-${i}`;
}

function itemValue(i: number, valueBytes: number): Buffer {
  const v = Buffer.allocUnsafe(valueBytes);
  for (let b = 0; b < valueBytes; b++) v[b] = (i * 7 + b) & 0xff;
  return v;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One batch through /v1/admin/load, again after a 503 or a broken connection (a load is an upsert). */
async function loadBatch(base: string, records: ItemRecord[]): Promise<void> {
  const body = encodeRecords(records) as Uint8Array<ArrayBuffer>;
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await fetch(`${base}/v1/admin/load`, { method: 'POST', headers: { 'content-type': 'application/x-velo-records' }, body });
      const text = await r.text();
      if (r.status === 200) {
        const out = JSON.parse(text) as { written: number; failed: unknown[] };
        if (out.failed.length === 0) return;
        if (attempt >= 5) throw new Error(`load failed for ${out.failed.length} items: ${JSON.stringify(out.failed[0])}`);
      } else if (r.status !== 503 || attempt >= 5) {
        throw new Error(`load answered ${r.status}: ${text.slice(0, 200)}`);
      }
    } catch (e) {
      if (attempt >= 5) throw e;
    }
    await sleep(200 * attempt);
  }
}

async function fillVelo(bases: string[], items: number, valueBytes: number): Promise<void> {
  let next = 0;
  let batchNo = 0;
  await Promise.all(
    Array.from({ length: LOADS_IN_FLIGHT }, async () => {
      while (next < items) {
        const start = next;
        next = Math.min(items, next + LOAD_BATCH);
        const records: ItemRecord[] = [];
        for (let i = start; i < next; i++) {
          records.push({ cache: 'default', region: null, key: itemKey(i), value: itemValue(i, valueBytes), contentType: 'application/octet-stream', expiresAt: null, tags: [] });
        }
        await loadBatch(bases[batchNo++ % bases.length]!, records);
      }
    }),
  );
}

export async function measureVelo(items: number, valueBytes: number, settleMs: number, log: (l: string) => void): Promise<MemoryRow> {
  const velo = await startVelo('velo-mem');
  try {
    await sleep(settleMs);
    const before = velo.pids.map(rssBytes);
    const started = Date.now();
    await fillVelo(velo.targets.map((t) => `http://${t}`), items, valueBytes);
    const seconds = (Date.now() - started) / 1000;
    log(`loaded ${items} items in ${seconds.toFixed(1)} s; waiting ${settleMs / 1000} s before reading VmRSS`);
    const stats = (await (await fetch(`http://${velo.targets[0]}/v1/caches/default/stats`)).json()) as { items: number };
    if (stats.items !== items) throw new Error(`the cluster holds ${stats.items} items, not ${items}`);
    await sleep(settleMs);
    const after = velo.pids.map(rssBytes);
    return {
      seconds,
      samples: velo.pids.map((_, i) => ({ node: `n${i + 1}`, beforeBytes: before[i]!, afterBytes: after[i]!, perItemBytes: (after[i]! - before[i]!) / items })),
    };
  } finally {
    await velo.stop();
  }
}

/** Sends `commands` (RESP) and resolves after `replies` replies, rejecting on an error reply. */
function redisRoundTrip(socket: import('node:net').Socket, commands: Buffer, replies: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = 0;
    const onData = (chunk: Buffer) => {
      for (let i = 0; i < chunk.length; i++) {
        if (chunk[i] === 0x2d /* '-' */ && (i === 0 || chunk[i - 1] === 0x0a)) {
          socket.off('data', onData);
          reject(new Error(`redis: ${chunk.toString('utf8', i, Math.min(chunk.length, i + 200)).split('\r\n')[0]}`));
          return;
        }
        if (chunk[i] === 0x0a) seen++;
      }
      if (seen >= replies) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.write(commands);
  });
}

function respSet(key: string, value: Buffer): Buffer {
  const head = Buffer.from(`*3\r\n$3\r\nSET\r\n$${Buffer.byteLength(key)}\r\n${key}\r\n$${value.length}\r\n`);
  return Buffer.concat([head, value, Buffer.from('\r\n')]);
}

export async function measureRedis(items: number, valueBytes: number, settleMs: number, log: (l: string) => void): Promise<MemoryRow> {
  const port = await freePort();
  const proc = spawnTracked('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--daemonize', 'no', '--loglevel', 'warning']);
  try {
    let socket: import('node:net').Socket | null = null;
    for (let i = 0; i < 100 && !socket; i++) {
      socket = await new Promise((resolve) => {
        const s = connect(port, '127.0.0.1', () => resolve(s));
        s.once('error', () => resolve(null));
      });
      if (!socket) await sleep(100);
    }
    if (!socket) throw new Error('redis-server did not accept connections');
    await redisRoundTrip(socket, Buffer.from('*1\r\n$4\r\nPING\r\n'), 1);
    await sleep(settleMs);
    const before = rssBytes(proc.pid!);
    const started = Date.now();
    for (let start = 0; start < items; start += 10_000) {
      const end = Math.min(items, start + 10_000);
      const commands: Buffer[] = [];
      for (let i = start; i < end; i++) commands.push(respSet(itemKey(i), itemValue(i, valueBytes)));
      await redisRoundTrip(socket, Buffer.concat(commands), end - start);
    }
    const seconds = (Date.now() - started) / 1000;
    log(`loaded ${items} items into redis-server in ${seconds.toFixed(1)} s`);
    await sleep(settleMs);
    const after = rssBytes(proc.pid!);
    socket.destroy();
    return { seconds, samples: [{ node: 'redis-server', beforeBytes: before, afterBytes: after, perItemBytes: (after - before) / items }] };
  } finally {
    await killTracked(proc);
  }
}
