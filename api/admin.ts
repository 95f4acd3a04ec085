// Backup and bulk load (API.md extension, documented in README "Backup and
// restore"): a partition's content as one binary export, and many items
// written in one request. Both carry the binary records of
// src/cache/records.ts; values are never JSON-encoded.
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { RecordsError, decodeRecords } from '../src/cache/index.js';
import type { ItemRecord } from '../src/cache/index.js';
import { VeloError } from '../src/node/errors.js';
import type { CacheService } from '../src/node/service.js';
import { PERMIT } from './auth.js';

export const EXPORT_CONTENT_TYPE = 'application/x-velo-export';
export const RECORDS_CONTENT_TYPE = 'application/x-velo-records';
/** A load request's body limit: room for many items, and always for one item of the largest value allowed. */
export const LOAD_MIN_BODY_BYTES = 16 * 1024 * 1024;

export interface AdminOptions {
  service: CacheService;
  maxValueBytes: number;
}

const partitionParams = { type: 'object', required: ['partition'], properties: { partition: { type: 'string', pattern: '^(0|[1-9][0-9]{0,5})$' } } } as const;

type LoadFailure = { index: number; code: string; message: string; retry: 'safe' | 'indeterminate' | 'no' };

export async function adminRoutes(app: FastifyInstance, opts: AdminOptions): Promise<void> {
  const { service, maxValueBytes } = opts;
  const bodyLimit = Math.max(LOAD_MIN_BODY_BYTES, 2 * maxValueBytes);
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(RECORDS_CONTENT_TYPE, { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (req, _body, done) => {
    done(new VeloError('bad_request', `a load body must be ${RECORDS_CONTENT_TYPE}, got ${req.headers['content-type'] ?? 'none'}`), undefined);
  });

  app.get(
    '/admin/partitions/:partition/export',
    { config: { permission: PERMIT.admin }, schema: { params: partitionParams } },
    async (req, reply) => {
      const partition = Number((req.params as { partition: string }).partition);
      const out = await service.exportPartition(partition);
      reply.header('Content-Type', EXPORT_CONTENT_TYPE);
      reply.header('Content-Length', String(out.bytes));
      reply.header('X-Velo-Index', String(out.index));
      // A chunk that cannot be fetched breaks the stream: the client sees fewer bytes than Content-Length.
      return reply.send(Readable.from(out.chunks, { objectMode: false }));
    },
  );

  // Answered by the receiving node's own replica, leader or not: for comparing replicas.
  app.get('/admin/partitions/:partition/digest', { config: { permission: PERMIT.admin }, schema: { params: partitionParams } }, async (req) => {
    const partition = Number((req.params as { partition: string }).partition);
    const d = service.partitionDigest(partition);
    if (!d) throw new VeloError('not_found', `no replica of partition ${partition} on this node`);
    return d;
  });

  app.post('/admin/load', { config: { permission: PERMIT.admin } }, async (req) => {
    if (!(req.body instanceof Buffer)) throw new VeloError('bad_request', `a load needs a ${RECORDS_CONTENT_TYPE} body`);
    let items: ItemRecord[];
    try {
      items = decodeRecords(req.body);
    } catch (e) {
      if (e instanceof RecordsError) throw new VeloError('bad_request', `${e.message}; nothing was written`);
      throw e;
    }
    // Values over this node's limit are refused one by one, as a PUT of them would be.
    const accepted: ItemRecord[] = [];
    const positions: number[] = [];
    const failed: LoadFailure[] = [];
    items.forEach((it, i) => {
      if (it.value.length > maxValueBytes) failed.push({ index: i, code: 'value_too_large', message: `value of ${it.value.length} bytes exceeds the limit of ${maxValueBytes}`, retry: 'no' });
      else {
        accepted.push(it);
        positions.push(i);
      }
    });
    const out = await service.load(accepted);
    for (const f of out.failed) failed.push({ ...f, index: positions[f.index]! });
    failed.sort((a, b) => a.index - b.index);
    return { written: out.written, failed };
  });
}
