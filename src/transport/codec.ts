// Conversion between raft Messages and the wire schema (schema.ts), and the
// encoding of whole frames. Decoding validates everything a peer could get
// wrong and throws ProtocolError, which closes that peer's connection.

import protobuf from 'protobufjs';
import { MessageType, emptyMessage } from '../../raft/index.js';
import type { Entry, EntryType, Message, NodeId, SnapshotChunk } from '../../raft/index.js';
import { ProtocolError } from './errors.js';
import { VELO_PROTO } from './schema.js';

const root = protobuf.parse(VELO_PROTO).root;
// Resolves proto3's defaults, among them packed repeated scalars: without
// this protobufjs writes the heartbeat columns unpacked, a tag per number.
root.resolveAll();
const FrameType = root.lookupType('velo.transport.Frame');

/** Highest raft MessageType and EntryType values the wire may carry. */
const MAX_MESSAGE_TYPE = MessageType.TimeoutNow;
const MAX_ENTRY_TYPE = 1;

/** How protobufjs hands back a uint64: a number, or a Long when it is installed. */
type WireNumber = number | { low: number; high: number };

/** Response statuses, numbered as ResponseStatus in the schema. */
export const enum ResponseStatus {
  Ok = 0,
  HandlerError = 1,
  NoHandler = 2,
  Overloaded = 3,
}
const MAX_RESPONSE_STATUS = ResponseStatus.Overloaded;

export interface Hello {
  protocolVersion: number;
  clusterId: string;
  nodeId: NodeId;
  incarnation: number;
}

/** The two ends of a connection: a message's from/to is left off the wire when it is one of them. */
export interface Ends {
  sender: NodeId;
  receiver: NodeId;
}

export interface GroupMessage {
  group: number;
  message: Message;
}

export interface WireRequest {
  id: number;
  payload: Uint8Array;
}

export interface WireResponse {
  id: number;
  status: ResponseStatus;
  payload: Uint8Array;
  error: string;
}

/** Parallel arrays, one heartbeat per index (readRound for responses, commit only for heartbeats). */
export interface HeartbeatColumns {
  groups: number[];
  terms: number[];
  commits: number[];
  readRounds: number[];
}

/** The wire form of one raft message, as protobufjs encodes it; zero fields are left out. */
export type WireRaftMessage = Record<string, unknown>;

/** What goes into one outgoing frame. */
export interface FrameContent {
  hello?: Hello;
  goodbye?: string;
  heartbeats?: HeartbeatColumns;
  heartbeatResponses?: HeartbeatColumns;
  messages?: WireRaftMessage[];
  requests?: WireRequest[];
  responses?: WireResponse[];
}

/** A frame as received, validated, with raft messages in their delivery order. */
export interface DecodedFrame {
  hello: Hello | null;
  goodbye: string | null;
  raft: GroupMessage[];
  requests: WireRequest[];
  responses: WireResponse[];
}

const EMPTY_BYTES = new Uint8Array(0);

export function emptyHeartbeatColumns(): HeartbeatColumns {
  return { groups: [], terms: [], commits: [], readRounds: [] };
}

// ---- raft Message -> wire ----

export function raftMessageToWire(group: number, m: Message, ends: Ends): WireRaftMessage {
  // protobufjs writes every field present on the object, zero or not; leaving
  // zeros out keeps small messages small, as proto3 intends.
  const w: WireRaftMessage = {};
  if (group !== 0) w.group = group;
  if (m.type !== 0) w.type = m.type;
  if (m.from !== ends.sender) w.from = m.from;
  if (m.to !== ends.receiver) w.to = m.to;
  if (m.term !== 0) w.term = m.term;
  if (m.logTerm !== 0) w.logTerm = m.logTerm;
  if (m.index !== 0) w.index = m.index;
  if (m.entries.length > 0) w.entries = m.entries.map(entryToWire);
  if (m.commit !== 0) w.commit = m.commit;
  if (m.reject) w.reject = true;
  if (m.rejectHint !== 0) w.rejectHint = m.rejectHint;
  if (m.readRound !== 0) w.readRound = m.readRound;
  if (m.transfer) w.transfer = true;
  if (m.snapshot !== null) w.snapshot = snapshotToWire(m.snapshot);
  if (m.snapshotOffset !== 0) w.snapshotOffset = m.snapshotOffset;
  return w;
}

