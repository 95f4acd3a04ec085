// Errors with a stable code and HTTP status, mapped to responses in one place (api/).

export type ErrorCode =
  | 'bad_request'
  | 'not_found'
  | 'cache_not_found'
  | 'precondition_failed'
  | 'locked'
  | 'lock_not_held'
  | 'cache_full'
  | 'value_too_large'
  | 'unavailable'
  | 'timeout'
  | 'internal';

const STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  not_found: 404,
  cache_not_found: 404,
  precondition_failed: 412,
  locked: 423,
  lock_not_held: 409,
  cache_full: 507,
  value_too_large: 413,
  unavailable: 503,
  timeout: 503,
  internal: 500,
};

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
