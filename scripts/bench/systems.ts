// Starting and stopping each system under test: a 3-node Velo cluster (in
// memory or with --data-dir, and in memory set up securely: peer mutual TLS,
// HTTPS and an admin token), a 3-member etcd cluster (data on tmpfs or on
// disk), and the bare Fastify ceiling. All on loopback.
import type { ChildProcess } from 'node:child_process';
import { readFileSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { certFiles, writeCertificates } from '../../src/cli/certs.js';
import { fetchTrusting } from '../../src/https/trust.js';
import type { Fetch } from '../../src/https/trust.js';
import { keyName, valueFor } from './lua.js';
import type { Protocol } from './lua.js';
import { freePort } from '../ports.js';
import { killTracked, removeTempDir, spawnTracked, tempDir } from './procs.js';
import { until } from '../poll.js';

export type SystemName = 'velo-mem' | 'velo-secure' | 'velo-disk' | 'etcd-tmpfs' | 'etcd-disk' | 'ceiling';

// velo-secure right after velo-mem, so that the two figures it is compared with are measured close together.
export const SYSTEM_NAMES: readonly SystemName[] = ['velo-mem', 'velo-secure', 'velo-disk', 'etcd-tmpfs', 'etcd-disk', 'ceiling'];

export const SYSTEM_LABELS: Record<SystemName, string> = {
  'velo-mem': 'Velo, 3 nodes in memory',
  'velo-secure': 'Velo, 3 nodes in memory, HTTPS + token, peer mutual TLS',
  'velo-disk': 'Velo, 3 nodes with --data-dir',
  'etcd-tmpfs': 'etcd, 3 members on tmpfs',
  'etcd-disk': 'etcd, 3 members on disk',
  ceiling: 'bare Fastify + Map (ceiling)',
};

export interface RunningSystem {
  name: SystemName;
  protocol: Protocol;
  /** How wrk reaches the nodes. */
  scheme: 'http' | 'https';
  /** The bearer token every request carries, when the system demands one. */
  token?: string;
  /** host:port of each node, in the order the load is spread over them (three entries). */
  targets: string[];
  /** The node processes' ids. */
  pids: number[];
  /** Writes every key of 1..keys with its value of `valueBytes`, so that reads find them. */
  prefill(keys: number, valueBytes: number): Promise<void>;
  /** Run between figures (etcd compacts its history there). */
  betweenFigures(): Promise<void>;
  stop(): Promise<void>;
}

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));
const CEILING = fileURLToPath(new URL('../bare-fastify.js', import.meta.url));
const TMPFS_MAGIC = 0x01021994;

/** A parent directory on a real disk (not tmpfs) for the on-disk systems. */
export function diskParent(): string {
  for (const dir of [tmpdir(), '/var/tmp']) {
    try {
      if (statfsSync(dir).type !== TMPFS_MAGIC) return dir;
    } catch {
      // try the next
    }
  }
  return '/var/tmp';
}

/** A parent directory on tmpfs, for etcd's in-memory row. */
export function tmpfsParent(): string {
  return '/dev/shm';
}

/** Keeps the last lines a process wrote, for the message when it dies. */
function tail(proc: ChildProcess): () => string {
  let text = '';
  const keep = (c: Buffer) => {
    text = (text + c.toString()).slice(-4000);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  return () => text.trim();
}

/** Resolves when `proc` prints `readyText` on stdout; rejects if it exits first. */
function printed(proc: ChildProcess, readyText: string, what: string, output: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    proc.stdout!.on('data', (c: Buffer) => {
      if (c.toString().includes(readyText)) resolve();
    });
    proc.once('exit', (code, signal) => reject(new Error(`${what} exited (${code ?? signal}) before serving:\n${output()}`)));
  });
}


/** Runs `op` for 1..count from `concurrency` loops. */
async function eachConcurrently(count: number, concurrency: number, op: (i: number) => Promise<void>): Promise<void> {
  let next = 1;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next <= count) await op(next++);
    }),
  );
}

async function expectOk(r: Response, what: string): Promise<void> {
  const body = await r.text();
  if (r.status >= 300) throw new Error(`${what} answered ${r.status}: ${body.slice(0, 200)}`);
}

