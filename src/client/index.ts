// The client's public surface: the typed client, its errors, how values are
// serialized, and the Backend seam (for embedding and for other transports).
export { VeloClient, CacheClient } from './client.js';
export type { VeloClientOptions, Item, WriteOptions } from './client.js';
export { HttpBackend } from './http-backend.js';
export type { HttpBackendOptions } from './http-backend.js';
export type { NearCacheOptions } from './near-cache.js';
export * from './errors.js';
export * from './serializer.js';
export type * from './backend.js';
