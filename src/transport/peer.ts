// What this node keeps about one peer: its connection (open or being
// dialed), what is queued for it, the requests waiting on it, and counters.

import type { NodeId } from '../../raft/index.js';
import { ResponseStatus, type WireResponse } from './codec.js';
import { TransportError, type TransportErrorCode } from './errors.js';
import { Outbox } from './outbox.js';
import type { PeerConnection } from './peer-connection.js';

export interface PeerStatus {
  address: string;
  connected: boolean;
  /** The peer's incarnation from its last Hello; null before the first connection. */
  incarnation: number | null;
  /** The lower id dials: 'local' when this node does. */
  dialer: 'local' | 'remote';
  /** Queued for the next flush, plus written but not yet taken by the kernel. */
  queuedBytes: number;
  pendingRequests: number;
  /** Frames with content sent to / received from the peer (keepalives not counted). */
  framesSent: number;
  framesReceived: number;
  raftMessagesDropped: number;
}

interface PendingRequest {
  /** The connection it was sent on: when that one closes, the request fails. */
  conn: PeerConnection;
  deadlineMs: number;
  resolve(payload: Uint8Array): void;
  reject(err: TransportError): void;
}

export class Peer {
  /** The open connection, if any. */
  conn: PeerConnection | null = null;
  /** An outbound connection still in its handshake (only on the dialing side). */
  dialing: PeerConnection | null = null;
  readonly outbox: Outbox;
  /** Requests from the peer that this node's handler is working on. */
  inboundInFlight = 0;
  incarnation: number | null = null;
  reconnectTimer: NodeJS.Timeout | null = null;
  failedDials = 0;
  /** The last dial failure logged: one line per outage, not one per attempt. */
  loggedDialError: string | null = null;
  framesSent = 0;
  framesReceived = 0;
  raftMessagesDropped = 0;
  private readonly pending = new Map<number, PendingRequest>();

  constructor(
    readonly id: NodeId,
    public address: string,
    self: NodeId,
  ) {
    this.outbox = new Outbox({ sender: self, receiver: id });
  }

  queuedBytes(): number {
    return this.outbox.queuedBytes + (this.conn?.unsentBytes ?? 0);
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  addPending(id: number, p: PendingRequest): void {
    this.pending.set(id, p);
  }

  /** Settles the request `r` answers, if it is still waiting and was sent on `conn`. */
  complete(conn: PeerConnection, r: WireResponse): void {
    const p = this.pending.get(r.id);
    if (p === undefined || p.conn !== conn) return; // timed out already
    this.pending.delete(r.id);
    switch (r.status) {
      case ResponseStatus.Ok:
        return p.resolve(r.payload);
      case ResponseStatus.HandlerError:
        return p.reject(new TransportError('remote_error', `${this.id} failed the request: ${r.error}`));
      case ResponseStatus.NoHandler:
        return p.reject(new TransportError('unavailable', `${this.id} did not run the request: ${r.error}`));
      case ResponseStatus.Overloaded:
        return p.reject(new TransportError('queue_full', `${this.id} did not run the request: ${r.error}`));
    }
  }

  /** Fails the requests sent on `conn`, or all of them when it is null. */
  failPending(conn: PeerConnection | null, code: TransportErrorCode, why: string): void {
    for (const [id, p] of this.pending) {
      if (conn !== null && p.conn !== conn) continue;
      this.pending.delete(id);
      p.reject(new TransportError(code, why));
    }
  }

  /** Fails the requests whose deadline has passed. */
  expire(nowMs: number): void {
    for (const [id, p] of this.pending) {
      if (p.deadlineMs > nowMs) continue;
      this.pending.delete(id);
      p.reject(new TransportError('timeout', `transport: no answer from ${this.id} in time`));
    }
  }

  status(dialer: 'local' | 'remote'): PeerStatus {
    return {
      address: this.address,
      connected: this.conn !== null,
      incarnation: this.incarnation,
      dialer,
      queuedBytes: this.queuedBytes(),
      pendingRequests: this.pending.size,
      framesSent: this.framesSent,
      framesReceived: this.framesReceived,
      raftMessagesDropped: this.raftMessagesDropped,
    };
  }
}
