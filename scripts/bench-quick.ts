// A quick load, not the benchmark: writes then strong reads against a real
// Velo cluster of 1 or 3 processes, and the same load against a bare Fastify
// server holding a Map (the HTTP ceiling), measured in the same run.
//
//   node dist/scripts/bench-quick.js [--nodes 1|3] [--seconds 5] [--concurrency 32] [--value-bytes 256]

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort, intFlag } from './ports.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
const PEER = fileURLToPath(new URL('./bare-fastify.js', import.meta.url));

function startProcess(args: string[], readyText: string): Promise<ChildProcess> {
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    proc.stdout!.on('data', (c: Buffer) => {
      if (c.toString().includes(readyText)) resolve(proc);
    });
    proc.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
}

async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} never became ready`);
}

/** Runs `op` from `concurrency` loops for `seconds`; returns operations per second. */
async function load(seconds: number, concurrency: number, op: (i: number) => Promise<void>): Promise<number> {
  const end = Date.now() + seconds * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      for (let i = w; Date.now() < end; i += concurrency) {
        await op(i);
        done++;
      }
    }),
  );
  return done / seconds;
}

async function measure(name: string, bases: string[], seconds: number, concurrency: number, value: Uint8Array): Promise<{ writes: number; reads: number }> {
  let keys = 1000;
  const at = (i: number) => `${bases[i % bases.length]}/v1/caches/default/items/k${i % keys}`;
  let written = 0;
  const writes = await load(seconds, concurrency, async (i) => {
    const r = await fetch(at(i), { method: 'PUT', body: value as Uint8Array<ArrayBuffer> });
    if (r.status >= 300) throw new Error(`${name}: PUT answered ${r.status}: ${await r.text()}`);
    await r.arrayBuffer();
    written++;
  });
  keys = Math.min(keys, written); // read only keys that were written
  const reads = await load(seconds, concurrency, async (i) => {
    const r = await fetch(at(i));
    if (r.status !== 200) throw new Error(`${name}: GET answered ${r.status}`);
    await r.arrayBuffer();
  });
  return { writes, reads };
}

async function main(): Promise<void> {
  const nodes = intFlag('nodes', 1);
  const seconds = intFlag('seconds', 5);
  const concurrency = intFlag('concurrency', 32);
  const value = new Uint8Array(new ArrayBuffer(intFlag('value-bytes', 256))).fill(120);
  if (nodes !== 1 && nodes !== 3) throw new Error('--nodes must be 1 or 3');

  const ids = Array.from({ length: nodes }, (_, i) => `n${i + 1}`);
  const http = await Promise.all(ids.map(async () => `127.0.0.1:${await freePort()}`));
  const raft = await Promise.all(ids.map(async () => `127.0.0.1:${await freePort()}`));
  const peers = ids.map((id, i) => `${id}=${raft[i]}`).join(',');
  const procs: ChildProcess[] = [];
  try {
    // All at once: a member serves only after every peer has told it whether it is new.
    procs.push(...(await Promise.all(ids.map((id, i) => startProcess([MAIN, 'start', '--id', id, '--http', http[i]!, '--raft', raft[i]!, '--peers', peers, '--log-level', 'warn'], 'serving')))));
    for (const h of http) await waitReady(`http://${h}/readyz`);
    const velo = await measure('velo', http.map((h) => `http://${h}`), seconds, concurrency, value);
    for (const p of procs.splice(0)) p.kill('SIGKILL');

    const peerPort = await freePort();
    procs.push(await startProcess([PEER, String(peerPort)], 'listening'));
    const bare = await measure('bare fastify', [`http://127.0.0.1:${peerPort}`], seconds, concurrency, value);

    const r = (a: number, b: number) => (a / b).toFixed(3);
    console.log(`quick load: ${nodes} node(s), ${concurrency} concurrent, ${value.length}-byte values, ${seconds} s each`);
    console.log(`  velo writes        ${velo.writes.toFixed(0)}/s   (${r(velo.writes, bare.writes)} × bare fastify ${bare.writes.toFixed(0)}/s)`);
    console.log(`  velo strong reads  ${velo.reads.toFixed(0)}/s   (${r(velo.reads, bare.reads)} × bare fastify ${bare.reads.toFixed(0)}/s)`);
  } finally {
    for (const p of procs) p.kill('SIGKILL');
  }
}

main().catch((e) => {
  console.error(`bench-quick: ${(e as Error).message}`);
  process.exit(1);
});
