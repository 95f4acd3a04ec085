// One TCP connection to a peer: framing, the Hello exchange, writes and
// counters. What a Hello must say, and what a frame means, the Transport
// decides; a connection only knows its own socket.
//
// Handshake: the dialing side sends its Hello as soon as the socket
// connects; the accepting side checks it and answers with its own Hello, or
// with a Goodbye saying why it refuses. The dialer checks the answer. Only
// then does either side send anything else.
//
// With peer TLS the socket is a TLS 1.3 one that both sides verified against
// the peer CA before the Hello: the certificate names the peer, and its Hello
// must say the same. Until the Hello exchange is done a connection may hold
// only a few KiB (limits.PRE_AUTH_*): a stranger cannot make it buffer more.

import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { NodeId } from '../../raft/index.js';
import { decodeFrame, encodeFrame, type DecodedFrame, type Ends, type Hello } from './codec.js';
import { ProtocolError } from './errors.js';
import { FrameDecoder, encodeFramed, frameHeader } from './framing.js';
import { certificateNodeId } from './identity.js';
import { PRE_AUTH_MAX_BYTES, PRE_AUTH_MAX_FRAME_BYTES } from './limits.js';

export type Direction = 'inbound' | 'outbound';

export interface ConnectionEvents {
  /** The peer's Hello: a reason to refuse it, or null to accept. */
  onHello(conn: PeerConnection, hello: Hello): string | null;
  /** The handshake completed; frames may flow. */
  onOpen(conn: PeerConnection): void;
  onFrame(conn: PeerConnection, frame: DecodedFrame): void;
  /** Called once. `reason` is null for a quiet end (our own close, or a probe that never said Hello). */
  onClose(conn: PeerConnection, reason: string | null, wasOpen: boolean): void;
}

export interface ConnectionOptions {
  socket: Socket;
  direction: Direction;
  /** The Hello this node sends. */
  local: Hello;
  /** For an outbound connection, the node the address should lead to. */
  expectedPeer: NodeId | null;
  /** Where the socket leads (host:port), for log lines. */
  remote: string;
  maxFrameBytes: number;
  now: () => number;
  events: ConnectionEvents;
  /**
   * Peer TLS: an inbound socket arrives verified (the node its certificate
   * names); an outbound one is verified on secureConnect, before the Hello.
   */
  tls: boolean;
}

export class PeerConnection {
  state: 'handshake' | 'open' | 'closed' = 'handshake';
  readonly direction: Direction;
  /** The peer's id: expected when dialing, then the one its Hello gave. */
  peer: NodeId | null;
  incarnation: number | null = null;
  /** With peer TLS, the node the peer's verified certificate names; null on plain TCP (or before the TLS handshake). */
  certNode: NodeId | null = null;
  readonly createdMs: number;
  lastSentMs: number;
  lastReceivedMs: number;

  private readonly socket: Socket;
  private readonly local: Hello;
  private readonly decoder: FrameDecoder;
  private readonly now: () => number;
  private readonly events: ConnectionEvents;
  private readonly maxFrameBytes: number;
  /** Set when the handshake completes; fills in the from/to left off the wire. */
  private ends: Ends | null = null;
  /** Where the socket leads, kept for log lines after it is gone. */
  readonly remote: string;

  constructor(o: ConnectionOptions) {
    this.socket = o.socket;
    this.direction = o.direction;
    this.local = o.local;
    this.peer = o.expectedPeer;
    this.decoder = new FrameDecoder(PRE_AUTH_MAX_FRAME_BYTES);
    this.maxFrameBytes = o.maxFrameBytes;
    this.now = o.now;
    this.events = o.events;
    this.createdMs = this.lastSentMs = this.lastReceivedMs = o.now();
    this.remote = o.remote;
    // Frames are batched by flush(); Nagle's algorithm would only add delay.
    o.socket.setNoDelay(true);
    o.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    o.socket.on('error', (err: NodeJS.ErrnoException) => this.close(`socket error: ${err.code ?? err.message}`));
    o.socket.on('close', () => this.close(this.state === 'open' ? 'connection closed by the peer' : this.quietUnlessDialing()));
    if (o.tls && o.direction === 'inbound') this.certNode = certificateNodeId((o.socket as TLSSocket).getPeerCertificate());
    if (o.direction === 'outbound') o.socket.on(o.tls ? 'secureConnect' : 'connect', () => this.onConnected(o.tls));
  }

