// What the Express and Fastify stores share: sessions as JSON items of their
// own cache on top of the client, their TTL following the cookie, and, when
// asked for, exclusive locking per request (session-lock.ts says how and why).
// The two stores only adapt this to their framework's callbacks and hooks.
import type { CacheClient } from '../client/client.js';
import { CacheNotFoundError, LockedError, LockNotHeldError, NotFoundError, PreconditionFailedError } from '../client/errors.js';
import { resolveSessionStoreOptions, sessionKey, sessionTtlMs } from './options.js';
import type { ResolvedSessionStoreOptions, VeloSessionStoreOptions } from './options.js';
import { lockSession, RequestScope, RequestScopes, SessionConflictError, SessionStoreError, whileLocked } from './session-lock.js';

/** A session as the frameworks hand it over and take it back: a JSON object, its cookie under `cookie`. */
export type SessionRecord = Record<string, unknown>;

export class SessionStoreCore {
  readonly options: ResolvedSessionStoreOptions;
  readonly scopes = new RequestScopes();
  private creating: Promise<void> | null = null;

  /** `hookHint` tells a user whose request runs without a scope which hook to install. */
  constructor(
    options: VeloSessionStoreOptions,
    private readonly hookHint: string,
  ) {
    this.options = resolveSessionStoreOptions(options);
  }

  /** A scope for one request, to run the framework's session handling in and to end() when its response closes. */
  openScope(): RequestScope {
    return new RequestScope();
  }

  async get(sessionId: string): Promise<SessionRecord | null> {
    const key = sessionKey(this.options.prefix, sessionId);
    const locking = this.options.locking;
    if (!locking) return this.read(key);
    const scope = this.requireScope('load');
    return scope.track(this.getLocked(scope, key, locking.timeoutMs, locking.waitMs));
  }

  /** `scope`: the request's, when the framework can name it; else the one the call runs in. */
  async set(sessionId: string, session: SessionRecord, scope?: RequestScope): Promise<void> {
    const key = sessionKey(this.options.prefix, sessionId);
    if (session === null || typeof session !== 'object' || Array.isArray(session)) throw new TypeError(`session ${sessionId}: a session must be an object`);
    const ttlMs = sessionTtlMs(session.cookie, Date.now(), this.options.defaultTtlMs);
    // Its cookie has expired: the browser will not send it again, so keeping the data would only leak it.
    if (ttlMs <= 0) return this.destroy(sessionId);
    if (!this.options.locking) {
      await this.withCache((c) => c.put(key, session, { ttlMs }));
      return;
    }
    const live = this.requireScope('save', scope);
    await live.track(this.writeLocked(live, key, session, ttlMs));
  }

  async destroy(sessionId: string): Promise<void> {
    const key = sessionKey(this.options.prefix, sessionId);
    const locking = this.options.locking;
    if (!locking) {
      await this.withCache((c) => c.delete(key));
      return;
    }
    // Outside a request (an administrator ending a user's session) there is no scope, and none is needed.
    const scope = this.scopes.current();
    const live = scope && !scope.ended ? scope : undefined;
    const op = this.deleteLocked(live, key, locking.waitMs);
    await (live ? live.track(op) : op);
  }

  /** Resets the session's TTL to its cookie's (Express calls this instead of set for an unchanged session). */
  async touch(sessionId: string, session: SessionRecord, requestScope?: RequestScope): Promise<void> {
    const key = sessionKey(this.options.prefix, sessionId);
    const ttlMs = sessionTtlMs(session?.cookie, Date.now(), this.options.defaultTtlMs);
    if (ttlMs <= 0) return this.destroy(sessionId);
    const scope = this.options.locking ? (requestScope ?? this.scopes.current()) : undefined;
    const op = (async () => {
      try {
        await this.withCache((c) => c.touch(key, ttlMs));
      } catch (err) {
        // Gone already (expired or destroyed): there is nothing to keep alive, and the next request starts afresh.
        if (!(err instanceof NotFoundError)) throw err;
      }
      // Touch is the request's last word on an unchanged session: let the next request in.
      const hold = scope?.holds.get(key);
      if (hold?.handle) {
        const handle = hold.handle;
        hold.handle = null;
        await this.unlockQuietly(key, handle);
      }
    })();
    await (scope && !scope.ended ? scope.track(op) : op);
  }

  /** The request's response closed: once its store operations are done, unlock what it still holds. */
  async end(scope: RequestScope): Promise<void> {
    if (scope.ended) return;
    scope.ended = true;
    await scope.settled();
    await Promise.all(
      [...scope.holds].map(([key, hold]) => {
        const handle = hold.handle;
        hold.handle = null;
        return handle === null ? undefined : this.unlockQuietly(key, handle);
      }),
    );
  }

  private requireScope(what: string, explicit?: RequestScope): RequestScope {
    const scope = explicit ?? this.scopes.current();
    if (!scope) throw new SessionStoreError('session_no_scope', `session locking is on, but this session ${what} runs outside a request scope: ${this.hookHint}`, 500);
    // The response closed (an aborted request) and its locks are gone: a write now could overwrite a later request's.
    if (scope.ended) throw new SessionConflictError(`the response closed before this request's session ${what}: its changes were not saved`);
    return scope;
  }

