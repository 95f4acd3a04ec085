// A Fastify app keeping its sessions in Velo.
//
//   node dist/scripts/examples/fastify-sessions.js --port 3001 --velo 127.0.0.1:7070[,…] [--locking] [--max-age-ms N] [--secret S] [--gates]
//
//   GET  /session                          {"id","items"}: this session's id and list
//   POST /session/append?item=x[&gate=g]   appends x to the list; with a gate, waits at it between reading and writing
//   POST /logout                           destroys the session
//   GET  /gates/g, POST /gates/g/open      with --gates: whether a request reached gate g; let it through (gates.ts)
//
// Run two on different ports against one cluster: a cookie from one works
// on the other. Two overlapping appends to one session lose one of them,
// unless both apps run with --locking.
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import Fastify from 'fastify';
import { parseArgs } from 'node:util';
import { VeloClient } from '../../src/client/client.js';
import { VeloFastifySessionStore } from '../../src/session/index.js';
import { GATE_NAME, Gates } from './gates.js';

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
    gates: { type: 'boolean', default: false },
  },
});
const port = Number(args.port);
const maxAgeMs = args['max-age-ms'] === undefined ? undefined : Number(args['max-age-ms']);
if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('--port must be a port number');
if (maxAgeMs !== undefined && !(Number.isSafeInteger(maxAgeMs) && maxAgeMs > 0)) throw new Error('--max-age-ms must be a positive integer');

const gates = args.gates ? new Gates() : null;

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
  const { item, gate } = req.query as { item?: string; gate?: string };
  if (typeof item !== 'string' || item === '' || (gate !== undefined && !GATE_NAME.test(gate))) {
    return reply.status(400).send({ error: { code: 'bad_request', message: 'needs ?item=<text> and optionally &gate=<name>' } });
  }
  if (gate !== undefined && !gates) {
    return reply.status(400).send({ error: { code: 'bad_request', message: '&gate= needs the app started with --gates' } });
  }
  const items = req.session.items ?? []; // read…
  if (gates && gate !== undefined) await gates.pass(gate); // …let another request overlap…
  req.session.items = [...items, item]; // …and write what was read plus one
  return { id: req.session.sessionId, items: req.session.items };
});

if (gates) {
  app.get('/gates/:name', async (req) => gates.state((req.params as { name: string }).name));
  app.post('/gates/:name/open', async (req, reply) => {
    gates.open((req.params as { name: string }).name);
    return reply.status(204).send();
  });
}

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
