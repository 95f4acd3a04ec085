// The node-to-node transport of the multi-raft host: one TCP connection per
// pair of nodes carries the raft messages of every group and the forwarded
// client requests.
//
// One connection per pair, decided without a race: the node with the lower
// id (JavaScript string order) dials, the higher one only accepts; an
// inbound Hello from a higher id is refused. When a peer dials again while
// its old connection still looks open here (it restarted, or the old one is
// half-open), the new connection replaces the old. A Hello with an older
// incarnation than that of the peer's open connection is refused; once that
// connection is closed, an older one is accepted again (checkHello says why).
//
// With peer TLS (options.tls) every connection is mutual TLS 1.3 against
// the peer CA, and a node is who its certificate says (identity.ts): its
// Hello and the sender of every message it sends must agree. Whatever a
// connection that is not yet authenticated does is bounded (limits.PRE_AUTH_*,
// per remote address too) and refused at warn, telling it nothing about the
// cluster.
//
// Raft messages are best effort: to a peer without an open connection, or
// past its queue limit, they are dropped, and Raft retries. Requests fail
// fast with a TransportError instead.

import net from 'node:net';
import tls from 'node:tls';
import type { Message, NodeId } from '../../raft/index.js';
import { ResponseStatus, estimateMessageBytes, type DecodedFrame, type GroupMessage, type Hello, type WireRequest } from './codec.js';
import { TransportError, type TransportErrorCode } from './errors.js';
import * as limits from './limits.js';
import { parseAddress, resolveOptions, type Settings, type TransportOptions } from './options.js';
import { encodeFrames } from './outbox.js';
import { Peer, type PeerStatus } from './peer.js';
import { PeerConnection, type ConnectionEvents } from './peer-connection.js';
import { misaddressed } from './identity.js';
import { PROTOCOL_VERSION } from './schema.js';

export interface TransportStats {
  /** Sockets this transport holds, in handshake or open. */
  socketsOpen: number;
  connectionsAccepted: number;
  connectionsDialed: number;
  raftMessagesSent: number;
  raftMessagesReceived: number;
  raftMessagesDropped: number;
  framesSent: number;
  framesReceived: number;
  /** Empty frames sent to peers that had been sent nothing for keepalive.intervalMs. */
  keepalivesSent: number;
  /** Inbound connections refused or closed before they were authenticated (logged at most once per address per 10 s). */
  connectionsRefused: number;
}

/** An empty frame: all a keepalive needs to be. */
const KEEPALIVE = new Uint8Array(0);

export type RaftMessagesHandler = (from: NodeId, batch: GroupMessage[]) => void;
export type RequestHandler = (from: NodeId, payload: Uint8Array) => Promise<Uint8Array>;

export class Transport {
  readonly nodeId: NodeId;
  private readonly s: Settings;
  private readonly hello: Hello;
  private readonly peers = new Map<NodeId, Peer>();
  /** Inbound connections that have not said Hello yet. */
  private readonly handshaking = new Set<PeerConnection>();
  /**
   * Inbound sockets not yet authenticated (TLS handshake, then Hello), by
   * "address:port": what the per-address bound and the pre-auth limits apply to.
   */
  private readonly preAuth = new Map<string, { raw: net.Socket; address: string; createdMs: number; conn: PeerConnection | null }>();
  /** When each remote address was last warned about, and how many refusals went unlogged since. */
  private readonly warned = new Map<string, { atMs: number; unlogged: number }>();
  private state: 'new' | 'starting' | 'started' | 'closed' = 'new';
  private server: net.Server | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private lastSweepMs = 0;
  private flushScheduled = false;
  private nextRequestId = 1;
  private loggedOversizedMessage = false;
  private raftHandler: RaftMessagesHandler | null = null;
  private requestHandler: RequestHandler | null = null;
  private readonly counters = {
    connectionsAccepted: 0,
    connectionsDialed: 0,
    raftMessagesSent: 0,
    raftMessagesReceived: 0,
    raftMessagesDropped: 0,
    framesSent: 0,
    framesReceived: 0,
    keepalivesSent: 0,
    connectionsRefused: 0,
  };
  private readonly events: ConnectionEvents = {
    onHello: (conn, hello) => this.checkHello(conn, hello),
    onOpen: (conn) => this.onOpen(conn),
    onFrame: (conn, frame) => this.onFrame(conn, frame),
    onClose: (conn, reason, wasOpen) => this.onClose(conn, reason, wasOpen),
  };

