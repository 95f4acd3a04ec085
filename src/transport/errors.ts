// Errors of the transport, each with a stable code that the node host maps to
// its own errors (all of them are "unavailable" to a client, except
// remote_error, which carries what the peer's handler threw).

export type TransportErrorCode =
  /** The transport was closed, or not started. */
  | 'closed'
  /** The destination is not among the configured peers. */
  | 'unknown_peer'
  /** There is no connection to the peer right now (it is down or unreachable). */
  | 'unavailable'
  /** The connection dropped while the request was pending: it may or may not have run. */
  | 'disconnected'
  /** No response within the request's timeout: it may or may not have run. */
  | 'timeout'
  /** Too many bytes or requests queued for that peer. */
  | 'queue_full'
  /** The payload can never fit in a frame. */
  | 'too_large'
  /** The peer answered with an error: its handler threw, it had none, or it was overloaded. */
  | 'remote_error'
  /** The listening port could not be bound. */
  | 'listen_failed';

export class TransportError extends Error {
  constructor(
    readonly code: TransportErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'TransportError';
  }
}

/** The peer broke the protocol: its connection is closed. Never leaves the transport. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}
