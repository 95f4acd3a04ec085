// How values become the bytes Velo stores and back. The default keeps
// Buffers (and any Uint8Array) as they are, as application/octet-stream,
// and everything else as JSON; a read gives back a Buffer unless the
// stored content type is JSON. Pass your own to VeloClient for anything else.

export interface Serializer {
  serialize(value: unknown): { bytes: Uint8Array; contentType: string };
  deserialize(bytes: Uint8Array, contentType: string): unknown;
}

const JSON_TYPE = 'application/json';

/** True for application/json and application/*+json, with or without parameters. */
export function isJsonContentType(contentType: string): boolean {
  const base = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return base === JSON_TYPE || (base.startsWith('application/') && base.endsWith('+json'));
}

export const defaultSerializer: Serializer = {
  serialize(value) {
    if (value instanceof Uint8Array) return { bytes: value, contentType: 'application/octet-stream' };
    if (value === undefined) throw new TypeError('cannot store undefined: store null, or delete the item');
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError(`cannot store a value of type ${typeof value} as JSON`);
    return { bytes: Buffer.from(text, 'utf8'), contentType: JSON_TYPE };
  },
  deserialize(bytes, contentType) {
    if (isJsonContentType(contentType)) return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
    return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  },
};
