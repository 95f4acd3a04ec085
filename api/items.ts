// Item routes (API.md "Items"): PUT, GET, DELETE and touch, in a cache's
// default space or in a region. Values are the raw body bytes, never parsed.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MAX_CONTENT_TYPE_BYTES, MAX_TAGS_PER_ITEM } from '../src/cache/index.js';
import { VeloError } from '../src/node/errors.js';
import type { CacheService, ItemRef, ItemView } from '../src/node/service.js';
import { checkName, parseEtag, positiveInt } from './names.js';
import { PERMIT } from './auth.js';
import { MAX_LOCK_TIMEOUT_MS, MAX_TTL_MS } from './http-limits.js';

export interface ItemsOptions {
  service: CacheService;
  maxValueBytes: number;
}

type Params = { cache?: string; region?: string; key?: string };

// Schemas at the edge (byte lengths of names are checked in checkName: JSON
// Schema counts characters, API.md counts UTF-8 bytes).
const name = { type: 'string', minLength: 1 } as const;
const itemParams = { type: 'object', required: ['cache', 'key'], properties: { cache: name, key: name } } as const;
const regionItemParams = { type: 'object', required: ['cache', 'region', 'key'], properties: { cache: name, region: name, key: name } } as const;
const positiveIntString = { type: 'string', pattern: '^[1-9][0-9]{0,15}$' } as const;
const putQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { ttlMs: positiveIntString, tags: { type: 'string' }, unlock: { type: 'string', enum: ['true', 'false'] } },
} as const;
const getQuery = { type: 'object', additionalProperties: false, properties: { consistency: { type: 'string', enum: ['strong', 'local'] } } } as const;
const touchQuery = { type: 'object', additionalProperties: false, required: ['ttlMs'], properties: { ttlMs: positiveIntString } } as const;
const lockQuery = { type: 'object', additionalProperties: false, required: ['timeoutMs'], properties: { timeoutMs: positiveIntString } } as const;
const conditionHeaders = {
  type: 'object',
  properties: { 'if-match': { type: 'string', maxLength: 64 }, 'if-none-match': { type: 'string', maxLength: 64 }, 'x-velo-lock-handle': { type: 'string', maxLength: 128 } },
} as const;
type Query = Record<string, string | undefined>;

function itemRef(req: FastifyRequest): ItemRef {
  const p = req.params as Params;
  return {
    cache: checkName('cache', p.cache),
    region: p.region === undefined ? null : checkName('region', p.region),
    key: checkName('key', p.key),
  };
}

function sendItem(reply: FastifyReply, item: ItemView): FastifyReply {
  reply.header('Content-Type', item.contentType);
  reply.header('ETag', `"${item.version}"`);
  if (item.expiresAt !== null) reply.header('X-Velo-Expires-At', String(item.expiresAt));
  if (item.tags.length > 0) reply.header('X-Velo-Tags', item.tags.join(','));
  return reply.status(200).send(Buffer.from(item.value.buffer, item.value.byteOffset, item.value.byteLength));
}

/**
 * Beyond API.md: an answer from a node that does not lead the item's
 * partition names the leader (as this node knows it) in X-Velo-Leader, so a
 * client that routes by partition learns that its map is out of date.
 */
export function addLeaderHint(app: FastifyInstance, service: CacheService): void {
  app.addHook('onSend', async (req, reply, payload) => {
    const p = req.params as Params;
    if (typeof p.cache === 'string' && (typeof p.region === 'string' || typeof p.key === 'string')) {
      const leader = service.leaderOf(p.cache, p.region ?? null, p.key ?? '');
      if (leader !== null && leader !== service.id) reply.header('X-Velo-Leader', leader);
    }
    return payload;
  });
}

function singleHeader(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  if (Array.isArray(v)) throw new VeloError('bad_request', `${name} given more than once`);
  return v;
}

