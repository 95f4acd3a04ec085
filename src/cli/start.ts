// `velo start`: one node, HTTP and raft listeners, until SIGINT or SIGTERM
// (API.md "Starting a node").

import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { pino } from 'pino';
import { installDrain } from '../../api/drain.js';
import { buildServer, DEFAULT_MAX_VALUE_BYTES } from '../../api/server.js';
import { DEFAULT_HTTP_LIMITS } from '../../api/http-limits.js';
import { VeloNode, splitHostPort } from '../node/velo-node.js';
import type { VeloNodeOptions } from '../node/velo-node.js';
import type { Logger } from 'pino';
import { CliError, UsageError, intFlag, logLevelFlag, parseArgs } from './args.js';
import type { LogLevel } from './args.js';
import { followRebalance } from './progress.js';
import { PEER_TLS_FLAGS, peerTlsFlags } from './peer-tls.js';
import type { PeerTls } from '../transport/index.js';
import { formatBytes, parseByteSize } from './byte-size.js';
import { MIN_MAX_MEMORY_BYTES, defaultMaxMemoryBytes } from '../node/memory-cap.js';
import { browserGuardApplies, checkProtectedMode } from './protected-mode.js';
import type { Exposure } from './protected-mode.js';
import { readCa, serverTlsOf } from './trust.js';
import { advertisedHttp, fetchTrusting } from '../https/index.js';

export interface StartFlags {
  id: string;
  http: string;
  raft: string;
  peers: Map<string, string>;
  partitions: number;
  replicas: number;
  maxValueBytes: number;
  requestTimeoutMs: number;
  /** Log entries a partition keeps before it snapshots and deletes them. */
  snapshotEntries: number;
  /** ... or once the entries since its last snapshot hold this many bytes. */
  snapshotBytes: number;
  clusterId: string;
  logLevel: LogLevel;
  /** LevelDB persistence under this directory; null: memory only. */
  dataDir: string | null;
  /** HTTP URL of a running member: join its cluster (null: bootstrap from --peers). */
  join: string | null;
  maxMoves: number;
  moveBytesPerSec: number;
  /** 0: members that go down are never replaced automatically. */
  replaceAfterMs: number;
  /** What the process does once the node learns it is no longer a member: exit (code 3), or keep running and refuse requests. */
  onRemoved: 'exit' | 'wait';
  /** TEST ONLY: strong reads from the local replica (stale), for proving the fault harness catches them. */
  unsafeStaleStrongReads: boolean;
  /** Mutual TLS on the raft port (--peer-ca/--peer-cert/--peer-key); null: plain TCP. */
  peerTls: PeerTls | null;
  /** The node-wide memory cap on accounted item bytes (--max-memory). */
  maxMemoryBytes: number;
  /** The cluster's first admin token (created 0600 when missing); with it the node demands tokens. */
  adminTokenFile: string | null;
  /** /metrics answers without a token even where tokens are demanded. */
  metricsPublic: boolean;
  /** Serve HTTPS with this certificate (PEM file) and key; both or neither. */
  tlsCertFile: string | null;
  tlsKeyFile: string | null;
  /** The CA this node trusts when it calls another node's HTTPS API (joining); else VELO_CA's file. */
  caFile: string | null;
  /** What other nodes and clients are told this node's HTTP and raft addresses are; needed when listening on 0.0.0.0 or ::. */
  advertiseHttp: string | null;
  advertiseRaft: string | null;
  /** Start even where protected mode refuses (an address off loopback without credentials), with a warning at every start. */
  insecure: boolean;
}

const SPEC = {
  id: 'value',
  http: 'value',
  raft: 'value',
  peers: 'value',
  partitions: 'value',
  replicas: 'value',
  'max-value-bytes': 'value',
  'request-timeout-ms': 'value',
  'snapshot-entries': 'value',
  'snapshot-bytes': 'value',
  'cluster-id': 'value',
  'log-level': 'value',
  'data-dir': 'value',
  join: 'value',
  'max-moves': 'value',
  'move-bytes-per-sec': 'value',
  'replace-after-ms': 'value',
  'on-removed': 'value',
  'unsafe-stale-strong-reads-for-testing': 'switch',
  'max-memory': 'value',
  'admin-token-file': 'value',
  'metrics-public': 'switch',
  ...PEER_TLS_FLAGS,
  'tls-cert': 'value',
  'tls-key': 'value',
  ca: 'value',
  'advertise-http': 'value',
  'advertise-raft': 'value',
  insecure: 'switch',
} as const;

