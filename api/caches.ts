// Cache routes (API.md "Caches"): list, create or change, drop, statistics.
import type { FastifyInstance } from 'fastify';
import { VeloError } from '../src/node/errors.js';
import type { CacheService, CacheSettings } from '../src/node/service.js';
import { checkName } from './names.js';
import { cacheAllowed } from '../src/node/tokens.js';
import { PERMIT } from './auth.js';
import { MAX_TTL_MS } from './http-limits.js';

const settingsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    // Integers the state machine can hold exactly (validate.ts); past them a command could not be built.
    defaultTtlMs: { type: 'integer', minimum: 0, maximum: MAX_TTL_MS },
    maxBytes: { anyOf: [{ type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER }, { type: 'null' }] },
    eviction: { type: 'string', enum: ['lru', 'none'] },
  },
} as const;

export async function cacheRoutes(app: FastifyInstance, opts: { service: CacheService }): Promise<void> {
  const { service } = opts;
  // A token limited to some caches sees only those.
  app.get('/caches', { config: { permission: PERMIT.read } }, async (req) => ({ caches: (await service.listCaches()).filter((c) => cacheAllowed(req.auth?.caches ?? null, c.name)) }));

  app.put('/caches/:cache', { config: { permission: PERMIT.adminCache }, schema: { body: settingsSchema } }, async (req, reply) => {
    const name = checkName('cache', (req.params as { cache?: string }).cache);
    const body = (req.body ?? {}) as Partial<CacheSettings>;
    if (typeof body !== 'object' || Array.isArray(body)) throw new VeloError('bad_request', 'settings must be a JSON object');
    const r = await service.putCache(name, body);
    return reply.status(r.created ? 201 : 200).send({ name, settings: r.settings });
  });

  app.delete('/caches/:cache', { config: { permission: PERMIT.adminCache } }, async (req, reply) => {
    await service.dropCache(checkName('cache', (req.params as { cache?: string }).cache));
    return reply.status(204).send();
  });

  app.get('/caches/:cache/stats', { config: { permission: PERMIT.readCache } }, async (req) => service.stats(checkName('cache', (req.params as { cache?: string }).cache)));
}