export async function itemRoutes(app: FastifyInstance, opts: ItemsOptions): Promise<void> {
  const { service } = opts;
  // Every body is the value's bytes, whatever its type (encapsulated to this plugin).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: opts.maxValueBytes }, (_req, body, done) => done(null, body));
  addLeaderHint(app, service);

  const put = async (req: FastifyRequest, reply: FastifyReply) => {
    const ref = itemRef(req);
    const q = req.query as Query;
    const body = (req.body as Buffer | undefined) ?? Buffer.alloc(0);
    const tags = q.tags === undefined || q.tags === '' ? [] : q.tags.split(',').map((t) => checkName('tag', t));
    if (tags.length > 0 && ref.region === null) throw new VeloError('bad_request', 'tags are for region items only');
    if (tags.length > MAX_TAGS_PER_ITEM) throw new VeloError('bad_request', `${tags.length} tags; the limit is ${MAX_TAGS_PER_ITEM} per item`);
    const contentType = singleHeader(req, 'content-type') ?? 'application/octet-stream';
    const contentTypeBytes = Buffer.byteLength(contentType, 'utf8');
    if (contentTypeBytes === 0 || contentTypeBytes > MAX_CONTENT_TYPE_BYTES) throw new VeloError('bad_request', `Content-Type must be 1–${MAX_CONTENT_TYPE_BYTES} bytes`);
    const ifNoneMatch = singleHeader(req, 'if-none-match');
    if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') throw new VeloError('bad_request', 'If-None-Match supports only *');
    const unlock = q.unlock === undefined ? false : q.unlock === 'true' ? true : q.unlock === 'false' ? false : undefined;
    if (unlock === undefined) throw new VeloError('bad_request', 'unlock must be true or false');
    const result = await service.put({
      ...ref,
      value: body,
      contentType,
      ttlMs: positiveInt('ttlMs', q.ttlMs, MAX_TTL_MS) ?? null,
      tags,
      ifMatch: parseEtag(singleHeader(req, 'if-match')),
      ifNoneMatch: ifNoneMatch !== undefined,
      lockHandle: singleHeader(req, 'x-velo-lock-handle') ?? null,
      unlock,
    });
    reply.header('ETag', `"${result.version}"`);
    return reply.status(result.created ? 201 : 200).send(result);
  };

  const get = async (req: FastifyRequest, reply: FastifyReply) => {
    const ref = itemRef(req);
    const q = req.query as Query;
    const consistency = q.consistency ?? 'strong';
    if (consistency !== 'strong' && consistency !== 'local') {
      throw new VeloError('bad_request', `consistency must be strong or local, got "${consistency}"`);
    }
    const { item, stale } = await service.get(ref, consistency);
    if (stale !== null) reply.header('X-Velo-Stale', String(stale));
    if (!item) throw new VeloError('not_found', `no item "${ref.key}" in cache "${ref.cache}"`);
    return sendItem(reply, item);
  };

  const del = async (req: FastifyRequest, reply: FastifyReply) => {
    const ref = itemRef(req);
    await service.delete(ref, parseEtag(singleHeader(req, 'if-match')), singleHeader(req, 'x-velo-lock-handle') ?? null);
    return reply.status(204).send();
  };

  const touch = async (req: FastifyRequest, reply: FastifyReply) => {
    const ref = itemRef(req);
    const ttlMs = positiveInt('ttlMs', (req.query as Query).ttlMs, MAX_TTL_MS);
    if (ttlMs === undefined) throw new VeloError('bad_request', 'touch needs ttlMs');
    const r = await service.touch(ref, ttlMs);
    reply.header('ETag', `"${r.version}"`);
    return reply.status(200).send(r);
  };

  const lock = async (req: FastifyRequest, reply: FastifyReply) => {
    const ref = itemRef(req);
    const timeoutMs = positiveInt('timeoutMs', (req.query as Query).timeoutMs, MAX_LOCK_TIMEOUT_MS);
    if (timeoutMs === undefined) throw new VeloError('bad_request', 'lock needs timeoutMs');
    const r = await service.lock(ref, timeoutMs);
    reply.header('X-Velo-Lock-Handle', r.handle);
    reply.header('X-Velo-Lock-Expires-At', String(r.lockExpiresAt));
    return sendItem(reply, r.item);
  };

  const unlock = async (req: FastifyRequest, reply: FastifyReply) => {
    const handle = singleHeader(req, 'x-velo-lock-handle');
    if (!handle) throw new VeloError('bad_request', 'unlock needs the X-Velo-Lock-Handle header');
    await service.unlock(itemRef(req), handle);
    return reply.status(204).send();
  };

  for (const base of ['/caches/:cache/items/:key', '/caches/:cache/regions/:region/items/:key']) {
    const params = base.includes(':region') ? regionItemParams : itemParams;
    app.put(base, { config: { permission: PERMIT.writeCache }, schema: { params, querystring: putQuery, headers: conditionHeaders } }, put);
    app.get(base, { config: { permission: PERMIT.readCache }, schema: { params, querystring: getQuery } }, get);
    app.delete(base, { config: { permission: PERMIT.writeCache }, schema: { params, headers: conditionHeaders } }, del);
    app.post(`${base}/touch`, { config: { permission: PERMIT.writeCache }, schema: { params, querystring: touchQuery } }, touch);
    app.post(`${base}/lock`, { config: { permission: PERMIT.writeCache }, schema: { params, querystring: lockQuery } }, lock);
    app.post(`${base}/unlock`, { config: { permission: PERMIT.writeCache }, schema: { params, headers: conditionHeaders } }, unlock);
  }
}
