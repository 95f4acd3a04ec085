// Real Express and Fastify apps on ephemeral loopback ports, each with one of
// the session stores, for the store tests. Their routes mirror the examples
// (scripts/examples/*-sessions.ts), except that an append pauses at a named
// gate the test opens, instead of for a time: the test decides exactly when
// each request reads and when it writes.
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import express from 'express';
import type { ErrorRequestHandler } from 'express';
import session from 'express-session';
import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import type { VeloFastifySessionStore, VeloSessionStore } from '../../src/session/index.js';

declare module 'express-session' {
  interface SessionData {
    items: string[];
  }
}
declare module 'fastify' {
  interface Session {
    items?: string[];
  }
}

export const SECRET = 'a test secret of at least thirty-two characters';

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Named points where a request waits until the test opens them; the test can wait for a request to arrive at one. */
export class Gates {
  private readonly gates = new Map<string, { arrived: Deferred; opened: Deferred }>();
  /** Names in the order requests arrived at them. */
  readonly arrivals: string[] = [];

  private gate(name: string) {
    let g = this.gates.get(name);
    if (!g) this.gates.set(name, (g = { arrived: deferred(), opened: deferred() }));
    return g;
  }

  /** Called by a request: says it is here, then waits to be let through. */
  pass(name: string): Promise<void> {
    this.arrivals.push(name);
    const g = this.gate(name);
    g.arrived.resolve();
    return g.opened.promise;
  }

  arrived(name: string): Promise<void> {
    return this.gate(name).arrived.promise;
  }

  hasArrived(name: string): boolean {
    return this.arrivals.includes(name);
  }

  open(name: string): void {
    this.gate(name).opened.resolve();
  }
}

export interface TestApp {
  base: string;
  gates: Gates;
  close(): Promise<void>;
}

export interface AppOptions {
  maxAgeMs?: number;
  /** Install the store's per-request hook (default true). */
  hook?: boolean;
  /** Fastify only: @fastify/session's `rolling` (default true: it saves every loaded session). */
  rolling?: boolean;
}

function cookieOptions(o: AppOptions): { maxAge?: number } {
  return o.maxAgeMs === undefined ? {} : { maxAge: o.maxAgeMs };
}

async function append(items: string[], item: unknown, gate: unknown, gates: Gates): Promise<string[]> {
  if (typeof item !== 'string' || item === '') throw Object.assign(new Error('needs ?item='), { status: 400, statusCode: 400 });
  if (typeof gate === 'string') await gates.pass(gate);
  return [...items, item];
}

export async function expressApp(store: VeloSessionStore, o: AppOptions = {}): Promise<TestApp> {
  const gates = new Gates();
  const app = express();
  if (o.hook !== false) app.use(store.middleware());
  app.use(session({ store, secret: SECRET, resave: false, saveUninitialized: false, cookie: cookieOptions(o) }));
  app.get('/session', (req, res) => {
    res.json({ id: req.sessionID, items: req.session.items ?? [] });
  });
  app.post('/append', async (req, res) => {
    req.session.items = await append(req.session.items ?? [], req.query.item, req.query.gate, gates);
    res.json({ id: req.sessionID, items: req.session.items });
  });
  app.post('/logout', (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.status(204).end()));
  });
  app.get('/boom', () => {
    throw new Error('boom');
  });
  const onError: ErrorRequestHandler = (err: { status?: number; code?: string; message: string }, _req, res, _next) => {
    res.status(err.status ?? 500).json({ error: { code: err.code ?? 'internal', message: err.message } });
  };
  app.use(onError);
  const server = await new Promise<import('node:http').Server>((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    gates,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export async function fastifyApp(store: VeloFastifySessionStore, o: AppOptions = {}): Promise<TestApp> {
  const gates = new Gates();
  // A test ends with requests it aborted still open on the server side: close them rather than wait.
  const app = Fastify({ forceCloseConnections: true });
  await app.register(fastifyCookie);
  if (o.hook !== false) await app.register(store.plugin);
  await app.register(fastifySession, { store, secret: SECRET, saveUninitialized: false, rolling: o.rolling ?? true, cookie: { secure: false, ...cookieOptions(o) } });
  app.get('/session', async (req) => ({ id: req.session.sessionId, items: req.session.items ?? [] }));
  app.post('/append', async (req) => {
    const q = req.query as { item?: string; gate?: string };
    req.session.items = await append(req.session.items ?? [], q.item, q.gate, gates);
    return { id: req.session.sessionId, items: req.session.items };
  });
  app.post('/logout', async (req, reply) => {
    await req.session.destroy();
    return reply.status(204).send();
  });
  app.get('/boom', async () => {
    throw new Error('boom');
  });
  app.setErrorHandler((err: { statusCode?: number; code?: string; message: string }, _req, reply) => {
    void reply.status(err.statusCode ?? 500).send({ error: { code: err.code ?? 'internal', message: err.message } });
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    gates,
    close: () => app.close(),
  };
}
