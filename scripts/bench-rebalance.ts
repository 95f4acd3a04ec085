// Rebalance benchmark (issue 9's closing figures): the time to rebalance
// 1 GiB onto a new node, and what a client sees while it happens compared
// with a quiet cluster. Three in-memory nodes are bulk-loaded, a client load
// (strong reads and writes of 1 KiB values on other keys) runs through a
// quiet window, then a 4th node joins with the same load running; the move
// ends when GET /v1/cluster reports the cluster balanced and the new node
// holds its fair share of replicas. Afterwards a sample of the loaded values
// is read back through the new node.
//
//   node dist/scripts/bench-rebalance.js [--gb 1 | --mb N] [--value-kb 64] [--seconds 20] [--in-flight 16]
//     [--move-bytes-per-sec N] [--max-moves N] [--sample 1000] [--seed 1] [--move-timeout-s 3600] [--out FILE]
//
// Writes a Markdown report to FILE (default scripts/bench/rebalance-results.md)
// and prints it. Exits 1 if a sampled value did not read back intact.

import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MAX_VALUE_BYTES } from '../api/server.js';
import { encodeRecords } from '../src/cache/index.js';
import type { ItemRecord } from '../src/cache/index.js';
import type { ClusterView } from '../src/node/service.js';
import { describeMachine } from './bench/machine.js';
import { installCleanUp, killTracked, spawnTracked } from './bench/procs.js';
import { freePort, intFlag } from './ports.js';
import { until } from './poll.js';
import { seededRandom } from './random.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
/** 1 GiB with R=3 is ~1 GiB per node plus the snapshot copies a move makes: far above Node's default heap limit. */
const NODE_HEAP_MB = 8192;
const LOAD_BATCH_BYTES = 8 << 20;
const LOADS_IN_FLIGHT = 4;
const LOAD_ATTEMPTS = 5;
const CLIENT_KEYS = 10_000;
const CLIENT_VALUE_BYTES = 1024;
const CLIENT_WRITE_SHARE = 0.1;
const WARM_UP_MS = 2000;
const REQUEST_TIMEOUT_MS = 30_000;
const POLL_MS = 200;
const PROGRESS_EVERY_MS = 5000;
const VERIFY_IN_FLIGHT = 8;
const LOG_TAIL_BYTES = 64 * 1024;
const FLAGS = ['--gb', '--mb', '--value-kb', '--seconds', '--in-flight', '--move-bytes-per-sec', '--max-moves', '--sample', '--seed', '--move-timeout-s', '--out'];

function log(line: string): void {
  process.stderr.write(`[bench-rebalance ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

const MiB = 2 ** 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


const itemKey = (i: number) => `item-${i}`;
const clientKey = (i: number) => `load-${i}`;

/** Item i's value: pseudo-random words seeded by i (xorshift32), so that a read proves it got this item's bytes. */
function itemValue(i: number, valueBytes: number): Uint8Array {
  const v = new Uint8Array(valueBytes);
  const words = new Uint32Array(v.buffer, 0, valueBytes >>> 2);
  let x = ((i + 1) * 2654435761) >>> 0 || 1;
  for (let w = 0; w < words.length; w++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[w] = x >>> 0;
  }
  return v;
}

// ---------------------------------------------------------------- nodes

interface Node {
  id: string;
  http: string;
  proc: ChildProcess;
  /** Resolves when the node prints that it serves; rejects if it exits first. */
  serving: Promise<void>;
  /** The last LOG_TAIL_BYTES it wrote (its logs are on stderr). */
  output(): string;
}

const nodes: Node[] = [];
/** Nodes that exited while the benchmark still needed them. */
const deaths: string[] = [];
let stopping = false;

/** Spawns `velo start` with a larger heap, keeping its output for the report of a failure. */
function spawnNode(id: string, http: string, raft: string, placement: string[], tuning: string[]): Node {
  const args = [`--max-old-space-size=${NODE_HEAP_MB}`, MAIN, 'start', '--id', id, '--http', http, '--raft', raft, '--log-level', 'warn', ...placement, ...tuning];
  const proc = spawnTracked(process.execPath, args);
  let text = '';
  const keep = (c: Buffer) => {
    text = (text + c.toString()).slice(-LOG_TAIL_BYTES);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const serving = new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (c: Buffer) => {
      if (c.toString().includes('serving http://')) resolve();
    });
    proc.once('exit', (code, signal) => {
      const why = `velo ${id} exited (${code ?? signal})`;
      if (!stopping) deaths.push(why);
      reject(new Error(`${why} before serving`));
    });
  });
  serving.catch(() => {}); // a death after serving is reported through `deaths`
  const node = { id, http, proc, serving, output: () => text.trim() };
  nodes.push(node);
  return node;
}

function throwIfDead(): void {
  if (deaths.length > 0) throw new Error(deaths.join('; '));
}

const freeAddr = async () => `127.0.0.1:${await freePort()}`;

/** Three nodes bootstrapped together (each serves once its peers answer), then ready on /readyz. */
async function startCluster(tuning: string[]): Promise<Node[]> {
  const ids = ['n1', 'n2', 'n3'];
  const http = await Promise.all(ids.map(freeAddr));
  const raft = await Promise.all(ids.map(freeAddr));
  const peers = ids.map((id, i) => `${id}=${raft[i]}`).join(',');
  const started = ids.map((id, i) => spawnNode(id, http[i]!, raft[i]!, ['--peers', peers], tuning));
  await Promise.all(started.map((n) => n.serving));
  await until('every node ready', async () => {
    for (const n of started) if ((await fetch(`http://${n.http}/readyz`)).status !== 200) return false;
    return true;
  });
  return started;
}

