// Change events as Server-Sent Events (API.md "Change events").
import type { FastifyInstance } from 'fastify';
import type { CacheService } from '../src/node/service.js';
import { VeloError } from '../src/node/errors.js';
import { checkName } from './names.js';
import { PERMIT, watchToken } from './auth.js';
import type { EventStreams } from './event-streams.js';
import { clientOf } from './http-limits.js';

const query = { type: 'object', additionalProperties: false, properties: { region: { type: 'string', minLength: 1 }, key: { type: 'string', minLength: 1 } } } as const;
const params = { type: 'object', required: ['cache'], properties: { cache: { type: 'string', minLength: 1 } } } as const;

/** A comment line every so often keeps proxies from closing an idle stream. */
const KEEPALIVE_MS = 15_000;

export async function eventRoutes(app: FastifyInstance, opts: { service: CacheService; streams: EventStreams }): Promise<void> {
  app.get('/caches/:cache/events', { config: { permission: PERMIT.readCache }, schema: { params, querystring: query } }, async (req, reply) => {
    const cache = checkName('cache', (req.params as { cache?: string }).cache);
    const q = req.query as { region?: string; key?: string };
    const lastEventId = req.headers['last-event-id'];
    if (Array.isArray(lastEventId)) throw new VeloError('bad_request', 'Last-Event-ID given more than once');
    const raw = reply.raw;
    // Counted before any work for it: past a cap the client gets 429 or 503, not a stream.
    const stream = opts.streams.add(clientOf({ auth: (req as { auth?: { name: string } | null }).auth ?? null, socket: req.socket }), raw);
    let started = false;
    const start = () => {
      if (started) return;
      started = true;
      reply.hijack();
      raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      stream.write(': velo change events\n\n');
    };
    // Opening validates the cursor (400 on a bad Last-Event-ID) before anything is written.
    const stop = await opts.service.openEvents(
      { cache, region: q.region === undefined ? null : checkName('region', q.region), key: q.key === undefined ? null : checkName('key', q.key), lastEventId: lastEventId ?? null },
      {
        ready: () => stream.ready(),
        event(id, data) {
          start();
          stream.write(`id: ${id}\ndata: ${JSON.stringify(data)}\n\n`);
        },
        error(code, message) {
          start();
          stream.write(`event: error\ndata: ${JSON.stringify({ error: { code, message } })}\n\n`);
          stream.end();
        },
      },
    );
    start();
    // Only to a reader that keeps up: one that does not is closed by its stall limit instead.
    const keepalive = setInterval(() => stream.ready() && stream.write(': keepalive\n\n'), KEEPALIVE_MS);
    keepalive.unref();
    const unwatch = watchToken(req, opts.service, () => {
      stream.write(`event: error\ndata: ${JSON.stringify({ error: { code: 'unauthenticated', message: 'the token of this stream was revoked' } })}\n\n`);
      stream.end();
    });
    req.raw.on('close', () => {
      clearInterval(keepalive);
      unwatch();
      stop();
    });
  });
}