function hostPort(flag: string, addr: string): string {
  try {
    splitHostPort(addr);
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}`);
  }
  return addr;
}

export function parseStartFlags(argv: string[]): StartFlags {
  const { flags } = parseArgs(argv, SPEC, 0);
  const dataDir = flags.get('data-dir');
  if (dataDir !== undefined && dataDir.trim() === '') throw new UsageError('--data-dir must name a directory');
  const join = flags.get('join') ?? null;
  if (join !== null) {
    let url: URL;
    try {
      url = new URL(join);
    } catch {
      throw new UsageError(`--join must be the HTTP URL of a running member (http://HOST:PORT), got "${join}"`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--join must be an http:// URL, got "${join}"`);
    for (const f of ['peers', 'partitions', 'replicas']) if (flags.has(f)) throw new UsageError(`--join cannot be combined with --${f}: a joining node takes it from the cluster`);
  }
  const adminTokenFile = flags.get('admin-token-file') ?? null;
  if (adminTokenFile !== null && adminTokenFile.trim() === '') throw new UsageError('--admin-token-file must name a file');
  const onRemoved = flags.get('on-removed') ?? 'exit';
  if (onRemoved !== 'exit' && onRemoved !== 'wait') throw new UsageError(`--on-removed is exit or wait, got "${onRemoved}"`);
  const id = flags.get('id') ?? 'n1';
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) throw new UsageError(`--id must be 1–64 of A–Z a–z 0–9 . _ -, got "${id}"`);
  const http = hostPort('--http', flags.get('http') ?? '127.0.0.1:7070');
  const raft = hostPort('--raft', flags.get('raft') ?? '127.0.0.1:7170');
  const advertiseHttp = flags.has('advertise-http') ? hostPort('--advertise-http', flags.get('advertise-http')!) : null;
  const advertiseRaft = flags.has('advertise-raft') ? hostPort('--advertise-raft', flags.get('advertise-raft')!) : null;
  const peers = new Map<string, string>();
  if (flags.has('peers')) {
    for (const part of flags.get('peers')!.split(',')) {
      const m = /^([A-Za-z0-9._-]{1,64})=(.+)$/.exec(part.trim());
      if (!m) throw new UsageError(`--peers entries are ID=HOST:PORT, got "${part}"`);
      if (peers.has(m[1]!)) throw new UsageError(`--peers names ${m[1]} twice`);
      peers.set(m[1]!, hostPort(`--peers ${m[1]}`, m[2]!));
    }
    if (!peers.has(id)) throw new UsageError(`--peers must include this node (${id})`);
  } else {
    peers.set(id, raft);
  }
  const listenRaft = flags.has('raft') ? raft : peers.get(id)!;
  // This node's own entry is what /cluster reports as its raft address.
  if (advertiseRaft !== null) peers.set(id, advertiseRaft);
  return {
    id,
    http,
    // Without --raft, listen where --peers says this node is.
    raft: listenRaft,
    peers,
    partitions: intFlag(flags, 'partitions', 16, 1, 4096),
    replicas: intFlag(flags, 'replicas', 3, 1, 9),
    maxValueBytes: intFlag(flags, 'max-value-bytes', DEFAULT_MAX_VALUE_BYTES, 1, 64 << 20),
    requestTimeoutMs: intFlag(flags, 'request-timeout-ms', 5000, 10, 600_000),
    snapshotEntries: intFlag(flags, 'snapshot-entries', 10_000, 10, 10_000_000),
    snapshotBytes: intFlag(flags, 'snapshot-bytes', 64 << 20, 1024, 2 ** 32),
    clusterId: flags.get('cluster-id') ?? 'velo',
    logLevel: logLevelFlag(flags, 'info'),
    dataDir: dataDir ?? null,
    join,
    maxMoves: intFlag(flags, 'max-moves', 2, 1, 64),
    moveBytesPerSec: intFlag(flags, 'move-bytes-per-sec', 16 << 20, 65536, 2 ** 40),
    replaceAfterMs: intFlag(flags, 'replace-after-ms', 0, 0, 7 * 24 * 3600 * 1000),
    onRemoved,
    unsafeStaleStrongReads: flags.has('unsafe-stale-strong-reads-for-testing'),
    peerTls: peerTlsFlags(flags, id),
    maxMemoryBytes: flags.has('max-memory') ? parseByteSize('max-memory', flags.get('max-memory')!, MIN_MAX_MEMORY_BYTES, 2 ** 50) : defaultMaxMemoryBytes(),
    adminTokenFile,
    metricsPublic: flags.has('metrics-public'),
    tlsCertFile: flags.get('tls-cert') ?? null,
    tlsKeyFile: flags.get('tls-key') ?? null,
    caFile: flags.get('ca') ?? null,
    advertiseHttp,
    advertiseRaft,
    insecure: flags.has('insecure'),
  };
}

