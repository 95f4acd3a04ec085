import { describe, expect, test } from 'vitest';
import { BadRequestError, CacheFullError, InternalError, NodeFullError, TooManyRequestsError, UnauthenticatedError, errorFor } from '../../src/client/errors.js';

describe('the error class for an answer', () => {
  test.each([
    ['node_full', 507, NodeFullError],
    ['too_many_requests', 429, TooManyRequestsError],
    ['cache_full', 507, CacheFullError],
    ['unauthenticated', 401, UnauthenticatedError],
    // Codes of the edge this client has no class for: the request was at fault.
    ['unsupported_media_type', 415, BadRequestError],
    ['uri_too_long', 414, BadRequestError],
    // A code it does not know, with a server-side status: the server failed.
    ['something_new', 500, InternalError],
    ['something_new', null, InternalError],
  ] as const)('%s (%s) is a %O, and keeps its code and status', (code, status, C) => {
    const e = errorFor(code, 'm', status);
    expect(e).toBeInstanceOf(C);
    expect(e.name).toBe(C.name);
    expect({ code: e.code, status: e.status }).toEqual({ code, status });
  });
});
