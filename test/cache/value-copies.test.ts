// A stored value owns its bytes: it never pins the larger buffer it was
// decoded from (a log entry in a network frame, a bulk-load body, a
// snapshot), which would multiply the memory a cache really uses. Node
// Buffers make this easy to get wrong: Buffer#slice is a view.
import { describe, expect, test } from 'vitest';
import { CacheStateMachine, decodeRecords, encodeCommand, encodeRecords } from '../../src/cache/index.js';

/** `bytes` at the start of a 1 MiB Buffer, as a view: what a decoder is handed inside a bigger frame. */
function inBigBuffer(bytes: Uint8Array): Buffer {
  const big = Buffer.alloc(1 << 20);
  big.set(bytes);
  return big.subarray(0, bytes.length);
}

describe('stored values', () => {
  test('a value applied from a command inside a bigger Buffer has an ArrayBuffer of its own size', () => {
    const sm = new CacheStateMachine();
    const cmd = encodeCommand({ type: 'put', cache: 'default', region: null, key: 'k', value: new Uint8Array(10).fill(7), contentType: 'a/b', expiresAt: null, tags: [], condition: { kind: 'none' }, lockHandle: null, unlock: false, now: 1 });
    sm.applyEncoded(1, inBigBuffer(cmd));
    const v = sm.get('default', null, 'k', 2)!.value;
    expect(v.buffer.byteLength).toBe(10);
    expect([...v]).toEqual(new Array(10).fill(7));
  });

  test('a value decoded from bulk-load records, or restored from a snapshot, has its own ArrayBuffer', () => {
    const recs = encodeRecords([{ cache: 'default', region: null, key: 'k', value: new Uint8Array(10), contentType: 'a/b', expiresAt: null, tags: [] }]);
    expect(decodeRecords(inBigBuffer(recs))[0]!.value.buffer.byteLength).toBe(10);
    const sm = new CacheStateMachine();
    sm.apply(1, { type: 'put', cache: 'default', region: null, key: 'k', value: new Uint8Array(10), contentType: 'a/b', expiresAt: null, tags: [], condition: { kind: 'none' }, lockHandle: null, unlock: false, now: 1 });
    const restored = CacheStateMachine.restore(inBigBuffer(sm.snapshot()));
    expect(restored.get('default', null, 'k', 2)!.value.buffer.byteLength).toBe(10);
  });
});
