// The envelope of a request forwarded to another node, and of its answer:
// a length-prefixed JSON header for the few small fields, then the value's
// raw bytes (never JSON-encoded). Malformed input throws WireError.

export class WireError extends Error {
  constructor(message: string) {
    super(`malformed forwarded message: ${message}`);
    this.name = 'WireError';
  }
}

const MAX_HEADER_BYTES = 64 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeEnvelope(header: object, body: Uint8Array = EMPTY): Uint8Array {
  const h = encoder.encode(JSON.stringify(header));
  if (h.length > MAX_HEADER_BYTES) throw new WireError(`header of ${h.length} bytes exceeds ${MAX_HEADER_BYTES}`);
  const out = new Uint8Array(4 + h.length + body.length);
  new DataView(out.buffer).setUint32(0, h.length);
  out.set(h, 4);
  out.set(body, 4 + h.length);
  return out;
}

export function decodeEnvelope(bytes: Uint8Array): { header: Record<string, unknown>; body: Uint8Array } {
  if (bytes.length < 4) throw new WireError('shorter than its length prefix');
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  if (len > MAX_HEADER_BYTES || 4 + len > bytes.length) throw new WireError(`header length ${len} does not fit`);
  let header: unknown;
  try {
    header = JSON.parse(decoder.decode(bytes.subarray(4, 4 + len)));
  } catch {
    throw new WireError('header is not JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new WireError('header is not an object');
  return { header: header as Record<string, unknown>, body: bytes.subarray(4 + len) };
}

const EMPTY = new Uint8Array(0);
