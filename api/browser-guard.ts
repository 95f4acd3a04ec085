// What a web page can make a browser send to a node that serves on loopback
// without tokens, refused before any route runs (protected mode, API.md
// "Security"):
//   - DNS rebinding: the page's own name, re-pointed at 127.0.0.1, arrives in
//     `Host`. Only loopback names are accepted there.
//   - Cross-site requests: a browser names the page in `Origin`. Any origin
//     but a loopback one is refused, `null` included (what a sandboxed frame
//     or a file sends).
//   - A form, or a fetch in no-cors mode, carries one of three content types
//     without a CORS preflight (Fetch standard: CORS-safelisted methods and
//     request headers), and a browser that sends no Origin can still send
//     them. Form encodings (urlencoded, multipart) are refused on every
//     state-changing method: no cache value arrives that way except by
//     curl's default (-d), which also names it wrongly. text/plain is a real
//     value type (API.md stores a value with its type), and a page can send
//     it cross-site only with POST (PUT and DELETE always need a preflight,
//     which this node never grants), so POST alone refuses it. 415 either way.
// Tools (curl, the CLI, VeloClient) send a loopback Host, no Origin, and a
// value's own content type or none.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isLoopbackHost } from '../src/node/loopback.js';
import { errorBody } from './errors.js';

/** Form encodings: refused on every state-changing method. */
const FORM_TYPES = new Set(['application/x-www-form-urlencoded', 'multipart/form-data']);
const STATE_CHANGING = new Set(['PUT', 'POST', 'DELETE', 'PATCH']);

/** Whether a request with this method and content type (its essence) is one a web page could send cross-site without asking first. */
function pageCouldSend(method: string, essence: string): boolean {
  if (FORM_TYPES.has(essence)) return STATE_CHANGING.has(method);
  return essence === 'text/plain' && method === 'POST';
}

/** The host name of a Host header ("127.0.0.1:7001", "[::1]:7001", "localhost"). */
function hostName(host: string): string {
  const m = /^(\[[^\]]*\]|[^:]*)(?::[0-9]*)?$/.exec(host.trim());
  return m ? m[1]! : host;
}

function loopbackOrigin(origin: string): boolean {
  try {
    const url = new URL(origin);
    return (url.protocol === 'http:' || url.protocol === 'https:') && isLoopbackHost(url.hostname);
  } catch {
    return false;
  }
}

/** Why the request is refused, as [status, code, message]; null to let it through. */
export function browserRefusal(method: string, headers: FastifyRequest['headers']): [number, string, string] | null {
  const host = headers.host;
  if (host !== undefined && !isLoopbackHost(hostName(host))) {
    return [403, 'forbidden', `Host "${host.slice(0, 100)}" is not a loopback name: this node serves only localhost without tokens (start it with --admin-token-file to serve other names)`];
  }
  const origin = headers.origin;
  if (origin !== undefined && !loopbackOrigin(origin)) {
    return [403, 'forbidden', `requests from web pages (Origin "${origin.slice(0, 100)}") are refused by a node without tokens`];
  }
  const type = headers['content-type'];
  if (type !== undefined) {
    const essence = type.split(';', 1)[0]!.trim().toLowerCase();
    if (pageCouldSend(method, essence)) {
      return [415, 'unsupported_media_type', `${method} with Content-Type ${essence} is refused by a node without tokens, because any web page can send it: send the value's real type (e.g. application/octet-stream or application/json), or none`];
    }
  }
  return null;
}

/** Installs the guard on every route of `app` (the /v1 API and the operations routes alike). */
export function installBrowserGuard(app: FastifyInstance): void {
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const refusal = browserRefusal(req.method, req.headers);
    if (refusal === null) return;
    const [status, code, message] = refusal;
    return reply.status(status).send(errorBody(code, message));
  });
}
