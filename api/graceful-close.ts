// Closing the HTTP side within a bounded time (SIGTERM): event streams end at
// once, requests in flight get a grace period to be answered, and then every
// connection still open — a slow upload, a reader that stopped reading — is
// closed, so that app.close() resolves whatever the clients do.
import type { Server } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { EventStreams } from './event-streams.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Ends every event stream now (a stop, before its drain). */
    endEventStreams(): void;
  }
}

export function installGracefulClose(app: FastifyInstance, streams: EventStreams, graceMs: number): void {
  app.decorate('endEventStreams', () => streams.endAll());
  let force: NodeJS.Timeout | null = null;
  app.addHook('preClose', async () => {
    // Streams never finish by themselves, and Fastify's close waits for every connection in use.
    streams.endAll();
    force = setTimeout(() => (app.server as Server).closeAllConnections(), graceMs);
    force.unref();
  });
  app.addHook('onClose', async () => {
    if (force !== null) clearTimeout(force);
  });
}
