// What a Transport is configured with, checked once at construction so that a
// bad flag fails at start-up with a clear message, never later.

import type { NodeId } from '../../raft/index.js';
import type { PeerTls } from './identity.js';
import * as limits from './limits.js';

export interface TransportOptions {
  clusterId: string;
  nodeId: NodeId;
  /** Must grow with every start of this node (e.g. a persisted counter, or the start time in ms). */
  incarnation: number;
  listenHost: string;
  /** 0 picks a free port; read it from `port` after start(). */
  listenPort: number;
  /** Where to reach each member, "host:port" (IPv6 as "[::1]:7101"). This node's own entry is ignored. */
  peers: Map<NodeId, string>;
  /** Largest frame payload sent or accepted (default 64 MiB, at most 2^32 - 1: the prefix is 4 bytes). */
  maxFrameBytes?: number;
  /** Queued plus unsent bytes per peer above which raft messages are dropped and requests refused (default 128 MiB). */
  maxQueuedBytesPerPeer?: number;
  /** Reconnection back-off bounds (default 100 ms to 5 s). */
  reconnect?: { minMs: number; maxMs: number };
  /** Empty frames after intervalMs without sending; close after idleTimeoutMs without receiving (default 1 s, 10 s). */
  keepalive?: { intervalMs: number; idleTimeoutMs: number };
  /** Jitter for reconnection back-off, uniform in [0, 1) (default Math.random). */
  random?: () => number;
  /** A monotonic clock in ms (default performance.now). */
  now?: () => number;
  /** Where log lines go (default stderr). */
  log?: (line: string) => void;
  /** Where warnings go: refused connections, peers sending what they may not (default: log). */
  warn?: (line: string) => void;
  /** Mutual TLS 1.3 on every connection, a node's id from its certificate; absent: plain TCP. */
  tls?: PeerTls | null;
}

export type Settings = Required<Omit<TransportOptions, 'peers' | 'tls'>> & { tls: PeerTls | null };

export function resolveOptions(o: TransportOptions): Settings {
  const fail = (what: string): never => {
    throw new Error(`transport: ${what}`);
  };
  if (o.nodeId === '') fail('nodeId must not be empty');
  if (o.clusterId === '') fail('clusterId must not be empty');
  if (!Number.isSafeInteger(o.incarnation) || o.incarnation < 0) fail(`incarnation must be a non-negative integer, got ${o.incarnation}`);
  const s: Settings = {
    clusterId: o.clusterId,
    nodeId: o.nodeId,
    incarnation: o.incarnation,
    listenHost: o.listenHost,
    listenPort: o.listenPort,
    maxFrameBytes: o.maxFrameBytes ?? limits.DEFAULT_MAX_FRAME_BYTES,
    maxQueuedBytesPerPeer: o.maxQueuedBytesPerPeer ?? limits.DEFAULT_MAX_QUEUED_BYTES_PER_PEER,
    reconnect: o.reconnect ?? { minMs: limits.DEFAULT_RECONNECT_MIN_MS, maxMs: limits.DEFAULT_RECONNECT_MAX_MS },
    keepalive: o.keepalive ?? { intervalMs: limits.DEFAULT_KEEPALIVE_INTERVAL_MS, idleTimeoutMs: limits.DEFAULT_IDLE_TIMEOUT_MS },
    random: o.random ?? Math.random,
    now: o.now ?? (() => performance.now()),
    log: o.log ?? ((line) => process.stderr.write(line + '\n')),
    warn: o.warn ?? o.log ?? ((line) => process.stderr.write(line + '\n')),
    tls: o.tls ?? null,
  };
  if (!(s.maxFrameBytes >= limits.MIN_MAX_FRAME_BYTES && s.maxFrameBytes <= 0xffff_ffff)) {
    fail(`maxFrameBytes must be in [${limits.MIN_MAX_FRAME_BYTES}, 2^32), got ${s.maxFrameBytes}`);
  }
  if (!(s.maxQueuedBytesPerPeer > 0)) fail(`maxQueuedBytesPerPeer must be positive, got ${s.maxQueuedBytesPerPeer}`);
  if (!(s.reconnect.minMs > 0 && s.reconnect.maxMs >= s.reconnect.minMs)) {
    fail(`reconnect needs 0 < minMs <= maxMs, got ${JSON.stringify(s.reconnect)}`);
  }
  if (!(s.keepalive.intervalMs > 0 && s.keepalive.idleTimeoutMs > s.keepalive.intervalMs)) {
    fail(`keepalive needs 0 < intervalMs < idleTimeoutMs, got ${JSON.stringify(s.keepalive)}`);
  }
  return s;
}

/** "host:port", or "[v6]:port". */
export function parseAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port > 0 && port < 65536)) throw new Error(`transport: bad peer address '${address}', expected host:port`);
  return { host: m[1] ?? m[2]!, port };
}
