// A fast-check fuzzer of the raft port of a secure cluster of real
// processes: generated and mutated transport frames, first from connections
// that are not authenticated (past TLS with a certificate of the CA, but no
// member: before any Hello), then from an authenticated member sending
// nonsense. Every node must stay up, its memory bounded, and the cluster
// must serve afterwards. The case counts are printed.
//
// The fuzzer holds a0's certificate and speaks as a0 to n2 (a0 is the
// lowest id, so n2 accepts its connections; a newer incarnation of a0
// replaces the real a0's connection there, and keeps it out while it is
// open: what a stolen key allows). n1, n2 and n3 keep a quorum in every group
// whatever a0 says, and must serve after, n2 with the real a0 back.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encodeFrame, raftMessageToWire, decodeFrame, type FrameContent } from '../../src/transport/codec.js';
import { FrameDecoder, encodeFramed } from '../../src/transport/framing.js';
import { PROTOCOL_VERSION } from '../../src/transport/index.js';
import { encodeRequest } from '../../src/node/requests.js';
import { encodeEnvelope } from '../../src/node/wire.js';
import { groupMessageArb } from '../transport/helpers.js';
import { ProcessCluster } from './process-cluster.js';

const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));
const SEED = 16;
const CASES_PER_MODE = Number(process.env.FUZZ_CASES ?? 300);

let dir: string;
let cluster: ProcessCluster;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'velo-peer-fuzz-'));
  execFileSync(process.execPath, [MAIN, 'certs', '--out', dir, '--nodes', 'a0,n1,n2,n3,n9'], { stdio: 'pipe' });
  cluster = await ProcessCluster.start(['a0', 'n1', 'n2', 'n3'], ['--partitions', '4'], {
    nodeArgs: (id) => ['--peer-ca', join(dir, 'ca.crt'), '--peer-cert', join(dir, `${id}.crt`), '--peer-key', join(dir, `${id}.key`)],
  });
  await cluster.allReady();
}, 90_000);

