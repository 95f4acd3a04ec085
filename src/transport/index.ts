// The public face of src/transport/: what the node host uses.

export { Transport } from './transport.js';
export type { TransportStats, RaftMessagesHandler, RequestHandler } from './transport.js';
export { parseAddress } from './options.js';
export type { TransportOptions } from './options.js';
export type { PeerStatus } from './peer.js';
export { TransportError } from './errors.js';
export type { TransportErrorCode } from './errors.js';
export type { GroupMessage } from './codec.js';
export { PROTOCOL_VERSION } from './schema.js';
export * as transportLimits from './limits.js';
export { certificateNodeId, x509NodeId, nodeOfMember, isNodeId } from './identity.js';
export type { PeerTls } from './identity.js';
