// Forwarded client requests over the peer connection: answers, remote
// failures, timeouts from the periodic sweep, and prompt failure when the
// connection drops.

import { afterEach, describe, expect, test } from 'vitest';
import { closeAll, errorCode, startCluster, waitFor, type Node } from './helpers.js';

let nodes: Node[] = [];
afterEach(async () => {
  await closeAll(nodes);
  nodes = [];
});

const text = (b: Uint8Array): string => Buffer.from(b).toString();

describe('forwarded requests', () => {
  test('go both ways over the one connection and resolve with the answer', async () => {
    nodes = await startCluster(['n1', 'n2']);
    const [a, b] = nodes as [Node, Node];
    a.transport.onRequest(async (from, payload) => Buffer.from(`n1 answers ${from}: ${text(payload)}`));
    b.transport.onRequest(async (from, payload) => Buffer.from(`n2 answers ${from}: ${text(payload)}`));
    const answers = await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => a.transport.request('n2', Buffer.from(`get k${i}`), 5_000)),
      b.transport.request('n1', Buffer.from('put x'), 5_000),
    ]);
    expect(answers.slice(0, 20).map(text)).toEqual(Array.from({ length: 20 }, (_, i) => `n2 answers n1: get k${i}`));
    expect(text(answers[20]!)).toBe('n1 answers n2: put x');
    expect(a.transport.stats().socketsOpen).toBe(1);
  });

  test('a handler that throws, or none at all, fails the request with a clear code', async () => {
    nodes = await startCluster(['n1', 'n2']);
    const [a, b] = nodes as [Node, Node];
    expect(await errorCode(a.transport.request('n2', Buffer.from('x'), 5_000))).toBe('unavailable');
    b.transport.onRequest(async () => {
      throw new Error('not the leader of partition 3');
    });
    await expect(a.transport.request('n2', Buffer.from('x'), 5_000)).rejects.toMatchObject({
      code: 'remote_error',
      message: expect.stringContaining('not the leader of partition 3'),
    });
  });

  test('a request without an answer times out through the periodic sweep', async () => {
    nodes = await startCluster(['n1', 'n2']);
    const [a, b] = nodes as [Node, Node];
    b.transport.onRequest(() => new Promise<Uint8Array>(() => undefined));
    const started = Date.now();
    expect(await errorCode(a.transport.request('n2', Buffer.from('slow'), 50))).toBe('timeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(50);
    expect(a.transport.peerStatus().get('n2')!.pendingRequests).toBe(0);
  });

  test('pending requests fail at once when the connection drops', async () => {
    nodes = await startCluster(['n1', 'n2']);
    const [a, b] = nodes as [Node, Node];
    let arrived = 0;
    b.transport.onRequest(() => {
      arrived++;
      return new Promise<Uint8Array>(() => undefined);
    });
    // A timeout far beyond the test's own: only the disconnect can fail them.
    const pending = [1, 2, 3].map((i) => errorCode(a.transport.request('n2', Buffer.from(`r${i}`), 3_600_000)));
    await waitFor(() => arrived === 3, 'the requests to arrive');
    await b.transport.close();
    expect(await Promise.all(pending)).toEqual(['disconnected', 'disconnected', 'disconnected']);
    expect(await errorCode(a.transport.request('n2', Buffer.from('after'), 1_000))).toBe('unavailable');
  });

  test('requests to unknown peers, too large, or past the limits are refused at once', async () => {
    nodes = await startCluster(['n1', 'n2'], { maxFrameBytes: 8 * 1024, maxQueuedBytesPerPeer: 10_000 });
    const [a, b] = nodes as [Node, Node];
    b.transport.onRequest(async (_from, p) => p);
    expect(await errorCode(a.transport.request('n9', Buffer.from('x'), 1_000))).toBe('unknown_peer');
    expect(await errorCode(a.transport.request('n2', new Uint8Array(8 * 1024), 1_000))).toBe('too_large');
    const queued = [1, 2, 3].map(() => a.transport.request('n2', new Uint8Array(4000), 5_000));
    expect(await errorCode(queued[2]!)).toBe('queue_full');
    expect((await Promise.all(queued.slice(0, 2))).map((p) => p.length)).toEqual([4000, 4000]);
    await a.transport.close();
    expect(await errorCode(a.transport.request('n2', Buffer.from('x'), 1_000))).toBe('closed');
  });

  test('removing a peer fails its pending requests and closes its connection', async () => {
    nodes = await startCluster(['n1', 'n2']);
    const [a, b] = nodes as [Node, Node];
    b.transport.onRequest(() => new Promise<Uint8Array>(() => undefined));
    const pending = errorCode(a.transport.request('n2', Buffer.from('x'), 3_600_000));
    a.transport.setPeers(new Map([['n1', 'ignored:1']]));
    expect(await pending).toBe('unknown_peer');
    expect(a.transport.stats().socketsOpen).toBe(0);
    await waitFor(() => !b.transport.peerStatus().get('n1')!.connected, 'n2 to see the close');
    // Adding it back reconnects.
    a.transport.setPeers(new Map([['n2', `127.0.0.1:${b.transport.port}`]]));
    await waitFor(() => a.transport.peerStatus().get('n2')?.connected === true, 'the new connection');
  });
});
