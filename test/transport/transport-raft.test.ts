// Raft traffic over real TCP on 127.0.0.1: many groups per connection, one
// connection per pair, one frame per peer per flush.

import { afterEach, describe, expect, test } from 'vitest';
import { MessageType, emptyMessage } from '../../raft/index.js';
import { Transport, parseAddress } from '../../src/transport/index.js';
import { append, closeAll, heartbeat, plain, receivedFrom, startCluster, startNode, waitFor, type Node } from './helpers.js';

let nodes: Node[] = [];
afterEach(async () => {
  await closeAll(nodes);
  nodes = [];
});

describe('raft messages between transports', () => {
  test('two nodes exchange messages of many groups over one connection, in order per group', async () => {
    nodes = await startCluster(['n1', 'n2']);
    const [a, b] = nodes as [Node, Node];
    const toB = Array.from({ length: 50 }, (_, g) => ({ group: g, message: append('n1', 'n2', 2, g * 10, [`v${g}`, `w${g}`]) }));
    const toA = Array.from({ length: 50 }, (_, g) => {
      const m = emptyMessage(MessageType.AppendResp, 'n2', 'n1', 2);
      m.index = g * 10 + 2;
      return { group: g, message: m };
    });
    for (const { group, message } of toB) expect(a.transport.send('n2', group, message)).toBe(true);
    for (const { group, message } of toA) expect(b.transport.send('n1', group, message)).toBe(true);
    a.transport.flush();
    b.transport.flush();
    await waitFor(() => receivedFrom(b, 'n1').length === 50 && receivedFrom(a, 'n2').length === 50, 'both batches');
    expect(plain(receivedFrom(b, 'n1'))).toEqual(plain(toB));
    expect(plain(receivedFrom(a, 'n2'))).toEqual(plain(toA));
    // One socket at each end, dialed by the lower id.
    expect(a.transport.stats()).toMatchObject({ socketsOpen: 1, connectionsDialed: 1, connectionsAccepted: 0 });
    expect(b.transport.stats()).toMatchObject({ socketsOpen: 1, connectionsDialed: 0, connectionsAccepted: 1 });
    expect(a.transport.peerStatus().get('n2')).toMatchObject({ connected: true, dialer: 'local', incarnation: 1 });
    expect(b.transport.peerStatus().get('n1')).toMatchObject({ connected: true, dialer: 'remote', incarnation: 1 });
  });

  test('three nodes: every pair shares exactly one connection and every message arrives', async () => {
    nodes = await startCluster(['n1', 'n2', 'n3']);
    const groups = 20;
    for (const from of nodes) {
      for (const to of nodes) {
        if (from === to) continue;
        const fromId = from.transport.nodeId;
        const toId = to.transport.nodeId;
        for (let g = 0; g < groups; g++) from.transport.send(toId, g, heartbeat(fromId, toId, 1, g, 1));
        from.transport.send(toId, 7, append(fromId, toId, 1, 0, [`from ${fromId}`]));
      }
      from.transport.flush();
    }
    await waitFor(() => nodes.every((n) => n.received.reduce((k, r) => k + r.batch.length, 0) === 2 * (groups + 1)), 'all messages');
    for (const n of nodes) {
      expect(n.transport.stats().socketsOpen).toBe(2);
      // One frame from each of the other two.
      expect(n.received.length).toBe(2);
    }
    const stats = nodes.map((n) => n.transport.stats());
    expect(stats.map((s) => s.connectionsDialed)).toEqual([2, 1, 0]);
    expect(stats.map((s) => s.connectionsAccepted)).toEqual([0, 1, 2]);
  });

  test('heartbeats for 100 groups to one peer in one flush travel as one frame', async () => {
    nodes = await startCluster(['n1', 'n2']);
    const [a, b] = nodes as [Node, Node];
    const framesBefore = a.transport.peerStatus().get('n2')!.framesSent;
    for (let g = 0; g < 100; g++) a.transport.send('n2', g, heartbeat('n1', 'n2', 3, 100 + g, 9));
    a.transport.flush();
    await waitFor(() => b.received.length === 1, 'the frame');
    expect(a.transport.peerStatus().get('n2')!.framesSent - framesBefore).toBe(1);
    expect(b.received[0]!.batch.length).toBe(100);
    expect(b.received[0]!.batch[99]).toMatchObject({ group: 99, message: { type: MessageType.Heartbeat, from: 'n1', to: 'n2', term: 3, commit: 199, readRound: 9 } });
  });

  test('a batch over maxFrameBytes goes as several frames, nothing lost, order kept', async () => {
    nodes = await startCluster(['n1', 'n2'], { maxFrameBytes: 16 * 1024 });
    const [a, b] = nodes as [Node, Node];
    const sent = Array.from({ length: 40 }, (_, i) => ({ group: i % 3, message: append('n1', 'n2', 1, i, ['x'.repeat(1500)]) }));
    for (const { group, message } of sent) expect(a.transport.send('n2', group, message)).toBe(true);
    a.transport.flush();
    await waitFor(() => receivedFrom(b, 'n1').length === 40, 'every message');
    expect(b.received.length).toBeGreaterThan(3);
    expect(plain(receivedFrom(b, 'n1'))).toEqual(plain(sent));
  });

  test('messages to a peer without a connection, or past the queue limit, are dropped', async () => {
    const lonely = await startNode('n1', {}, new Map([['n2', '127.0.0.1:1']]));
    nodes = [lonely];
    expect(lonely.transport.send('n2', 0, heartbeat('n1', 'n2', 1, 0, 0))).toBe(false);
    expect(lonely.transport.send('n9', 0, heartbeat('n1', 'n9', 1, 0, 0))).toBe(false);
    expect(lonely.transport.peerStatus().get('n2')).toMatchObject({ connected: false, raftMessagesDropped: 1 });

    const pair = await startCluster(['n1', 'n2'], { maxQueuedBytesPerPeer: 20_000 });
    nodes.push(...pair);
    const [a] = pair as [Node, Node];
    const results = Array.from({ length: 10 }, (_, i) => a.transport.send('n2', 0, append('n1', 'n2', 1, i, ['y'.repeat(3000)])));
    expect(results.filter((ok) => ok).length).toBeGreaterThan(2);
    expect(results.slice(-3)).toEqual([false, false, false]);
    expect(a.transport.stats().raftMessagesDropped).toBe(results.filter((ok) => !ok).length);
    a.transport.flush();
    await waitFor(() => a.transport.peerStatus().get('n2')!.queuedBytes === 0, 'the queue to drain');
    expect(a.transport.send('n2', 0, heartbeat('n1', 'n2', 1, 0, 0))).toBe(true);
  });

  test('a receive handler that throws is logged once and the connection carries on', async () => {
    nodes = await startCluster(['n1', 'n2']);
    const [a, b] = nodes as [Node, Node];
    let calls = 0;
    b.transport.onRaftMessages(() => {
      calls++;
      if (calls === 1) throw new Error('host bug');
    });
    for (const round of [1, 2]) {
      a.transport.send('n2', 0, heartbeat('n1', 'n2', 1, 0, round));
      a.transport.flush();
      await waitFor(() => calls === round, `frame ${round}`);
    }
    expect(b.logs.filter((l) => /handler threw: Error: host bug/.test(l))).toHaveLength(1);
    expect(b.transport.peerStatus().get('n1')!.connected).toBe(true);
  });

  test('a quiet connection is kept alive by keepalives', async () => {
    // Keepalives go out from the periodic sweep, so at most one per SWEEP_INTERVAL_MS.
    nodes = await startCluster(['n1', 'n2'], { keepalive: { intervalMs: 50, idleTimeoutMs: 300 } });
    const [a, b] = nodes as [Node, Node];
    // Over two idle timeouts' worth of keepalives each way, and nothing else.
    await waitFor(() => a.transport.stats().keepalivesSent >= 8 && b.transport.stats().keepalivesSent >= 8, 'keepalives');
    expect(a.transport.stats().framesSent).toBe(0);
    expect(a.transport.peerStatus().get('n2')!.connected && b.transport.peerStatus().get('n1')!.connected).toBe(true);
    expect(a.transport.stats().connectionsDialed).toBe(1);
    expect(a.logs.filter((l) => /lost/.test(l))).toEqual([]);
  });

  test('peer addresses are host:port or [v6]:port; a malformed one is refused at once', () => {
    expect(parseAddress('127.0.0.1:7101')).toEqual({ host: '127.0.0.1', port: 7101 });
    expect(parseAddress('velo-2.internal:7102')).toEqual({ host: 'velo-2.internal', port: 7102 });
    expect(parseAddress('[::1]:7103')).toEqual({ host: '::1', port: 7103 });
    for (const bad of ['127.0.0.1', ':7101', 'host:0', 'host:70000', '::1:7101', 'a b:1']) expect(() => parseAddress(bad)).toThrow(/bad peer address/);
    const options = { clusterId: 'c', nodeId: 'n1', incarnation: 1, listenHost: '127.0.0.1', listenPort: 0 };
    expect(() => new Transport({ ...options, peers: new Map([['n2', 'nowhere']]) })).toThrow(/bad peer address 'nowhere'/);
  });

  test('start() refuses a port in use with a clear error', async () => {
    const first = await startNode('n1');
    nodes = [first];
    const second = new Transport({
      clusterId: 'test-cluster',
      nodeId: 'n2',
      incarnation: 1,
      listenHost: '127.0.0.1',
      listenPort: first.transport.port,
      peers: new Map(),
      log: () => undefined,
    });
    await expect(second.start()).rejects.toMatchObject({ code: 'listen_failed', message: expect.stringMatching(/cannot listen on 127\.0\.0\.1:\d+: address already in use/) });
  });
});
