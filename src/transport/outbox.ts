// What is queued for one peer until the next flush, and how it becomes
// frames. Heartbeats are coalesced per peer: those of every group go into
// one set of packed columns, a few bytes each, instead of one message each.

import { MessageType } from '../../raft/index.js';
import type { Message } from '../../raft/index.js';
import {
  emptyHeartbeatColumns,
  encodeFrame,
  isCompactHeartbeat,
  raftMessageToWire,
  type Ends,
  type FrameContent,
  type HeartbeatColumns,
  type WireRaftMessage,
  type WireRequest,
  type WireResponse,
} from './codec.js';

/** Upper bound of one compact heartbeat: four varints with their share of the packed columns. */
const COMPACT_HEARTBEAT_BYTES = 40;
/** Upper bound of what surrounds a request or response payload (id, status, tags, lengths). */
const ENVELOPE_BYTES = 32;

const enum GroupStart {
  CompactHeartbeat,
  CompactHeartbeatResp,
  Full,
}

export class Outbox {
  private heartbeats = emptyHeartbeatColumns();
  private heartbeatResponses = emptyHeartbeatColumns();
  private messages: WireRaftMessage[] = [];
  private requests: WireRequest[] = [];
  private responses: WireResponse[] = [];
  /**
   * How each group's queued messages began. A frame delivers compact
   * heartbeats before full messages, so a group may use the compact form
   * only while everything queued for it so far is of that same compact kind;
   * after anything else, its heartbeats go as full messages, in order.
   */
  private groupStart = new Map<number, GroupStart>();
  /** An upper bound of the encoded size of everything queued. */
  queuedBytes = 0;

  constructor(private readonly ends: Ends) {}

  get isEmpty(): boolean {
    return this.queuedBytes === 0;
  }

  addRaft(group: number, m: Message, estimatedBytes: number): void {
    const start = this.groupStart.get(group);
    if (isCompactHeartbeat(m, this.ends)) {
      const kind = m.type === MessageType.Heartbeat ? GroupStart.CompactHeartbeat : GroupStart.CompactHeartbeatResp;
      if (start === undefined || start === kind) {
        if (start === undefined) this.groupStart.set(group, kind);
        const cols = kind === GroupStart.CompactHeartbeat ? this.heartbeats : this.heartbeatResponses;
        cols.groups.push(group);
        cols.terms.push(m.term);
        if (kind === GroupStart.CompactHeartbeat) cols.commits.push(m.commit);
        cols.readRounds.push(m.readRound);
        this.queuedBytes += COMPACT_HEARTBEAT_BYTES;
        return;
      }
    }
    this.groupStart.set(group, GroupStart.Full);
    this.messages.push(raftMessageToWire(group, m, this.ends));
    this.queuedBytes += estimatedBytes;
  }

  addRequest(r: WireRequest): void {
    this.requests.push(r);
    this.queuedBytes += r.payload.length + ENVELOPE_BYTES;
  }

  addResponse(r: WireResponse): void {
    this.responses.push(r);
    this.queuedBytes += r.payload.length + r.error.length * 3 + ENVELOPE_BYTES;
  }

  /** Everything queued, as one frame's content; the outbox is empty afterwards. */
  take(): FrameContent {
    const content: FrameContent = {
      heartbeats: this.heartbeats,
      heartbeatResponses: this.heartbeatResponses,
      messages: this.messages,
      requests: this.requests,
      responses: this.responses,
    };
    this.clear();
    return content;
  }

  clear(): void {
    this.heartbeats = emptyHeartbeatColumns();
    this.heartbeatResponses = emptyHeartbeatColumns();
    this.messages = [];
    this.requests = [];
    this.responses = [];
    this.groupStart.clear();
    this.queuedBytes = 0;
  }
}

/**
 * Encodes content as one frame payload, or, when that would exceed
 * maxFrameBytes, as several frames that split it in delivery order (so each
 * group's order survives). A single item that alone exceeds the limit is
 * dropped and reported; the size checks at queue time make that a bug.
 */
export function encodeFrames(content: FrameContent, maxFrameBytes: number, onDrop: (what: string) => void): Uint8Array[] {
  const payload = encodeFrame(content);
  if (payload.length <= maxFrameBytes) return [payload];
  const n = unitCount(content);
  if (n <= 1) {
    onDrop(`a ${payload.length}-byte item that exceeds maxFrameBytes ${maxFrameBytes}`);
    return [];
  }
  const [head, tail] = splitContent(content, n >> 1);
  return [...encodeFrames(head, maxFrameBytes, onDrop), ...encodeFrames(tail, maxFrameBytes, onDrop)];
}

function unitCount(c: FrameContent): number {
  return (
    (c.heartbeats?.groups.length ?? 0) +
    (c.heartbeatResponses?.groups.length ?? 0) +
    (c.messages?.length ?? 0) +
    (c.requests?.length ?? 0) +
    (c.responses?.length ?? 0)
  );
}

/** The first k units in delivery order (heartbeats, responses to them, messages, requests, responses), and the rest. */
export function splitContent(c: FrameContent, k: number): [FrameContent, FrameContent] {
  const head: FrameContent = {};
  const tail: FrameContent = {};
  let left = k;
  const cut = <T>(items: T[] | undefined): [T[], T[]] => {
    const all = items ?? [];
    const n = Math.min(left, all.length);
    left -= n;
    return [all.slice(0, n), all.slice(n)];
  };
  [head.heartbeats, tail.heartbeats] = cutColumns(c.heartbeats, cut);
  [head.heartbeatResponses, tail.heartbeatResponses] = cutColumns(c.heartbeatResponses, cut);
  [head.messages, tail.messages] = cut(c.messages);
  [head.requests, tail.requests] = cut(c.requests);
  [head.responses, tail.responses] = cut(c.responses);
  return [head, tail];
}

function cutColumns(
  cols: HeartbeatColumns | undefined,
  cut: <T>(items: T[] | undefined) => [T[], T[]],
): [HeartbeatColumns, HeartbeatColumns] {
  const c = cols ?? emptyHeartbeatColumns();
  const [g1, g2] = cut(c.groups);
  const n = g1.length;
  return [
    { groups: g1, terms: c.terms.slice(0, n), commits: c.commits.slice(0, n), readRounds: c.readRounds.slice(0, n) },
    { groups: g2, terms: c.terms.slice(n), commits: c.commits.slice(n), readRounds: c.readRounds.slice(n) },
  ];
}