function stopAll(procs: ChildProcess[], dir: string | null): () => Promise<void> {
  return async () => {
    await Promise.all(procs.map((p) => killTracked(p)));
    if (dir) removeTempDir(dir);
  };
}

/** What velo-secure adds to each node's command line, and how a client reaches it. */
interface Secure {
  args(id: string): string[];
  tokenFile: string;
  fetch: Fetch;
}

/**
 * The certificates of a secure cluster in `dir`, made as README "Running it
 * securely" makes them (`velo certs`'s writeCertificates); the nodes generate
 * the admin token into the file they share.
 */
async function secureSetUp(dir: string, ids: string[]): Promise<Secure> {
  await writeCertificates(dir, ids, ['127.0.0.1', 'localhost'], []);
  const ca = join(dir, certFiles.caCert);
  const tokenFile = join(dir, 'admin.token');
  return {
    args: (id) => {
      const [cert, key] = [join(dir, certFiles.nodeCert(id)), join(dir, certFiles.nodeKey(id))];
      return ['--peer-ca', ca, '--peer-cert', cert, '--peer-key', key, '--tls-cert', cert, '--tls-key', key, '--admin-token-file', tokenFile];
    },
    tokenFile,
    fetch: fetchTrusting(readFileSync(ca, 'utf8')),
  };
}

/** Three Velo nodes started together (a member serves once every peer has answered), ready on /readyz. */
export async function startVelo(name: 'velo-mem' | 'velo-disk' | 'velo-secure', extraArgs: string[] = []): Promise<RunningSystem> {
  const ids = ['n1', 'n2', 'n3'];
  const http = await Promise.all(ids.map(async () => `127.0.0.1:${await freePort()}`));
  const raft = await Promise.all(ids.map(async () => `127.0.0.1:${await freePort()}`));
  const peers = ids.map((id, i) => `${id}=${raft[i]}`).join(',');
  const dir = name === 'velo-disk' ? tempDir(diskParent(), 'velo-bench-') : name === 'velo-secure' ? tempDir(tmpdir(), 'velo-bench-certs-') : null;
  const secure = name === 'velo-secure' ? await secureSetUp(dir!, ids) : null;
  const scheme = secure ? 'https' : 'http';
  const get = secure?.fetch ?? fetch;
  const procs: ChildProcess[] = [];
  const stop = stopAll(procs, dir);
  try {
    await Promise.all(
      ids.map((id, i) => {
        const args = [MAIN, 'start', '--log-level', 'warn', '--id', id, '--http', http[i]!, '--raft', raft[i]!, '--peers', peers, ...extraArgs];
        if (name === 'velo-disk') args.push('--data-dir', join(dir!, id));
        if (secure) args.push(...secure.args(id));
        const proc = spawnTracked(process.execPath, args);
        procs.push(proc);
        return printed(proc, `serving ${scheme}://`, `velo ${id}`, tail(proc));
      }),
    );
    await until('every Velo node ready', async () => {
      for (const h of http) if ((await get(`${scheme}://${h}/readyz`)).status !== 200) return false;
      return true;
    });
  } catch (e) {
    await stop();
    throw e;
  }
  const token = secure ? readFileSync(secure.tokenFile, 'utf8').trim() : undefined;
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  if (token) {
    // A node answers 503 until the admin token is in the cluster metadata it holds: wait until each one takes it.
    await until('every Velo node accepting the admin token', async () => {
      for (const h of http) if ((await get(`${scheme}://${h}/v1/caches`, { headers })).status !== 200) return false;
      return true;
    });
  }
  return {
    name,
    protocol: 'velo',
    scheme,
    ...(token ? { token } : {}),
    targets: http,
    pids: procs.map((p) => p.pid!),
    prefill: (keys, valueBytes) =>
      eachConcurrently(keys, 32, async (i) => {
        const r = await get(`${scheme}://${http[i % http.length]}/v1/caches/default/items/${keyName(i)}`, { method: 'PUT', headers, body: valueFor(i, valueBytes) });
        await expectOk(r, `PUT ${keyName(i)}`);
      }),
    betweenFigures: async () => {},
    stop,
  };
}

