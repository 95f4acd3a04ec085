// The TypeScript client's throughput, beside ioredis against a local
// redis-server, in the same run (issue 8): one Node process drives both with
// the same number of operations in flight, 256-byte values over 10,000 keys.
// Velo is a 3-node in-memory cluster; the client sends each request straight
// to its partition's leader. Figures: writes, strong reads, local reads, and
// reads served by the near cache, each against redis SET / GET.
//
//   node dist/scripts/bench-client.js [--seconds 5] [--in-flight 64] [--out FILE]
//
// Writes a Markdown table to FILE (default scripts/bench/client-results.md)
// and prints it.

import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { VeloClient } from '../src/client/client.js';
import type { CacheClient } from '../src/client/client.js';
import { startVelo } from './bench/systems.js';
import { describeMachine } from './bench/machine.js';
import { REDIS, ensureTool } from './bench/tools.js';
import { installCleanUp, killTracked, spawnTracked } from './bench/procs.js';
import { freePort, intFlag } from './ports.js';
import { until } from './poll.js';

const KEYS = 10_000;
const VALUE_BYTES = 256;

interface Figure {
  workload: string;
  system: string;
  ops: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

function log(line: string): void {
  process.stderr.write(`[bench-client ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

function keyOf(i: number): string {
  return `key-${i}`;
}

function valueOf(i: number): Buffer {
  const b = Buffer.alloc(VALUE_BYTES, 0x61 + (i % 26));
  b.write(String(i));
  return b;
}

/** Runs `op` from `inFlight` loops for `seconds`; latencies in ms. */
async function measure(seconds: number, inFlight: number, op: (i: number) => Promise<unknown>): Promise<{ ops: number; p50Ms: number; p99Ms: number; errors: number }> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: unknown = null;
  const deadline = performance.now() + seconds * 1000;
  let n = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < deadline) {
        const i = (n++ * 7919) % KEYS;
        const t = performance.now();
        try {
          await op(i);
          latencies.push(performance.now() - t);
        } catch (e) {
          errors++;
          firstError ??= e;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  if (firstError) log(`${errors} errors, the first: ${(firstError as Error).message}`);
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  return { ops: latencies.length / elapsed, p50Ms: q(0.5), p99Ms: q(0.99), errors };
}

function fmt(n: number): string {
  return Number.isNaN(n) ? '—' : n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2);
}

function render(figures: Figure[], settings: { seconds: number; inFlight: number }): string {
  const m = describeMachine();
  const lines = [
    '# Velo client beside ioredis',
    '',
    `Measured ${new Date().toISOString().slice(0, 19)}Z with \`node dist/scripts/bench-client.js\` on ${m.cpuModel} (${m.cores} cores), Node.js ${m.node}, redis-server ${m.redis ?? '?'}.`,
    '',
    `One Node process drives both clients with ${settings.inFlight} operations in flight for ${settings.seconds} s per figure; ${VALUE_BYTES}-byte values over ${KEYS.toLocaleString('en-US')} keys, all written first. Velo: 3 nodes in memory on this machine, the client sending each request to its partition's leader (HTTP/1.1, kept-alive connections). redis: one redis-server, one ioredis connection (pipelined).`,
    '',
    '| workload | system | ops/s | p50 ms | p99 ms | errors | Velo / redis |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const f of figures) {
    const peer = f.system.startsWith('Velo') ? figures.find((g) => g.workload === f.workload && g.system.startsWith('ioredis')) : undefined;
    const ratio = peer ? `${(f.ops / peer.ops).toFixed(2)} ×` : '';
    lines.push(`| ${f.workload} | ${f.system} | ${fmt(f.ops)} | ${fmt(f.p50Ms)} | ${fmt(f.p99Ms)} | ${f.errors} | ${ratio} |`);
  }
  return lines.join('\n') + '\n';
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    if (!['--seconds', '--in-flight', '--out'].includes(argv[i]!)) throw new Error(`unknown flag ${argv[i]} (known: --seconds N, --in-flight N, --out FILE)`);
    if (argv[i + 1] === undefined) throw new Error(`${argv[i]} needs a value`);
  }
  const flag = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const seconds = intFlag('seconds', 5);
  const inFlight = intFlag('in-flight', 64);
  const here = dirname(fileURLToPath(import.meta.url));
  const out = resolve(flag('--out') ?? join(here, '../../scripts/bench/client-results.md'));
  installCleanUp();

  const missing = ensureTool(REDIS, log);
  if (missing) {
    log(`skipped: ${missing}`);
    return;
  }
  log('starting a 3-node Velo cluster in memory and redis-server');
  const velo = await startVelo('velo-mem');
  const redisPort = await freePort();
  const redisProc = spawnTracked('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--loglevel', 'warning']);
  const redis = new Redis({ host: '127.0.0.1', port: redisPort, lazyConnect: true, maxRetriesPerRequest: 1 });
  await until('redis-server accepting connections', async () => {
    try {
      await redis.connect();
      return true;
    } catch {
      return false;
    }
  });
  const client = new VeloClient({ nodes: velo.targets });
  const near = new VeloClient({ nodes: velo.targets, nearCache: true });
  const figures: Figure[] = [];
  try {
    const cache: CacheClient = client.cache('default');
    const nearCache: CacheClient = near.cache('default');
    log(`writing ${KEYS} keys to both`);
    for (let i = 0; i < KEYS; i += 100) {
      await Promise.all(Array.from({ length: Math.min(100, KEYS - i) }, (_, j) => cache.put(keyOf(i + j), valueOf(i + j))));
      const pipe = redis.pipeline();
      for (let j = i; j < Math.min(KEYS, i + 100); j++) pipe.set(keyOf(j), valueOf(j));
      await pipe.exec();
    }
    const run = async (workload: string, system: string, op: (i: number) => Promise<unknown>) => {
      await measure(Math.min(2, seconds), inFlight, op); // warm-up
      const r = await measure(seconds, inFlight, op);
      figures.push({ workload, system, ...r });
      log(`${workload}, ${system}: ${fmt(r.ops)} ops/s, p50 ${fmt(r.p50Ms)} ms, p99 ${fmt(r.p99Ms)} ms, ${r.errors} errors`);
    };
    await run('writes', 'Velo client (put)', (i) => cache.put(keyOf(i), valueOf(i)));
    await run('writes', 'ioredis (SET)', (i) => redis.set(keyOf(i), valueOf(i)));
    await run('reads', 'Velo client (get, strong)', (i) => cache.get(keyOf(i)));
    await run('reads', 'ioredis (GET)', (i) => redis.getBuffer(keyOf(i)));
    await run('local reads', 'Velo client (get, local)', (i) => cache.get(keyOf(i), { consistency: 'local' }));
    await run('local reads', 'ioredis (GET)', (i) => redis.getBuffer(keyOf(i)));
    await run('near-cache reads', 'Velo client (get, local, near cache)', (i) => nearCache.get(keyOf(i), { consistency: 'local' }));
    await run('near-cache reads', 'ioredis (GET)', (i) => redis.getBuffer(keyOf(i)));
    log(`near cache: ${JSON.stringify(near.nearCacheStats())}`);
  } finally {
    await client.close();
    await near.close();
    redis.disconnect();
    await killTracked(redisProc);
    await velo.stop();
  }
  const md = render(figures, { seconds, inFlight });
  writeFileSync(out, md);
  process.stdout.write(md);
  log(`written to ${out}`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench-client: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
