// A graceful shutdown on a real process: SIGTERM with an open event stream,
// a client that stopped reading its stream and a stalled upload still
// connected; the node ends its streams at once, gives requests in flight the
// grace period, closes what is left, and exits 0 within a bound.
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { afterAll, describe, expect, test } from 'vitest';
import { ProcessCluster } from './process-cluster.js';
import { openSse } from '../support/sse.js';
import { DEFAULT_HTTP_LIMITS } from '../../api/http-limits.js';

let cluster: ProcessCluster | null = null;
const sockets: Socket[] = [];

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await cluster?.stop();
});

function rawClient(addr: string): Promise<{ socket: Socket; closed: Promise<void> }> {
  const [host, port] = addr.split(':');
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), host!);
    sockets.push(socket);
    socket.on('error', () => {});
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

describe('graceful shutdown', () => {
  test('SIGTERM ends event streams at once and exits 0 within the grace period despite a stalled upload and a reader that stopped', async () => {
    const c = (cluster = await ProcessCluster.start(['n1'], ['--partitions', '2']));
    await c.allReady();
    const node = c.node('n1');
    const stream = await openSse(c.url('n1', '/v1/caches/default/events'));
    expect(stream.res.status).toBe(200);
    const streamEnded = stream.next(1).catch(() => 'ended');
    const stalled = await rawClient(node.http);
    // A body that will never arrive in full: the request is in flight when the signal comes.
    stalled.socket.write(`PUT /v1/caches/default/items/never HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(100)}`);
    const paused = await rawClient(node.http);
    paused.socket.write('GET /v1/caches/default/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    paused.socket.pause();
    const proc = node.proc!;
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    const signalled = Date.now();
    proc.kill('SIGTERM');
    // The open stream is ended by the node, well before the grace period is over.
    expect(await streamEnded).toBe('ended');
    const streamEndedMs = Date.now() - signalled;
    expect(await exited).toBe(0);
    const exitedMs = Date.now() - signalled;
    node.proc = null;
    // At once: not when the drain's grace (2 s) runs out and every socket left is destroyed.
    expect(streamEndedMs).toBeLessThan(1000);
    // The grace period, then the node's own close; without the closing of what is left, the stalled upload holds the exit until its own time-out, and a stream holds it for ever.
    expect(exitedMs).toBeLessThan(DEFAULT_HTTP_LIMITS.shutdownGraceMs + 3000);
    await stalled.closed;
  }, 60_000);
});