/** The bare Fastify server; the load's three targets are its one address. */
export async function startCeiling(): Promise<RunningSystem> {
  const port = await freePort();
  const proc = spawnTracked(process.execPath, [CEILING, String(port)]);
  await printed(proc, 'listening', 'bare fastify', tail(proc));
  const host = `127.0.0.1:${port}`;
  return {
    name: 'ceiling',
    protocol: 'velo',
    scheme: 'http',
    targets: [host, host, host],
    pids: [proc.pid!],
    prefill: (keys, valueBytes) =>
      eachConcurrently(keys, 32, async (i) => {
        const r = await fetch(`http://${host}/v1/caches/default/items/${keyName(i)}`, { method: 'PUT', body: valueFor(i, valueBytes) });
        await expectOk(r, `PUT ${keyName(i)}`);
      }),
    betweenFigures: async () => {},
    stop: stopAll([proc], null),
  };
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

async function etcdPost(host: string, path: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(`http://${host}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`etcd ${path} answered ${r.status}: ${text.slice(0, 200)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

/**
 * Three etcd members on loopback, data under tmpfs or a real disk. The backend
 * quota is raised to 8 GiB and the history compacted between figures, so that
 * the value-size sweep (up to 64 KiB values) never hits etcd's space alarm.
 */
export async function startEtcd(name: 'etcd-tmpfs' | 'etcd-disk'): Promise<RunningSystem> {
  const ids = ['e1', 'e2', 'e3'];
  const client = await Promise.all(ids.map(async () => `127.0.0.1:${await freePort()}`));
  const peer = await Promise.all(ids.map(async () => `127.0.0.1:${await freePort()}`));
  const cluster = ids.map((id, i) => `${id}=http://${peer[i]}`).join(',');
  const dir = tempDir(name === 'etcd-tmpfs' ? tmpfsParent() : diskParent(), 'velo-bench-etcd-');
  let stopping = false;
  const procs = ids.map((id, i) => {
    const proc = spawnTracked('etcd', [
      '--name', id,
      '--data-dir', join(dir, id),
      '--listen-client-urls', `http://${client[i]}`,
      '--advertise-client-urls', `http://${client[i]}`,
      '--listen-peer-urls', `http://${peer[i]}`,
      '--initial-advertise-peer-urls', `http://${peer[i]}`,
      '--initial-cluster', cluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', 'velo-bench',
      '--quota-backend-bytes', String(8 * 2 ** 30),
      '--logger', 'zap',
      '--log-level', 'error',
    ]);
    const output = tail(proc);
    proc.once('exit', (code, signal) => {
      if (!stopping) console.error(`etcd ${id} exited (${code ?? signal}):\n${output()}`);
    });
    return proc;
  });
  await until('every etcd member healthy', async () => {
    for (const h of client) {
      const r = await fetch(`http://${h}/health`);
      if (!(((await r.json()) as { health?: string }).health === 'true')) return false;
    }
    return true;
  });
  const stop = stopAll(procs, dir);
  let compacted = '';
  return {
    name,
    protocol: 'etcd',
    scheme: 'http',
    targets: client,
    pids: procs.map((p) => p.pid!),
    prefill: async (keys, valueBytes) => {
      const value = b64(valueFor(1, valueBytes)); // as the wrk script writes it
      await eachConcurrently(keys, 32, async (i) => {
        await etcdPost(client[i % client.length]!, '/v3/kv/put', { key: b64(keyName(i)), value });
      });
    },
    betweenFigures: async () => {
      const range = await etcdPost(client[0]!, '/v3/kv/range', { key: b64(keyName(1)) });
      const revision = (range.header as { revision: string }).revision;
      if (revision === compacted) return; // nothing written since the last compaction
      await etcdPost(client[0]!, '/v3/kv/compaction', { revision, physical: true });
      compacted = revision;
    },
    stop: async () => {
      stopping = true;
      await stop();
    },
  };
}

export function startSystem(name: SystemName): Promise<RunningSystem> {
  switch (name) {
    case 'velo-mem':
    case 'velo-disk':
    case 'velo-secure':
      return startVelo(name);
    case 'etcd-tmpfs':
    case 'etcd-disk':
      return startEtcd(name);
    case 'ceiling':
      return startCeiling();
  }
}
