import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { MessageType, emptyMessage } from '../../raft/index.js';
import { decodeFrame, encodeFrame, type Ends, type GroupMessage } from '../../src/transport/codec.js';
import { ProtocolError } from '../../src/transport/errors.js';
import { Outbox, encodeFrames } from '../../src/transport/outbox.js';
import { estimateMessageBytes } from '../../src/transport/codec.js';
import { groupMessageArb, heartbeat, plain } from './helpers.js';

const ends: Ends = { sender: 'n1', receiver: 'n2' };

function queue(messages: GroupMessage[]): Outbox {
  const outbox = new Outbox(ends);
  for (const { group, message } of messages) outbox.addRaft(group, message, estimateMessageBytes(message));
  return outbox;
}

/** Each group's messages in order: what the transport promises to keep. */
function byGroup(messages: GroupMessage[]): Map<number, unknown[]> {
  const out = new Map<number, unknown[]>();
  for (const { group, message } of messages) out.set(group, [...(out.get(group) ?? []), plain(message)]);
  return out;
}

describe('the codec', () => {
  test('round-trips any messages of any groups, keeping each group in order', () => {
    fc.assert(
      fc.property(fc.array(groupMessageArb, { maxLength: 30 }), (messages) => {
        const decoded = decodeFrame(encodeFrame(queue(messages).take()), ends).raft;
        expect(decoded.length).toBe(messages.length);
        expect(byGroup(decoded)).toEqual(byGroup(messages));
      }),
      { numRuns: 300 },
    );
  });

  test('split frames stay under maxFrameBytes and keep each group in order', () => {
    fc.assert(
      fc.property(fc.array(groupMessageArb, { minLength: 1, maxLength: 40 }), fc.integer({ min: 600, max: 4000 }), (messages, max) => {
        const dropped: string[] = [];
        const frames = encodeFrames(queue(messages).take(), max, (what) => dropped.push(what));
        const decoded = frames.flatMap((f) => decodeFrame(f, ends).raft);
        for (const f of frames) expect(f.length).toBeLessThanOrEqual(max);
        // The generator's messages are all far smaller than 600 bytes.
        expect(dropped).toEqual([]);
        expect(byGroup(decoded)).toEqual(byGroup(messages));
      }),
      { numRuns: 200 },
    );
  });

  test('heartbeats for 100 groups cost a few bytes each', () => {
    const messages = Array.from({ length: 100 }, (_, g) => ({ group: g, message: heartbeat('n1', 'n2', 7, 10_000 + g, 4242) }));
    const payload = encodeFrame(queue(messages).take());
    // Group, term, commit and read round take 1, 1, 2 and 2 bytes here; packing adds a few bytes per frame.
    expect(payload.length / 100).toBeLessThan(7);
    expect(plain(decodeFrame(payload, ends).raft)).toEqual(plain(messages));
  });

  test('a heartbeat carrying more than the compact form holds goes whole', () => {
    const m = heartbeat('n1', 'n2', 3, 5, 6);
    m.index = 9; // not something a heartbeat normally carries, but it must survive
    const other = heartbeat('n3', 'n2', 3, 5, 6); // relayed from another node
    const decoded = decodeFrame(encodeFrame(queue([{ group: 1, message: m }, { group: 2, message: other }]).take()), ends).raft;
    expect(plain(decoded)).toEqual(plain([{ group: 1, message: m }, { group: 2, message: other }]));
  });

  test('a heartbeat queued after another message of its group stays after it', () => {
    const vote = emptyMessage(MessageType.VoteResp, 'n1', 'n2', 4);
    const hb = heartbeat('n1', 'n2', 4, 1, 1);
    const resp = emptyMessage(MessageType.HeartbeatResp, 'n1', 'n2', 4);
    const sent = [
      { group: 1, message: heartbeat('n1', 'n2', 3, 1, 1) },
      { group: 1, message: resp },
      { group: 1, message: vote },
      { group: 1, message: hb },
    ];
    expect(plain(decodeFrame(encodeFrame(queue(sent).take()), ends).raft)).toEqual(plain(sent));
  });

  test('a Hello round-trips, and is the only thing allowed before it', () => {
    const hello = { protocolVersion: 1, clusterId: 'c', nodeId: 'n1', incarnation: 2 ** 40 };
    expect(decodeFrame(encodeFrame({ hello }), null).hello).toEqual(hello);
    const early = encodeFrame({ hello, messages: [{ type: MessageType.Vote }] });
    expect(() => decodeFrame(early, null)).toThrow(/before the Hello/);
    expect(() => decodeFrame(encodeFrame({ hello }), ends)).toThrow(/second Hello/);
  });

  test('a corrupt or invalid frame is a ProtocolError', () => {
    const cases: [Uint8Array, RegExp][] = [
      [Uint8Array.of(0xff, 0xff, 0xff), /corrupt frame/],
      [Uint8Array.of(0x12, 0x05, 0x01), /corrupt frame/],
      [encodeFrame({ messages: [{ type: 42 }] }), /unknown raft message type 42/],
      [encodeFrame({ messages: [{ term: 2 ** 60 }] }), /exceeds 2\^53/],
      [encodeFrame({ messages: [{ entries: [{ type: 7 }] }] }), /unknown entry type/],
      [encodeFrame({ messages: [{ snapshot: { offset: 1 } }] }), /without metadata/],
      [encodeFrame({ responses: [{ id: 1, status: -1 as never, payload: new Uint8Array(0), error: '' }] }), /unknown response status -1/],
      [encodeFrame({ heartbeats: { groups: [1, 2], terms: [1], commits: [1, 2], readRounds: [1, 2] } }), /different lengths/],
    ];
    for (const [payload, why] of cases) {
      expect(() => decodeFrame(payload, ends)).toThrow(ProtocolError);
      expect(() => decodeFrame(payload, ends)).toThrow(why);
    }
  });

  test('requests and responses round-trip', () => {
    const payload = encodeFrame({
      requests: [{ id: 1, payload: Buffer.from('get k') }],
      responses: [{ id: 2 ** 35, status: 1, payload: new Uint8Array(0), error: 'boom' }],
    });
    const f = decodeFrame(payload, ends);
    expect(plain(f.requests)).toEqual([{ id: 1, payload: Array.from(Buffer.from('get k')) }]);
    expect(plain(f.responses)).toEqual([{ id: 2 ** 35, status: 1, payload: [], error: 'boom' }]);
  });
});
