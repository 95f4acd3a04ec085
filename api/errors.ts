// Every error leaves as {"error":{"code","message"}} with its status; the one place they are mapped.
import { STATUS_CODES } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { VeloError } from '../src/node/errors.js';
import { NotApplied } from '../src/node/group.js';

export function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
}

/** Where the contract's code for a status Fastify answers on its own is not its HTTP reason phrase in snake_case. */
const CLIENT_STATUS_CODES: Record<number, string> = { 413: 'value_too_large', 431: 'headers_too_large' };

function clientStatusCode(status: number): string {
  return CLIENT_STATUS_CODES[status] ?? (STATUS_CODES[status] ?? 'bad request').toLowerCase().replace(/[^a-z0-9]+/g, '_');
}

/** Fastify's messages may quote a client's header or path at length: the client needs the gist. */
const MAX_MESSAGE_CHARS = 200;

function clientMessage(message: string | undefined, fallback: string): string {
  const m = message ?? fallback;
  return m.length > MAX_MESSAGE_CHARS ? `${m.slice(0, MAX_MESSAGE_CHARS)}…` : m;
}

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: unknown, _req, reply) => {
    if (err instanceof VeloError && err.code === 'internal') {
      // Its message names internals (an error class, a stack frame): logged, never sent.
      reply.log.error({ err }, 'internal error');
      return reply.status(500).send(errorBody('internal', 'internal error'));
    }
    if (err instanceof VeloError) {
      if (err.retryAfterSeconds !== undefined) reply.header('Retry-After', String(err.retryAfterSeconds));
      // Beyond API.md: this 503 certainly changed nothing, so even a conditional write may be sent again.
      if (err instanceof NotApplied) reply.header('X-Velo-Retry', 'safe');
      // Time-outs and lost quorum answer 503 (API.md), with the code that says which.
      return reply.status(err.status).send(errorBody(err.code === 'timeout' ? 'unavailable' : err.code, err.message));
    }
    const e = err as { statusCode?: number; code?: string; message?: string; validation?: unknown };
    if (e.statusCode === 413 || e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.status(413).send(errorBody('value_too_large', clientMessage(e.message, 'request body too large')));
    }
    if (e.validation || (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500)) {
      const status = e.validation ? 400 : e.statusCode!;
      return reply.status(status).send(errorBody(clientStatusCode(status), clientMessage(e.message, 'bad request')));
    }
    reply.log.error({ err }, 'internal error');
    return reply.status(500).send(errorBody('internal', 'internal error'));
  });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!;
    reply.status(404).send(errorBody('not_found', `no route for ${req.method} ${clientMessage(path, '/')}`));
  });
}
