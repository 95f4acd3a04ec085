// Exclusive session locking, as ASP.NET's session-state provider did it,
// built on Velo's item locks (GetAndLock, PutAndUnlock, Unlock).
//
// The semantics:
// - A request that loads its session takes the session item's lock in the
//   same step (`lock`: the value it reads is the value no one else can
//   change until it lets go). Another request of that session — in another
//   process or in the same one, since each request has its own handle —
//   waits: it retries with a capped backoff while the item is locked, for
//   at most `waitMs`, then fails with SessionBusyError (503).
// - The request's write releases the lock (`putAndUnlock`); so does its
//   destroy, or Express's touch of an unchanged session. Whatever the
//   framework calls or does not call (an unchanged session, an error, an
//   aborted response), the request's scope ends when its response closes and
//   unlocks what it still holds. A lock is never held longer than
//   `timeoutMs`: the lock of a crashed app, or of a request that runs longer,
//   expires by itself, and that request's later write is refused
//   (SessionConflictError) instead of overwriting what came after.
// - A second write in one request (an explicit save() and the one at its
//   end) no longer holds the lock: it is a compare-and-set against the
//   version the first wrote, and a change by anyone else in between fails it.
// - A session that is not in Velo (a new id, or one that expired) cannot be
//   locked; both frameworks then give the request a new random id, and its
//   first write is an add(), which fails rather than overwrite if the id was
//   created meanwhile. Two first requests of one browser (no cookie yet)
//   therefore make two sessions, and the browser keeps whichever cookie it
//   got last: nothing in the store is lost, but the other session is not
//   reachable. That race is the cookie protocol's, not the store's.
// - Every request that goes through the hook takes the lock, readers
//   included: there is no read-only mode.
//
// A request is found by its scope (an AsyncLocalStorage store) that the
// framework hook opens before the session middleware runs: the frameworks
// call the store with a session id only, and two requests of one session in
// one process must each have their own handle.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { CacheClient, Item } from '../client/client.js';
import { IndeterminateError, LockedError, NotFoundError, UnavailableError } from '../client/errors.js';

/** A store error that a web framework answers with its status code (Express reads `status`, Fastify `statusCode`). */
export class SessionStoreError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
    this.name = new.target.name;
  }
  get status(): number {
    return this.statusCode;
  }
}

/** Another request held the session's lock for longer than the request could wait (`waitMs`). */
export class SessionBusyError extends SessionStoreError {
  constructor(message: string) {
    super('session_busy', message, 503);
  }
}

/** The request's changes were not saved, because saving them could have overwritten another request's. */
export class SessionConflictError extends SessionStoreError {
  constructor(message: string) {
    super('session_conflict', message, 409);
  }
}

/** What one request holds of one session. */
export interface Hold {
  /** The lock's handle while the request holds it; null once released. */
  handle: string | null;
  /** The version this request last read under the lock or wrote; null once it deleted the session. */
  version: string | null;
}

/** One request's view of the session store: what it holds, and whether its response already closed. */
export class RequestScope {
  readonly holds = new Map<string, Hold>();
  ended = false;
  private readonly inFlight = new Set<Promise<unknown>>();

  /** Runs a store operation of this request; end() waits for it, so it never unlocks under a write in flight. */
  track<T>(op: Promise<T>): Promise<T> {
    this.inFlight.add(op);
    const forget = () => this.inFlight.delete(op);
    op.then(forget, forget);
    return op;
  }

  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }
}

export const LOCK_RETRY_FIRST_MS = 10;
export const LOCK_RETRY_MAX_MS = 200;

/**
 * The pause before retry number `attempt` (0-based): doubling from
 * LOCK_RETRY_FIRST_MS up to LOCK_RETRY_MAX_MS, each drawn from its upper
 * half so that waiters in several processes do not retry in step.
 */
export function lockRetryPauseMs(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(LOCK_RETRY_MAX_MS, LOCK_RETRY_FIRST_MS * 2 ** Math.min(attempt, 20));
  return Math.ceil(ceiling / 2 + (ceiling / 2) * random());
}

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Retries `attempt` while another handle holds the item, or while the
 * outcome of a lock attempt is unknown (a lock taken by a lost request is
 * held by no one and expires after its timeout), until `deadlineMs`.
 */
export async function whileLocked<T>(what: string, deadlineMs: number, attempt: () => Promise<T>): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof LockedError || err instanceof IndeterminateError || err instanceof UnavailableError)) throw err;
    }
    const ms = lockRetryPauseMs(n);
    if (Date.now() + ms > deadlineMs) throw new SessionBusyError(`${what}: another request held the session's lock for longer than this one may wait`);
    await pause(ms);
  }
}

/** GetAndLock of the session, waiting for other holders; null when the session is not in Velo. */
export async function lockSession<T>(cache: CacheClient, key: string, timeoutMs: number, waitMs: number): Promise<{ item: Item<T>; handle: string } | null> {
  try {
    return await whileLocked(`session ${key}`, Date.now() + waitMs, () => cache.lock<T>(key, timeoutMs));
  } catch (err) {
    if (err instanceof NotFoundError) return null;
    throw err;
  }
}

/** One AsyncLocalStorage per store, so that two stores in one app keep their scopes apart. */
export class RequestScopes {
  private readonly storage = new AsyncLocalStorage<RequestScope>();

  current(): RequestScope | undefined {
    return this.storage.getStore();
  }

  run<R>(scope: RequestScope, fn: () => R): R {
    return this.storage.run(scope, fn);
  }
}
