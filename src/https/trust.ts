// The client side of a node's HTTPS: every caller (CLI verbs, VeloClient,
// backup and restore, a node joining through another) verifies the node's
// certificate against one CA that the user names, not the system's roots,
// because a cluster's certificates come from its own CA (`velo certs`).
//
// Node's global fetch cannot be given a CA. undici, already the engine behind
// that fetch and a dependency of the client, can: its fetch over an Agent
// whose connections trust exactly this CA.

import { createSecureContext } from 'node:tls';
import { Agent, fetch as undiciFetch } from 'undici';

export type Fetch = typeof globalThis.fetch;

/** A CA as the client options take it: PEM text (one or more certificates). */
export type CaPem = string | Buffer;

/** Throws a TypeError naming `what` unless `ca` is PEM certificate text that TLS accepts as a CA. */
export function checkCa(ca: unknown, what: string): string {
  const text = Buffer.isBuffer(ca) ? ca.toString('utf8') : ca;
  if (typeof text !== 'string' || !text.includes('-----BEGIN CERTIFICATE-----')) throw new TypeError(`${what} must be the PEM text of a CA certificate (-----BEGIN CERTIFICATE-----)`);
  try {
    createSecureContext({ ca: text });
  } catch (e) {
    throw new TypeError(`${what} is not a usable CA certificate: ${(e as Error).message}`);
  }
  return text;
}

/** undici's `connect` options for a Pool or Client: verify the server against `ca` only; none without one. */
export function connectTrusting(ca: string | undefined): { ca: string } | undefined {
  return ca === undefined ? undefined : { ca };
}

/** fetch that trusts `ca` for https:// URLs (the global fetch, with the system's roots, without one). */
export function fetchTrusting(ca: string | undefined): Fetch {
  if (ca === undefined) return globalThis.fetch;
  const dispatcher = new Agent({ connect: { ca } });
  return ((input: string | URL, init?: RequestInit) => undiciFetch(input, { ...(init as object), dispatcher })) as unknown as Fetch;
}

/** Codes TLS gives when the server's certificate does not lead to a trusted CA (or names another host). */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
]);

/** The TLS verification code somewhere in an error's cause chain, if any. */
export function untrustedCode(e: unknown): string | null {
  for (let c: unknown = e, depth = 0; c && depth < 5; c = (c as { cause?: unknown }).cause, depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string' && UNTRUSTED.has(code)) return code;
  }
  return null;
}

/** One line for a certificate that was refused, saying what to give (`howToTrust`); null when `e` is not that. */
export function untrustedMessage(e: unknown, howToTrust = 'give --ca FILE (or VELO_CA=FILE)'): string | null {
  const code = untrustedCode(e);
  if (code === null) return null;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `the node's certificate does not name the host asked for (${code}): use an address its certificate lists`;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return `the node's certificate is not valid now (${code})`;
  return `the node's certificate is not signed by a trusted CA (${code}): ${howToTrust} with the CA that signed it`;
}
