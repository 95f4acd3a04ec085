// Session stores for express-session and @fastify/session on top of the
// Velo client, with optional exclusive session locking (session-lock.ts).
export { VeloSessionStore } from './express-store.js';
export { VeloFastifySessionStore } from './fastify-store.js';
export { SessionBusyError, SessionConflictError, SessionStoreError } from './session-lock.js';
export { DEFAULT_LOCK_TIMEOUT_MS, DEFAULT_LOCK_WAIT_MS, DEFAULT_SESSION_CACHE, DEFAULT_SESSION_TTL_MS, resolveSessionStoreOptions, sessionTtlMs } from './options.js';
export type { SessionLockingOptions, VeloSessionStoreOptions } from './options.js';
export type { SessionRecord } from './session-core.js';