function entryToWire(e: Entry): Record<string, unknown> {
  const w: Record<string, unknown> = {};
  if (e.term !== 0) w.term = e.term;
  if (e.index !== 0) w.index = e.index;
  if (e.type !== 0) w.type = e.type;
  if (e.data.length > 0) w.data = e.data;
  return w;
}

function snapshotToWire(s: SnapshotChunk): Record<string, unknown> {
  const meta = s.metadata;
  return {
    // Always present, even all zero: a chunk without metadata is refused on decode.
    metadata: {
      index: meta.index,
      term: meta.term,
      confState: { voters: meta.confState.voters, learners: meta.confState.learners },
    },
    offset: s.offset,
    data: s.data,
    done: s.done,
  };
}

/**
 * A bound on a message's encoded size, for queue accounting and for refusing
 * messages that could never fit a frame: every varint counted at its
 * largest (10 bytes) with its tag, every length prefix at 5 bytes.
 */
export function estimateMessageBytes(m: Message): number {
  // Strings at 3 UTF-8 bytes per UTF-16 unit, their worst case.
  let n = 16 * 11 + (m.from.length + m.to.length) * 3 + 10;
  for (const e of m.entries) n += 40 + e.data.length;
  const s = m.snapshot;
  if (s !== null) {
    n += 80 + s.data.length;
    for (const id of s.metadata.confState.voters) n += 6 + id.length * 3;
    for (const id of s.metadata.confState.learners) n += 6 + id.length * 3;
  }
  return n;
}

/**
 * True when a heartbeat (or response) carries nothing but what the compact
 * columns hold, so sending it there loses nothing.
 */
export function isCompactHeartbeat(m: Message, ends: Ends): boolean {
  if (m.type !== MessageType.Heartbeat && m.type !== MessageType.HeartbeatResp) return false;
  return (
    m.from === ends.sender &&
    m.to === ends.receiver &&
    m.logTerm === 0 &&
    m.index === 0 &&
    m.entries.length === 0 &&
    (m.type === MessageType.Heartbeat || m.commit === 0) &&
    !m.reject &&
    m.rejectHint === 0 &&
    !m.transfer &&
    m.snapshot === null &&
    m.snapshotOffset === 0
  );
}

// ---- frames ----

export function encodeFrame(content: FrameContent): Uint8Array {
  const w: Record<string, unknown> = {};
  if (content.hello) w.hello = content.hello;
  if (content.goodbye !== undefined) w.goodbye = { reason: content.goodbye };
  if (content.messages?.length) w.messages = content.messages;
  if (content.heartbeats?.groups.length) w.heartbeats = content.heartbeats;
  if (content.heartbeatResponses?.groups.length) {
    const r = content.heartbeatResponses;
    w.heartbeatResponses = { groups: r.groups, terms: r.terms, readRounds: r.readRounds };
  }
  if (content.requests?.length) w.requests = content.requests;
  if (content.responses?.length) w.responses = content.responses.map(responseToWire);
  return FrameType.encode(w).finish();
}

function responseToWire(r: WireResponse): Record<string, unknown> {
  const w: Record<string, unknown> = { id: r.id };
  if (r.status !== ResponseStatus.Ok) w.status = r.status;
  if (r.payload.length > 0) w.payload = r.payload;
  if (r.error !== '') w.error = r.error;
  return w;
}

/**
 * Decodes and validates one frame payload. `ends` fills in the from/to left
 * off the wire; it is null before the handshake, when only a Hello (or a
 * Goodbye) is allowed.
 */
export function decodeFrame(payload: Uint8Array, ends: Ends | null): DecodedFrame {
  // protobufjs reflection hands back untyped objects; every field used is checked below.
  let f: any;
  try {
    f = FrameType.decode(payload);
  } catch (err) {
    throw new ProtocolError(`corrupt frame: ${(err as Error).message}`);
  }
  const out: DecodedFrame = {
    hello: f.hello ? helloFromWire(f.hello) : null,
    goodbye: f.goodbye ? String(f.goodbye.reason) : null,
    raft: [],
    requests: [],
    responses: [],
  };
  const hasContent =
    f.messages.length > 0 || f.heartbeats || f.heartbeatResponses || f.requests.length > 0 || f.responses.length > 0;
  if (ends === null) {
    if (hasContent) throw new ProtocolError('raft messages or requests before the Hello');
    return out;
  }
  if (out.hello !== null) throw new ProtocolError('a second Hello on an open connection');
  if (!hasContent) return out;
  // Delivery order: compact heartbeats, compact responses, then full
  // messages. The outbox only uses the compact form for a group while
  // nothing else of that group is queued before it, so each group's
  // messages keep the order in which they were sent.
  if (f.heartbeats) readHeartbeats(f.heartbeats, MessageType.Heartbeat, ends, out.raft);
  if (f.heartbeatResponses) readHeartbeats(f.heartbeatResponses, MessageType.HeartbeatResp, ends, out.raft);
  for (const m of f.messages) out.raft.push(raftMessageFromWire(m, ends));
  for (const r of f.requests) out.requests.push({ id: num(r.id, 'request id'), payload: bytes(r.payload) });
  for (const r of f.responses) {
    if (!(r.status >= 0 && r.status <= MAX_RESPONSE_STATUS)) throw new ProtocolError(`unknown response status ${r.status}`);
    out.responses.push({ id: num(r.id, 'response id'), status: r.status, payload: bytes(r.payload), error: String(r.error) });
  }
  return out;
}