  constructor(options: TransportOptions) {
    this.s = resolveOptions(options);
    this.nodeId = this.s.nodeId;
    this.hello = { protocolVersion: PROTOCOL_VERSION, clusterId: this.s.clusterId, nodeId: this.nodeId, incarnation: this.s.incarnation };
    this.setPeers(options.peers);
  }

  /** The bound port, once started (useful with listenPort 0). */
  get port(): number {
    const addr = this.server?.address();
    if (addr === null || addr === undefined || typeof addr === 'string') throw new Error('transport: not listening');
    return addr.port;
  }

  /** Listens, then dials the peers this node dials. Rejects with code listen_failed when the port is taken. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`transport ${this.nodeId}: start() called twice`);
    this.state = 'starting';
    const { listenHost, listenPort } = this.s;
    const server = this.createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(listenPort, listenHost, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      this.state = 'closed';
      const e = err as NodeJS.ErrnoException;
      const why = e.code === 'EADDRINUSE' ? 'address already in use' : e.message;
      throw new TransportError('listen_failed', `transport ${this.nodeId}: cannot listen on ${listenHost}:${listenPort}: ${why}`);
    }
    if (this.isClosed()) {
      server.close(); // close() was called while we were binding
      return;
    }
    server.on('error', (err) => this.log(`server error: ${err.message}`));
    this.server = server;
    this.state = 'started';
    this.lastSweepMs = this.s.now();
    this.sweepTimer = setInterval(() => this.sweep(), limits.SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
    for (const peer of this.peers.values()) if (this.dials(peer.id)) this.dial(peer);
  }

  /**
   * Handles the raft messages of each received frame (one call per frame),
   * synchronously from the socket's data event. Replaces any earlier handler.
   */
  onRaftMessages(handler: RaftMessagesHandler): void {
    this.raftHandler = handler;
  }

  /**
   * Serves requests from peers. The handler should put its own errors in the
   * payload it returns; a throw reaches the requester as remote_error.
   */
  onRequest(handler: RequestHandler): void {
    this.requestHandler = handler;
  }

  /**
   * Queues a raft message for the next flush(); no I/O. Returns false when it
   * is dropped: no open connection to `to`, its queue is full, or the message
   * could never fit in a frame. Raft retries what is lost.
   */
  send(to: NodeId, group: number, message: Message): boolean {
    const peer = this.peers.get(to);
    if (peer === undefined || peer.conn === null || this.state !== 'started') return this.dropped(peer);
    const bytes = estimateMessageBytes(message);
    if (bytes > this.s.maxFrameBytes) {
      if (!this.loggedOversizedMessage) {
        // A configuration error (raft's maxBytesPerAppend or snapshot chunk above maxFrameBytes): say it once.
        this.loggedOversizedMessage = true;
        this.log(`dropping a raft message of up to ${bytes} bytes for group ${group}: it can never fit maxFrameBytes ${this.s.maxFrameBytes}`);
      }
      return this.dropped(peer);
    }
    if (peer.queuedBytes() + bytes > this.s.maxQueuedBytesPerPeer) return this.dropped(peer);
    peer.outbox.addRaft(group, message, bytes);
    this.counters.raftMessagesSent++;
    return true;
  }

  /** Writes everything queued: one frame per peer (more only past maxFrameBytes). Call once per drive-loop pass. */
  flush(): void {
    if (this.state !== 'started') return;
    for (const peer of this.peers.values()) {
      if (peer.outbox.isEmpty) continue;
      const conn = peer.conn;
      if (conn === null) {
        peer.outbox.clear();
        continue;
      }
      const frames = encodeFrames(peer.outbox.take(), this.s.maxFrameBytes, (what) => this.log(`dropping ${what} for ${peer.id}`));
      for (const payload of frames) conn.writeFrame(payload);
      peer.framesSent += frames.length;
      this.counters.framesSent += frames.length;
    }
  }