async function getJson<T>(url: string): Promise<T> {
  const r = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`GET ${url} answered ${r.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

// ---------------------------------------------------------------- bulk load

type LoadAnswer = { written: number; failed: { index: number; code: string; message: string; retry: 'safe' | 'indeterminate' | 'no' }[] };

/** One batch through POST /v1/admin/load; what failed is sent again (a load is an upsert of the same value). */
async function loadBatch(base: string, records: ItemRecord[]): Promise<void> {
  let pending = records;
  for (let attempt = 1; ; attempt++) {
    let why: string;
    try {
      const body = encodeRecords(pending) as Uint8Array<ArrayBuffer>;
      const r = await fetch(`${base}/v1/admin/load`, { method: 'POST', headers: { 'content-type': 'application/x-velo-records' }, body, signal: AbortSignal.timeout(4 * REQUEST_TIMEOUT_MS) });
      const text = await r.text();
      if (r.status === 200) {
        const out = JSON.parse(text) as LoadAnswer;
        if (out.failed.length === 0) return;
        const refused = out.failed.find((f) => f.retry === 'no');
        if (refused) throw new Error(`load refused ${pending[refused.index]!.key}: ${refused.code}: ${refused.message}`);
        why = `${out.failed.length} items failed, the first: ${out.failed[0]!.code}: ${out.failed[0]!.message}`;
        pending = out.failed.map((f) => pending[f.index]!);
      } else if (r.status >= 500) {
        why = `answered ${r.status}: ${text.slice(0, 200)}`;
      } else {
        throw new Error(`load answered ${r.status}: ${text.slice(0, 300)}`);
      }
    } catch (e) {
      if (e instanceof Error && e.message.startsWith('load ')) throw e;
      why = (e as Error).message;
    }
    if (attempt >= LOAD_ATTEMPTS) throw new Error(`load to ${base} failed ${attempt} times: ${why}`);
    await sleep(200 * attempt);
  }
}

/** `count` records made by `record(i)` in batches of about LOAD_BATCH_BYTES, spread over the nodes. */
async function bulkLoad(bases: string[], count: number, perBatch: number, record: (i: number) => ItemRecord, what: string): Promise<void> {
  let next = 0;
  let batchNo = 0;
  let reported = 0;
  await Promise.all(
    Array.from({ length: LOADS_IN_FLIGHT }, async () => {
      while (next < count) {
        const start = next;
        next = Math.min(count, next + perBatch);
        const records: ItemRecord[] = [];
        for (let i = start; i < next; i++) records.push(record(i));
        await loadBatch(bases[batchNo++ % bases.length]!, records);
        const tenth = Math.floor((10 * next) / count);
        if (tenth > reported && count > perBatch * 10) {
          reported = tenth;
          log(`${what}: ${tenth * 10} %`);
        }
      }
    }),
  );
}

const record = (cache: string, key: string, value: Uint8Array): ItemRecord => ({ cache, region: null, key, value, contentType: 'application/octet-stream', expiresAt: null, tags: [] });

// ---------------------------------------------------------------- client load

interface Figures {
  seconds: number;
  requests: number;
  opsPerSec: number;
  errors: number;
  errorRate: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * `inFlight` loops of strong reads and writes of 1 KiB values over
 * CLIENT_KEYS keys, each request to the next node in turn. Every request is
 * recorded by its completion time, so that figures can be taken over any
 * window of the run.
 */
class ClientLoad {
  private readonly endedAt: number[] = [];
  private readonly latencyMs: number[] = [];
  private readonly failed: boolean[] = [];
  /** "GET 503" or "PUT network error" → count and the first message. */
  readonly errorKinds = new Map<string, { count: number; first: string }>();
  private running = true;
  private nextTarget = 0;
  private readonly loops: Promise<void>[];

  constructor(private readonly bases: string[], inFlight: number, seed: number) {
    this.loops = Array.from({ length: inFlight }, (_, i) => this.loop(seededRandom(seed * 1000 + i)));
  }

  private async loop(random: () => number): Promise<void> {
    const value = Buffer.alloc(CLIENT_VALUE_BYTES, 0x61);
    while (this.running) {
      const key = clientKey(Math.floor(random() * CLIENT_KEYS));
      const write = random() < CLIENT_WRITE_SHARE;
      const base = this.bases[this.nextTarget++ % this.bases.length]!;
      const method = write ? 'PUT' : 'GET';
      const t = performance.now();
      let error: string | null = null;
      let kind = '';
      try {
        const r = write
          ? await fetch(`${base}/v1/caches/default/items/${key}`, { method, body: value, headers: { 'content-type': 'application/octet-stream' }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
          : await fetch(`${base}/v1/caches/default/items/${key}?consistency=strong`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
        const body = await r.arrayBuffer();
        if (r.status >= 300 && !(r.status === 404 && !write)) {
          kind = `${method} ${r.status}`;
          error = `${method} ${base} ${key}: ${r.status} ${Buffer.from(body).toString('utf8', 0, 300)}`;
        }
      } catch (e) {
        kind = `${method} network error`;
        error = `${method} ${base} ${key}: ${(e as Error).message}${(e as { cause?: Error }).cause ? ` (${(e as { cause: Error }).cause.message})` : ''}`;
      }
      const now = performance.now();
      this.endedAt.push(now);
      this.latencyMs.push(now - t);
      this.failed.push(error !== null);
      if (error !== null) {
        const k = this.errorKinds.get(kind);
        if (k) k.count++;
        else this.errorKinds.set(kind, { count: 1, first: error });
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /** The requests that completed in [from, to) (performance.now() ms); latency counts failed requests too. */
  figures(from: number, to: number): Figures {
    const lat: number[] = [];
    let errors = 0;
    for (let i = 0; i < this.endedAt.length; i++) {
      const t = this.endedAt[i]!;
      if (t < from || t >= to) continue;
      lat.push(this.latencyMs[i]!);
      if (this.failed[i]) errors++;
    }
    lat.sort((a, b) => a - b);
    const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
    const seconds = (to - from) / 1000;
    return { seconds, requests: lat.length, opsPerSec: lat.length / seconds, errors, errorRate: lat.length ? errors / lat.length : 0, p50Ms: q(0.5), p99Ms: q(0.99) };
  }
}

// ---------------------------------------------------------------- the move

interface Move {
  /** From spawning the new node until it printed that it serves. */
  servingAfterMs: number;
  /** From spawning the new node until the cluster was balanced with its fair share on the new node. */
  balancedAfterMs: number;
  fairShare: number;
  view: ClusterView;
  from: number;
  to: number;
}

function progressLine(view: ClusterView, id: string): string {
  const m = view.members.find((x) => x.id === id);
  const r = view.rebalance;
  return `${id}: ${m ? `${m.replicas} replicas, ${m.leaders} leaders` : 'not a member yet'}; moves in flight ${r.movesInFlight}, pending ${r.movesPending}${r.balanced ? ', balanced' : ''}`;
}

/** Starts the new node with --join and polls n1's GET /v1/cluster until the move is done. */
async function joinAndWait(seed: Node, tuning: string[], timeoutMs: number): Promise<Move> {
  const http = await freeAddr();
  const raft = await freeAddr();
  const from = performance.now();
  const n4 = spawnNode('n4', http, raft, ['--join', `http://${seed.http}`], tuning);
  let servingAfterMs = NaN;
  void n4.serving.then(() => {
    servingAfterMs = performance.now() - from;
    log(`n4 serving after ${(servingAfterMs / 1000).toFixed(1)} s`);
  });
  let view: ClusterView | null = null;
  let fairShare = 0;
  let to = 0;
  let lastProgress = from;
  try {
    await until(
      'the cluster balanced with n4 holding its fair share of replicas',
      async () => {
        if (deaths.length > 0) return true; // reported below; until() would take a throw for "not yet"
        const v = await getJson<ClusterView>(`http://${seed.http}/v1/cluster`);
        const at = performance.now();
        view = v;
        const members = v.members.filter((m) => m.status !== 'removed');
        const total = members.reduce((s, m) => s + m.replicas, 0);
        fairShare = Math.floor(total / members.length);
        const mine = v.members.find((m) => m.id === 'n4');
        if (at - lastProgress >= PROGRESS_EVERY_MS) {
          lastProgress = at;
          log(`${((at - from) / 1000).toFixed(0)} s: ${progressLine(v, 'n4')}`);
        }
        if (!v.rebalance.balanced || !mine || mine.status !== 'active' || mine.replicas < fairShare) return false;
        to = at;
        return true;
      },
      timeoutMs,
      POLL_MS,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message} after ${timeoutMs / 1000} s; last view from n1: ${view ? JSON.stringify(view) : 'none'}`);
  }
  throwIfDead();
  return { servingAfterMs, balancedAfterMs: to - from, fairShare, view: view!, from, to };
}

// ---------------------------------------------------------------- verification

interface Verification {
  sample: number;
  intact: number;
  mismatched: number;
  missing: number;
  errors: number;
  firstProblem: string | null;
}

/** Reads `sample` distinct loaded items back through `node` (consistency=strong) and compares their bytes. */
async function verify(node: Node, items: number, valueBytes: number, sample: number, seed: number): Promise<Verification> {
  const random = seededRandom(seed ^ 0x5eed);
  const chosen = new Set<number>();
  while (chosen.size < Math.min(sample, items)) chosen.add(Math.floor(random() * items));
  const queue = [...chosen];
  const out: Verification = { sample: queue.length, intact: 0, mismatched: 0, missing: 0, errors: 0, firstProblem: null };
  const problem = (what: string) => {
    out.firstProblem ??= what;
  };
  await Promise.all(
    Array.from({ length: VERIFY_IN_FLIGHT }, async () => {
      for (let i = queue.pop(); i !== undefined; i = queue.pop()) {
        const url = `http://${node.http}/v1/caches/default/items/${itemKey(i)}?consistency=strong`;
        try {
          const r = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
          const body = Buffer.from(await r.arrayBuffer());
          if (r.status === 404) {
            out.missing++;
            problem(`${itemKey(i)} is missing (404)`);
          } else if (r.status !== 200) {
            out.errors++;
            problem(`${itemKey(i)}: ${r.status} ${body.toString('utf8', 0, 300)}`);
          } else if (!body.equals(itemValue(i, valueBytes))) {
            out.mismatched++;
            problem(`${itemKey(i)}: ${body.length} bytes that differ from the ${valueBytes} loaded`);
          } else {
            out.intact++;
          }
        } catch (e) {
          out.errors++;
          problem(`${itemKey(i)}: ${(e as Error).message}`);
        }
      }
    }),
  );
  return out;
}

