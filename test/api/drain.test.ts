// A stopping server answers a request sent on a kept-alive connection after
// the stop began, instead of destroying the socket under it (what failed a
// clean-clone CI run: a removed node exiting dropped the next request of a
// client that reused its connection).
import { connect, type Socket } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, test } from 'vitest';
import { installDrain, type Drain } from '../../api/drain.js';

let app: FastifyInstance | null = null;
afterEach(async () => {
  await app?.close();
  app = null;
});

async function served(): Promise<{ port: number; drain: Drain }> {
  app = Fastify();
  app.get('/x', async () => 'ok');
  const drain = installDrain(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { port: (app.server.address() as { port: number }).port, drain };
}

/** A raw keep-alive connection: each call writes one request and resolves with the whole response head and body. */
async function rawConnection(port: number): Promise<{ socket: Socket; request(): Promise<string>; closed: Promise<void> }> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let buffered = '';
  let waiting: ((s: string) => void) | null = null;
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    buffered += d;
    const end = buffered.indexOf('\r\n\r\n');
    const length = /content-length: (\d+)/i.exec(buffered);
    if (end >= 0 && length && buffered.length >= end + 4 + Number(length[1]) && waiting) {
      const w = waiting;
      waiting = null;
      const whole = buffered;
      buffered = '';
      w(whole);
    }
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return {
    socket,
    closed,
    request: () =>
      new Promise<string>((resolve, reject) => {
        waiting = resolve;
        socket.write('GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n');
        void closed.then(() => reject(new Error(`the connection closed without an answer (had ${JSON.stringify(buffered)})`)));
      }),
  };
}

describe('draining the HTTP server', () => {
  test('a request sent on an idle kept-alive connection after the drain began is answered, with Connection: close, and the connection then ends', async () => {
    const { port, drain } = await served();
    const conn = await rawConnection(port);
    expect(await conn.request()).toMatch(/^HTTP\/1.1 200[\s\S]*connection: keep-alive/i);
    const drained = drain(60_000);
    const second = await conn.request();
    expect(second).toMatch(/^HTTP\/1.1 200/);
    expect(second).toMatch(/connection: close/i);
    await conn.closed;
    await drained; // resolves once the last connection is gone, long before the grace period
  });

  test('new connections are refused once the drain began', async () => {
    const { port, drain } = await served();
    const drained = drain(60_000);
    const refused = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => resolve('connected'));
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    expect(refused).toBe('ECONNREFUSED');
    await drained;
  });

  test('a connection that stays idle for the whole grace period is closed, and the drain ends', async () => {
    const { port, drain } = await served();
    const conn = await rawConnection(port);
    await conn.request();
    await drain(50);
    await conn.closed;
    expect(conn.socket.destroyed).toBe(true);
  });
});
