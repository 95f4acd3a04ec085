// A session store for @fastify/session on top of a VeloClient.
//
//   const store = new VeloFastifySessionStore({ client, locking: true });
//   await app.register(fastifyCookie);
//   await app.register(store.plugin);   // before @fastify/session: each request's lock scope
//   await app.register(fastifySession, { store, secret, saveUninitialized: false });
//
// Sessions are JSON items of their own cache ('sessions' by default), read
// strongly, living as long as their cookie (session-core.ts). With
// `locking`, requests of one session are serialised (session-lock.ts): the
// plugin gives each request its scope and releases its lock when the
// response closes, whether or not @fastify/session saved.
import type { FastifyPluginCallback, FastifyRequest, Session } from 'fastify';
import type { SessionStore } from '@fastify/session';
import type { VeloSessionStoreOptions } from './options.js';
import { SessionStoreCore } from './session-core.js';
import type { SessionRecord } from './session-core.js';
import type { RequestScope } from './session-lock.js';

const HOOK_HINT = 'register store.plugin before @fastify/session';

type Callback = (err?: unknown) => void;

function settle(op: Promise<unknown>, callback: Callback): void {
  op.then(
    () => callback(),
    (err: unknown) => callback(err),
  );
}

export class VeloFastifySessionStore implements SessionStore {
  private readonly core: SessionStoreCore;
  private readonly scopeOfRequest = new WeakMap<FastifyRequest, RequestScope>();

  /**
   * The per-request hooks, for `app.register` before @fastify/session (they
   * apply to the whole app): a scope opened before the session is loaded,
   * entered again for the handler and for the save (Fastify resumes a
   * request from its body's stream events, which do not carry it), and ended
   * when the response closes — sent, failed or aborted — unlocking whatever
   * the request still holds. Without locking it adds nothing.
   */
  readonly plugin: FastifyPluginCallback;

  constructor(options: VeloSessionStoreOptions) {
    this.core = new SessionStoreCore(options, HOOK_HINT);
    const plugin: FastifyPluginCallback = (app, _opts, done) => {
      if (this.core.options.locking) {
        app.addHook('onRequest', (request, reply, next) => {
          const scope = this.core.openScope();
          this.scopeOfRequest.set(request, scope);
          reply.raw.once('close', () => void this.core.end(scope));
          this.core.scopes.run(scope, () => next());
        });
        app.addHook('preHandler', (request, _reply, next) => this.enter(request, () => next()));
        app.addHook('onSend', (request, _reply, payload, next) => this.enter(request, () => next(null, payload)));
      }
      done();
    };
    // What fastify-plugin does: hooks added by the plugin apply to the app it is registered on, not to a child context.
    Object.assign(plugin, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'velo-session-scope' });
    this.plugin = plugin;
  }

  /** Whether exclusive locking is on. */
  get locking(): boolean {
    return this.core.options.locking !== null;
  }

  get(sessionId: string, callback: (err: unknown, session?: Session | null) => void): void {
    this.core.get(sessionId).then(
      (s) => callback(null, s as Session | null),
      (err: unknown) => callback(err),
    );
  }

  set(sessionId: string, session: Session, callback: Callback): void {
    settle(this.core.set(sessionId, session as unknown as SessionRecord), callback);
  }

  destroy(sessionId: string, callback: Callback): void {
    settle(this.core.destroy(sessionId), callback);
  }

  private enter(request: FastifyRequest, next: () => void): void {
    const scope = this.scopeOfRequest.get(request);
    if (scope) this.core.scopes.run(scope, next);
    else next();
  }
}
