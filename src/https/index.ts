// HTTPS between clients and nodes: serving (serve.ts) and trusting (trust.ts).
export { advertisedHttp, checkServerTls, httpsServerOptions, MIN_TLS_VERSION } from './serve.js';
export type { ServerTls } from './serve.js';
export { checkCa, connectTrusting, fetchTrusting, untrustedCode, untrustedMessage } from './trust.js';
export type { CaPem, Fetch } from './trust.js';
