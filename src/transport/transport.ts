// The node-to-node transport of the multi-raft host: one TCP connection per
// pair of nodes carries the raft messages of every group and the forwarded
// client requests.
//
// One connection per pair, decided without a race: the node with the lower
// id (JavaScript string order) dials, the higher one only accepts; an
// inbound Hello from a higher id is refused. When a peer dials again while
// its old connection still looks open here (it restarted, or the old one is
// half-open), the new connection replaces the old.
//
// Raft messages are best effort: to a peer without an open connection, or
// past its queue limit, they are dropped, and Raft retries. Requests fail
// fast with a TransportError instead.

import net from 'node:net';
import type { Message, NodeId } from '../../raft/index.js';
import { ResponseStatus, estimateMessageBytes, type DecodedFrame, type GroupMessage, type Hello, type WireRequest } from './codec.js';
import { TransportError, type TransportErrorCode } from './errors.js';
import * as limits from './limits.js';
import { parseAddress, resolveOptions, type Settings, type TransportOptions } from './options.js';
import { encodeFrames } from './outbox.js';
import { Peer, type PeerStatus } from './peer.js';
import { PeerConnection, type ConnectionEvents } from './peer-connection.js';
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
    const server = net.createServer((socket) => this.accept(socket));
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
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // ---- connections ----

  /** The rule that keeps one connection per pair: the lower id dials. */
  private dials(peer: NodeId): boolean {
    return this.nodeId < peer;
  }

  private accept(socket: net.Socket): void {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    if (this.state !== 'started') {
      socket.destroy();
      return;
    }
    if (this.handshaking.size >= limits.MAX_HANDSHAKING_CONNECTIONS) {
      this.log(`refusing a connection from ${remote}: ${limits.MAX_HANDSHAKING_CONNECTIONS} connections already in their handshake`);
      socket.destroy();
      return;
    }
    this.handshaking.add(this.connection(socket, 'inbound', null, remote));
  }

  private dial(peer: Peer): void {
    if (this.state !== 'started' || peer.conn !== null || peer.dialing !== null || this.peers.get(peer.id) !== peer) return;
    const { host, port } = parseAddress(peer.address);
    peer.dialing = this.connection(net.connect({ host, port }), 'outbound', peer.id, peer.address);
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
    });
  }

  private checkHello(conn: PeerConnection, h: Hello): string | null {
    if (h.protocolVersion !== PROTOCOL_VERSION) return `protocol version ${h.protocolVersion}, this node speaks ${PROTOCOL_VERSION}`;
    if (h.clusterId !== this.s.clusterId) return `wrong cluster id '${h.clusterId}' (this node is in '${this.s.clusterId}')`;
    if (conn.direction === 'outbound' && h.nodeId !== conn.peer) return `expected ${conn.peer} at ${conn.remote}, found ${h.nodeId}`;
    if (h.nodeId === this.nodeId) return `the peer claims this node's own id ${h.nodeId}`;
    const peer = this.peers.get(h.nodeId);
    if (peer === undefined) return `${h.nodeId} is not a peer of ${this.nodeId}`;
    if (conn.direction === 'inbound' && this.dials(h.nodeId)) return `${h.nodeId} dialed ${this.nodeId}, but the lower id dials`;
    if (peer.incarnation !== null && h.incarnation < peer.incarnation) {
      return `${h.nodeId} came with incarnation ${h.incarnation}, older than ${peer.incarnation}`;
    }
    return null;
  }

  private onOpen(conn: PeerConnection): void {
    this.handshaking.delete(conn);
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
    const restarted = before !== null && conn.incarnation! > before ? `, restarted from incarnation ${before}` : '';
    this.log(`connected to ${conn.describe()}, ${conn.direction}, incarnation ${conn.incarnation}${restarted}`);
    // Its close fails only the requests sent on it: peer.conn is already the new one.
    if (old !== null) old.close(`replaced by a new connection from ${peer.id}`);
  }

  private onFrame(conn: PeerConnection, frame: DecodedFrame): void {
    const peer = this.peers.get(conn.peer!);
    if (peer === undefined || peer.conn !== conn) return;
    if (frame.raft.length + frame.requests.length + frame.responses.length === 0) return; // a keepalive
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
    if (reason !== null) this.log(`${wasOpen ? 'lost connection to' : 'closing connection from'} ${conn.describe()}: ${reason}`);
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
    for (const conn of [...this.handshaking]) if (now - conn.createdMs > limits.HANDSHAKE_TIMEOUT_MS) conn.close(tooSlow);
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
}

function fail(code: TransportErrorCode, message: string): Promise<never> {
  return Promise.reject(new TransportError(code, `transport: ${message}`));
}
