// Misbehaving peers: each bad connection is closed with one log line, and the
// healthy peer's traffic and the server's accepting carry on.

import type net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { encodeFrame } from '../../src/transport/codec.js';
import { encodeFramed } from '../../src/transport/framing.js';
import { PROTOCOL_VERSION } from '../../src/transport/index.js';
import { addressOf, closeAll, closed, heartbeat, rawSocket, receivedFrom, startCluster, startNode, waitFor, type Node } from './helpers.js';

let nodes: Node[] = [];
let sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets = [];
  await closeAll(nodes);
  nodes = [];
});

function hello(clusterId: string, nodeId: string, incarnation = 1): Buffer {
  return encodeFramed(encodeFrame({ hello: { protocolVersion: PROTOCOL_VERSION, clusterId, nodeId, incarnation } }));
}

/** Log lines that name a raw socket's local port, i.e. the victim's view of that connection. */
function linesAbout(n: Node, localPort: number): string[] {
  return n.logs.filter((l) => l.includes(`:${localPort}:`) || l.includes(`:${localPort})`));
}

/** n1 keeps sending heartbeats to n2 and waits until n2 has them all. */
async function healthyTraffic(a: Node, b: Node, groups: number): Promise<void> {
  const before = receivedFrom(b, 'n1').length;
  for (let g = 0; g < groups; g++) a.transport.send('n2', g, heartbeat('n1', 'n2', 1, g, 1));
  a.transport.flush();
  await waitFor(() => receivedFrom(b, 'n1').length === before + groups, 'the healthy traffic');
}

