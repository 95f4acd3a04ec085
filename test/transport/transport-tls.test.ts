// Peer TLS on real sockets: mutual TLS 1.3 against one CA, a node is the name
// its certificate gives it, and a stranger is bounded before it is
// authenticated. Each attack is refused with a warning, and the real peers'
// traffic carries on.

import net from 'node:net';
import tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { issueClusterCertificates, type ClusterCertificates } from '../../src/certs/issue.js';
import { encodeFrame } from '../../src/transport/codec.js';
import { encodeFramed } from '../../src/transport/framing.js';
import { PROTOCOL_VERSION, transportLimits, type PeerTls } from '../../src/transport/index.js';
import { addressOf, append, closeAll, closed, heartbeat, rawSocket, receivedFrom, startCluster, startNode, waitFor, type Node } from './helpers.js';

let certs: ClusterCertificates;
let foreign: ClusterCertificates;
beforeAll(async () => {
  certs = await issueClusterCertificates(['n1', 'n2', 'n3'], ['127.0.0.1', 'localhost'], ['n1']);
  foreign = await issueClusterCertificates(['n1'], ['127.0.0.1'], []);
});

let nodes: Node[] = [];
let sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets = [];
  await closeAll(nodes);
  nodes = [];
});

function peerTls(id: string, from = certs): PeerTls {
  const own = from.nodes.get(id)!;
  return { ca: certs.ca.cert, cert: own.cert, key: own.key };
}

/** Starts n1…nk with their own certificates and waits until every pair is connected. */
function tlsCluster(ids: string[]): Promise<Node[]> {
  return startCluster(ids, {}, (id) => ({ tls: peerTls(id) }));
}

function hello(nodeId: string, incarnation = 1, clusterId = 'test-cluster'): Buffer {
  return encodeFramed(encodeFrame({ hello: { protocolVersion: PROTOCOL_VERSION, clusterId, nodeId, incarnation } }));
}

/** A TLS client with the given certificate, trusting `ca`; resolves once its side of the handshake is done. */
async function tlsClient(port: number, cred: { cert: string; key: string } | null, ca = certs.ca.cert): Promise<tls.TLSSocket> {
  const socket = tls.connect({ host: '127.0.0.1', port, ca, ...(cred ?? {}), minVersion: 'TLSv1.3', servername: 'n2', checkServerIdentity: () => undefined });
  sockets.push(socket);
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('close', () => reject(new Error('closed before the TLS handshake completed')));
  });
  return socket;
}

/** n1 sends heartbeats to n2 and waits until n2 has them all. */
async function healthyTraffic(a: Node, b: Node, groups = 5): Promise<void> {
  const before = receivedFrom(b, 'n1').length;
  for (let g = 0; g < groups; g++) a.transport.send('n2', g, heartbeat('n1', 'n2', 1, g, 1));
  a.transport.flush();
  await waitFor(() => receivedFrom(b, 'n1').length === before + groups, 'the healthy traffic');
}

const warned = (n: Node, re: RegExp) => n.logs.filter((l) => re.test(l));

