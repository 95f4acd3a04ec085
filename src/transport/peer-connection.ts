// One TCP connection to a peer: framing, the Hello exchange, writes and
// counters. What a Hello must say, and what a frame means, the Transport
// decides; a connection only knows its own socket.
//
// Handshake: the dialing side sends its Hello as soon as the socket
// connects; the accepting side checks it and answers with its own Hello, or
// with a Goodbye saying why it refuses. The dialer checks the answer. Only
// then does either side send anything else.

import type { Socket } from 'node:net';
import type { NodeId } from '../../raft/index.js';
import { decodeFrame, encodeFrame, type DecodedFrame, type Ends, type Hello } from './codec.js';
import { ProtocolError } from './errors.js';
import { FrameDecoder, encodeFramed, frameHeader } from './framing.js';

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
}

export class PeerConnection {
  state: 'handshake' | 'open' | 'closed' = 'handshake';
  readonly direction: Direction;
  /** The peer's id: expected when dialing, then the one its Hello gave. */
  peer: NodeId | null;
  incarnation: number | null = null;
  readonly createdMs: number;
  lastSentMs: number;
  lastReceivedMs: number;

  private readonly socket: Socket;
  private readonly local: Hello;
  private readonly decoder: FrameDecoder;
  private readonly now: () => number;
  private readonly events: ConnectionEvents;
  /** Set when the handshake completes; fills in the from/to left off the wire. */
  private ends: Ends | null = null;
  /** Where the socket leads, kept for log lines after it is gone. */
  readonly remote: string;

  constructor(o: ConnectionOptions) {
    this.socket = o.socket;
    this.direction = o.direction;
    this.local = o.local;
    this.peer = o.expectedPeer;
    this.decoder = new FrameDecoder(o.maxFrameBytes);
    this.now = o.now;
    this.events = o.events;
    this.createdMs = this.lastSentMs = this.lastReceivedMs = o.now();
    this.remote = o.remote;
    // Frames are batched by flush(); Nagle's algorithm would only add delay.
    o.socket.setNoDelay(true);
    o.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    o.socket.on('error', (err: NodeJS.ErrnoException) => this.close(`socket error: ${err.code ?? err.message}`));
    o.socket.on('close', () => this.close(this.state === 'open' ? 'connection closed by the peer' : this.quietUnlessDialing()));
    if (o.direction === 'outbound') o.socket.on('connect', () => this.writeFrame(encodeFrame({ hello: this.local })));
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

  private quietUnlessDialing(): string | null {
    // A dial that fails is worth a line (the Transport keeps it to one per
    // outage); an inbound socket closed before its Hello is a probe.
    return this.direction === 'outbound' ? 'connection closed during the handshake' : null;
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.lastReceivedMs = this.now();
    let payloads: Buffer[];
    try {
      payloads = this.decoder.push(chunk);
    } catch (err) {
      this.close((err as Error).message);
      return;
    }
    for (const payload of payloads) {
      // A handler may have closed the connection (or the whole transport) meanwhile.
      if (this.isClosed()) return;
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
    if (this.direction === 'inbound') this.writeFrame(encodeFrame({ hello: this.local }));
    this.state = 'open';
    this.events.onOpen(this);
  }
}