  /**
   * Sends a request to a peer's onRequest handler and resolves with its
   * answer; it goes out on the next turn of the event loop, without waiting
   * for a flush(). Fails with a TransportError: at once when there is no
   * connection or no room (it did not go out), or later on timeout (checked
   * every SWEEP_INTERVAL_MS) or when the connection drops (it may or may not
   * have run).
   */
  request(to: NodeId, payload: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (!(timeoutMs > 0 && Number.isFinite(timeoutMs))) {
      return Promise.reject(new RangeError(`transport: timeoutMs must be a positive number, got ${timeoutMs}`));
    }
    if (this.state !== 'started') return fail('closed', `transport ${this.nodeId} is not running`);
    const peer = this.peers.get(to);
    if (peer === undefined) return fail('unknown_peer', `${to} is not a peer of ${this.nodeId}`);
    const conn = peer.conn;
    if (conn === null) return fail('unavailable', `no connection from ${this.nodeId} to ${to}`);
    const maxPayloadBytes = this.s.maxFrameBytes - limits.REQUEST_OVERHEAD_BYTES;
    if (payload.length > maxPayloadBytes) return fail('too_large', `a request of ${payload.length} bytes exceeds the limit of ${maxPayloadBytes}`);
    if (peer.pendingCount >= limits.MAX_PENDING_REQUESTS_PER_PEER) {
      return fail('queue_full', `${limits.MAX_PENDING_REQUESTS_PER_PEER} requests already pending on ${to}`);
    }
    if (peer.queuedBytes() + payload.length > this.s.maxQueuedBytesPerPeer) {
      return fail('queue_full', `the queue to ${to} is full (${peer.queuedBytes()} bytes, limit ${this.s.maxQueuedBytesPerPeer})`);
    }
    const id = this.nextRequestId++;
    return new Promise<Uint8Array>((resolve, reject) => {
      peer.addPending(id, { conn, deadlineMs: this.s.now() + timeoutMs, resolve, reject });
      peer.outbox.addRequest({ id, payload });
      this.scheduleFlush();
    });
  }

  /**
   * Changes the membership: new peers are dialed (by the lower id), removed
   * ones disconnected and their pending requests failed (unknown_peer). A
   * changed address is used from the next dial; an open connection is kept,
   * since its Hello proved who is at the other end.
   */
  setPeers(peers: Map<NodeId, string>): void {
    const next = new Map<NodeId, string>();
    for (const [id, address] of peers) {
      if (id === this.nodeId) continue;
      if (id === '') throw new Error('transport: a peer id must not be empty');
      parseAddress(address); // throws on a malformed address
      next.set(id, address);
    }
    for (const peer of [...this.peers.values()]) {
      if (next.has(peer.id)) continue;
      this.peers.delete(peer.id);
      this.dropPeer(peer, 'unknown_peer', `${peer.id} was removed from the peers of ${this.nodeId}`);
    }
    for (const [id, address] of next) {
      const existing = this.peers.get(id);
      if (existing) {
        existing.address = address;
        continue;
      }
      const peer = new Peer(id, address, this.nodeId);
      this.peers.set(id, peer);
      if (this.state === 'started' && this.dials(id)) this.dial(peer);
    }
  }

  peerStatus(): Map<NodeId, PeerStatus> {
    return new Map([...this.peers.values()].map((p) => [p.id, p.status(this.dials(p.id) ? 'local' : 'remote')]));
  }

  stats(): TransportStats {
    let socketsOpen = this.handshaking.size;
    for (const p of this.peers.values()) socketsOpen += Number(p.conn !== null) + Number(p.dialing !== null);
    return { socketsOpen, ...this.counters };
  }

  /** Stops listening, closes every connection and fails every pending request with code closed. */
  async close(): Promise<void> {
    if (this.isClosed()) return;
    this.state = 'closed';
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const peer of this.peers.values()) this.dropPeer(peer, 'closed', `transport ${this.nodeId} closed`);
    for (const conn of [...this.handshaking]) conn.close(null);
    for (const e of this.preAuth.values()) e.raw.destroy();
    this.preAuth.clear();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // ---- connections ----

