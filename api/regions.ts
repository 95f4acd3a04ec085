// Region routes (API.md "Items"): list a region's items, all or by tags, and clear it atomically.
import type { FastifyInstance } from 'fastify';
import { VeloError } from '../src/node/errors.js';
import type { CacheService } from '../src/node/service.js';
import { addLeaderHint } from './items.js';
import { checkName } from './names.js';
import { PERMIT } from './auth.js';

const params = { type: 'object', required: ['cache', 'region'], properties: { cache: { type: 'string', minLength: 1 }, region: { type: 'string', minLength: 1 } } } as const;
const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { tag: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] }, match: { type: 'string', enum: ['any', 'all'] } },
} as const;

const decoder = new TextDecoder('utf-8', { fatal: true });

function isJson(contentType: string): boolean {
  const t = contentType.split(';')[0]!.trim().toLowerCase();
  return t === 'application/json' || t.endsWith('+json');
}

/** `value` (parsed) for JSON items, `valueBase64` otherwise — or when the stored bytes are not valid JSON. */
function encodeValue(contentType: string, value: Uint8Array): { value: unknown } | { valueBase64: string } {
  if (isJson(contentType)) {
    try {
      return { value: JSON.parse(decoder.decode(value)) };
    } catch {
      // stored as JSON-typed but not JSON: fall through
    }
  }
  return { valueBase64: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
}

export async function regionRoutes(app: FastifyInstance, opts: { service: CacheService }): Promise<void> {
  const { service } = opts;
  addLeaderHint(app, service);
  app.get('/caches/:cache/regions/:region/items', { config: { permission: PERMIT.readCache }, schema: { params, querystring: listQuery } }, async (req) => {
    const p = req.params as { cache?: string; region?: string };
    const q = req.query as { tag?: string | string[]; match?: 'any' | 'all' };
    const tags = (q.tag === undefined ? [] : Array.isArray(q.tag) ? q.tag : [q.tag]).map((t) => checkName('tag', t));
    if (q.match !== undefined && tags.length === 0) throw new VeloError('bad_request', 'match needs at least one tag');
    const items = await service.listRegion(checkName('cache', p.cache), checkName('region', p.region), tags, q.match ?? 'any');
    return {
      items: items.map((i) => ({ key: i.key, version: i.version, tags: i.tags, expiresAt: i.expiresAt, contentType: i.contentType, ...encodeValue(i.contentType, i.value) })),
    };
  });

  app.delete('/caches/:cache/regions/:region', { config: { permission: PERMIT.writeCache }, schema: { params } }, async (req) => {
    const p = req.params as { cache?: string; region?: string };
    return service.clearRegion(checkName('cache', p.cache), checkName('region', p.region));
  });
}
