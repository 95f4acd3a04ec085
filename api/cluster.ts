// Cluster and operations routes (API.md "Cluster and operations").
import type { FastifyInstance } from 'fastify';
import type { CacheService } from '../src/node/service.js';
import { errorBody } from './errors.js';

export async function clusterRoutes(app: FastifyInstance, opts: { service: CacheService }): Promise<void> {
  app.get('/cluster', async () => opts.service.cluster());
}

/** Outside /v1: health, readiness and metrics. */
export async function operationsRoutes(app: FastifyInstance, opts: { service: CacheService }): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    if (opts.service.isReady()) return { status: 'ready' };
    return reply.status(503).header('Retry-After', '1').send(errorBody('unavailable', 'not every partition has a known leader yet'));
  });
  app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4').send(opts.service.metrics()));
}
