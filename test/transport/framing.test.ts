import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ProtocolError } from '../../src/transport/errors.js';
import { FrameDecoder, encodeFramed } from '../../src/transport/framing.js';

/** Cuts `bytes` at the given positions (sorted, deduplicated). */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let at = 0;
  for (const p of [...points, bytes.length]) {
    out.push(bytes.subarray(at, p));
    at = p;
  }
  return out;
}

describe('the frame decoder', () => {
  test('returns every frame whole and in order, whatever the chunk boundaries', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (payloads, cuts) => {
          const stream = Buffer.concat(payloads.map((p) => encodeFramed(p)));
          const decoder = new FrameDecoder(1000);
          const out = split(stream, cuts).flatMap((chunk) => decoder.push(chunk));
          expect(out.map((p) => Array.from(p))).toEqual(payloads.map((p) => Array.from(p)));
          expect(decoder.pendingBytes).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('keeps a partial header until the rest arrives', () => {
    const decoder = new FrameDecoder(100);
    const framed = encodeFramed(Buffer.from('hello'));
    for (const b of framed.subarray(0, framed.length - 1)) expect(decoder.push(Uint8Array.of(b))).toEqual([]);
    expect(decoder.push(framed.subarray(framed.length - 1)).map((p) => p.toString())).toEqual(['hello']);
  });

  test('refuses a length prefix over maxFrameBytes as soon as the header is in', () => {
    const decoder = new FrameDecoder(1024);
    expect(decoder.push(Uint8Array.of(0, 0))).toEqual([]);
    expect(() => decoder.push(Uint8Array.of(0x04, 0x01))).toThrow(ProtocolError);
    expect(() => new FrameDecoder(1024).push(Uint8Array.of(0xff, 0xff, 0xff, 0xff))).toThrow(/exceeds the limit of 1024/);
  });

  test('accepts a frame of exactly maxFrameBytes and empty frames', () => {
    const decoder = new FrameDecoder(16);
    const out = decoder.push(Buffer.concat([encodeFramed(new Uint8Array(16)), encodeFramed(new Uint8Array(0))]));
    expect(out.map((p) => p.length)).toEqual([16, 0]);
  });
});
