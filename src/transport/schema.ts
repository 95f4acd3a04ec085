// The protocol schema as text, compiled at runtime by protobufjs. tsc does not
// copy .proto files into dist/, so the text lives here; velo.proto beside it
// is the same text for readers, and test/transport/schema.test.ts holds the
// two identical. Change both together (the text must contain no backquote).

/** Bumped on any change that an older node could not read. */
export const PROTOCOL_VERSION = 1;

export const VELO_PROTO = `
// Velo node-to-node protocol, version 1.
//
// Every pair of nodes shares one TCP connection. On it, each side writes
// frames: a 4-byte big-endian length, then one Frame encoded with this
// schema. The first frame each side sends carries only hello; every later
// frame batches everything one node has for that peer since its last flush.
//
// This file is for readers. The code compiles the identical text kept in
// schema.ts (tsc does not copy .proto files into dist/); a test holds the two
// equal.

syntax = "proto3";

package velo.transport;

message Frame {
  // Only in the first frame of each side, and alone there.
  Hello hello = 1;
  // Raft messages of any group, in the order they were sent, after the
  // compact heartbeats below.
  repeated RaftMessage messages = 2;
  // Heartbeats of many groups to this peer, a few bytes each.
  HeartbeatBatch heartbeats = 3;
  HeartbeatResponseBatch heartbeat_responses = 4;
  // Forwarded client operations and their answers.
  repeated Request requests = 5;
  repeated Response responses = 6;
  // Sent by a node that refuses the handshake, just before it closes, so the
  // other side can log why.
  Goodbye goodbye = 7;
}

message Hello {
  uint32 protocol_version = 1;
  string cluster_id = 2;
  string node_id = 3;
  // Grows each time the node process starts; a memory-only node that comes
  // back has lost its log and vote, and the higher incarnation tells peers.
  uint64 incarnation = 4;
}

message Goodbye {
  string reason = 1;
}

// The raft MessageType, numbered as in raft/types.ts.
enum RaftMessageType {
  MSG_APPEND = 0;
  MSG_APPEND_RESP = 1;
  MSG_VOTE = 2;
  MSG_VOTE_RESP = 3;
  MSG_PRE_VOTE = 4;
  MSG_PRE_VOTE_RESP = 5;
  MSG_HEARTBEAT = 6;
  MSG_HEARTBEAT_RESP = 7;
  MSG_SNAPSHOT = 8;
  MSG_SNAPSHOT_RESP = 9;
  MSG_TIMEOUT_NOW = 10;
}

enum EntryType {
  ENTRY_NORMAL = 0;
  ENTRY_CONF_CHANGE = 1;
}

// One raft Message of one group (partition). Fields mirror raft/types.ts.
message RaftMessage {
  uint32 group = 1;
  RaftMessageType type = 2;
  // Empty means the node that sent the frame, the usual case.
  string from = 3;
  // Empty means the node that receives the frame, the usual case.
  string to = 4;
  uint64 term = 5;
  uint64 log_term = 6;
  uint64 index = 7;
  repeated Entry entries = 8;
  uint64 commit = 9;
  bool reject = 10;
  uint64 reject_hint = 11;
  uint64 read_round = 12;
  bool transfer = 13;
  SnapshotChunk snapshot = 14;
  uint64 snapshot_offset = 15;
}

message Entry {
  uint64 term = 1;
  uint64 index = 2;
  EntryType type = 3;
  bytes data = 4;
}

message ConfState {
  repeated string voters = 1;
  repeated string learners = 2;
}

message SnapshotMetadata {
  uint64 index = 1;
  uint64 term = 2;
  ConfState conf_state = 3;
}

message SnapshotChunk {
  SnapshotMetadata metadata = 1;
  uint64 offset = 2;
  bytes data = 3;
  bool done = 4;
}

// Heartbeats from the sender to the receiver, one per index i across the
// parallel (packed) arrays: group[i], term[i], commit[i], read_round[i].
message HeartbeatBatch {
  repeated uint32 groups = 1;
  repeated uint64 terms = 2;
  repeated uint64 commits = 3;
  repeated uint64 read_rounds = 4;
}

// Heartbeat responses, as parallel arrays: group[i], term[i], read_round[i].
message HeartbeatResponseBatch {
  repeated uint32 groups = 1;
  repeated uint64 terms = 2;
  repeated uint64 read_rounds = 3;
}

// A client operation forwarded to a peer (usually a partition leader).
message Request {
  // Unique among the sender's pending requests.
  uint64 id = 1;
  bytes payload = 2;
}

enum ResponseStatus {
  RESPONSE_OK = 0;
  // The peer's handler threw; error says what.
  RESPONSE_HANDLER_ERROR = 1;
  // The peer has no request handler installed.
  RESPONSE_NO_HANDLER = 2;
  // The peer has too many requests in flight from this node.
  RESPONSE_OVERLOADED = 3;
}

message Response {
  uint64 id = 1;
  ResponseStatus status = 2;
  bytes payload = 3;
  string error = 4;
}
`;
