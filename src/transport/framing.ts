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

  constructor(private readonly maxFrameBytes: number) {}

  /**
   * Takes one chunk and returns the payloads it completed, in order. Throws a
   * ProtocolError as soon as a header announces more than maxFrameBytes,
   * before any of that payload is buffered.
   */
  push(chunk: Uint8Array): Buffer[] {
    if (chunk.length > 0) {
      this.chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      this.buffered += chunk.length;
    }
    const out: Buffer[] = [];
    for (;;) {
      if (this.expected < 0) {
        if (this.buffered < FRAME_HEADER_BYTES) break;
        const length = this.take(FRAME_HEADER_BYTES).readUInt32BE(0);
        if (length > this.maxFrameBytes) {
          throw new ProtocolError(`frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`);
        }
        this.expected = length;
      }
      if (this.buffered < this.expected) break;
      out.push(this.take(this.expected));
      this.expected = -1;
    }
    return out;
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
