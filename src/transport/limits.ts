// Every limit of the transport, in one place (TigerBeetle style: a limit
// turns an overload into a clear error instead of a slow death). The
// DEFAULT_ ones can be changed through TransportOptions.

/** Largest frame payload accepted or sent; a bigger length prefix closes the connection. */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** Smallest maxFrameBytes allowed: a Hello and a few heartbeats must always fit. */
export const MIN_MAX_FRAME_BYTES = 4 * 1024;

/** Bytes of the big-endian length prefix before each frame. */
export const FRAME_HEADER_BYTES = 4;

/**
 * Queued bytes per peer (not yet flushed, plus written but not yet taken by
 * the kernel) above which raft messages are dropped and requests refused:
 * a slow peer must not grow this process's memory without bound.
 */
export const DEFAULT_MAX_QUEUED_BYTES_PER_PEER = 128 * 1024 * 1024;

/** Requests this node may have waiting on one peer at a time. */
export const MAX_PENDING_REQUESTS_PER_PEER = 10_000;

/** Requests from one peer that this node's handler may be working on at once. */
export const MAX_INBOUND_REQUESTS_PER_PEER = 10_000;

/**
 * Room kept in a frame for everything around one request or response
 * payload, so a payload that passes the size check always fits a frame.
 */
export const REQUEST_OVERHEAD_BYTES = 1024;

/** A handler's error message is cut to this length before it is sent. */
export const MAX_ERROR_MESSAGE_CHARS = 1000;

/** How often pending requests, handshakes and idle connections are checked (one timer for all). */
export const SWEEP_INTERVAL_MS = 100;

/** A connection that has not completed its Hello exchange by then is closed. */
export const HANDSHAKE_TIMEOUT_MS = 5_000;

/** Inbound connections still in their handshake; more are refused at once. */
export const MAX_HANDSHAKING_CONNECTIONS = 64;

/** An empty frame is sent to a peer that has been sent nothing for this long. */
export const DEFAULT_KEEPALIVE_INTERVAL_MS = 1_000;

/** A peer silent for this long is considered gone and its connection closed. */
export const DEFAULT_IDLE_TIMEOUT_MS = 10_000;

/** Reconnection back-off bounds when a peer is down. */
export const DEFAULT_RECONNECT_MIN_MS = 100;
export const DEFAULT_RECONNECT_MAX_MS = 5_000;

/**
 * Largest frame a connection accepts before it is authenticated: a Hello or
 * a Goodbye, nothing more. Until then a stranger must not make this node
 * buffer the DEFAULT_MAX_FRAME_BYTES an authenticated peer may send.
 */
export const PRE_AUTH_MAX_FRAME_BYTES = 2 * 1024;

/** Bytes an unauthenticated connection may have sent and not yet had read as its Hello; more closes it. */
export const PRE_AUTH_MAX_BYTES = 4 * 1024;

/**
 * Bytes read from the socket of an unauthenticated TLS connection (its TLS
 * handshake with a certificate chain, then its Hello); more closes it.
 */
export const PRE_AUTH_MAX_TLS_BYTES = 16 * 1024;

/**
 * Unauthenticated connections from one remote address; a new one closes the
 * oldest, so sockets left idle cannot lock the real peers out.
 */
export const MAX_PRE_AUTH_CONNECTIONS_PER_ADDRESS = 8;

/** One warning line per remote address in this long, for refusals a stranger can repeat at will. */
export const REFUSAL_LOG_INTERVAL_MS = 10_000;