  private async read(key: string): Promise<SessionRecord | null> {
    const value = await this.withCache((c) => c.get(key, { consistency: 'strong' }));
    return value === undefined ? null : asRecord(key, value);
  }

  private async getLocked(scope: RequestScope, key: string, timeoutMs: number, waitMs: number): Promise<SessionRecord | null> {
    // Loaded again within the request that holds it (a reload): the lock is this request's already.
    if (scope.holds.has(key)) return this.read(key);
    const got = await this.withCache((c) => lockSession<unknown>(c, key, timeoutMs, waitMs));
    if (!got) return null;
    scope.holds.set(key, { handle: got.handle, version: got.item.version });
    return asRecord(key, got.item.value);
  }

  private async writeLocked(scope: RequestScope, key: string, session: SessionRecord, ttlMs: number): Promise<void> {
    const hold = scope.holds.get(key);
    if (hold?.handle) {
      const handle = hold.handle;
      try {
        const r = await this.withCache((c) => c.putAndUnlock(key, session, handle, { ttlMs }));
        hold.handle = null;
        hold.version = r.version;
      } catch (err) {
        if (err instanceof LockNotHeldError || err instanceof LockedError) {
          hold.handle = null;
          throw new SessionConflictError(`session ${key}: this request's lock expired (after ${this.options.locking!.timeoutMs} ms) before it saved; its changes were not saved`);
        }
        throw err;
      }
      return;
    }
    if (hold && hold.version !== null) {
      const version = hold.version;
      try {
        hold.version = (await this.withCache((c) => c.compareAndSet(key, session, version, { ttlMs }))).version;
      } catch (err) {
        if (err instanceof PreconditionFailedError || err instanceof LockedError) throw new SessionConflictError(`session ${key} was changed by another request after this one saved it; this save was not applied`);
        throw err;
      }
      return;
    }
    // Not in Velo when this request loaded it (a new id), or deleted by it: create, never overwrite.
    try {
      const r = await this.withCache((c) => c.add(key, session, { ttlMs }));
      scope.holds.set(key, { handle: null, version: r.version });
    } catch (err) {
      if (err instanceof PreconditionFailedError || err instanceof LockedError) throw new SessionConflictError(`session ${key} was created by another request at the same time; this request's changes were not saved`);
      throw err;
    }
  }

  private async deleteLocked(scope: RequestScope | undefined, key: string, waitMs: number): Promise<void> {
    const hold = scope?.holds.get(key);
    if (hold?.handle) {
      const handle = hold.handle;
      try {
        await this.withCache((c) => c.delete(key, { lockHandle: handle }));
        hold.handle = null;
        hold.version = null;
        return;
      } catch (err) {
        // The lock expired meanwhile: removing the session is still what was asked, so it is done as if unlocked.
        if (!(err instanceof LockNotHeldError)) throw err;
        hold.handle = null;
      }
    }
    // A destroy is the request's whole intent (a logout): whoever holds the lock is waited for, and what they write goes too.
    await this.withCache((c) => whileLocked(`destroying session ${key}`, Date.now() + waitMs, () => c.delete(key)));
    if (hold) hold.version = null;
  }

  /**
   * Unlocks and swallows failure: a lock this request held that it cannot
   * release now (the cluster is unavailable, or it expired already) expires
   * by itself after the lock timeout, and the response has already gone.
   */
  private async unlockQuietly(key: string, handle: string): Promise<void> {
    try {
      await this.withCache((c) => c.unlock(key, handle));
    } catch {
      // see above
    }
  }

  /**
   * Runs `op` on the sessions cache, which is created when an operation
   * first finds it missing (and again if it was dropped since): a 404
   * cache_not_found is definite, the operation did nothing, so doing it
   * again is safe. Creating it up front instead would be a catalog write on
   * every partition each time an app starts.
   */
  private async withCache<T>(op: (cache: CacheClient) => Promise<T>): Promise<T> {
    const cache = this.options.client.cache(this.options.cache);
    try {
      return await op(cache);
    } catch (err) {
      if (!(err instanceof CacheNotFoundError)) throw err;
      await this.createCache();
      return op(cache);
    }
  }

  /** One createCache at a time for everything that found the cache missing; idempotent, and it keeps the settings of a cache that exists. */
  private createCache(): Promise<void> {
    this.creating ??= this.options.client
      .createCache(this.options.cache)
      .then(() => undefined)
      .finally(() => {
        this.creating = null;
      });
    return this.creating;
  }
}

function asRecord(key: string, value: unknown): SessionRecord {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Buffer.isBuffer(value)) {
    throw new SessionStoreError('session_invalid', `the item ${key} of the sessions cache is not a session (a JSON object): another program wrote it`, 500);
  }
  return value as SessionRecord;
}