describe('peer TLS', () => {
  test('three nodes with certificates from one CA connect over TLS 1.3 and carry raft messages and requests', async () => {
    nodes = await tlsCluster(['n1', 'n2', 'n3']);
    const [a, b, c] = nodes as [Node, Node, Node];
    c.transport.onRequest(async (from, payload) => Buffer.from(`${from} asked ${Buffer.from(payload).toString()}`));
    await healthyTraffic(a, b);
    b.transport.send('n1', 3, append('n2', 'n1', 2, 0, ['over tls']));
    b.transport.flush();
    await waitFor(() => receivedFrom(a, 'n2').length === 1, 'the append');
    expect(Buffer.from(receivedFrom(a, 'n2')[0]!.message.entries[0]!.data).toString()).toBe('over tls');
    expect(Buffer.from(await a.transport.request('n3', Buffer.from('hi'), 5000)).toString()).toBe('n1 asked hi');
    // The socket really is TLS 1.3: a plain TCP client gets no Hello, only a closed socket.
    const plain = await rawSocket(b.transport.port);
    sockets.push(plain);
    const gone = closed(plain);
    plain.write(hello('n1', 99));
    await gone;
    expect(b.transport.peerStatus().get('n1')).toMatchObject({ connected: true, incarnation: 1 });
  });

  test('a node whose certificate another CA signed can neither dial nor be dialed', async () => {
    const b = await startNode('n2', { tls: peerTls('n2') });
    nodes = [b];
    // n1 with a certificate for "n1" from another CA (trusting both, so that it is n2 that refuses).
    const impostor = await startNode('n1', { tls: { ca: foreign.ca.cert + certs.ca.cert, cert: foreign.nodes.get('n1')!.cert, key: foreign.nodes.get('n1')!.key } }, new Map([['n2', addressOf(b)]]));
    nodes.push(impostor);
    await waitFor(() => b.transport.stats().connectionsRefused >= 1, 'a refused TLS handshake');
    expect(warned(b, /closing the connection from 127\.0\.0\.1:\d+: its certificate is not one the peer CA signed/)).toHaveLength(1);
    // The other way round: n2 dials n3, which shows a certificate from the other CA.
    const c = await startNode('n3', { tls: { ca: certs.ca.cert, cert: foreign.nodes.get('n1')!.cert, key: foreign.nodes.get('n1')!.key } });
    nodes.push(c);
    b.transport.setPeers(new Map([['n3', addressOf(c)]]));
    await waitFor(() => b.logs.some((l) => /cannot connect to n3/.test(l)), 'the failed dial');
    expect(b.transport.peerStatus().get('n3')!.connected).toBe(false);
    expect(impostor.transport.peerStatus().get('n2')!.connected).toBe(false);
  });

  test("a valid certificate whose Hello claims another member's id is refused; the real member stays connected", async () => {
    nodes = await tlsCluster(['n1', 'n2', 'n3']);
    const [a, b] = nodes as [Node, Node, Node];
    // n3's own certificate, claiming to be n1 restarted (a newer incarnation would replace the real n1's connection).
    const spoof = await tlsClient(b.transport.port, certs.nodes.get('n3')!);
    const gone = closed(spoof);
    spoof.write(hello('n1', Date.now() + 1_000_000));
    await gone;
    expect(warned(b, /the Hello claims "n1", but the certificate names n3/)).toHaveLength(1);
    expect(b.transport.peerStatus().get('n1')).toMatchObject({ connected: true, incarnation: 1 });
    await healthyTraffic(a, b);
  });

  test('a client certificate that names a node is not a peer certificate', async () => {
    nodes = await tlsCluster(['n1', 'n2']);
    const [a, b] = nodes as [Node, Node];
    const client = await tlsClient(b.transport.port, certs.clients.get('n1')!);
    const gone = closed(client);
    client.write(hello('n1', Date.now() + 1_000_000));
    await gone;
    expect(warned(b, /the certificate names no node/)).toHaveLength(1);
    expect(b.transport.peerStatus().get('n1')).toMatchObject({ connected: true, incarnation: 1 });
    await healthyTraffic(a, b);
  });

  test('a connection without a client certificate is refused in the TLS handshake', async () => {
    nodes = await tlsCluster(['n1', 'n2']);
    const [a, b] = nodes as [Node, Node];
    const before = b.transport.stats().connectionsRefused;
    // TLS 1.3: the client's side completes before the server checks the client's certificate.
    const anonymous = await tlsClient(b.transport.port, null);
    const gone = closed(anonymous);
    anonymous.write(hello('n1', 7));
    await gone;
    expect(b.transport.stats().connectionsRefused).toBe(before + 1);
    await healthyTraffic(a, b);
  });

  test('an authenticated peer that sends a message from another member is disconnected and nothing of the frame is delivered', async () => {
    nodes = await tlsCluster(['n1', 'n2']);
    const [a, b] = nodes as [Node, Node];
    await healthyTraffic(a, b);
    const before = receivedFrom(b, 'n1').length;
    const incarnation = b.transport.peerStatus().get('n1')!.incarnation!;
    // n1 (authenticated) sends a heartbeat in the name of n3's member.
    a.transport.send('n2', 0, heartbeat('n1', 'n2', 1, 0, 1));
    a.transport.send('n2', 1, heartbeat('n3@5', 'n2', 9, 0, 1));
    a.transport.flush();
    await waitFor(() => warned(b, /closing the connection of n1 \(127\.0\.0\.1:\d+\): a message from "n3@5" on the connection of n1/).length === 1, 'the warning');
    expect(receivedFrom(b, 'n1').length).toBe(before);
    // n1 reconnects (it dials) and its honest traffic flows again.
    await waitFor(() => a.transport.peerStatus().get('n2')!.connected && b.transport.peerStatus().get('n1')!.connected, 'the reconnection');
    await healthyTraffic(a, b);
    expect(incarnation).toBe(1);
  });
});

