// The HTTP layer: one Fastify app, a plugin per group of routes, errors mapped in one place.
import Fastify from 'fastify';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { CacheService } from '../src/node/service.js';
import { adminRoutes } from './admin.js';
import { cacheRoutes } from './caches.js';
import { clusterRoutes, operationsRoutes } from './cluster.js';
import { edgeOptions, installEdge } from './edge.js';
import { installAuth } from './auth.js';
import { installBrowserGuard } from './browser-guard.js';
import { installErrorHandler } from './errors.js';
import { eventRoutes } from './events.js';
import { itemRoutes } from './items.js';
import { regionRoutes } from './regions.js';
import { tokenRoutes } from './tokens.js';
import { DEFAULT_HTTP_LIMITS, installConnectionLimits, timeoutOptions } from './http-limits.js';
import type { HttpLimits } from './http-limits.js';
import { EventStreams } from './event-streams.js';
import { installGracefulClose } from './graceful-close.js';
import { httpsServerOptions } from '../src/https/index.js';
import type { ServerTls } from '../src/https/index.js';

export interface ServerOptions {
  service: CacheService;
  maxValueBytes: number;
  /** Fastify logs through it (requests, errors); none if absent. */
  logger?: Logger;
  /** /metrics without a token, even where tokens are demanded (--metrics-public). */
  metricsPublic?: boolean;
  /** Time-outs and caps (http-limits.ts); each defaults to DEFAULT_HTTP_LIMITS. */
  limits?: Partial<HttpLimits>;
  /** Serve HTTPS with this certificate and key (TLS 1.2 or newer); plain HTTP if absent. */
  tls?: ServerTls;
  /** Refuse what a web page could send (protected mode on loopback without tokens): see browser-guard.ts. */
  browserGuard?: boolean;
}

export const DEFAULT_MAX_VALUE_BYTES = 1 << 20;

export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  const limits: HttpLimits = { ...DEFAULT_HTTP_LIMITS, ...opts.limits };
  const { loggerInstance, ...edge } = edgeOptions(opts.logger);
  const app = Fastify({
    ...(loggerInstance ? { loggerInstance: loggerInstance as FastifyBaseLogger } : { logger: false }),
    ...edge,
    ...timeoutOptions(limits),
    bodyLimit: opts.maxValueBytes,
    routerOptions: { maxParamLength: 1024 },
    ...(opts.tls ? { https: httpsServerOptions(opts.tls) } : {}),
  }) as unknown as FastifyInstance;
  installErrorHandler(app);
  installEdge(app);
  // Before authentication: a connection past a cap costs no token check.
  installConnectionLimits(app, limits);
  const streams = new EventStreams(limits);
  installGracefulClose(app, streams, limits.shutdownGraceMs);
  // A request a web page forged is refused before any route or token check reads it.
  if (opts.browserGuard) installBrowserGuard(app);
  installAuth(app, opts.service);
  app.addHook('onResponse', async (req, reply) => {
    opts.service.observeRequest(req.method, req.routeOptions.url ?? 'unmatched', reply.statusCode);
  });
  await app.register(operationsRoutes, { service: opts.service, metricsPublic: opts.metricsPublic === true, metrics: () => streams.metrics() });
  await app.register(
    async (v1) => {
      installErrorHandler(v1);
      await v1.register(cacheRoutes, { service: opts.service });
      await v1.register(clusterRoutes, { service: opts.service });
      await v1.register(itemRoutes, { service: opts.service, maxValueBytes: opts.maxValueBytes });
      await v1.register(regionRoutes, { service: opts.service });
      await v1.register(eventRoutes, { service: opts.service, streams });
      await v1.register(adminRoutes, { service: opts.service, maxValueBytes: opts.maxValueBytes });
      await v1.register(tokenRoutes, { service: opts.service });
    },
    { prefix: '/v1' },
  );
  return app;
}