describe('a misbehaving peer', () => {
  const attacks: [string, (s: net.Socket) => void, RegExp][] = [
    ['garbage bytes', (s) => s.write(Buffer.from([0, 0, 0, 3, 0xff, 0xff, 0xff])), /corrupt frame/],
    ['an oversized length prefix', (s) => s.write(Buffer.from([0xff, 0xff, 0xff, 0xff])), /exceeds the limit/],
    ['a wrong cluster id', (s) => s.write(hello('another-cluster', 'n0')), /wrong cluster id "another-cluster"/],
    ['frames before its Hello', (s) => s.write(encodeFramed(encodeFrame({ messages: [{ type: 2 }] }))), /before the Hello/],
    ['a node id that is not a peer', (s) => s.write(hello('test-cluster', 'n0')), /n0 is not a peer of n2/],
    ['a higher id that dials', (s) => s.write(hello('test-cluster', 'n3')), /the lower id dials/],
  ];

  for (const [what, attack, logged] of attacks) {
    test(`sending ${what} is disconnected with one log line; the healthy peer keeps flowing`, async () => {
      nodes = await startCluster(['n1', 'n2', 'n3']);
      const [a, b] = nodes as [Node, Node, Node];
      await healthyTraffic(a, b, 10);
      const bad = await rawSocket(b.transport.port);
      const port = bad.localPort!;
      sockets.push(bad);
      const gone = closed(bad);
      attack(bad);
      await healthyTraffic(a, b, 10);
      await gone;
      expect(linesAbout(b, port)).toHaveLength(1);
      expect(linesAbout(b, port)[0]).toMatch(logged);
      await healthyTraffic(a, b, 10);
      expect(nodes.every((n) => n.transport.stats().socketsOpen === 2)).toBe(true);
    });
  }

  test('a refused dialer learns why from the Goodbye', async () => {
    const victim = await startNode('n2');
    const stranger = await startNode('n1', { clusterId: 'another-cluster' }, new Map([['n2', addressOf(victim)]]));
    nodes = [victim, stranger];
    await waitFor(() => stranger.logs.some((l) => /refused by the peer: wrong cluster id/.test(l)), 'the dialer to log why');
    // One line per outage on the dialing side, however many times it retries.
    await waitFor(() => victim.transport.stats().connectionsRefused >= 3, 'several attempts');
    expect(stranger.logs.filter((l) => /refused by the peer/.test(l))).toHaveLength(1);
    // The refusal names the stranger's own cluster id, never the victim's.
    expect(stranger.logs.filter((l) => l.includes('test-cluster'))).toEqual([]);
    // A stranger can repeat its refusal at will: the victim logs it once per address per interval.
    expect(victim.logs.filter((l) => /wrong cluster id/.test(l))).toHaveLength(1);
  });

  test('the server keeps accepting after bad connections', async () => {
    const b = await startNode('n2');
    nodes = [b];
    for (let i = 0; i < 5; i++) {
      const bad = await rawSocket(b.transport.port);
      sockets.push(bad);
      const gone = closed(bad);
      bad.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
      await gone;
    }
    const a = await startNode('n1', {}, new Map([['n2', addressOf(b)]]));
    nodes.push(a);
    b.transport.setPeers(new Map([['n1', addressOf(a)]]));
    await waitFor(() => a.transport.peerStatus().get('n2')!.connected, 'a healthy connection');
    await healthyTraffic(a, b, 3);
  });

  test('a peer that falls silent is disconnected after the idle timeout', async () => {
    const b = await startNode('n2', { keepalive: { intervalMs: 20, idleTimeoutMs: 200 } }, new Map([['n1', '127.0.0.1:1']]));
    nodes = [b];
    // A fake n1 that says Hello, then nothing.
    const silent = await rawSocket(b.transport.port);
    sockets.push(silent);
    const gone = closed(silent);
    silent.write(hello('test-cluster', 'n1'));
    await waitFor(() => b.transport.peerStatus().get('n1')!.connected, 'the handshake');
    await gone;
    expect(b.logs.filter((l) => /lost connection to n1/.test(l))).toEqual([expect.stringMatching(/nothing received for \d+ ms/)]);
  });

  test('a stale incarnation is refused while a newer one replaces the old connection', async () => {
    const b = await startNode('n2', {}, new Map([['n1', '127.0.0.1:1']]));
    nodes = [b];
    const first = await rawSocket(b.transport.port);
    const firstGone = closed(first);
    first.write(hello('test-cluster', 'n1', 5));
    await waitFor(() => b.transport.peerStatus().get('n1')!.incarnation === 5, 'incarnation 5');
    const stale = await rawSocket(b.transport.port);
    const staleGone = closed(stale);
    stale.write(hello('test-cluster', 'n1', 4));
    await staleGone;
    expect(b.logs.some((l) => /n1 came with an incarnation older than that of its open connection/.test(l))).toBe(true);
    // The refusal gives no incarnation away.
    expect(b.logs.filter((l) => /refused/.test(l) && /\b[45]\b/.test(l.replace(/127\.0\.0\.1:\d+/g, '')))).toEqual([]);
    const newer = await rawSocket(b.transport.port);
    sockets.push(first, stale, newer);
    newer.write(hello('test-cluster', 'n1', 6));
    await firstGone;
    expect(b.transport.peerStatus().get('n1')).toMatchObject({ connected: true, incarnation: 6 });
    expect(b.transport.stats().socketsOpen).toBe(1);
  });

  test('a newer incarnation that comes and goes does not shut out the older one, still alive', async () => {
    // What anyone with n1's key can claim: a newer incarnation, for a while.
    const b = await startNode('n2', {}, new Map([['n1', '127.0.0.1:1']]));
    nodes = [b];
    const newer = await rawSocket(b.transport.port);
    sockets.push(newer);
    const newerGone = closed(newer);
    newer.write(hello('test-cluster', 'n1', 7));
    await waitFor(() => b.transport.peerStatus().get('n1')!.incarnation === 7, 'incarnation 7');
    // While it is connected, the older one is refused, and the newer one keeps its place.
    /** Sends a Hello of n1 at `incarnation` and waits until the node closes that connection. */
    const refusedHello = async (incarnation: number) => {
      const s = await rawSocket(b.transport.port);
      sockets.push(s);
      const gone = closed(s);
      s.write(hello('test-cluster', 'n1', incarnation));
      await gone;
    };
    await refusedHello(3);
    expect(b.transport.peerStatus().get('n1')).toMatchObject({ connected: true, incarnation: 7 });
    expect(b.logs.filter((l) => /refused/.test(l) && /n1 came with an incarnation older than/.test(l))).toHaveLength(1);
    // Once it has gone, the older one is accepted again.
    newer.destroy();
    await newerGone;
    await waitFor(() => !b.transport.peerStatus().get('n1')!.connected, 'the newer connection to close');
    const older = await rawSocket(b.transport.port);
    sockets.push(older);
    let olderRefused = false;
    void closed(older).then(() => (olderRefused = true));
    older.write(hello('test-cluster', 'n1', 3));
    await waitFor(() => b.transport.peerStatus().get('n1')!.connected || olderRefused, 'the older incarnation to be accepted or refused');
    expect(olderRefused, 'the older incarnation refused after the newer one closed').toBe(false);
    expect(b.transport.peerStatus().get('n1')).toMatchObject({ connected: true, incarnation: 3 });
    expect(b.logs.some((l) => /incarnation 3, an older incarnation than the last one seen \(7\)/.test(l))).toBe(true);
    // And it is the open connection: a Hello older still is refused.
    await refusedHello(2);
    expect(b.transport.peerStatus().get('n1')).toMatchObject({ connected: true, incarnation: 3 });
    expect(b.transport.stats().socketsOpen).toBe(1);
  });
});
