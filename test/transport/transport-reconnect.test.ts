// Peers that go away and come back: the dialing side retries with back-off,
// a restarted node comes back with a higher incarnation, and traffic resumes.

import { afterEach, describe, expect, test } from 'vitest';
import { closeAll, heartbeat, receivedFrom, startCluster, startNode, waitFor, type Node } from './helpers.js';

let nodes: Node[] = [];
afterEach(async () => {
  await closeAll(nodes);
  nodes = [];
});

function connectedBoth(a: Node, b: Node): boolean {
  return a.transport.peerStatus().get(b.transport.nodeId)!.connected && b.transport.peerStatus().get(a.transport.nodeId)!.connected;
}

async function exchange(a: Node, b: Node): Promise<void> {
  const [ida, idb] = [a.transport.nodeId, b.transport.nodeId];
  const before = [receivedFrom(b, ida).length, receivedFrom(a, idb).length];
  expect(a.transport.send(idb, 1, heartbeat(ida, idb, 1, 0, 1))).toBe(true);
  expect(b.transport.send(ida, 1, heartbeat(idb, ida, 1, 0, 1))).toBe(true);
  a.transport.flush();
  b.transport.flush();
  await waitFor(() => receivedFrom(b, ida).length === before[0]! + 1 && receivedFrom(a, idb).length === before[1]! + 1, 'the exchange');
}

/** Closes node `i`, lets `whenDown` check the survivor, then starts a new process of it on the same port with the next incarnation. */
async function restart(i: number, whenDown: () => Promise<void>): Promise<Node> {
  const old = nodes[i]!;
  const port = old.transport.port;
  const peers = new Map([...old.transport.peerStatus()].map(([id, s]) => [id, s.address]));
  await old.transport.close();
  await whenDown();
  const fresh = await startNode(old.transport.nodeId, { listenPort: port, incarnation: 2 }, peers);
  nodes[i] = fresh;
  return fresh;
}

describe('reconnection', () => {
  for (const [who, index] of [
    ['the accepting (higher id) node', 1],
    ['the dialing (lower id) node', 0],
  ] as const) {
    test(`after ${who} restarts on the same port, the pair reconnects and sees the new incarnation`, async () => {
      nodes = await startCluster(['n1', 'n2']);
      await exchange(nodes[0]!, nodes[1]!);
      const survivor = nodes[1 - index]!;
      const other = index === 0 ? 'n1' : 'n2';
      await restart(index, async () => {
        await waitFor(() => !survivor.transport.peerStatus().get(other)!.connected, 'the survivor to notice');
        // While it is down, messages to it are dropped, not queued.
        expect(survivor.transport.send(other, 0, heartbeat(survivor.transport.nodeId, other, 1, 0, 0))).toBe(false);
      });
      await waitFor(() => survivor.transport.peerStatus().get(other)!.incarnation === 2 && nodes.every((n) => n.transport.peerStatus().get(n === survivor ? other : survivor.transport.nodeId)!.connected), 'the new connection');
      await exchange(nodes[0]!, nodes[1]!);
      expect(nodes.map((n) => n.transport.stats().socketsOpen)).toEqual([1, 1]);
      expect(survivor.logs.some((l) => /restarted from incarnation 1/.test(l))).toBe(true);
    });
  }

  test('a dialer that comes straight back replaces its old connection, whichever the peer sees first', async () => {
    nodes = await startCluster(['n1', 'n2']);
    await exchange(nodes[0]!, nodes[1]!);
    await restart(0, async () => undefined);
    const [a, b] = nodes as [Node, Node];
    await waitFor(() => b.transport.peerStatus().get('n1')!.incarnation === 2 && connectedBoth(a, b), 'the new connection');
    await exchange(a, b);
    expect(b.transport.stats().socketsOpen).toBe(1);
  });

  test('a peer that is down for a while is retried with back-off and logged once', async () => {
    const b = await startNode('n2');
    const port = b.transport.port;
    await b.transport.close();
    // n1 dials a port where nobody listens, again and again.
    const a = await startNode('n1', { reconnect: { minMs: 2, maxMs: 20 } }, new Map([['n2', `127.0.0.1:${port}`]]));
    nodes = [a];
    await waitFor(() => a.logs.length > 0, 'the first failure');
    const b2 = await startNode('n2', { listenPort: port }, new Map([['n1', `127.0.0.1:${a.transport.port}`]]));
    nodes.push(b2);
    await waitFor(() => a.transport.peerStatus().get('n2')!.connected, 'the connection');
    expect(a.logs.filter((l) => /cannot connect to n2/.test(l))).toHaveLength(1);
    await exchange(a, b2);
  });
});
