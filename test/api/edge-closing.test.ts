// A node that is closing still holds connections with requests on them; a
// request that arrives on one then is answered 503 unavailable in the
// contract's format (Fastify's own answer was {"error":"Service Unavailable",
// "statusCode":503}), with Retry-After, and the request before it completes.
import { connect } from 'node:net';
import { expect, test } from 'vitest';
import { until } from '../../scripts/poll.js';
import { contractErrorProblem } from '../support/node-state.js';
import { serveNode } from '../support/served-node.js';

test('a request that reaches a closing node: 503 unavailable in the contract format, after the one in flight is answered', async () => {
  const served = await serveNode({ maxValueBytes: 1024, partitions: 1 });
  const port = Number(new URL(served.base).port);
  let requests = 0;
  served.app.server.on('request', () => requests++);
  const socket = connect({ host: '127.0.0.1', port });
  let received = '';
  socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
  let closed: Promise<void> | null = null;
  try {
    // The first request's headers, not its body: it is in flight while the node starts closing.
    socket.write('PUT /v1/caches/default/items/in-flight HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\n');
    await until('the first request to reach the server', async () => requests === 1, 10_000, 5);
    closed = served.app.close();
    await until('the server to stop listening', async () => !served.app.server.listening, 10_000, 5);
    socket.write('hello');
    socket.write('GET /v1/caches HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await until('both answers', async () => (received.match(/HTTP\/1\.1 \d{3}/g) ?? []).length === 2 && received.trimEnd().endsWith('}'), 10_000, 5);
    const [first, second] = received.split(/(?=HTTP\/1\.1 \d{3})/);
    expect(first).toMatch(/^HTTP\/1\.1 201/);
    expect(second).toMatch(/^HTTP\/1\.1 503/);
    expect(second!.toLowerCase()).toContain('retry-after: 1');
    const body = second!.slice(second!.indexOf('\r\n\r\n') + 4);
    expect(contractErrorProblem(body)).toBeNull();
    expect(JSON.parse(body)).toMatchObject({ error: { code: 'unavailable' } });
  } finally {
    socket.destroy();
    await (closed ?? served.app.close());
    await served.node.close();
  }
});