/** What the node exposes, for protected mode; `serveHttp` false for an embedded node without the HTTP API. */
export function exposureOf(flags: StartFlags, serveHttp = true): Exposure {
  return {
    http: serveHttp ? flags.http : null,
    advertiseHttp: flags.advertiseHttp,
    raft: flags.raft,
    advertiseRaft: flags.advertiseRaft,
    tokens: flags.adminTokenFile !== null,
    peerTls: flags.peerTls !== null,
    httpsServed: flags.tlsCertFile !== null,
    insecure: flags.insecure,
  };
}

/** The HTTP address this node advertises: --advertise-http or --http, as an https:// URL when it serves TLS. */
export function advertisedHttpOf(flags: StartFlags): string {
  return advertisedHttp(flags.advertiseHttp ?? flags.http, flags.tlsCertFile !== null);
}

/** One line for a listen that failed: which address, which role, why. */
export function listenError(e: unknown, addr: string, what: string): CliError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return new CliError(`${addr} is already in use (${what})`);
  if (code === 'EACCES') return new CliError(`no permission to listen on ${addr} (${what})`);
  return new CliError(`cannot listen on ${addr} (${what}): ${code ?? (e as Error).message}`);
}

/** Fails fast, before any peer is contacted, when `addr` cannot be listened on. */
export function checkFree(addr: string, what: string): Promise<void> {
  const [host, port] = splitHostPort(addr);
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', (e) => reject(listenError(e, addr, what)));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve()));
  });
}

/**
 * The node's options from `velo start`'s flags (also embedded mode's, which
 * takes the same ones). `advertisedHttp`: what /cluster tells others this
 * node serves HTTP on ('' when it serves none).
 */
export function nodeOptions(flags: StartFlags, logger: Logger, advertised: string = advertisedHttpOf(flags)): VeloNodeOptions {
  return {
    id: flags.id,
    http: advertised,
    raft: flags.raft,
    ...(flags.advertiseRaft !== null ? { advertiseRaft: flags.advertiseRaft } : {}),
    peers: flags.peers,
    partitions: flags.partitions,
    replicas: flags.replicas,
    requestTimeoutMs: flags.requestTimeoutMs,
    snapshotEveryEntries: flags.snapshotEntries,
    snapshotEveryBytes: flags.snapshotBytes,
    clusterId: flags.clusterId,
    logger,
    ...(flags.dataDir ? { dataDir: flags.dataDir } : {}),
    unsafeStaleStrongReads: flags.unsafeStaleStrongReads,
    ...(flags.peerTls ? { peerTls: flags.peerTls } : {}),
    ...(flags.join ? { join: flags.join } : {}),
    maxConcurrentMoves: flags.maxMoves,
    moveBytesPerSecond: flags.moveBytesPerSec,
    replaceAfterMs: flags.replaceAfterMs,
    maxMemoryBytes: flags.maxMemoryBytes,
    ...(flags.adminTokenFile !== null ? { adminTokenFile: flags.adminTokenFile } : {}),
  };
}

/** How long a stopping node keeps an idle client connection open for a request that may be on its way. */
const STOP_GRACE_MS = 2_000;

/** The longest a stop takes, from the signal to the exit: the drain, the HTTP close's own grace, then the node's close. */
const SHUTDOWN_DEADLINE_MS = STOP_GRACE_MS + DEFAULT_HTTP_LIMITS.shutdownGraceMs + 3_000;

/** The exit code of a node that stopped because the cluster removed it. */
export const EXIT_REMOVED = 3;

/**
 * Serves until SIGINT or SIGTERM, then resolves with exit code 0; or, once
 * the node learns the cluster removed it (and --on-removed is exit), stops
 * and resolves with EXIT_REMOVED.
 */