  private createServer(): net.Server {
    const t = this.s.tls;
    if (t === null) {
      const server = net.createServer();
      server.on('connection', (raw: net.Socket) => {
        if (this.admit(raw)) this.accept(raw);
      });
      return server;
    }
    const server = tls.createServer({
      ca: t.ca,
      cert: t.cert,
      key: t.key,
      requestCert: true,
      // Checked in accept(), which says why at warn; Node's own check ends the socket without a word.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      handshakeTimeout: limits.HANDSHAKE_TIMEOUT_MS,
    });
    // Before the TLS layer sees the socket: count it against its address.
    server.prependListener('connection', (raw: net.Socket) => {
      if (!this.admit(raw)) raw.destroy();
    });
    server.on('secureConnection', (socket: tls.TLSSocket) => this.accept(socket));
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
      // A socket closed mid-handshake is a probe, as one closed before its Hello: quiet.
      if (err.code === 'ECONNRESET' || socket.remoteAddress === undefined) return;
      this.warnStranger(socket.remoteAddress ?? '?', `refused a TLS handshake from ${socket.remoteAddress}:${socket.remotePort}: ${err.code ?? err.message}`);
    });
    return server;
  }

  /**
   * Counts a new inbound socket as not yet authenticated; false when the
   * transport is not running. Past the per-address or the global bound, the
   * oldest unauthenticated socket (of that address, else of all) is closed,
   * so that the newcomer, perhaps the real peer, gets its chance.
   */
  private admit(raw: net.Socket): boolean {
    if (this.state !== 'started') return false;
    const address = raw.remoteAddress ?? '?';
    const key = `${address}:${raw.remotePort}`;
    let sameAddress = 0;
    let oldestOfAddress: string | null = null;
    for (const [k, e] of this.preAuth) {
      if (e.address !== address) continue;
      sameAddress++;
      oldestOfAddress ??= k; // a Map iterates in insertion order
    }
    const evict = sameAddress >= limits.MAX_PRE_AUTH_CONNECTIONS_PER_ADDRESS ? oldestOfAddress : this.preAuth.size >= limits.MAX_HANDSHAKING_CONNECTIONS ? this.preAuth.keys().next().value! : null;
    if (evict !== null) this.endPreAuth(evict, `too many unauthenticated connections (at most ${limits.MAX_PRE_AUTH_CONNECTIONS_PER_ADDRESS} per address, ${limits.MAX_HANDSHAKING_CONNECTIONS} in all): closing the oldest`);
    this.preAuth.set(key, { raw, address, createdMs: this.s.now(), conn: null });
    raw.once('close', () => {
      if (this.preAuth.get(key)?.raw === raw) this.preAuth.delete(key);
    });
    return true;
  }

  /** Closes an unauthenticated socket, saying why at warn. */
  private endPreAuth(key: string, why: string): void {
    const e = this.preAuth.get(key);
    if (e === undefined) return;
    this.preAuth.delete(key);
    this.warnStranger(e.address, `closing the connection from ${key}: ${why}`);
    if (e.conn !== null) e.conn.close(null);
    e.raw.destroy();
  }

  /** A warning about a remote address that is not (yet) a peer: at most one line per address per REFUSAL_LOG_INTERVAL_MS. */
  private warnStranger(address: string, line: string): void {
    this.counters.connectionsRefused++;
    const now = this.s.now();
    const w = this.warned.get(address);
    if (w !== undefined && now - w.atMs < limits.REFUSAL_LOG_INTERVAL_MS) {
      w.unlogged++;
      return;
    }
    if (this.warned.size >= 1024) this.warned.clear(); // bounded, like everything a stranger can grow
    this.warned.set(address, { atMs: now, unlogged: 0 });
    this.warn(w !== undefined && w.unlogged > 0 ? `${line} (and ${w.unlogged} refusals from ${address} not logged since)` : line);
  }

  /** The rule that keeps one connection per pair: the lower id dials. */
  private dials(peer: NodeId): boolean {
    return this.nodeId < peer;
  }

  /** An admitted inbound socket (with TLS: verified against the peer CA) starts its Hello exchange. */
  private accept(socket: net.Socket): void {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const entry = this.preAuth.get(remote);
    if (this.state !== 'started' || entry === undefined) {
      socket.destroy();
      return;
    }
    if (socket instanceof tls.TLSSocket && !socket.authorized) {
      this.endPreAuth(remote, `its certificate is not one the peer CA signed (${socket.authorizationError ?? 'none'})`);
      return;
    }
    const conn = this.connection(socket, 'inbound', null, remote);
    entry.conn = conn;
    this.handshaking.add(conn);
  }

  private dial(peer: Peer): void {
    if (this.state !== 'started' || peer.conn !== null || peer.dialing !== null || this.peers.get(peer.id) !== peer) return;
    const { host, port } = parseAddress(peer.address);
    const t = this.s.tls;
    const socket =
      t === null
        ? net.connect({ host, port })
        : tls.connect({
            host,
            port,
            ca: t.ca,
            cert: t.cert,
            key: t.key,
            minVersion: 'TLSv1.3',
            maxVersion: 'TLSv1.3',
            // The peer is verified against the CA here, and by the node its
            // certificate names (PeerConnection), not by the host it was found at.
            ...(net.isIP(peer.id) === 0 ? { servername: peer.id } : {}),
            checkServerIdentity: () => undefined,
          });
    peer.dialing = this.connection(socket, 'outbound', peer.id, peer.address);
  }

  private connection(socket: net.Socket, direction: 'inbound' | 'outbound', expectedPeer: NodeId | null, remote: string): PeerConnection {
    return new PeerConnection({
      socket,
      direction,
      local: this.hello,
      expectedPeer,
      remote,
      maxFrameBytes: this.s.maxFrameBytes,
      now: this.s.now,
      events: this.events,
      tls: this.s.tls !== null,
    });
  }

  /**
   * Why a Hello is refused, or null. The reason goes back to the other end
   * in a Goodbye, so it tells nothing about this cluster (its id, an
   * incarnation) that the other end did not say itself.
   */
  private checkHello(conn: PeerConnection, h: Hello): string | null {
    if (this.s.tls !== null) {
      if (conn.certNode === null) return 'the certificate names no node (a subject CN, or one DNS SAN, with serverAuth)';
      if (h.nodeId !== conn.certNode) return `the Hello claims ${JSON.stringify(h.nodeId.slice(0, 80))}, but the certificate names ${conn.certNode}`;
    }
    if (h.protocolVersion !== PROTOCOL_VERSION) return `protocol version ${h.protocolVersion}, this node speaks ${PROTOCOL_VERSION}`;
    if (h.clusterId !== this.s.clusterId) return `wrong cluster id ${JSON.stringify(h.clusterId.slice(0, 80))}`;
    if (conn.direction === 'outbound' && h.nodeId !== conn.peer) return `expected ${conn.peer} at ${conn.remote}, found ${h.nodeId}`;
    if (h.nodeId === this.nodeId) return `the peer claims this node's own id ${h.nodeId}`;
    const peer = this.peers.get(h.nodeId);
    if (peer === undefined) return `${h.nodeId} is not a peer of ${this.nodeId}`;
    if (conn.direction === 'inbound' && this.dials(h.nodeId)) return `${h.nodeId} dialed ${this.nodeId}, but the lower id dials`;
    // An older incarnation is refused only while a newer one's connection is
    // open: then the older is a stale process or a replay, and the newer,
    // alive, keeps its place. A claim alone must not shut a node out for
    // good: anyone with its key (or a restart whose clock went back) could
    // claim a newer incarnation once and leave the live member refused here
    // long after that connection is gone. Accepting the older one then is
    // safe, because a process that answers under an incarnation still holds
    // that incarnation's log and vote; Raft tells the incarnations of a node
    // apart by member id (id@incarnation after a restart without memory, and
    // messages to an earlier member id are dropped), not by this number, and
    // the node layer (VeloNode's firstIncarnation and the probe's seenBefore)
    // compares incarnations for equality, never order.
    // The open connection's incarnation is peer.incarnation: onOpen sets both.
    if (peer.conn !== null && peer.incarnation !== null && h.incarnation < peer.incarnation) return `${h.nodeId} came with an incarnation older than that of its open connection`;
    return null;
  }

  private onOpen(conn: PeerConnection): void {
    this.handshaking.delete(conn);
    if (conn.direction === 'inbound') this.preAuth.delete(conn.remote);
    const peer = this.peers.get(conn.peer!)!; // checkHello found it
    if (peer.dialing === conn) peer.dialing = null;
    const old = peer.conn;
    const before = peer.incarnation;
    peer.conn = conn;
    peer.incarnation = conn.incarnation;
    peer.failedDials = 0;
    peer.loggedDialError = null;
    if (conn.direction === 'inbound') this.counters.connectionsAccepted++;
    else this.counters.connectionsDialed++;
    const restarted =
      before === null || conn.incarnation === before ? '' : conn.incarnation! > before ? `, restarted from incarnation ${before}` : `, an older incarnation than the last one seen (${before}), whose connection closed`;
    this.log(`connected to ${conn.describe()}, ${conn.direction}, incarnation ${conn.incarnation}${restarted}`);
    // Its close fails only the requests sent on it: peer.conn is already the new one.
    if (old !== null) old.close(`replaced by a new connection from ${peer.id}`);
  }

  private onFrame(conn: PeerConnection, frame: DecodedFrame): void {
    const peer = this.peers.get(conn.peer!);
    if (peer === undefined || peer.conn !== conn) return;
    if (frame.raft.length + frame.requests.length + frame.responses.length === 0) return; // a keepalive
    for (const { message: m } of frame.raft) {
      const why = misaddressed(m.from, m.to, peer.id, this.nodeId);
      if (why === null) continue;
      // The peer is not who it says, or sends nonsense: nothing of this frame is delivered.
      this.warn(`closing the connection of ${conn.describe()}: ${why}`);
      conn.close(null);
      return;
    }
    peer.framesReceived++;
    this.counters.framesReceived++;
    if (frame.raft.length > 0 && this.raftHandler !== null) {
      this.counters.raftMessagesReceived += frame.raft.length;
      try {
        this.raftHandler(peer.id, frame.raft);
      } catch (err) {
        // The host's bug, not the peer's: keep the connection.
        this.log(`the raft message handler threw: ${(err as Error).stack ?? err}`);
      }
    }
    for (const r of frame.requests) this.serveRequest(peer, conn, r);
    for (const r of frame.responses) peer.complete(conn, r);
  }

  private onClose(conn: PeerConnection, reason: string | null, wasOpen: boolean): void {
    this.handshaking.delete(conn);
    if (this.isClosed()) return;
    const peer = conn.peer === null ? undefined : this.peers.get(conn.peer);
    if (peer !== undefined && peer.dialing === conn) {
      // A failed dial: one line per outage, then retry with back-off.
      peer.dialing = null;
      peer.failedDials++;
      if (reason !== null && reason !== peer.loggedDialError) {
        peer.loggedDialError = reason;
        this.log(`cannot connect to ${conn.describe()}: ${reason}; retrying with back-off`);
      }
      this.scheduleReconnect(peer);
      return;
    }
    if (reason !== null && !wasOpen && conn.direction === 'inbound') this.warnStranger(conn.remote.slice(0, conn.remote.lastIndexOf(':')), `refused the connection from ${conn.remote}: ${reason}`);
    else if (reason !== null) this.log(`${wasOpen ? 'lost connection to' : 'closing connection from'} ${conn.describe()}: ${reason}`);
    if (peer === undefined) return;
    peer.failPending(conn, 'disconnected', `transport: the connection to ${peer.id} closed: ${reason ?? 'closed'}`);
    if (peer.conn === conn) {
      peer.conn = null;
      peer.outbox.clear();
      if (this.dials(peer.id)) this.scheduleReconnect(peer);
    }
  }

  private scheduleReconnect(peer: Peer): void {
    if (this.state !== 'started' || peer.reconnectTimer !== null || this.peers.get(peer.id) !== peer) return;
    const { minMs, maxMs } = this.s.reconnect;
    const ceilingMs = Math.min(maxMs, minMs * 2 ** Math.min(peer.failedDials, 30));
    // Half fixed, half random: nodes that lost the same peer do not all redial in step.
    const delayMs = ceilingMs / 2 + (this.s.random() * ceilingMs) / 2;
    peer.reconnectTimer = setTimeout(() => {
      peer.reconnectTimer = null;
      this.dial(peer);
    }, delayMs);
  }

  /** Ends everything about a peer that is removed, or at close(). */
  private dropPeer(peer: Peer, code: TransportErrorCode, why: string): void {
    if (peer.reconnectTimer !== null) clearTimeout(peer.reconnectTimer);
    peer.reconnectTimer = null;
    peer.failPending(null, code, `transport: ${why}`);
    peer.outbox.clear();
    const { dialing, conn } = peer;
    peer.dialing = peer.conn = null;
    dialing?.close(null);
    conn?.close(null);
  }

  // ---- serving requests from peers ----

  private serveRequest(peer: Peer, conn: PeerConnection, r: WireRequest): void {
    const handler = this.requestHandler;
    if (handler === null) return this.respond(peer, conn, r.id, ResponseStatus.NoHandler, `${this.nodeId} serves no requests yet`);
    if (peer.inboundInFlight >= limits.MAX_INBOUND_REQUESTS_PER_PEER) {
      return this.respond(peer, conn, r.id, ResponseStatus.Overloaded, `${this.nodeId} has ${peer.inboundInFlight} requests in flight from ${peer.id}`);
    }
    peer.inboundInFlight++;
    let answer: Promise<Uint8Array>;
    try {
      answer = handler(peer.id, r.payload);
    } catch (err) {
      answer = Promise.reject(err);
    }
    answer.then(
      (payload) => {
        peer.inboundInFlight--;
        this.respond(peer, conn, r.id, ResponseStatus.Ok, '', payload);
      },
      (err: unknown) => {
        peer.inboundInFlight--;
        const message = err instanceof Error ? err.message : String(err);
        this.respond(peer, conn, r.id, ResponseStatus.HandlerError, message.slice(0, limits.MAX_ERROR_MESSAGE_CHARS));
      },
    );
  }

  private respond(peer: Peer, conn: PeerConnection, id: number, status: ResponseStatus, error: string, payload: Uint8Array = new Uint8Array(0)): void {
    // If the connection it came on is gone, the requester has already failed it.
    if (peer.conn !== conn || this.state !== 'started') return;
    const maxPayloadBytes = this.s.maxFrameBytes - limits.REQUEST_OVERHEAD_BYTES;
    const empty = new Uint8Array(0);
    if (payload.length > maxPayloadBytes) {
      peer.outbox.addResponse({ id, status: ResponseStatus.HandlerError, payload: empty, error: `a response of ${payload.length} bytes exceeds the limit of ${maxPayloadBytes}` });
    } else if (peer.queuedBytes() + payload.length > this.s.maxQueuedBytesPerPeer) {
      peer.outbox.addResponse({ id, status: ResponseStatus.Overloaded, payload: empty, error: `the queue from ${this.nodeId} to ${peer.id} is full` });
    } else {
      peer.outbox.addResponse({ id, status, error, payload });
    }
    this.scheduleFlush();
  }

  /** Requests and responses are not part of a drive-loop pass: flush them on the next turn of the event loop. */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  // ---- the periodic sweep: one timer for every time-out ----

  private sweep(): void {
    const now = this.s.now();
    const { intervalMs, idleTimeoutMs } = this.s.keepalive;
    // After a long pause of this process (GC, a busy loop) the silence was
    // ours, not the peers': restart their idle clocks instead of closing.
    const paused = now - this.lastSweepMs > Math.max(10 * limits.SWEEP_INTERVAL_MS, idleTimeoutMs / 2);
    this.lastSweepMs = now;
    const tooSlow = `no Hello within ${limits.HANDSHAKE_TIMEOUT_MS} ms`;
    for (const [key, e] of [...this.preAuth]) {
      if (now - e.createdMs > limits.HANDSHAKE_TIMEOUT_MS) this.endPreAuth(key, tooSlow);
      // The TLS handshake (its certificate chain) and the Hello: a few KiB, never megabytes.
      else if (this.s.tls !== null && e.raw.bytesRead > limits.PRE_AUTH_MAX_TLS_BYTES) {
        this.endPreAuth(key, `${e.raw.bytesRead} bytes before it was authenticated (limit ${limits.PRE_AUTH_MAX_TLS_BYTES})`);
      }
    }
    for (const peer of [...this.peers.values()]) {
      if (peer.dialing !== null && now - peer.dialing.createdMs > limits.HANDSHAKE_TIMEOUT_MS) peer.dialing.close(tooSlow);
      peer.expire(now);
      const conn = peer.conn;
      if (conn === null) continue;
      if (paused) conn.lastReceivedMs = now;
      else if (now - conn.lastReceivedMs >= idleTimeoutMs) {
        conn.close(`nothing received for ${Math.round(now - conn.lastReceivedMs)} ms`);
        continue;
      }
      if (now - conn.lastSentMs >= intervalMs) {
        conn.writeFrame(KEEPALIVE);
        this.counters.keepalivesSent++;
      }
    }
  }

  // ---- helpers ----

  /** TypeScript narrows `state` across awaits and callbacks; this reads it afresh. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  private dropped(peer: Peer | undefined): false {
    this.counters.raftMessagesDropped++;
    if (peer) peer.raftMessagesDropped++;
    return false;
  }

  private log(line: string): void {
    this.s.log(`transport ${this.nodeId}: ${line}`);
  }

  private warn(line: string): void {
    this.s.warn(`transport ${this.nodeId}: ${line}`);
  }
}

function fail(code: TransportErrorCode, message: string): Promise<never> {
  return Promise.reject(new TransportError(code, `transport: ${message}`));
}
