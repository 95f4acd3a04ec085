// Attacks on the raft port of real processes, each a regression test: a
// secure 3-node cluster (velo certs, then --peer-ca/--peer-cert/--peer-key)
// refuses every one with a warning naming the remote address, nothing
// changes (members, configurations, data), and the cluster keeps serving.
// Each attack comes from its own loopback address, so that each warning is
// its own (they are rate-limited per address).

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encodeFrame } from '../../src/transport/codec.js';
import { encodeFramed } from '../../src/transport/framing.js';
import { PROTOCOL_VERSION, transportLimits } from '../../src/transport/index.js';
import { JOIN_PROOF_MAX_SKEW_MS, makeJoinProof } from '../../src/node/join-proof.js';
import { ProcessCluster } from './process-cluster.js';
import type { ClusterView } from '../../src/node/service.js';

const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));
const IDS = ['n1', 'n2', 'n3'];

let dir: string;
let cluster: ProcessCluster;
const open: net.Socket[] = [];

/** `velo certs` as a user runs it: the cluster's CA and node certificates, n9 (a node of the same CA that is no member), and a client. */
function makeCerts(out: string, nodes: string[]): void {
  execFileSync(process.execPath, [MAIN, 'certs', '--out', out, '--nodes', nodes.join(','), '--clients', 'n1'], { stdio: 'pipe' });
}

const file = (name: string, d = dir) => readFileSync(join(d, name), 'utf8');
const cred = (id: string, d = dir) => ({ cert: file(`${id}.crt`, d), key: file(`${id}.key`, d) });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'velo-peer-attacks-'));
  makeCerts(dir, [...IDS, 'n4', 'n9']);
  makeCerts(join(dir, 'other-ca'), ['n1', 'n5']);
  cluster = await ProcessCluster.start(IDS, ['--partitions', '4'], {
    nodeArgs: (id) => {
      // n5's certificate and CA are another cluster's: it believes itself secure, but this cluster's CA never signed it.
      const d = id === 'n5' ? join(dir, 'other-ca') : dir;
      return ['--peer-ca', join(d, 'ca.crt'), '--peer-cert', join(d, `${id}.crt`), '--peer-key', join(d, `${id}.key`)];
    },
  });
  await cluster.allReady();
  await steady('before any attack');
  expect((await put('n1', 'before', 'kept')).status).toBe(201);
}, 90_000);

afterAll(async () => {
  for (const s of open) s.destroy();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const put = (node: string, key: string, body: string) => fetch(cluster.url(node, `/v1/caches/default/items/${key}`), { method: 'PUT', body });
const get = (node: string, key: string) => fetch(cluster.url(node, `/v1/caches/default/items/${key}`));
const view = async (node: string) => (await (await fetch(cluster.url(node, '/v1/cluster'))).json()) as ClusterView;

/** What an attack must not change: who the members are and where, and every group's configuration. */
async function shape(node: string): Promise<string> {
  const v = await view(node);
  return JSON.stringify({
    members: v.members.map((m) => [m.id, m.http, m.raft, m.status]),
    partitions: v.partitions.map((p) => [p.id, [...p.voters].sort(), [...p.learners].sort()]),
    metadata: v.metadata && [[...v.metadata.voters].sort(), [...v.metadata.learners].sort()],
  });
}

let baseline = '';
/** Every node sees every member up, every partition led, and the same shape as before the attacks. */
async function steady(what: string): Promise<void> {
  await cluster.until(`a steady cluster ${what}`, async () => {
    const shapes = new Set<string>();
    for (const id of IDS) {
      const v = await view(id);
      if (v.members.some((m) => m.state !== 'up') || v.partitions.some((p) => p.leader === null) || v.metadata?.leader == null) return false;
      shapes.add(await shape(id));
    }
    return shapes.size === 1;
  });
  const now = await shape('n1');
  if (baseline === '') baseline = now;
  expect(now).toBe(baseline);
}

/** After an attack: nothing changed, and every node serves reads and writes. */
async function stillServing(what: string): Promise<void> {
  await steady(`after ${what}`);
  for (const id of IDS) {
    expect((await put(id, `after-${what.replace(/\W+/g, '-')}-${id}`, id)).status).toBe(201);
    const r = await get(id, 'before');
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('kept');
  }
}

function raftPort(id: string): number {
  return Number(cluster.node(id).raft.split(':')[1]);
}

function hello(nodeId: string, incarnation: number): Buffer {
  return encodeFramed(encodeFrame({ hello: { protocolVersion: PROTOCOL_VERSION, clusterId: 'velo', nodeId, incarnation } }));
}

/** A plain TCP connection from `localAddress` (any 127.x.y.z is this machine). */
async function tcpFrom(localAddress: string, port: number): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port, localAddress });
  open.push(s);
  s.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('close', () => reject(new Error('closed before connecting')));
  });
  return s;
}

