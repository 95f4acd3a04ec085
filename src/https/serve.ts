// The server side of HTTPS: a node's certificate and key, and the TLS
// settings Fastify serves them with.

import { createSecureContext } from 'node:tls';

/** PEM contents of the node's certificate (chain) and its private key. */
export interface ServerTls {
  cert: string;
  key: string;
}

/** TLS 1.0 and 1.1 are broken and deprecated (RFC 8996). */
export const MIN_TLS_VERSION = 'TLSv1.2';

/** The `https` option of Fastify (node:https createServer). */
export function httpsServerOptions(tls: ServerTls): { cert: string; key: string; minVersion: 'TLSv1.2' } {
  return { cert: tls.cert, key: tls.key, minVersion: MIN_TLS_VERSION };
}

/** Throws an Error saying what is wrong unless `cert` and `key` are PEM that TLS accepts, and belong together. */
export function checkServerTls(tls: ServerTls): ServerTls {
  if (!tls.cert.includes('-----BEGIN CERTIFICATE-----')) throw new Error('the certificate is not PEM (-----BEGIN CERTIFICATE-----)');
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(tls.key)) throw new Error('the key is not a PEM private key (-----BEGIN … PRIVATE KEY-----)');
  try {
    createSecureContext(httpsServerOptions(tls));
  } catch (e) {
    // OpenSSL's "key values mismatch" and the like: the pair cannot serve.
    throw new Error(`the certificate and key cannot serve TLS together: ${(e as Error).message}`);
  }
  return tls;
}

/** The advertised form of an HTTP address: `host:port` over plain HTTP, `https://host:port` over TLS. */
export function advertisedHttp(hostPort: string, tls: boolean): string {
  return tls ? `https://${hostPort}` : hostPort;
}
