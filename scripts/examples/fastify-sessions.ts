// A Fastify app keeping its sessions in Velo.
//
//   node dist/scripts/examples/fastify-sessions.js --port 3001 --velo 127.0.0.1:7070[,…] [--locking] [--max-age-ms N] [--secret S]
//
//   GET  /session                          {"id","items"}: this session's id and list
//   POST /session/append?item=x[&delayMs=N] appends x to the list, pausing N ms between reading and writing it
//   POST /logout                           destroys the session
//
// Run two on different ports against one cluster: a cookie from one works
// on the other. Two overlapping appends to one session lose one of them,
// unless both apps run with --locking.
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import Fastify from 'fastify';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { VeloClient } from '../../src/client/client.js';
import { VeloFastifySessionStore } from '../../src/session/index.js';

declare module 'fastify' {
  interface Session {
    items?: string[];
  }
}

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '3001' },
    velo: { type: 'string', default: '127.0.0.1:7070' },
    locking: { type: 'boolean', default: false },
    'max-age-ms': { type: 'string' },
    // @fastify/session wants at least 32 characters.
    secret: { type: 'string', default: 'velo example secret: pass --secret in real use' },
  },
});
const port = Number(args.port);
const maxAgeMs = args['max-age-ms'] === undefined ? undefined : Number(args['max-age-ms']);
if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('--port must be a port number');
if (maxAgeMs !== undefined && !(Number.isSafeInteger(maxAgeMs) && maxAgeMs > 0)) throw new Error('--max-age-ms must be a positive integer');

const client = new VeloClient({ nodes: args.velo.split(',') });
const store = new VeloFastifySessionStore({ client, locking: args.locking });

const app = Fastify();
await app.register(fastifyCookie);
await app.register(store.plugin); // before @fastify/session: it opens each request's lock scope
await app.register(fastifySession, {
  store,
  secret: args.secret,
  saveUninitialized: false,
  // A plain-HTTP example: the default `secure: true` would keep the cookie from being sent.
  cookie: { secure: false, ...(maxAgeMs === undefined ? {} : { maxAge: maxAgeMs }) },
});

app.get('/session', async (req) => ({ id: req.session.sessionId, items: req.session.items ?? [] }));

app.post('/session/append', async (req, reply) => {
  const { item, delayMs = '0' } = req.query as { item?: string; delayMs?: string };
  if (typeof item !== 'string' || item === '' || !/^\d+$/.test(delayMs)) {
    return reply.status(400).send({ error: { code: 'bad_request', message: 'needs ?item=<text> and optionally &delayMs=<ms>' } });
  }
  const items = req.session.items ?? []; // read…
  await sleep(Number(delayMs)); // …let another request overlap…
  req.session.items = [...items, item]; // …and write what was read plus one
  return { id: req.session.sessionId, items: req.session.items };
});

app.post('/logout', async (req, reply) => {
  await req.session.destroy();
  return reply.status(204).send();
});

// SessionBusyError (503) and SessionConflictError (409) carry their status.
app.setErrorHandler((err: { statusCode?: number; code?: string; message?: string }, _req, reply) => {
  void reply.status(err.statusCode ?? 500).send({ error: { code: err.code ?? 'internal', message: err.message ?? String(err) } });
});

const address = await app.listen({ host: '127.0.0.1', port });
console.log(`listening on ${address}`);
process.once('SIGTERM', () => void app.close().then(() => client.close()));
