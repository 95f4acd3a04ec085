// Token management (API.md "Security"): create (the secret is answered once),
// list (never a secret), revoke. Admin only, declared on each route.
import type { FastifyInstance } from 'fastify';
import { VeloError } from '../src/node/errors.js';
import type { CacheService, Role } from '../src/node/service.js';
import { MAX_TOKEN_CACHES, ROLES, TOKEN_NAME_PATTERN, cachePatternProblem } from '../src/node/tokens.js';
import { PERMIT } from './auth.js';

const admin = PERMIT.admin;
const NAME = new RegExp(TOKEN_NAME_PATTERN);

/**
 * The body of POST /admin/tokens, checked by hand rather than by a schema:
 * no coercion ("caches": "a" is not ["a"], 1 is not "1"), every unknown
 * field refused, each problem named.
 */
export function parseTokenRequest(body: unknown): { name: string; role: Role; caches: string[] | null } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new VeloError('bad_request', 'the body must be a JSON object {"name","role","caches"?}');
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => k !== 'name' && k !== 'role' && k !== 'caches');
  if (unknown.length > 0) throw new VeloError('bad_request', `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k.slice(0, 64))).join(', ')}`);
  if (typeof b.name !== 'string' || !NAME.test(b.name)) throw new VeloError('bad_request', 'name must be 1–64 of A–Z a–z 0–9 . _ -');
  if (typeof b.role !== 'string' || !(ROLES as readonly string[]).includes(b.role)) throw new VeloError('bad_request', `role must be one of ${ROLES.join('|')}`);
  let caches: string[] | null = null;
  if (b.caches !== undefined && b.caches !== null) {
    if (!Array.isArray(b.caches) || b.caches.length === 0 || b.caches.length > MAX_TOKEN_CACHES) throw new VeloError('bad_request', `caches must be a list of 1–${MAX_TOKEN_CACHES} cache names or prefixes ending in "*" (absent: every cache)`);
    caches = [];
    for (const c of b.caches as unknown[]) {
      if (typeof c !== 'string') throw new VeloError('bad_request', 'caches must hold strings');
      const problem = cachePatternProblem(c);
      if (problem !== null) throw new VeloError('bad_request', problem);
      caches.push(c);
    }
  }
  return { name: b.name, role: b.role as Role, caches };
}

export async function tokenRoutes(app: FastifyInstance, opts: { service: CacheService }): Promise<void> {
  const { service } = opts;
  const nameParams = { type: 'object', required: ['name'], properties: { name: { type: 'string', pattern: TOKEN_NAME_PATTERN } } } as const;
  const noQuery = { type: 'object', additionalProperties: false, properties: {} } as const;

  app.post('/admin/tokens', { config: { permission: admin }, schema: { querystring: noQuery } }, async (req, reply) => {
    const t = parseTokenRequest(req.body);
    return reply.status(201).header('cache-control', 'no-store').send(await service.createToken(t));
  });

  app.get('/admin/tokens', { config: { permission: admin }, schema: { querystring: noQuery } }, async () => ({ tokens: service.listTokens() }));

  app.delete('/admin/tokens/:name', { config: { permission: admin }, schema: { params: nameParams, querystring: noQuery } }, async (req, reply) => {
    await service.revokeToken((req.params as { name: string }).name);
    return reply.status(204).send();
  });
}