function helloFromWire(h: any): Hello {
  return {
    protocolVersion: h.protocolVersion,
    clusterId: h.clusterId,
    nodeId: h.nodeId,
    incarnation: num(h.incarnation, 'incarnation'),
  };
}

function readHeartbeats(c: any, type: MessageType, ends: Ends, out: GroupMessage[]): void {
  const n = c.groups.length;
  const withCommit = type === MessageType.Heartbeat;
  const commitsMatch = !withCommit || c.commits.length === n;
  if (c.terms.length !== n || c.readRounds.length !== n || !commitsMatch) {
    throw new ProtocolError('heartbeat columns of different lengths');
  }
  for (let i = 0; i < n; i++) {
    const m = emptyMessage(type, ends.sender, ends.receiver, num(c.terms[i], 'term'));
    if (withCommit) m.commit = num(c.commits[i], 'commit');
    m.readRound = num(c.readRounds[i], 'read round');
    out.push({ group: c.groups[i], message: m });
  }
}

export function raftMessageFromWire(w: any, ends: Ends): GroupMessage {
  const type = w.type as number;
  if (!(type >= 0 && type <= MAX_MESSAGE_TYPE)) throw new ProtocolError(`unknown raft message type ${type}`);
  const m = emptyMessage(type as MessageType, w.from || ends.sender, w.to || ends.receiver, num(w.term, 'term'));
  m.logTerm = num(w.logTerm, 'log term');
  m.index = num(w.index, 'index');
  m.entries = w.entries.length === 0 ? [] : w.entries.map(entryFromWire);
  m.commit = num(w.commit, 'commit');
  m.reject = w.reject === true;
  m.rejectHint = num(w.rejectHint, 'reject hint');
  m.readRound = num(w.readRound, 'read round');
  m.transfer = w.transfer === true;
  m.snapshot = w.snapshot ? snapshotFromWire(w.snapshot) : null;
  m.snapshotOffset = num(w.snapshotOffset, 'snapshot offset');
  return { group: w.group, message: m };
}

function entryFromWire(w: any): Entry {
  if (!(w.type >= 0 && w.type <= MAX_ENTRY_TYPE)) throw new ProtocolError(`unknown entry type ${w.type}`);
  return { term: num(w.term, 'entry term'), index: num(w.index, 'entry index'), type: w.type as EntryType, data: bytes(w.data) };
}

function snapshotFromWire(w: any): SnapshotChunk {
  const meta = w.metadata;
  if (!meta) throw new ProtocolError('snapshot chunk without metadata');
  const conf = meta.confState;
  return {
    metadata: {
      index: num(meta.index, 'snapshot index'),
      term: num(meta.term, 'snapshot term'),
      confState: { voters: conf ? [...conf.voters] : [], learners: conf ? [...conf.learners] : [] },
    },
    offset: num(w.offset, 'snapshot chunk offset'),
    data: bytes(w.data),
    done: w.done === true,
  };
}

/** A uint64 from the wire as a JS number; beyond 2^53 it could not be represented exactly. */
function num(v: WireNumber, what: string): number {
  if (typeof v === 'number') return v;
  const high = v.high >>> 0;
  if (high >= 0x200000) throw new ProtocolError(`${what} exceeds 2^53`);
  return high * 0x1_0000_0000 + (v.low >>> 0);
}

/** protobufjs gives an absent bytes field as a plain empty array. */
function bytes(v: unknown): Uint8Array {
  return v instanceof Uint8Array ? v : EMPTY_BYTES;
}
