// An Express app keeping its sessions in Velo.
//
//   node dist/scripts/examples/express-sessions.js --port 3001 --velo 127.0.0.1:7070[,…] [--locking] [--max-age-ms N] [--secret S] [--gates]
//
//   GET  /session                          {"id","items"}: this session's id and list
//   POST /session/append?item=x[&gate=g]   appends x to the list; with a gate, waits at it between reading and writing
//   POST /logout                           destroys the session
//   GET  /gates/g, POST /gates/g/open      with --gates: whether a request reached gate g; let it through (gates.ts)
//
// Run two on different ports against one cluster: a cookie from one works
// on the other. Two overlapping appends to one session lose one of them,
// unless both apps run with --locking.
import express from 'express';
import type { ErrorRequestHandler } from 'express';
import session from 'express-session';
import { parseArgs } from 'node:util';
import { VeloClient } from '../../src/client/client.js';
import { VeloSessionStore } from '../../src/session/index.js';
import { GATE_NAME, Gates } from './gates.js';

declare module 'express-session' {
  interface SessionData {
    items: string[];
  }
}

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '3001' },
    velo: { type: 'string', default: '127.0.0.1:7070' },
    locking: { type: 'boolean', default: false },
    'max-age-ms': { type: 'string' },
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
const store = new VeloSessionStore({ client, locking: args.locking });

const app = express();
app.use(store.middleware()); // right before session(): it opens each request's lock scope
app.use(session({ store, secret: args.secret, resave: false, saveUninitialized: false, cookie: maxAgeMs === undefined ? {} : { maxAge: maxAgeMs } }));

app.get('/session', (req, res) => {
  res.json({ id: req.sessionID, items: req.session.items ?? [] });
});

app.post('/session/append', async (req, res) => {
  const { item, gate } = req.query;
  if (typeof item !== 'string' || item === '' || (gate !== undefined && (typeof gate !== 'string' || !GATE_NAME.test(gate)))) {
    res.status(400).json({ error: { code: 'bad_request', message: 'needs ?item=<text> and optionally &gate=<name>' } });
    return;
  }
  if (gate !== undefined && !gates) {
    res.status(400).json({ error: { code: 'bad_request', message: '&gate= needs the app started with --gates' } });
    return;
  }
  const items = req.session.items ?? []; // read…
  if (gates && gate !== undefined) await gates.pass(gate); // …let another request overlap…
  req.session.items = [...items, item]; // …and write what was read plus one
  res.json({ id: req.sessionID, items: req.session.items });
});

if (gates) {
  app.get('/gates/:name', (req, res) => {
    res.json(gates.state(req.params.name));
  });
  app.post('/gates/:name/open', (req, res) => {
    gates.open(req.params.name);
    res.status(204).end();
  });
}

app.post('/logout', (req, res, next) => {
  req.session.destroy((err) => (err ? next(err) : res.status(204).end()));
});

// SessionBusyError (503) and SessionConflictError (409) carry their status.
const onError: ErrorRequestHandler = (err: { status?: number; code?: string; message?: string }, _req, res, _next) => {
  res.status(err.status ?? 500).json({ error: { code: err.code ?? 'internal', message: err.message ?? String(err) } });
};
app.use(onError);

const server = app.listen(port, '127.0.0.1', (err?: Error) => {
  if (err) throw err;
  const { port: bound } = server.address() as { port: number };
  console.log(`listening on http://127.0.0.1:${bound}`);
});
process.once('SIGTERM', () => server.close(() => void client.close()));
