// Every failure a client sees is one of these classes, each carrying the
// API's error code (API.md "Conventions") and, when an answer came, its HTTP
// status. The one mapping from a code to a class is errorFor().

export class VeloClientError extends Error {
  constructor(
    /** The API's snake_case code ("precondition_failed", "unavailable", …). */
    readonly code: string,
    message: string,
    /** The HTTP status of the answer; null when none came (embedded mode, or a broken connection). */
    readonly status: number | null = null,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The cache does not exist (404 cache_not_found). */
export class CacheNotFoundError extends VeloClientError {}
/** The item does not exist where an operation needs it (404 not_found): lock, touch, unlock of a missing key. */
export class NotFoundError extends VeloClientError {}
/** A condition did not hold (412): add of an existing key, compare-and-set against another version. */
export class PreconditionFailedError extends VeloClientError {}
/** Another lock handle holds the item (423). */
export class LockedError extends VeloClientError {}
/** The handle given does not hold the item's lock (409). */
export class LockNotHeldError extends VeloClientError {}
/** A cache without eviction is full (507). */
export class CacheFullError extends VeloClientError {}
/** A node holding a replica of the item's partition is at its memory cap (507 node_full): nothing was written. */
export class NodeFullError extends VeloClientError {}
/** This client has as many connections or event streams open as a node allows it (429): nothing was done. */
export class TooManyRequestsError extends VeloClientError {}
/** The value is larger than the cluster accepts (413). */
export class ValueTooLargeError extends VeloClientError {}
/** The request was refused as malformed (400); nothing changed. */
export class BadRequestError extends VeloClientError {}
/**
 * The cluster could not serve the request in time (503), and retrying it
 * was safe but did not help: nothing was changed by it.
 */
export class UnavailableError extends VeloClientError {}
/**
 * A write or lock whose outcome is unknown: it may or may not have been
 * applied (API.md: a write answered 503/504 or whose connection broke). The
 * client never retries such a request blindly; read the item to find out.
 */
export class IndeterminateError extends VeloClientError {
  constructor(message: string, override readonly cause?: unknown) {
    super('indeterminate', message, null);
  }
}
/** The event stream cannot resume after the given position: the partition no longer holds that history. */
export class HistoryLostError extends VeloClientError {}
/** The cluster demands a token and none valid was sent (401): give the client option `token`. */
export class UnauthenticatedError extends VeloClientError {}
/** The token is valid but its role or its caches do not cover the operation (403). */
export class ForbiddenError extends VeloClientError {}
/** A node's HTTPS certificate is not trusted (no `ca` option, or not the CA that signed it): nothing was sent. */
export class UntrustedCertificateError extends VeloClientError {}
/** The server failed (500), or answered something this client cannot read. */
export class InternalError extends VeloClientError {}

const BY_CODE: Record<string, new (code: string, message: string, status: number | null) => VeloClientError> = {
  cache_not_found: CacheNotFoundError,
  not_found: NotFoundError,
  precondition_failed: PreconditionFailedError,
  locked: LockedError,
  lock_not_held: LockNotHeldError,
  cache_full: CacheFullError,
  node_full: NodeFullError,
  too_many_requests: TooManyRequestsError,
  value_too_large: ValueTooLargeError,
  bad_request: BadRequestError,
  unavailable: UnavailableError,
  timeout: UnavailableError,
  history_lost: HistoryLostError,
  unauthenticated: UnauthenticatedError,
  forbidden: ForbiddenError,
  internal: InternalError,
};

/**
 * The typed error for an API error code. A code this client does not know
 * keeps it, and is a BadRequestError when the status says the request was at
 * fault (4xx: the edge's uri_too_long, unsupported_media_type, …), else an
 * InternalError.
 */
export function errorFor(code: string, message: string, status: number | null): VeloClientError {
  const C = BY_CODE[code] ?? (status !== null && status >= 400 && status < 500 ? BadRequestError : InternalError);
  return new C(code, message, status);
}