/** A TLS connection with a certificate, trusting the cluster's CA (and another's, if given); resolves once its side of the handshake is done. */
async function tlsFrom(localAddress: string, port: number, c: { cert: string; key: string }, extraCa = ''): Promise<tls.TLSSocket> {
  // localAddress is a net.connect option that tls.connect passes on; its type leaves it out.
  const options = { host: '127.0.0.1', port, localAddress, ca: file('ca.crt') + extraCa, ...c, minVersion: 'TLSv1.3', servername: 'n2', checkServerIdentity: () => undefined } as tls.ConnectionOptions;
  const s = tls.connect(options);
  open.push(s);
  s.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    s.once('secureConnect', resolve);
    s.once('close', () => reject(new Error('closed before the TLS handshake completed')));
  });
  return s;
}

/** Resolves with what the other side sent once it has closed the socket. */
function closed(s: net.Socket): Promise<Buffer> {
  const got: Buffer[] = [];
  return new Promise((resolve) => {
    s.on('data', (d: Buffer) => got.push(d));
    if (s.destroyed) resolve(Buffer.concat(got));
    s.once('close', () => resolve(Buffer.concat(got)));
  });
}

const addMember = (body: object) => fetch(cluster.url('n1', '/v1/cluster/members'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** The node's warn lines (pino level 40) that mention `re`, from its stderr. */
function warnings(id: string, re: RegExp): string[] {
  return cluster
    .node(id)
    .output.join('')
    .split('\n')
    .filter((l) => l.includes('"level":40') && re.test(l));
}

async function warned(id: string, re: RegExp): Promise<void> {
  await cluster.until(`${id} to warn about ${re}`, async () => warnings(id, re).length > 0, 10_000);
}

function rssBytes(id: string): number {
  const status = readFileSync(`/proc/${cluster.node(id).proc!.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

describe('the raft port of a secure cluster', () => {
  test('a Hello with a member id taken from /v1/cluster, over plain TCP, never gets past TLS', async () => {
    const s = await tcpFrom('127.0.0.2', raftPort('n2'));
    const gone = closed(s);
    s.write(hello('n1', Date.now()));
    const answer = await gone;
    // Nothing about the cluster comes back: not a frame, not a cluster id.
    expect(answer.includes(Buffer.from('velo'))).toBe(false);
    await warned('n2', /refused a TLS handshake from 127\.0\.0\.2:\d+/);
    await stillServing('a plain Hello');
  });

  test('three Hellos claiming a newer incarnation of n1 leave every partition led and n1 connected', async () => {
    for (let i = 0; i < 3; i++) {
      const s = await tcpFrom('127.0.0.3', raftPort(IDS[i]!));
      const gone = closed(s);
      s.write(hello('n1', Date.now() + 1e9));
      await gone;
    }
    await warned('n2', /127\.0\.0\.3/);
    await stillServing('newer incarnations');
  });

  test("a valid certificate (n3's) whose Hello claims n1 is refused, and says nothing about the cluster", async () => {
    const s = await tlsFrom('127.0.0.4', raftPort('n2'), cred('n3'));
    const gone = closed(s);
    s.write(hello('n1', Date.now() + 1e9));
    const answer = await gone;
    expect(answer.includes(Buffer.from('velo'))).toBe(false);
    expect(answer.toString('latin1')).toMatch(/the Hello claims "n1", but the certificate names n3/);
    // In the JSON log line the quotes are escaped.
    await warned('n2', /refused the connection from 127\.0\.0\.4:\d+: the Hello claims \\"n1\\", but the certificate names n3/);
    await stillServing('a stolen id with a valid certificate');
  });

  test('a certificate for n1 from another CA is refused in the TLS handshake', async () => {
    const s = await tlsFrom('127.0.0.5', raftPort('n3'), cred('n1', join(dir, 'other-ca')), file('ca.crt', join(dir, 'other-ca')));
    const gone = closed(s);
    s.write(hello('n1', Date.now() + 1e9));
    await gone;
    await warned('n3', /closing the connection from 127\.0\.0\.5:\d+: its certificate is not one the peer CA signed/);
    await stillServing('a certificate from another CA');
  });

  test('a client certificate that names n1 is no peer certificate', async () => {
    const s = await tlsFrom('127.0.0.6', raftPort('n2'), { cert: file('client-n1.crt'), key: file('client-n1.key') });
    const gone = closed(s);
    s.write(hello('n1', Date.now() + 1e9));
    await gone;
    await warned('n2', /127\.0\.0\.6:\d+: the certificate names no node/);
    await stillServing('a client certificate');
  });

  test('frames of 60 MiB announced before the Hello are refused from their header: the memory stays flat', async () => {
    const before = rssBytes('n2');
    const header = Buffer.alloc(4);
    header.writeUInt32BE(60 << 20);
    const junk = Buffer.alloc(1 << 20, 1);
    for (let i = 0; i < 10; i++) {
      // Past the TLS handshake with a real node certificate: the frame layer itself must refuse.
      const s = await tlsFrom('127.0.0.7', raftPort('n2'), cred('n3'));
      const gone = closed(s);
      s.write(header);
      s.write(junk);
      await gone;
    }
    await warned('n2', new RegExp(`127\\.0\\.0\\.7:\\d+: frame of ${60 << 20} bytes exceeds the limit of ${transportLimits.PRE_AUTH_MAX_FRAME_BYTES}`));
    expect(rssBytes('n2') - before).toBeLessThan(64 << 20);
    await stillServing('big frames before the Hello');
  });

  test('a hundred idle sockets from a peer’s own address neither lock a new peer connection out nor outlive the handshake time-out', async () => {
    const before = rssBytes('n3');
    const idle: net.Socket[] = [];
    const gone: Promise<Buffer>[] = [];
    for (let i = 0; i < 100; i++) {
      const s = await tcpFrom('127.0.0.1', raftPort('n3'));
      idle.push(s);
      gone.push(closed(s));
    }
    // Each newcomer closed the oldest at once (well before the handshake time-out): only the newest few are still held.
    await cluster.until('the oldest idle sockets closed', async () => idle.filter((s) => !s.destroyed).length <= transportLimits.MAX_PRE_AUTH_CONNECTIONS_PER_ADDRESS, transportLimits.HANDSHAKE_TIMEOUT_MS / 2);
    // A newcomer from the same address still gets through TLS to its Hello check (n9 is of this CA, but no member).
    const startedMs = Date.now();
    const newcomer = await tlsFrom('127.0.0.1', raftPort('n3'), cred('n9'));
    const refused = closed(newcomer);
    newcomer.write(hello('n9', 1));
    expect((await refused).toString('latin1')).toMatch(/n9 is not a peer of n3/);
    expect(Date.now() - startedMs).toBeLessThan(transportLimits.HANDSHAKE_TIMEOUT_MS);
    // The rest are closed by the handshake time-out, without the attacker doing anything.
    await Promise.all(gone);
    expect(rssBytes('n3') - before).toBeLessThan(64 << 20);
    await stillServing('idle sockets');
  });
});

describe('the raft port without peer TLS (loopback)', () => {
  let plain: ProcessCluster;
  beforeAll(async () => {
    plain = await ProcessCluster.start(['p1', 'p2'], ['--partitions', '2', '--replicas', '2']);
    await plain.allReady();
  }, 60_000);
  afterAll(async () => {
    await plain?.stop();
  });

  test('twenty connections announcing 60 MiB frames before any Hello leave the memory flat and the nodes serving', async () => {
    const pid = plain.node('p2').proc!.pid!;
    const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
    const before = rss();
    const header = Buffer.alloc(4);
    header.writeUInt32BE(60 << 20);
    const junk = Buffer.alloc(1 << 20, 1);
    const port = Number(plain.node('p2').raft.split(':')[1]);
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        const s = await tcpFrom('127.0.0.8', port);
        const gone = closed(s);
        s.write(header);
        s.write(junk);
        await gone;
      }),
    );
    expect(rss() - before).toBeLessThan(64 << 20);
    // One warn line per address per 10 s: with 20 connections from one address, the first line may be
    // the eviction of the oldest (8 unauthenticated per address) instead of a frame's size, and the other
    // stays unlogged for the whole wait (a clean-clone CI run failed on that). Either is the refusal.
    const warnedPlain = () =>
      plain.node('p2').output.join('').split('\n').some((l) => l.includes('"level":40') && /127\.0\.0\.8:\d+: (frame of \d+ bytes exceeds the limit of 2048|too many unauthenticated connections)/.test(l));
    await plain.until('p2 to warn about the frames', async () => warnedPlain(), 10_000);
    for (const id of ['p1', 'p2']) {
      expect((await fetch(plain.url(id, `/v1/caches/default/items/plain-${id}`), { method: 'PUT', body: id })).status).toBe(201);
    }
  });
});

describe('joining a secure cluster', () => {
  test('a registration without a proof of identity, or with one for another node or another registration, is refused 403 and changes nothing', async () => {
    const claim = { id: 'n6', raft: '127.0.0.1:1', http: '127.0.0.1:2', member: 'n6' };
    const noProof = await addMember(claim);
    expect(noProof.status).toBe(403);
    expect(await noProof.json()).toMatchObject({ error: { code: 'forbidden', message: expect.stringMatching(/did not prove it is n6: no proof of identity/) } });
    // n3's certificate and key, signing a registration of n6.
    const n3 = { ca: file('ca.crt'), ...cred('n3') };
    const asN6 = await addMember({ ...claim, proof: makeJoinProof(n3, 'velo', claim, Date.now()) });
    expect(asN6.status).toBe(403);
    expect(((await asN6.json()) as { error: { message: string } }).error.message).toMatch(/the certificate names n3, not n6/);
    // n3's own valid proof, replayed with another raft address (to draw its traffic elsewhere).
    const own = { id: 'n3', raft: cluster.node('n3').raft, http: cluster.node('n3').http, member: 'n3' };
    const proof = makeJoinProof(n3, 'velo', own, Date.now());
    const moved = await addMember({ ...own, raft: '127.0.0.9:7999', proof });
    expect(moved.status).toBe(403);
    expect(((await moved.json()) as { error: { message: string } }).error.message).toMatch(/the signature does not cover this registration/);
    const stale = await addMember({ ...own, proof: makeJoinProof(n3, 'velo', own, Date.now() - JOIN_PROOF_MAX_SKEW_MS - 60_000) });
    expect(stale.status).toBe(403);
    await stillServing('refused registrations');
  });

  test('a node whose certificate another CA signed cannot join', async () => {
    await expect(cluster.join('n5', `http://${cluster.node('n1').http}`)).rejects.toThrow(/exited[\s\S]*refused: forbidden: this cluster runs peer TLS and the joining node did not prove it is n5: the certificate is not one the peer CA signed/);
    cluster.nodes.delete('n5');
    await stillServing('a refused join');
  });

  test('a node with a certificate of this CA joins with no token, proving its id, and takes replicas', async () => {
    await cluster.join('n4', `http://${cluster.node('n1').http}`);
    await cluster.until('n4 an active member holding replicas', async () => {
      const v = await view('n1');
      return v.members.some((m) => m.id === 'n4' && m.status === 'active' && m.state === 'up' && m.replicas > 0);
    }, 60_000);
    expect((await put('n4', 'via-n4', 'joined')).status).toBe(201);
    const r = await get('n1', 'via-n4');
    expect(await r.text()).toBe('joined');
  }, 90_000);
});
