// The package's public entry: the client (over HTTP, or to a node in this
// process), its errors, serializer and types, and embedded mode.

export * from './client/index.js';
export { LocalBackend } from './client/local-backend.js';
export type { LocalBackendOptions } from './client/local-backend.js';
export { startNode } from './embedded.js';
export type { EmbeddedNode, NodeStartOptions, StartNodeOptions } from './embedded.js';
