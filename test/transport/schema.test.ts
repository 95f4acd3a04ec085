import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import { describe, expect, test } from 'vitest';
import { MessageType } from '../../raft/index.js';
import { VELO_PROTO } from '../../src/transport/schema.js';

const protoFile = new URL('../../src/transport/velo.proto', import.meta.url);

describe('the wire schema', () => {
  test('velo.proto and the text compiled from schema.ts are identical', () => {
    expect(VELO_PROTO.slice(1)).toBe(readFileSync(protoFile, 'utf8'));
  });

  test('RaftMessageType numbers every raft MessageType as raft/types.ts does', () => {
    const values = protobuf.parse(VELO_PROTO).root.lookupEnum('velo.transport.RaftMessageType').values;
    expect(values).toEqual({
      MSG_APPEND: MessageType.Append,
      MSG_APPEND_RESP: MessageType.AppendResp,
      MSG_VOTE: MessageType.Vote,
      MSG_VOTE_RESP: MessageType.VoteResp,
      MSG_PRE_VOTE: MessageType.PreVote,
      MSG_PRE_VOTE_RESP: MessageType.PreVoteResp,
      MSG_HEARTBEAT: MessageType.Heartbeat,
      MSG_HEARTBEAT_RESP: MessageType.HeartbeatResp,
      MSG_SNAPSHOT: MessageType.Snapshot,
      MSG_SNAPSHOT_RESP: MessageType.SnapshotResp,
      MSG_TIMEOUT_NOW: MessageType.TimeoutNow,
    });
  });
});
