// The edge of the HTTP API, where Fastify meets a client's bytes: how
// schemas validate (never coerce, never drop what was not asked for), what
// Fastify's own refusals look like (the contract's error format, not
// Fastify's), and what a request leaves in the log (its route, never its URL:
// keys are often session ids).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions, RouteOptions } from 'fastify';
import type { FastifySchemaValidationError, SchemaErrorDataVar } from 'fastify/types/schema.js';
import type { Logger } from 'pino';
import { VeloError } from '../src/node/errors.js';
import { errorBody } from './errors.js';

/** A client's text quoted back in an error message is cut to this many characters. */
export const MAX_ECHO_CHARS = 80;

/** `s` as a quoted string of at most MAX_ECHO_CHARS characters, for error messages. */
export function echo(s: string): string {
  return JSON.stringify(s.length > MAX_ECHO_CHARS ? `${s.slice(0, MAX_ECHO_CHARS)}…` : s);
}

/**
 * Fastify's ajv by default coerces (`"5"` and `[5]` become 5, `true` becomes
 * 1) and silently removes properties a schema does not allow: a client would
 * get settings it never asked for. Here a wrong type or an unknown field is
 * a 400 naming it.
 */
const AJV = { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } } as const;

const WHERE: Record<SchemaErrorDataVar, string> = { body: 'body field', querystring: 'query parameter', params: 'path parameter', headers: 'header' };
const WHOLE: Record<SchemaErrorDataVar, string> = { body: 'the body', querystring: 'the query', params: 'the path', headers: 'the headers' };

function describe(e: FastifySchemaValidationError, dataVar: SchemaErrorDataVar): string {
  const field = e.instancePath.split('/').slice(1).join('.');
  const subject = field === '' ? WHOLE[dataVar] : `${WHERE[dataVar]} ${echo(field)}`;
  const p = e.params as Record<string, unknown>;
  if (e.keyword === 'additionalProperties') return `unknown ${WHERE[dataVar]} ${echo(String(p.additionalProperty))}`;
  if (e.keyword === 'required') return `missing ${WHERE[dataVar]} ${echo(String(p.missingProperty))}`;
  if (e.keyword === 'enum') return `${subject} must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  return `${subject} ${e.message ?? 'is not valid'}`;
}

function schemaErrorFormatter(errors: FastifySchemaValidationError[], dataVar: SchemaErrorDataVar): Error {
  return new Error(describe(errors[0]!, dataVar));
}

/** Refusals from Fastify's router, before any route runs (a path that does not decode, a parameter past maxParamLength). */
function frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    reply.status(414).send(errorBody('uri_too_long', 'a name in the path is too long: names are 1–250 bytes of UTF-8'));
  } else if (err.code === 'FST_ERR_BAD_URL') {
    reply.status(400).send(errorBody('bad_request', 'the path is not valid percent-encoded UTF-8'));
  } else {
    reply.status(400).send(errorBody('bad_request', 'the request cannot be routed'));
  }
}

const CLIENT_ERRORS: Record<string, [number, string, string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request_timeout', 'the request was not received in time'],
  HPE_HEADER_OVERFLOW: [431, 'headers_too_large', 'the request headers are too large'],
  HPE_URI_TOO_LONG: [414, 'uri_too_long', 'the request line is too long'],
};

/** Requests Node's HTTP parser refuses before Fastify sees them: the same answers, in the contract's format. */
function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, message] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'bad_request', 'the request is not valid HTTP/1.1'];
  const body = JSON.stringify(errorBody(code, message));
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${code}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy();
}

/** A request as logged: the route's pattern, never the URL (keys are in it). */
function routeOf(req: FastifyRequest): { method: string; route: string } {
  return { method: req.method, route: req.routeOptions?.url ?? 'unmatched' };
}

/** Fastify options for the edge; `logger` is given its route-only request serializer. */
export function edgeOptions(logger?: Logger): Pick<FastifyServerOptions, 'ajv' | 'schemaErrorFormatter' | 'frameworkErrors' | 'clientErrorHandler' | 'return503OnClosing'> & { loggerInstance?: Logger } {
  return {
    ajv: AJV,
    // Fastify's own 503 while closing is in its format: refuseWhileClosing answers in the contract's.
    return503OnClosing: false,
    schemaErrorFormatter,
    frameworkErrors,
    clientErrorHandler,
    // pino serializers of the instance win over Fastify's own (which log req.url).
    ...(logger ? { loggerInstance: logger.child({}, { serializers: { req: routeOf } }) } : {}),
  };
}

const NO_QUERY = { type: 'object', additionalProperties: false, properties: {} } as const;

/** Hooks of the edge, installed on the root instance before any route is registered. */
export function installEdge(app: FastifyInstance): void {
  requireDeclaredQuery(app);
  answerExpectations(app);
  refuseWhileClosing(app);
}

/** A request that reaches a closing server (on a connection it still holds) is told to go elsewhere. */
function refuseWhileClosing(app: FastifyInstance): void {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (_req, reply) => {
    if (!closing) return;
    reply.header('Connection', 'close');
    throw new VeloError('unavailable', 'this node is shutting down: send the request to another member', 1);
  });
}

/**
 * An `Expect` header other than 100-continue is answered 417 by Node itself,
 * with an empty body: the same answer, in the contract's format.
 */
function answerExpectations(app: FastifyInstance): void {
  app.server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    const body = JSON.stringify(errorBody('expectation_failed', 'only "Expect: 100-continue" is supported'));
    res.writeHead(417, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
  });
}

/**
 * Every route declares its query parameters: one that declares none gets a
 * schema allowing none, so an unknown parameter is a 400 everywhere, not
 * silently ignored. Installed before any route is registered.
 */
function requireDeclaredQuery(app: FastifyInstance): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    const schema = route.schema ?? {};
    if (schema.querystring === undefined) route.schema = { ...schema, querystring: NO_QUERY };
  });
}
