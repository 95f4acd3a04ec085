// Shared pieces of the transport tests: arbitrary raft messages, a small
// cluster of real transports on 127.0.0.1 with ephemeral ports, and waiting
// on conditions without sleeping.

import fc from 'fast-check';
import net from 'node:net';
import { MessageType, emptyMessage } from '../../raft/index.js';
import type { Entry, Message, SnapshotChunk } from '../../raft/index.js';
import { Transport, type TransportOptions } from '../../src/transport/index.js';
import type { GroupMessage } from '../../src/transport/codec.js';
import { seededRandom } from '../support/random.js';

/** Polls `predicate` on every turn of the event loop; fails after a generous cap (not a sleep: it returns as soon as it holds). */
export async function waitFor(predicate: () => boolean, what: string, capMs = 15_000): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > capMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}


// ---- arbitrary messages ----

const nodeIds = ['n1', 'n2', 'n3', 'node-with-a-longer-name'];
const safe = fc.oneof(fc.constantFrom(0, 1, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER), fc.maxSafeNat(), fc.nat(1000));
const bytes = fc.uint8Array({ maxLength: 64 });

const entryArb: fc.Arbitrary<Entry> = fc.record({ term: safe, index: safe, type: fc.constantFrom(0, 1), data: bytes });

const snapshotArb: fc.Arbitrary<SnapshotChunk> = fc.record({
  metadata: fc.record({
    index: safe,
    term: safe,
    confState: fc.record({ voters: fc.array(fc.constantFrom(...nodeIds), { maxLength: 3 }), learners: fc.array(fc.constantFrom(...nodeIds), { maxLength: 2 }) }),
  }),
  offset: safe,
  data: bytes,
  done: fc.boolean(),
});

/** Any message, every field free (heartbeats too, so some are compact and some not). */
export const messageArb: fc.Arbitrary<Message> = fc.record({
  type: fc.integer({ min: 0, max: MessageType.TimeoutNow }),
  from: fc.constantFrom(...nodeIds),
  to: fc.constantFrom(...nodeIds),
  term: safe,
  logTerm: fc.oneof(fc.constant(0), safe),
  index: fc.oneof(fc.constant(0), safe),
  entries: fc.array(entryArb, { maxLength: 4 }),
  commit: safe,
  reject: fc.boolean(),
  rejectHint: fc.oneof(fc.constant(0), safe),
  readRound: safe,
  transfer: fc.boolean(),
  snapshot: fc.option(snapshotArb, { nil: null }),
  snapshotOffset: fc.oneof(fc.constant(0), safe),
}) as fc.Arbitrary<Message>;

/** A plain heartbeat or response between n1 and n2, as the raft core sends them. */
export const heartbeatArb: fc.Arbitrary<Message> = fc
  .record({ resp: fc.boolean(), term: safe, commit: safe, readRound: safe })
  .map(({ resp, term, commit, readRound }) => {
    const m = emptyMessage(resp ? MessageType.HeartbeatResp : MessageType.Heartbeat, 'n1', 'n2', term);
    if (!resp) m.commit = commit;
    m.readRound = readRound;
    return m;
  });

export const groupMessageArb: fc.Arbitrary<GroupMessage> = fc.record({
  group: fc.oneof(fc.nat(20), fc.constant(2 ** 32 - 1)),
  message: fc.oneof(messageArb, heartbeatArb, heartbeatArb),
});

/** Messages with every Uint8Array as a plain array, so Buffers and Uint8Arrays compare equal. */
export function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return Array.from(value);
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

export function heartbeat(from: string, to: string, term: number, commit: number, readRound: number): Message {
  const m = emptyMessage(MessageType.Heartbeat, from, to, term);
  m.commit = commit;
  m.readRound = readRound;
  return m;
}

export function append(from: string, to: string, term: number, index: number, payloads: string[]): Message {
  const m = emptyMessage(MessageType.Append, from, to, term);
  m.index = index;
  m.logTerm = term;
  m.entries = payloads.map((p, i) => ({ term, index: index + 1 + i, type: 0, data: Buffer.from(p) }));
  return m;
}

// ---- a cluster of real transports ----

export interface Node {
  transport: Transport;
  logs: string[];
  received: { from: string; batch: GroupMessage[] }[];
}

export type NodeOptions = Partial<Omit<TransportOptions, 'nodeId' | 'peers' | 'log'>>;

/** A transport on 127.0.0.1 with an ephemeral port (or `port`), recording what it logs and receives. */
export async function startNode(id: string, options: NodeOptions = {}, peers = new Map<string, string>()): Promise<Node> {
  const logs: string[] = [];
  const received: Node['received'] = [];
  const transport = new Transport({
    clusterId: 'test-cluster',
    nodeId: id,
    incarnation: 1,
    listenHost: '127.0.0.1',
    listenPort: 0,
    reconnect: { minMs: 5, maxMs: 40 },
    random: seededRandom(id.length * 7919 + id.charCodeAt(id.length - 1)),
    ...options,
    peers,
    log: (line) => logs.push(line),
  });
  transport.onRaftMessages((from, batch) => received.push({ from, batch }));
  await transport.start();
  return { transport, logs, received };
}

export function addressOf(n: Node): string {
  return `127.0.0.1:${n.transport.port}`;
}

/** Starts nodes with the given ids, gives each the others' addresses, and waits until every pair is connected. */
export async function startCluster(ids: string[], options: NodeOptions = {}, perNode: (id: string) => NodeOptions = () => ({})): Promise<Node[]> {
  const nodes = await Promise.all(ids.map((id) => startNode(id, { ...options, ...perNode(id) })));
  const peers = new Map(nodes.map((n) => [n.transport.nodeId, addressOf(n)]));
  for (const n of nodes) n.transport.setPeers(peers);
  await waitFor(() => nodes.every((n) => allConnected(n)), 'every pair connected');
  return nodes;
}

export function allConnected(n: Node): boolean {
  return [...n.transport.peerStatus().values()].every((s) => s.connected);
}

export function connectedTo(n: Node, peer: string): boolean {
  return n.transport.peerStatus().get(peer)?.connected === true;
}

export async function closeAll(nodes: Node[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.transport.close()));
}

/** Every raft message a node has received from `from`, in arrival order. */
export function receivedFrom(n: Node, from: string): GroupMessage[] {
  return n.received.filter((r) => r.from === from).flatMap((r) => r.batch);
}

/** A raw TCP client, for peers that misbehave. Resolves once connected. */
export async function rawSocket(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return socket;
}

/** Resolves when the other side has closed the socket (reading and discarding what it sends until then). */
export function closed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    socket.on('error', () => undefined);
    socket.resume();
    socket.once('close', () => resolve());
  });
}

/** Rejects with the error's code, for expect(...).rejects. */
export async function errorCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}
