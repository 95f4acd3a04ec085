// The primitives of the cache's binary formats (commands and snapshots):
// unsigned LEB128 varints for integers up to 2^53-1, length-prefixed UTF-8
// strings and byte strings, and CRC-32. Values are copied as raw bytes once;
// nothing is JSON or base64.

/** Thrown by Reader on bytes that do not decode; callers wrap it in their own error. */
export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

const encoder = new TextEncoder();
// fatal: malformed UTF-8 is an error, never silently replaced by U+FFFD.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The UTF-8 length of `s`, or -1 if it holds a lone surrogate (which UTF-8
 * cannot carry: it would decode as U+FFFD, a different string).
 */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (d < 0xdc00 || d > 0xdfff) return -1;
      n += 4;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return -1;
    else n += 3;
  }
  return n;
}

const CHUNK_BYTES = 64 * 1024;
/** Byte strings at least this long are kept by reference until finish(), not copied twice. */
const BY_REFERENCE_BYTES = 4096;

/** An append-only byte sink: small chunks plus large byte strings by reference, joined once. */
export class Writer {
  private parts: Uint8Array[] = [];
  private chunk: Uint8Array;
  private pos = 0;
  private total = 0;

  /**
   * `initialBytes`: the first chunk's size. A command is a few hundred
   * bytes, and a zeroed 64 KiB chunk per write showed in profiles (allocation
   * and GC); chunks after the first grow with what was written, up to 64 KiB.
   */
  constructor(initialBytes = CHUNK_BYTES) {
    this.chunk = new Uint8Array(initialBytes);
  }

  private room(n: number): void {
    if (this.pos + n <= this.chunk.length) return;
    this.flushChunk();
    this.chunk = new Uint8Array(Math.max(n, Math.min(CHUNK_BYTES, Math.max(256, this.total))));
  }

  private flushChunk(): void {
    if (this.pos > 0) this.parts.push(this.chunk.subarray(0, this.pos));
    this.chunk = this.chunk.subarray(this.pos);
    this.pos = 0;
  }

  u8(v: number): void {
    this.room(1);
    this.chunk[this.pos++] = v;
    this.total++;
  }

  /** A non-negative safe integer as an unsigned LEB128 varint (1–8 bytes). */
  uvarint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`not a non-negative safe integer: ${v}`);
    this.room(8);
    while (v >= 0x80) {
      this.chunk[this.pos++] = (v % 0x80) | 0x80;
      this.total++;
      v = Math.floor(v / 0x80);
    }
    this.chunk[this.pos++] = v;
    this.total++;
  }

  bool(v: boolean): void {
    this.u8(v ? 1 : 0);
  }

  /** Length-prefixed raw bytes. */
  bytes(b: Uint8Array): void {
    this.uvarint(b.length);
    if (b.length >= BY_REFERENCE_BYTES) {
      this.flushChunk();
      this.parts.push(b);
    } else {
      this.room(b.length);
      this.chunk.set(b, this.pos);
      this.pos += b.length;
    }
    this.total += b.length;
  }

  /** Length-prefixed UTF-8. The caller has checked that `s` is well formed. */
  string(s: string): void {
    const max = s.length * 3;
    if (max < 128) {
      // Short (names): encode in place behind a one-byte length.
      this.room(1 + max);
      const { written } = encoder.encodeInto(s, this.chunk.subarray(this.pos + 1, this.pos + 1 + max));
      this.chunk[this.pos] = written;
      this.pos += 1 + written;
      this.total += 1 + written;
    } else {
      this.bytes(encoder.encode(s));
    }
  }

  get length(): number {
    return this.total;
  }

  /** The bytes written so far, as one array; the writer must not be used afterwards. */
  finish(trailer = 0): Uint8Array {
    this.flushChunk();
    const out = new Uint8Array(this.total + trailer);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    this.parts = [];
    return out;
  }
}

/**
 * A copy of `b` in its own ArrayBuffer. Not `b.slice()`: on a Node Buffer
 * that is a view, which would pin the whole buffer it came from (a request
 * body, a snapshot) for as long as the copy lives.
 */
export function copyBytes(b: Uint8Array): Uint8Array {
  return Uint8Array.prototype.slice.call(b);
}

/** Reads what Writer wrote; every read checks bounds and throws DecodeError. */
export class Reader {
  private pos = 0;

  constructor(private readonly buf: Uint8Array) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  u8(what: string): number {
    if (this.pos >= this.buf.length) throw new DecodeError(`truncated: ${what} is missing`);
    return this.buf[this.pos++]!;
  }

  uvarint(what: string): number {
    let v = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      const b = this.u8(what);
      v += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        // Canonical form only: a final zero byte after others is an overlong encoding.
        if (b === 0 && i > 0) throw new DecodeError(`${what}: overlong varint`);
        break;
      }
      scale *= 0x80;
      if (i >= 7) throw new DecodeError(`${what}: varint longer than 8 bytes`);
    }
    if (!Number.isSafeInteger(v)) throw new DecodeError(`${what}: ${v} is beyond 2^53-1`);
    return v;
  }

  bool(what: string): boolean {
    const b = this.u8(what);
    if (b > 1) throw new DecodeError(`${what}: expected 0 or 1, got ${b}`);
    return b === 1;
  }

  /** A length-prefixed byte string of at most `max` bytes, as a view (no copy). */
  bytes(what: string, max: number): Uint8Array {
    const n = this.uvarint(`${what} length`);
    if (n > max) throw new DecodeError(`${what}: ${n} bytes exceeds the limit of ${max}`);
    if (n > this.remaining) throw new DecodeError(`truncated: ${what} needs ${n} bytes, ${this.remaining} left`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  string(what: string, maxBytes: number): string {
    const b = this.bytes(what, maxBytes);
    try {
      return decoder.decode(b);
    } catch {
      throw new DecodeError(`${what}: not valid UTF-8`);
    }
  }

  /** Nothing may follow a complete record: trailing bytes mean a framing error. */
  end(what: string): void {
    if (this.remaining !== 0) throw new DecodeError(`${what}: ${this.remaining} unexpected trailing bytes`);
  }
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE 802.3, as zlib), the checksum of snapshots. */
export function crc32(b: Uint8Array, end = b.length): number {
  let c = 0xffffffff;
  for (let i = 0; i < end; i++) c = CRC_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
