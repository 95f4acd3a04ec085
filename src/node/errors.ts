// Errors with a stable code and HTTP status, mapped to responses in one place (api/).

import { FAILURE_STATUS } from '../cache/index.js';

// The state machine's failures keep the statuses it gives them; the node adds its own.
const STATUS = {
  ...FAILURE_STATUS,
  value_too_large: 413,
  conflict: 409,
  /** A node holding a replica of the partition is at its memory cap (--max-memory). */
  node_full: 507,
  /** A client holds as many connections or event streams as one client may. */
  too_many_requests: 429,
  /** No valid token where tokens are demanded (API.md "Security"). */
  unauthenticated: 401,
  /** A valid token, outside its role or its caches. */
  forbidden: 403,
  unavailable: 503,
  /** This node is no longer a member of the cluster; any other member answers. */
  node_removed: 503,
  timeout: 503,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof STATUS;

/** True for a code this version knows (a peer's answer names one, or it is refused). */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(STATUS, code);
}

export class VeloError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** For 503s: seconds the client should wait before retrying. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'VeloError';
    this.status = STATUS[code];
  }
}