describe('before a connection is authenticated', () => {
  test('a frame bigger than a Hello is refused from its header, before any of it is buffered (plain TCP)', async () => {
    nodes = await startCluster(['n1', 'n2']);
    const [a, b] = nodes as [Node, Node];
    const bad = await rawSocket(b.transport.port);
    sockets.push(bad);
    const gone = closed(bad);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1 << 20); // 1 MiB: far below the 64 MiB an authenticated peer may send
    bad.write(header);
    await gone;
    expect(warned(b, new RegExp(`frame of ${1 << 20} bytes exceeds the limit of ${transportLimits.PRE_AUTH_MAX_FRAME_BYTES}`))).toHaveLength(1);
    await healthyTraffic(a, b);
  });

  test('junk sent to a TLS port before the handshake is refused after a few KiB at most', async () => {
    nodes = await tlsCluster(['n1', 'n2']);
    const [a, b] = nodes as [Node, Node];
    const bad = await rawSocket(b.transport.port);
    sockets.push(bad);
    const gone = closed(bad);
    let written = 0;
    const chunk = Buffer.alloc(1024, 0x16); // looks like the start of TLS records
    while (written < 1 << 20 && !bad.destroyed && bad.write(chunk)) written += chunk.length;
    await gone;
    await healthyTraffic(a, b);
  });

  test('idle sockets from one address cannot lock a real peer out: the oldest is closed for each newcomer', async () => {
    nodes = await startCluster(['n1', 'n2']);
    const [a, b] = nodes as [Node, Node];
    const idle: net.Socket[] = [];
    const gone: Promise<void>[] = [];
    for (let i = 0; i < 3 * transportLimits.MAX_PRE_AUTH_CONNECTIONS_PER_ADDRESS; i++) {
      const s = await rawSocket(b.transport.port);
      idle.push(s);
      sockets.push(s);
      gone.push(closed(s));
    }
    // All but the newest MAX_PRE_AUTH_CONNECTIONS_PER_ADDRESS are closed at once, not after the handshake time-out.
    await Promise.all(gone.slice(0, 2 * transportLimits.MAX_PRE_AUTH_CONNECTIONS_PER_ADDRESS));
    expect(idle.filter((s) => !s.destroyed)).toHaveLength(transportLimits.MAX_PRE_AUTH_CONNECTIONS_PER_ADDRESS);
    // The real n1 loses its connection and dials again, from the same address, past the idle sockets.
    const incarnation = b.transport.peerStatus().get('n1')!.incarnation;
    await a.transport.close();
    await waitFor(() => !b.transport.peerStatus().get('n1')!.connected, 'n1 gone');
    const startedMs = Date.now();
    const back = await startNode('n1', { incarnation: 2 }, new Map([['n2', addressOf(b)]]));
    nodes = [back, b];
    await waitFor(() => b.transport.peerStatus().get('n1')?.connected === true && back.transport.peerStatus().get('n2')?.connected === true, 'n1 back, past the idle sockets');
    // Not by waiting out the idle sockets' handshake time-out.
    expect(Date.now() - startedMs).toBeLessThan(transportLimits.HANDSHAKE_TIMEOUT_MS);
    expect(b.transport.peerStatus().get('n1')!.incarnation).toBe((incarnation ?? 0) + 1);
    await healthyTraffic(back, b);
  });
});
