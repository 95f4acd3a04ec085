// Who may call what (API.md "Security"): the one place that decides. Every
// route declares its permission in its config; an onRequest hook checks the
// bearer token against it before the body is even read, and puts the
// token's principal on the request (req.auth). A route that declares no
// permission is refused whoever asks: forgetting to declare one fails
// closed, and test/api/auth-routes.test.ts walks every route to prove none
// forgot.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { VeloError } from '../src/node/errors.js';
import type { CacheService, Principal, Role } from '../src/node/service.js';
import { MAX_SECRET_CHARS, cacheAllowed, roleAllows } from '../src/node/tokens.js';

/**
 * `public`: no token ever (health and readiness). Otherwise the least role,
 * and which caches the token must cover: `param` the route's `:cache`,
 * `all` every cache (the route reaches across caches: backups, membership,
 * tokens), `any` none in particular (the cluster view, the cache listing,
 * which is filtered to the token's caches).
 */
export type Permission =
  | 'public'
  | {
      role: Role;
      caches: 'param' | 'all' | 'any';
      /**
       * A second way in, checked (after the body is parsed) only when the
       * token is missing or falls short: e.g. a joining node's proof of
       * identity. Allowed when it answers true.
       */
      alternative?: (req: FastifyRequest) => boolean;
    };

declare module 'fastify' {
  interface FastifyContextConfig {
    permission?: Permission;
  }
  interface FastifyRequest {
    /** The token's principal; null when no token is in force (an open node) or the route is public. */
    auth: Principal | null;
  }
}

/** The route's permission: read by the hook, and by the test that walks the routes. */
export function permissionOf(req: FastifyRequest): Permission | undefined {
  return (req.routeOptions.config as { permission?: Permission } | undefined)?.permission;
}

export interface DeclaredRoute {
  method: string;
  url: string;
  permission: Permission | undefined;
}

/** Every route registered on each app, as it was declared: for the test that proves none lacks a permission. */
const routeTables = new WeakMap<FastifyInstance, DeclaredRoute[]>();

export function declaredRoutes(app: FastifyInstance): readonly DeclaredRoute[] {
  return routeTables.get(app) ?? [];
}

/** A refusal the alternative may still overturn, kept until preHandler. */
const deferred = new WeakMap<FastifyRequest, VeloError>();

export function installAuth(app: FastifyInstance, service: Pick<CacheService, 'accessMode' | 'authenticate'>): void {
  app.decorateRequest('auth', null);
  const table: DeclaredRoute[] = [];
  routeTables.set(app, table);
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) table.push({ method, url: r.url, permission: (r.config as { permission?: Permission } | undefined)?.permission });
  });
  app.addHook('onRequest', async (req, reply) => {
    const permission = permissionOf(req);
    // No route matched: the 404 handler answers; it reveals nothing a token would protect.
    const matched = req.routeOptions.url !== undefined;
    if (permission === 'public') return;
    if (matched && permission === undefined) throw new VeloError('forbidden', `route ${req.method} ${req.routeOptions.url} declares no permission: refused`);
    const mode = service.accessMode();
    if (mode.mode === 'open' || !matched) return;
    if (mode.mode === 'pending') throw new VeloError('unavailable', `this node cannot verify tokens yet: ${mode.why}`, 1);
    const p = permission!;
    const refusal = check(req, reply, service, p);
    if (refusal === null) return;
    if (p.alternative === undefined) throw refusal;
    deferred.set(req, refusal);
  });
  app.addHook('preHandler', async (req) => {
    const refusal = deferred.get(req);
    if (refusal === undefined) return;
    deferred.delete(req);
    const p = permissionOf(req);
    if (p === undefined || p === 'public' || p.alternative === undefined || !p.alternative(req)) throw refusal;
  });
}

/** How often a long-lived answer (an event stream) checks that the token that opened it still holds. */
export const TOKEN_RECHECK_MS = 250;

/**
 * For answers that outlive their request (event streams): calls `onRevoked`
 * once the token that opened it is no longer valid, so that a revocation
 * ends the streams it opened too, within the second API.md promises.
 * Returns the function that stops watching.
 */
export function watchToken(req: FastifyRequest, service: Pick<CacheService, 'authenticate'>, onRevoked: () => void): () => void {
  const secret = req.auth === null ? undefined : /^Bearer +([^\s]+) *$/i.exec(req.headers.authorization ?? '')?.[1];
  if (secret === undefined) return () => {};
  const timer = setInterval(() => {
    if (service.authenticate(secret) !== null) return;
    clearInterval(timer);
    onRevoked();
  }, TOKEN_RECHECK_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** Null when the request's token grants `p` (and req.auth is set); else the error to answer. */
function check(req: FastifyRequest, reply: FastifyReply, service: Pick<CacheService, 'authenticate'>, p: Exclude<Permission, 'public'>): VeloError | null {
  const header = req.headers.authorization;
  const m = typeof header === 'string' && header.length <= MAX_SECRET_CHARS + 16 ? /^Bearer +([^\s]+) *$/i.exec(header) : null;
  if (m === null) {
    reply.header('WWW-Authenticate', 'Bearer realm="velo"');
    return new VeloError('unauthenticated', header === undefined ? 'this node demands a token: send Authorization: Bearer <token>' : 'the Authorization header must be "Bearer <token>"');
  }
  const principal = service.authenticate(m[1]!);
  if (principal === null) {
    reply.header('WWW-Authenticate', 'Bearer realm="velo", error="invalid_token"');
    return new VeloError('unauthenticated', 'the token is not valid here (unknown or revoked)');
  }
  req.auth = principal;
  if (!roleAllows(principal.role, p.role)) return new VeloError('forbidden', `token "${principal.name}" has role ${principal.role}; this needs ${p.role}`);
  if (p.caches === 'all' && principal.caches !== null) return new VeloError('forbidden', `token "${principal.name}" is limited to some caches; this reaches every cache`);
  if (p.caches === 'param') {
    const cache = (req.params as { cache?: unknown } | undefined)?.cache;
    if (typeof cache !== 'string' || !cacheAllowed(principal.caches, cache)) return new VeloError('forbidden', `token "${principal.name}" does not cover cache ${JSON.stringify(cache)}`);
  }
  return null;
}

/** The permissions routes declare, by name. */
export const PERMIT = {
  public: 'public',
  /** The cache listing and the cluster view: any valid token. */
  read: { role: 'read', caches: 'any' },
  readCache: { role: 'read', caches: 'param' },
  writeCache: { role: 'write', caches: 'param' },
  adminCache: { role: 'admin', caches: 'param' },
  /** Reaches across every cache: an admin token limited to none. */
  admin: { role: 'admin', caches: 'all' },
} as const satisfies Record<string, Permission>;
