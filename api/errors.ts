// Every error leaves as {"error":{"code","message"}} with its status; the one place they are mapped.
import type { FastifyInstance } from 'fastify';
import { VeloError } from '../src/node/errors.js';
import { NotApplied } from '../src/node/group.js';

export function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
}

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: unknown, _req, reply) => {
    if (err instanceof VeloError) {
      if (err.retryAfterSeconds !== undefined) reply.header('Retry-After', String(err.retryAfterSeconds));
      // Beyond API.md: this 503 certainly changed nothing, so even a conditional write may be sent again.
      if (err instanceof NotApplied) reply.header('X-Velo-Retry', 'safe');
      // Time-outs and lost quorum answer 503 (API.md), with the code that says which.
      return reply.status(err.status).send(errorBody(err.code === 'timeout' ? 'unavailable' : err.code, err.message));
    }
    const e = err as { statusCode?: number; code?: string; message?: string; validation?: unknown };
    if (e.statusCode === 413 || e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.status(413).send(errorBody('value_too_large', e.message ?? 'request body too large'));
    }
    if (e.validation || (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500)) {
      return reply.status(e.statusCode ?? 400).send(errorBody('bad_request', e.message ?? 'bad request'));
    }
    reply.log.error(err);
    return reply.status(500).send(errorBody('internal', 'internal error'));
  });
  app.setNotFoundHandler((req, reply) => {
    reply.status(404).send(errorBody('not_found', `no route for ${req.method} ${req.url}`));
  });
}
