// Length-prefixed framing: each frame is a 4-byte big-endian payload length,
// then the payload. TCP delivers arbitrary chunks, so the decoder accepts any
// boundaries: a header split over chunks, many frames in one chunk, one frame
// over many chunks.

import { FRAME_HEADER_BYTES } from './limits.js';
import { ProtocolError } from './errors.js';

/** The 4-byte header for a payload of `payloadBytes`. */
export function frameHeader(payloadBytes: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt32BE(payloadBytes, 0);
  return header;
}

/** Header and payload in one buffer (for tests and one-off writes; the connection writes them separately). */
export function encodeFramed(payload: Uint8Array): Buffer {
  return Buffer.concat([frameHeader(payload.length), payload]);
}

export class FrameDecoder {
  // Received chunks not yet consumed. Bytes are copied at most once, when a
  // frame spans chunks: joining on every chunk would be quadratic for a large
  // frame arriving in many small pieces.
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Payload length of the frame being received, once its header is in; -1 before. */
  private expected = -1;

  /** Before a connection is authenticated this is small; the Hello exchange raises it. */
  constructor(private maxFrameBytes: number) {}

  /** Frames whose header has not been read yet are checked against the new limit. */
  setMaxFrameBytes(maxFrameBytes: number): void {
    this.maxFrameBytes = maxFrameBytes;
  }

  /**
   * Takes one chunk and returns the payloads it completed, in order. Throws a
   * ProtocolError as soon as a header announces more than maxFrameBytes,
   * before any of that payload is buffered.
   */
  push(chunk: Uint8Array): Buffer[] {
    this.append(chunk);
    const out: Buffer[] = [];
    for (let p = this.next(); p !== null; p = this.next()) out.push(p);
    return out;
  }

  /** Buffers a chunk without reading any frame from it: next() does that, one frame at a time. */
  append(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.buffered += chunk.length;
  }

  /**
   * The next whole payload, or null until more bytes arrive. One at a time, so
   * that what a frame changes (the limit, once a Hello is accepted) applies to
   * the frames after it. Throws a ProtocolError as soon as a header announces
   * more than maxFrameBytes, before any of that payload is buffered.
   */
  next(): Buffer | null {
    if (this.expected < 0) {
      if (this.buffered < FRAME_HEADER_BYTES) return null;
      const length = this.take(FRAME_HEADER_BYTES).readUInt32BE(0);
      if (length > this.maxFrameBytes) {
        throw new ProtocolError(`frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`);
      }
      this.expected = length;
    }
    if (this.buffered < this.expected) return null;
    const payload = this.take(this.expected);
    this.expected = -1;
    return payload;
  }

  /** Bytes received but not yet returned as a whole frame. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** Removes the first n buffered bytes (n ≤ buffered): a view when they lie in one chunk. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first!.length >= n) {
      if (first!.length === n) this.chunks.shift();
      else this.chunks[0] = first!.subarray(n);
      return first!.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, k);
      filled += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}
