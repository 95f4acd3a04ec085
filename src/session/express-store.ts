// A session store for express-session on top of a VeloClient.
//
//   const store = new VeloSessionStore({ client, locking: true });
//   app.use(store.middleware());   // right before session(): each request's lock scope
//   app.use(session({ store, secret, resave: false, saveUninitialized: false }));
//
// Sessions are JSON items of their own cache ('sessions' by default), read
// strongly, living as long as their cookie (session-core.ts). With
// `locking`, requests of one session are serialised (session-lock.ts): the
// middleware gives each request its scope and releases its lock when the
// response closes, whether or not express-session saved. Use
// `resave: false`: this store implements touch.
import session from 'express-session';
import type { SessionData } from 'express-session';
import type { RequestHandler } from 'express';
import type { VeloSessionStoreOptions } from './options.js';
import { SessionStoreCore } from './session-core.js';
import type { SessionRecord } from './session-core.js';
import type { RequestScope } from './session-lock.js';

const HOOK_HINT = 'mount store.middleware() right before session() (nothing asynchronous may run between them)';

function settle(op: Promise<unknown>, callback: ((err?: unknown) => void) | undefined): void {
  op.then(
    () => callback?.(),
    (err: unknown) => callback?.(err),
  );
}

export class VeloSessionStore extends session.Store {
  private readonly core: SessionStoreCore;
  /**
   * Each request's scope, for saves that run where the scope's async context
   * did not reach (a middleware that resumes the request from a callback
   * that does not carry it): express-session's Session carries its request.
   */
  private readonly scopeOfRequest = new WeakMap<object, RequestScope>();

  constructor(options: VeloSessionStoreOptions) {
    super();
    this.core = new SessionStoreCore(options, HOOK_HINT);
  }

  /** Whether exclusive locking is on. */
  get locking(): boolean {
    return this.core.options.locking !== null;
  }

  override get(sid: string, callback: (err: unknown, session?: SessionData | null) => void): void {
    this.core.get(sid).then(
      (s) => callback(null, s as SessionData | null),
      (err: unknown) => callback(err),
    );
  }

  override set(sid: string, sess: SessionData, callback?: (err?: unknown) => void): void {
    settle(this.core.set(sid, sess as unknown as SessionRecord, this.scopeOf(sess)), callback);
  }

  override destroy(sid: string, callback?: (err?: unknown) => void): void {
    settle(this.core.destroy(sid), callback);
  }

  override touch(sid: string, sess: SessionData, callback?: (err?: unknown) => void): void {
    settle(this.core.touch(sid, sess as unknown as SessionRecord, this.scopeOf(sess)), callback);
  }

  private scopeOf(sess: SessionData): RequestScope | undefined {
    const req = (sess as { req?: unknown }).req;
    return typeof req === 'object' && req !== null ? this.scopeOfRequest.get(req) : undefined;
  }

  /**
   * The per-request hook: opens the request's lock scope for session() to
   * run in, and ends it when the response closes (sent, failed or aborted),
   * unlocking whatever the request still holds. Without locking it only
   * passes the request on.
   */
  middleware(): RequestHandler {
    return (req, res, next) => {
      if (!this.core.options.locking) return next();
      const scope = this.core.openScope();
      this.scopeOfRequest.set(req, scope);
      res.once('close', () => void this.core.end(scope));
      this.core.scopes.run(scope, () => next());
    };
  }
}