export async function start(argv: string[]): Promise<number> {
  const flags = parseStartFlags(argv);
  const exposure = exposureOf(flags);
  const warnings = checkProtectedMode(exposure);
  const tls = serverTlsOf(flags.tlsCertFile, flags.tlsKeyFile);
  const ca = readCa(flags.caFile);
  // Whatever this process creates (LevelDB's files under --data-dir among them) is its user's alone.
  process.umask(0o077);
  await checkFree(flags.http, '--http');
  await checkFree(flags.raft, '--raft');
  const logger = pino({ level: flags.logLevel, base: { node: flags.id } }, pino.destination(2));
  for (const w of warnings) logger.warn(w);
  // The node may learn it was removed while it starts: remember why until there is something to stop.
  let removed: string | null = null;
  let onRemoved = (why: string) => {
    removed = why;
  };
  const node = await VeloNode.start({ ...nodeOptions(flags, logger), ...(ca !== undefined ? { ca } : {}), onRemoved: (why) => onRemoved(why) });
  if (flags.unsafeStaleStrongReads) logger.warn('--unsafe-stale-strong-reads-for-testing: strong reads are NOT linearizable on this node (a test switch)');
  const app = await buildServer({ service: node, maxValueBytes: flags.maxValueBytes, logger, metricsPublic: flags.metricsPublic, ...(tls ? { tls } : {}), browserGuard: browserGuardApplies(exposure) });
  const drain = installDrain(app);
  const [host, port] = splitHostPort(flags.http);
  try {
    await app.listen({ host, port });
  } catch (e) {
    await node.close();
    throw listenError(e, flags.http, '--http');
  }
  const view = node.localCluster();
  const scheme = tls ? 'https' : 'http';
  process.stdout.write(`velo ${flags.id} serving ${scheme}://${flags.http} (raft ${flags.raft}, ${flags.join ? `joined through ${flags.join}` : `${view.members.length} member(s)`}, ${view.partitions.length} partitions, ${flags.dataDir ? `data in ${flags.dataDir}` : "in memory"}, max memory ${formatBytes(flags.maxMemoryBytes)})\n`);
  // The path, never the secret.
  if (flags.adminTokenFile !== null) process.stdout.write(`velo ${flags.id}: tokens required; the admin token is in ${flags.adminTokenFile}\n`);
  // A joining node shows the moves that fill it, in the foreground, while it already serves.
  const following = new AbortController();
  if (flags.join) {
    followRebalance(`${scheme}://${flags.advertiseHttp ?? flags.http}`, {
      token: flags.adminTokenFile === null ? null : readFileSync(flags.adminTokenFile, 'utf8').trim(),
      fetch: fetchTrusting(ca),
      out: process.stderr,
      tty: process.stderr.isTTY === true,
      label: `joining ${flags.id}`,
      signal: following.signal,
      until: (v) => v.rebalance.balanced && v.members.some((m) => m.id === flags.id && m.status === 'active'),
    }).then(
      (v) => {
        const me = v.members.find((m) => m.id === flags.id);
        process.stdout.write(`velo ${flags.id} joined: the cluster is balanced; this node holds ${me?.replicas ?? 0} replica(s) and leads ${me?.leaders ?? 0} partition(s)\n`);
      },
      () => {},
    );
  }
  return new Promise((resolve, reject) => {
    let stopping = false;
    const stop = (code: number) => {
      if (stopping) return;
      stopping = true;
      following.abort();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      // Whatever hangs (a peer that never answers the transport's close), the process ends in bounded time.
      setTimeout(() => {
        logger.error({ afterMs: SHUTDOWN_DEADLINE_MS }, 'shutdown did not finish in time: exiting anyway');
        resolve(code);
      }, SHUTDOWN_DEADLINE_MS).unref();
      // Streams never end by themselves: they end now, and their readers may reconnect to another member.
      app.endEventStreams();
      // Every request a client sent gets its answer (node_removed, when removed) before the sockets close.
      drain(STOP_GRACE_MS)
        .then(() => app.close())
        .then(() => node.close())
        .then(() => resolve(code), reject);
    };
    const onSignal = () => stop(0);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    if (flags.onRemoved === 'exit') {
      onRemoved = (why) => {
        process.stderr.write(`velo ${flags.id}: ${why}; stopping (exit code ${EXIT_REMOVED}; --on-removed wait keeps a removed node running)\n`);
        stop(EXIT_REMOVED);
      };
      if (removed !== null) onRemoved(removed);
    }
  });
}