afterAll(async () => {
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const file = (name: string) => readFileSync(join(dir, name), 'utf8');
const IDS = ['n1', 'n2', 'n3'];

function rssBytes(id: string): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${cluster.node(id).proc!.pid}/status`, 'utf8'))![1]) * 1024;
}

/** A TLS connection as `id` (its certificate) to the raft port of `to`; resolves once its side of the handshake is done. */
async function connectAs(id: string, to: string): Promise<tls.TLSSocket> {
  const port = Number(cluster.node(to).raft.split(':')[1]);
  const s = tls.connect({ host: '127.0.0.1', port, ca: file('ca.crt'), cert: file(`${id}.crt`), key: file(`${id}.key`), minVersion: 'TLSv1.3', servername: to, checkServerIdentity: () => undefined });
  s.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    s.once('secureConnect', resolve);
    s.once('close', () => reject(new Error('closed in the TLS handshake')));
  });
  return s;
}

/** Resolves once the other side has closed: what it sends is read and dropped, or its end would never be seen. */
const closed = (s: tls.TLSSocket) =>
  new Promise<void>((resolve) => {
    s.resume();
    if (s.destroyed) resolve();
    else s.once('close', () => resolve());
  });

// ---- what the fuzzer sends ----

const anyJson = fc.jsonValue({ maxDepth: 3 });
const ends = { sender: 'a0', receiver: 'n2' };

/** A request payload: an envelope of a real op with fields changed, any JSON, or bytes. */
const requestPayload: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.record({ key: fc.constantFrom('op', 'partition', 'ref', 'command', 'items', 'sizes', 'settings', 'after'), v: anyJson, op: fc.constantFrom('get', 'put', 'putMany', 'meta', 'putCache', 'events', 'probe', 'groups', 'export', 'memory') }).map(({ key, v, op }) =>
    encodeEnvelope({ op, partition: 0, [key]: v }),
  ),
  // A well-formed read, which n2 answers: the fuzzer must be able to reach the handler too.
  fc.string({ maxLength: 20 }).map((key) => encodeRequest({ op: 'get', partition: 0, ref: { cache: 'default', region: null, key: key || 'k' }, consistency: 'local' })),
  anyJson.map((v) => encodeEnvelope(typeof v === 'object' && v !== null && !Array.isArray(v) ? v : { v })),
  fc.uint8Array({ maxLength: 256 }),
);

/** A frame's content: raft messages from a0 (or, sometimes, from others), heartbeats, requests, responses. */
const content: fc.Arbitrary<FrameContent> = fc.record(
  {
    messages: fc.array(
      groupMessageArb.map(({ group, message }) => raftMessageToWire(group, { ...message, from: message.from === 'n1' ? 'a0' : message.from, to: 'n2' }, ends)),
      { maxLength: 4 },
    ),
    requests: fc.array(fc.record({ id: fc.nat(), payload: requestPayload }), { maxLength: 3 }),
    responses: fc.array(fc.record({ id: fc.nat(), status: fc.integer({ min: 0, max: 5 }), payload: fc.uint8Array({ maxLength: 64 }), error: fc.string({ maxLength: 20 }) }), { maxLength: 2 }),
    hello: fc.record({ protocolVersion: fc.nat(3), clusterId: fc.constantFrom('velo', 'other', ''), nodeId: fc.constantFrom('n1', 'a0', 'n9', ''), incarnation: fc.nat() }),
  },
  { requiredKeys: [] },
);

/** A frame's payload: generated, mutated (bytes flipped, cut short), or random bytes. */
const payload: fc.Arbitrary<Uint8Array> = fc.oneof(
  content.map((c) => encodeFrame(c)),
  fc.record({ c: content, flips: fc.array(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { minLength: 1, maxLength: 6 }) }).map(({ c, flips }) => {
    const b = Buffer.from(encodeFrame(c));
    for (const f of flips) if (b.length > 0) b[f.at % b.length]! ^= f.xor;
    return b;
  }),
  fc.record({ c: content, cut: fc.nat() }).map(({ c, cut }) => {
    const b = encodeFrame(c);
    return b.subarray(0, cut % (b.length + 1));
  }),
  fc.uint8Array({ maxLength: 512 }),
);

/** Whole frames of any payload: what an authenticated peer's connection is fuzzed with. */
const wholeFrame: fc.Arbitrary<Buffer> = payload.map((p) => encodeFramed(p));

/** One case from a stranger: whole frames, frames cut anywhere (header included), lying headers, raw bytes. */
const frameBytes: fc.Arbitrary<Buffer> = fc.oneof(
  wholeFrame,
  fc.record({ f: wholeFrame, cut: fc.nat() }).map(({ f, cut }) => f.subarray(0, cut % (f.length + 1))),
  fc.record({ length: fc.oneof(fc.nat(), fc.constant(0xffffffff), fc.integer({ min: 2049, max: 64 << 20 })), body: fc.uint8Array({ maxLength: 512 }) }).map(({ length, body }) => {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(length >>> 0);
    return Buffer.concat([h, body]);
  }),
  fc.uint8Array({ maxLength: 1024 }).map((b) => Buffer.from(b)),
);

async function serving(what: string): Promise<void> {
  for (const id of [...IDS, 'a0']) expect(cluster.node(id).proc?.exitCode, `${id} is up`).toBeNull();
  await cluster.allReady(IDS);
  for (const id of IDS) {
    const r = await fetch(cluster.url(id, `/v1/caches/default/items/${what}-${id}`), { method: 'PUT', body: id });
    expect(r.status).toBe(201);
    expect(await (await fetch(cluster.url(id, `/v1/caches/default/items/${what}-${id}`))).text()).toBe(id);
  }
}

describe('fuzzing the raft port', () => {
  test(`${CASES_PER_MODE} generated and mutated frames from unauthenticated connections leave every node up, bounded and serving`, async () => {
    const before = new Map(IDS.map((id) => [id, rssBytes(id)]));
    const cases = fc.sample(fc.tuple(fc.constantFrom(...IDS), frameBytes), { seed: SEED, numRuns: CASES_PER_MODE });
    let run = 0;
    for (const [to, bytes] of cases) {
      // n9: a certificate of this CA, but no member: its connection is never authenticated.
      const s = await connectAs('n9', to);
      const gone = closed(s);
      s.end(bytes);
      await gone;
      for (const id of IDS) if (cluster.node(id).proc === null || cluster.node(id).proc!.exitCode !== null) throw new Error(`case ${run} (${bytes.toString('hex').slice(0, 200)} to ${to}): ${id} is down:\n${cluster.node(id).output.join('').slice(-3000)}`);
      run++;
    }
    process.stdout.write(`peer fuzz (unauthenticated): ${run} cases (seed ${SEED})\n`);
    expect(run).toBe(CASES_PER_MODE);
    for (const id of IDS) expect(rssBytes(id) - before.get(id)!).toBeLessThan(128 << 20);
    await serving('after-unauthenticated-fuzz');
  }, 120_000);

  // Once the fuzzer stops, the real a0 (an older incarnation than the
  // fuzzer claimed, and alive) must get back into n2: the cluster serves
  // again, n2 included, within allReady's bound.
  test(`${CASES_PER_MODE} generated and mutated frames from an authenticated member (a0) leave every node up, bounded and serving`, async () => {
    const before = new Map(IDS.map((id) => [id, rssBytes(id)]));
    // Whole frames only: a frame cut short would leave n2 waiting for the rest (the idle time-out ends that, as the stranger's fuzz shows).
    const cases = fc.sample(wholeFrame, { seed: SEED + 1, numRuns: CASES_PER_MODE });
    let run = 0;
    let reconnects = 0;
    let incarnation = Date.now();
    let conn: tls.TLSSocket | null = null;
    const open = async (): Promise<tls.TLSSocket> => {
      const s = await connectAs('a0', 'n2');
      const answered = new Promise<boolean>((resolve) => {
        let got = Buffer.alloc(0);
        const onData = (d: Buffer) => {
          got = Buffer.concat([got, d]);
          if (got.length < 4 || got.length < 4 + got.readUInt32BE(0)) return;
          s.off('data', onData);
          resolve(decodeFrame(got.subarray(4, 4 + got.readUInt32BE(0)), null).hello !== null);
        };
        s.on('data', onData);
        s.once('close', () => resolve(false));
      });
      s.write(encodeFramed(encodeFrame({ hello: { protocolVersion: PROTOCOL_VERSION, clusterId: 'velo', nodeId: 'a0', incarnation: ++incarnation } })));
      expect(await answered).toBe(true); // n2 took a0's Hello: an authenticated member
      // From here on, n2's frames: the answers to the probes below.
      const decoder = new FrameDecoder(64 << 20);
      s.on('data', (d: Buffer) => {
        try {
          for (const payload of decoder.push(d)) for (const r of decodeFrame(payload, { sender: 'n2', receiver: 'a0' }).responses) answers.add(r.id);
        } catch {
          s.destroy();
        }
      });
      return s;
    };
    const answers = new Set<number>();
    for (const bytes of cases) {
      if (conn === null || conn.destroyed) {
        conn = await open();
        reconnects++;
      }
      // The case, then a well-formed request: its answer says n2 has dealt with the case (or the close says it refused it).
      const probeId = 1_000_000 + run;
      const c: tls.TLSSocket = conn;
      const settled = new Promise<void>((resolve) => {
        const done = () => {
          clearInterval(poll);
          resolve();
        };
        const poll = setInterval(() => (answers.has(probeId) || c.destroyed) && done(), 5);
        c.once('close', done);
      });
      c.write(bytes);
      c.write(encodeFramed(encodeFrame({ requests: [{ id: probeId, payload: encodeRequest({ op: 'groups', partition: -1 }) }] })));
      await settled;
      run++;
    }
    conn?.destroy();
    process.stdout.write(`peer fuzz (authenticated a0): ${run} cases on ${reconnects} connections (seed ${SEED + 1})\n`);
    expect(run).toBe(CASES_PER_MODE);
    for (const id of IDS) expect(rssBytes(id) - before.get(id)!).toBeLessThan(128 << 20);
    for (const id of [...IDS, 'a0']) {
      expect(cluster.node(id).proc?.exitCode, `${id} is up`).toBeNull();
      expect((await fetch(cluster.url(id, '/healthz'))).status).toBe(200);
    }
    await serving('after-authenticated-fuzz');
  }, 150_000);
});