// ---------------------------------------------------------------- report

interface Run {
  argv: string[];
  items: number;
  valueBytes: number;
  loadedBytes: number;
  loadSeconds: number;
  /** The cache's bytes once loaded (the loaded items and the client's keys), as GET /stats counts them. */
  cacheBytes: number;
  inFlight: number;
  quiet: Figures;
  moving: Figures;
  move: Move;
  errorKinds: Map<string, { count: number; first: string }>;
  verification: Verification;
}

const fmt = (n: number, digits = 2) => (Number.isNaN(n) ? '—' : n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(digits));
const pct = (r: number) => `${(r * 100).toFixed(3)} %`;
const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a / b) ? `${(a / b).toFixed(2)} ×` : '—');

function render(run: Run): string {
  const m = describeMachine();
  const { move, quiet, moving } = run;
  const v = move.view;
  const n4 = v.members.find((x) => x.id === 'n4')!;
  const live = v.members.filter((x) => x.status !== 'removed');
  const totalReplicas = live.reduce((s, x) => s + x.replicas, 0);
  const partitions = v.partitions.length;
  const replication = totalReplicas / partitions;
  // Each replica n4 now holds came to it as a snapshot of its partition: its share of the replicas, times every copy of the data.
  const movedBytes = (n4.replicas / totalReplicas) * run.cacheBytes * replication;
  const seconds = move.balancedAfterMs / 1000;
  const rb = v.rebalance;
  const ver = run.verification;
  const lines = [
    '# Rebalancing onto a new node',
    '',
    `Measured ${m.date} with \`node dist/scripts/bench-rebalance.js${run.argv.length ? ' ' + run.argv.join(' ') : ''}\` on ${m.cpuModel} (${m.cores} cores, ${m.ramGiB} GiB RAM), Linux ${m.kernel}, Node.js ${m.node}.`,
    '',
    '## Setup',
    '',
    `- Velo: 3 nodes in memory on this machine (${partitions} partitions, R = ${fmt(replication, 0)}, each node with a heap limit of ${NODE_HEAP_MB / 1024} GiB), then a 4th started with \`--join http://<n1>\`. Moves: at most ${rb.maxConcurrentMoves} partitions at once, snapshots sent at up to ${fmt(rb.moveBytesPerSecond / MiB, Number.isInteger(rb.moveBytesPerSecond / MiB) ? 0 : 2)} MiB/s per node (as GET /v1/cluster reports them).`,
    `- Data: ${run.items.toLocaleString('en-US')} values of ${run.valueBytes / 1024} KiB (${fmt(run.loadedBytes / MiB)} MiB) in cache "default", loaded through \`POST /v1/admin/load\` in ${run.loadSeconds.toFixed(1)} s; with the client's keys the cache holds ${fmt(run.cacheBytes / MiB)} MiB (GET /v1/caches/default/stats).`,
    `- Client: ${run.inFlight} requests in flight, ${100 - CLIENT_WRITE_SHARE * 100} % strong reads and ${CLIENT_WRITE_SHARE * 100} % writes of ${CLIENT_VALUE_BYTES / 1024} KiB values over ${CLIENT_KEYS.toLocaleString('en-US')} other keys (all written first), each request to n1, n2, n3 in turn over plain HTTP/1.1. An error is a network error, a timeout (${REQUEST_TIMEOUT_MS / 1000} s) or an answer other than 2xx (and 404 on a read). A window counts the requests that completed in it; latencies include the failed ones.`,
    `- Quiet: ${fmt(quiet.seconds, 1)} s after a ${WARM_UP_MS / 1000} s warm-up. During the move: from spawning n4 until GET /v1/cluster (asked of n1 every ${POLL_MS} ms) reported \`rebalance.balanced\` with n4 holding at least its fair share of replicas (⌊P·R/N⌋ = ${move.fairShare}).`,
    '',
    '## Client figures',
    '',
    '| phase | seconds | ops/s | errors (rate) | p50 ms | p99 ms |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    `| quiet | ${fmt(quiet.seconds, 1)} | ${fmt(quiet.opsPerSec)} | ${quiet.errors} (${pct(quiet.errorRate)}) | ${fmt(quiet.p50Ms)} | ${fmt(quiet.p99Ms)} |`,
    `| during the move | ${fmt(moving.seconds, 1)} | ${fmt(moving.opsPerSec)} | ${moving.errors} (${pct(moving.errorRate)}) | ${fmt(moving.p50Ms)} | ${fmt(moving.p99Ms)} |`,
    `| move / quiet | | ${ratio(moving.opsPerSec, quiet.opsPerSec)} | ${quiet.errorRate > 0 ? ratio(moving.errorRate, quiet.errorRate) : moving.errorRate > 0 ? '(quiet: none)' : '—'} | ${ratio(moving.p50Ms, quiet.p50Ms)} | ${ratio(moving.p99Ms, quiet.p99Ms)} |`,
    '',
  ];
  if (run.errorKinds.size > 0) {
    lines.push('Errors over the whole run, by kind (the first of each):', '');
    for (const [kind, e] of run.errorKinds) lines.push(`- ${kind}: ${e.count} — \`${e.first.replace(/`/g, "'").replace(/\s+/g, ' ')}\``);
    lines.push('');
  }
  lines.push(
    '## The move',
    '',
    `- **Rebalance time: ${seconds.toFixed(1)} s** from spawning n4 (it served after ${fmt(move.servingAfterMs / 1000, 1)} s) until the cluster was balanced.`,
    `- Data moved ≈ ${fmt(movedBytes / MiB)} MiB (n4's ${n4.replicas} of ${totalReplicas} replicas × ${fmt(run.cacheBytes / MiB)} MiB × R ${fmt(replication, 0)}), **${fmt(movedBytes / MiB / seconds)} MiB/s** effective.`,
    `- Placement afterwards: ${live.map((x) => `${x.id} ${x.replicas} replicas / ${x.leaders} leaders`).join('; ')}.`,
    '',
    '## Verification',
    '',
    `${ver.sample.toLocaleString('en-US')} loaded values chosen at random, read through n4 with consistency=strong: ${ver.intact.toLocaleString('en-US')} intact, **${ver.mismatched} mismatched**, ${ver.missing} missing, ${ver.errors} errors${ver.firstProblem ? ` (the first: ${ver.firstProblem})` : ''}.`,
  );
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------- main

