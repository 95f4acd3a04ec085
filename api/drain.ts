// Stopping the HTTP server without dropping a request a client already sent.
//
// Fastify's close (and Node's server.close since v19) destroys every
// keep-alive connection that is idle at that instant. A client that got an
// answer a moment before reuses its connection for the next request, which
// may be on the wire already: the socket dies under it, and a write that
// died that way is indeterminate for the client. So a drain first stops
// accepting connections but keeps the open ones, answers every request on
// them with `Connection: close` (the client then knows the socket ends after
// that answer and will not reuse it), and only closes what stayed idle for
// the whole grace period.
import { Server as NetServer, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

/** Stops accepting connections, answers what arrives on open ones, and resolves once every connection is closed. */
export type Drain = (graceMs: number) => Promise<void>;

/** Call before the server listens: it must see every connection. */
export function installDrain(app: FastifyInstance): Drain {
  let draining = false;
  const sockets = new Set<Socket>();
  app.server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    if (draining) reply.header('connection', 'close');
    return payload;
  });
  return async (graceMs) => {
    if (draining) return;
    draining = true;
    // net.Server's close only stops listening; http.Server's would also destroy the idle connections.
    if (app.server.listening) NetServer.prototype.close.call(app.server);
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (sockets.size > 0) return;
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        for (const s of sockets) s.destroy();
        resolve();
      }, graceMs);
      for (const s of sockets) s.once('close', check);
      check();
    });
  };
}
