// Every bound of the HTTP layer, in one place (TigerBeetle style: a limit
// turns an overload into a clear error instead of a slow death), and the
// connection cap that enforces two of them.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { VeloError } from '../src/node/errors.js';

export interface HttpLimits {
  /** A request's headers and body must have arrived within this; a stalled upload is closed then. */
  requestTimeoutMs: number;
  /** ... and its headers within this. */
  headersTimeoutMs: number;
  /** An idle kept-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /**
   * A connection with no traffic either way for this long is closed: a client
   * that stops reading its answer. Event streams are exempt (they have their
   * own stall rule) and it must exceed the node's request time-out.
   */
  idleTimeoutMs: number;
  /** Open connections per node: past it a request is answered 503 and its connection closed. */
  maxConnections: number;
  /** Open connections per client address: past it, 429. */
  maxConnectionsPerClient: number;
  /** Open event streams per node: past it, 503. */
  maxEventStreams: number;
  /** Open event streams per client (its token's name, else its address): past it, 429. */
  maxEventStreamsPerClient: number;
  /** An event stream whose reader has not drained its socket for this long is closed (it resumes with Last-Event-ID). */
  eventStreamStallMs: number;
  /** Bytes written to a stream and not yet taken by its socket at which the node stops producing for it. */
  eventStreamMaxBufferedBytes: number;
  /** On shutdown, requests in flight get this long to finish before every connection is closed. */
  shutdownGraceMs: number;
}

export const DEFAULT_HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({
  requestTimeoutMs: 10_000,
  headersTimeoutMs: 5_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 120_000,
  maxConnections: 4096,
  maxConnectionsPerClient: 256,
  maxEventStreams: 1024,
  maxEventStreamsPerClient: 32,
  eventStreamStallMs: 30_000,
  eventStreamMaxBufferedBytes: 1 << 20,
  shutdownGraceMs: 5_000,
});

/** The longest `ttlMs` (and a cache's `defaultTtlMs`): a year. Longer is no cache entry but a record; leave out the TTL instead. */
export const MAX_TTL_MS = 365 * 24 * 3600 * 1000;

/** The longest lock `timeoutMs`: an hour. A lock is for one read-modify-write, and a crashed holder blocks the item this long. */
export const MAX_LOCK_TIMEOUT_MS = 3600 * 1000;

/** How often Node checks request and header deadlines (its default, 30 s, would let a stalled upload live that much longer). */
const DEADLINE_CHECK_MS = 500;

/** Fastify's own options for the time-outs above. */
export function timeoutOptions(l: HttpLimits): { requestTimeout: number; connectionTimeout: number; keepAliveTimeout: number } {
  return { requestTimeout: l.requestTimeoutMs, connectionTimeout: l.idleTimeoutMs, keepAliveTimeout: l.keepAliveTimeoutMs };
}

/** Who a request is, for the per-client caps: its token's name once tokens are in force, else its address. */
export function clientOf(req: { auth?: { name: string } | null; socket: Socket }): string {
  return req.auth ? `token:${req.auth.name}` : `addr:${req.socket.remoteAddress ?? 'unknown'}`;
}

const OVER = Symbol('velo.connectionOver');
type Tagged = Socket & { [OVER]?: 'node' | 'client' };

/**
 * Counts open connections, per node and per client address. A connection
 * past a cap is kept just long enough to answer its first request — 503 past
 * the node's, 429 past the client's — and then closed; past twice the node's
 * cap, Node itself drops new connections unanswered.
 */
export function installConnectionLimits(app: FastifyInstance, l: HttpLimits): { open(): number } {
  const server = app.server as Server;
  // Node holds a request to the later of the two deadlines: the headers' must not be the later.
  server.headersTimeout = Math.min(l.headersTimeoutMs, l.requestTimeoutMs);
  // Read when the server starts listening (node:http setupConnectionsTracking).
  (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = DEADLINE_CHECK_MS;
  server.maxConnections = 2 * l.maxConnections;
  let open = 0;
  const perClient = new Map<string, number>();
  server.on('connection', (socket: Tagged) => {
    const addr = socket.remoteAddress ?? 'unknown';
    const mine = (perClient.get(addr) ?? 0) + 1;
    perClient.set(addr, mine);
    open++;
    if (open > l.maxConnections) socket[OVER] = 'node';
    else if (mine > l.maxConnectionsPerClient) socket[OVER] = 'client';
    socket.once('close', () => {
      open--;
      const left = (perClient.get(addr) ?? 1) - 1;
      if (left === 0) perClient.delete(addr);
      else perClient.set(addr, left);
    });
  });
  app.addHook('onRequest', async (req, reply) => {
    const over = (req.raw.socket as Tagged)[OVER];
    if (over === undefined) return;
    reply.header('Connection', 'close').header('Retry-After', '1');
    if (over === 'node') throw new VeloError('unavailable', `this node holds its maximum of ${l.maxConnections} connections: retry shortly, or ask another member`, 1);
    throw new VeloError('too_many_requests', `this client holds its maximum of ${l.maxConnectionsPerClient} connections to this node: reuse them`);
  });
  return { open: () => open };
}
