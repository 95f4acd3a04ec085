export * from './types.js';
export * from './storage.js';
export { RaftNode } from './raft.js';
export type { RaftStatus } from './raft.js';
export { encodeConfChange, decodeConfChange, applyConfChange } from './confchange.js';