  /** Names the connection in log lines: the peer once known, and where it leads. */
  describe(): string {
    return this.peer !== null ? `${this.peer} (${this.remote})` : this.remote;
  }

  /** Bytes written to the socket that the kernel has not taken yet. */
  get unsentBytes(): number {
    return this.socket.writableLength;
  }

  /** Writes one frame; an empty payload is a keepalive, which tells a quiet peer that this side is alive. */
  writeFrame(payload: Uint8Array): void {
    if (this.state === 'closed') return;
    // One writev for header and payload: no copy of a large payload.
    this.socket.cork();
    this.socket.write(frameHeader(payload.length));
    if (payload.length > 0) this.socket.write(payload);
    this.socket.uncork();
    this.lastSentMs = this.now();
  }

  isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Ends the connection, once; `reason` (if any) is what the Transport logs. */
  close(reason: string | null): void {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    this.socket.destroy();
    this.events.onClose(this, reason, wasOpen);
  }

  /** Refuses the handshake: tells the peer why (best effort), then closes. */
  private refuse(reason: string): void {
    if (this.state === 'closed') return;
    const goodbye = encodeFramed(encodeFrame({ goodbye: reason }));
    const socket = this.socket;
    this.state = 'closed';
    // end() rather than destroy(): let the Goodbye reach the peer first.
    socket.end(goodbye, () => socket.destroy());
    this.events.onClose(this, reason, false);
  }

  /** An outbound socket is up: with TLS, the certificate must name the node dialed; then the Hello goes out. */
  private onConnected(tls: boolean): void {
    if (tls) {
      this.certNode = certificateNodeId((this.socket as TLSSocket).getPeerCertificate());
      if (this.certNode !== this.peer) {
        this.close(`the certificate at ${this.remote} names ${this.certNode ?? 'no node'}, not ${this.peer}`);
        return;
      }
    }
    this.writeFrame(encodeFrame({ hello: this.local }));
  }

  private quietUnlessDialing(): string | null {
    // A dial that fails is worth a line (the Transport keeps it to one per
    // outage); an inbound socket closed before its Hello is a probe.
    return this.direction === 'outbound' ? 'connection closed during the handshake' : null;
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.lastReceivedMs = this.now();
    this.decoder.append(chunk);
    for (;;) {
      // A handler may have closed the connection (or the whole transport) meanwhile.
      if (this.isClosed()) return;
      let payload: Buffer | null;
      try {
        payload = this.decoder.next();
      } catch (err) {
        this.close((err as Error).message);
        return;
      }
      if (payload === null) break;
      let frame: DecodedFrame;
      try {
        frame = decodeFrame(payload, this.ends);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        this.close(err.message);
        return;
      }
      if (this.state === 'handshake') this.onHandshakeFrame(frame);
      else this.events.onFrame(this, frame);
    }
    if (this.state === 'handshake' && this.decoder.pendingBytes > PRE_AUTH_MAX_BYTES) {
      this.close(`${this.decoder.pendingBytes} bytes before the Hello exchange completed (limit ${PRE_AUTH_MAX_BYTES})`);
    }
  }

  private onHandshakeFrame(frame: DecodedFrame): void {
    if (frame.goodbye !== null) {
      this.close(`refused by the peer: ${frame.goodbye}`);
      return;
    }
    if (frame.hello === null) {
      this.close('first frame is not a Hello');
      return;
    }
    const refusal = this.events.onHello(this, frame.hello);
    if (refusal !== null) {
      this.refuse(refusal);
      return;
    }
    this.peer = frame.hello.nodeId;
    this.incarnation = frame.hello.incarnation;
    this.ends = { sender: frame.hello.nodeId, receiver: this.local.nodeId };
    // Authenticated: from now on, frames up to the transport's limit.
    this.decoder.setMaxFrameBytes(this.maxFrameBytes);
    if (this.direction === 'inbound') this.writeFrame(encodeFrame({ hello: this.local }));
    this.state = 'open';
    this.events.onOpen(this);
  }
}