function parseArgs(argv: string[]) {
  for (let i = 0; i < argv.length; i += 2) {
    if (!FLAGS.includes(argv[i]!)) throw new Error(`unknown flag ${argv[i]} (known: ${FLAGS.join(', ')})`);
    if (argv[i + 1] === undefined) throw new Error(`${argv[i]} needs a value`);
  }
  if (argv.includes('--gb') && argv.includes('--mb')) throw new Error('give --gb or --mb, not both');
  const dataBytes = argv.includes('--mb') ? intFlag('mb', 64) * MiB : intFlag('gb', 1) * 1024 * MiB;
  const valueBytes = intFlag('value-kb', 64) * 1024;
  if (valueBytes > DEFAULT_MAX_VALUE_BYTES) throw new Error(`--value-kb must be at most ${DEFAULT_MAX_VALUE_BYTES / 1024} (a node's default --max-value-bytes)`);
  const tuning: string[] = [];
  // Absent: the node's own defaults, which the report takes from GET /v1/cluster.
  if (argv.includes('--move-bytes-per-sec')) tuning.push('--move-bytes-per-sec', String(intFlag('move-bytes-per-sec', 0)));
  if (argv.includes('--max-moves')) tuning.push('--max-moves', String(intFlag('max-moves', 0)));
  const out = argv.indexOf('--out');
  const here = dirname(fileURLToPath(import.meta.url));
  return {
    items: Math.max(1, Math.round(dataBytes / valueBytes)),
    valueBytes,
    seconds: intFlag('seconds', 20),
    inFlight: intFlag('in-flight', 16),
    sample: intFlag('sample', 1000),
    seed: intFlag('seed', 1),
    moveTimeoutMs: intFlag('move-timeout-s', 3600) * 1000,
    tuning,
    out: resolve(out >= 0 ? argv[out + 1]! : join(here, '../../scripts/bench/rebalance-results.md')),
  };
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const o = parseArgs(argv);
  installCleanUp();

  log(`starting 3 nodes in memory${o.tuning.length ? ` (${o.tuning.join(' ')})` : ''}`);
  const cluster = await startCluster(o.tuning);
  const bases = cluster.map((n) => `http://${n.http}`);

  const perBatch = Math.max(1, Math.floor(LOAD_BATCH_BYTES / o.valueBytes));
  log(`loading ${o.items} values of ${o.valueBytes / 1024} KiB (${((o.items * o.valueBytes) / MiB).toFixed(0)} MiB), ${perBatch} per batch`);
  const loadStart = performance.now();
  await bulkLoad(bases, o.items, perBatch, (i) => record('default', itemKey(i), itemValue(i, o.valueBytes)), 'loaded');
  const loadSeconds = (performance.now() - loadStart) / 1000;
  const clientValue = new Uint8Array(CLIENT_VALUE_BYTES).fill(0x61);
  await bulkLoad(bases, CLIENT_KEYS, Math.floor(LOAD_BATCH_BYTES / CLIENT_VALUE_BYTES), (i) => record('default', clientKey(i), clientValue), 'client keys');
  const stats = await getJson<{ items: number; bytes: number }>(`${bases[0]}/v1/caches/default/stats`);
  if (stats.items !== o.items + CLIENT_KEYS) throw new Error(`the cache holds ${stats.items} items, not the ${o.items + CLIENT_KEYS} loaded`);
  log(`loaded in ${loadSeconds.toFixed(1)} s; the cache holds ${stats.items} items, ${(stats.bytes / MiB).toFixed(0)} MiB`);
  throwIfDead();

  log(`client load: ${o.inFlight} in flight; ${WARM_UP_MS / 1000} s warm-up, then ${o.seconds} s quiet`);
  const load = new ClientLoad(bases, o.inFlight, o.seed);
  let move: Move;
  let quiet: Figures;
  try {
    const quietFrom = performance.now() + WARM_UP_MS;
    await sleep(WARM_UP_MS + o.seconds * 1000); // the measurement's length, not a synchronisation
    quiet = load.figures(quietFrom, performance.now());
    log(`quiet: ${fmt(quiet.opsPerSec)} ops/s, ${quiet.errors} errors, p50 ${fmt(quiet.p50Ms)} ms, p99 ${fmt(quiet.p99Ms)} ms`);
    throwIfDead();
    log('starting n4 with --join');
    move = await joinAndWait(cluster[0]!, o.tuning, o.moveTimeoutMs);
  } finally {
    await load.stop();
  }
  const moving = load.figures(move.from, move.to);
  log(`balanced after ${(move.balancedAfterMs / 1000).toFixed(1)} s; ${progressLine(move.view, 'n4')}`);
  log(`during the move: ${fmt(moving.opsPerSec)} ops/s, ${moving.errors} errors, p50 ${fmt(moving.p50Ms)} ms, p99 ${fmt(moving.p99Ms)} ms`);

  log(`reading ${o.sample} loaded values back through n4`);
  const n4 = nodes.find((n) => n.id === 'n4')!;
  const verification = await verify(n4, o.items, o.valueBytes, o.sample, o.seed);
  throwIfDead();

  const md = render({ argv, items: o.items, valueBytes: o.valueBytes, loadedBytes: o.items * o.valueBytes, loadSeconds, cacheBytes: stats.bytes, inFlight: o.inFlight, quiet, moving, move, errorKinds: load.errorKinds, verification });
  writeFileSync(o.out, md);
  process.stdout.write(md);
  log(`written to ${o.out}`);
  const intact = verification.intact === verification.sample;
  if (!intact) log(`FAILED: ${verification.sample - verification.intact} of ${verification.sample} sampled values did not read back intact`);
  return intact ? 0 : 1;
}

/** Every node's last output, for the report of a failure. */
function nodeLogs(lines: number): string {
  return nodes.map((n) => `--- ${n.id} (pid ${n.proc.pid}), last ${lines} lines ---\n${n.output().split('\n').slice(-lines).join('\n') || '(nothing)'}`).join('\n');
}

main()
  .then(async (code) => {
    stopping = true;
    await Promise.all(nodes.map((n) => killTracked(n.proc)));
    process.exit(code);
  })
  .catch((e: unknown) => {
    stopping = true;
    process.stderr.write(`bench-rebalance: ${e instanceof Error ? e.message : String(e)}\n${nodeLogs(40)}\n`);
    process.exit(1); // the exit hook of procs.ts kills every node
  });
