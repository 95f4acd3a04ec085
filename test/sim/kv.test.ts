import { describe, expect, test } from 'vitest';
import { KvStore, decodeCommand, encodeCommand } from './kv.js';
import type { KvCommand } from './kv.js';

describe('KvStore', () => {
  test('put, delete and compare-and-set behave as a register per key', () => {
    const kv = new KvStore();
    expect(kv.apply({ client: 1, request: 1, op: 'put', key: 'a', value: 'x' })).toEqual({ kind: 'write' });
    expect(kv.get('a')).toBe('x');
    expect(kv.apply({ client: 1, request: 2, op: 'cas', key: 'a', expected: 'y', value: 'z' })).toEqual({ kind: 'cas', ok: false });
    expect(kv.get('a')).toBe('x');
    expect(kv.apply({ client: 1, request: 3, op: 'cas', key: 'a', expected: 'x', value: 'z' })).toEqual({ kind: 'cas', ok: true });
    expect(kv.get('a')).toBe('z');
    expect(kv.apply({ client: 1, request: 4, op: 'delete', key: 'a' })).toEqual({ kind: 'write' });
    expect(kv.get('a')).toBeNull();
    expect(kv.apply({ client: 1, request: 5, op: 'cas', key: 'a', expected: null, value: 'n' })).toEqual({ kind: 'cas', ok: true });
    expect(kv.apply({ client: 1, request: 6, op: 'cas', key: 'a', expected: 'n', value: null })).toEqual({ kind: 'cas', ok: true });
    expect(kv.get('a')).toBeNull();
  });

  test('a retried request takes effect once and answers with the first result', () => {
    const kv = new KvStore();
    kv.apply({ client: 1, request: 1, op: 'put', key: 'a', value: 'x' });
    const cas: KvCommand = { client: 2, request: 1, op: 'cas', key: 'a', expected: 'x', value: 'y' };
    expect(kv.apply(cas)).toEqual({ kind: 'cas', ok: true });
    kv.apply({ client: 1, request: 2, op: 'put', key: 'a', value: 'x' });
    // The retry would now succeed again if applied; it must not be.
    expect(kv.apply(cas)).toEqual({ kind: 'cas', ok: true });
    expect(kv.get('a')).toBe('x');
  });

  test('an older request of a client that moved on is ignored', () => {
    const kv = new KvStore();
    kv.apply({ client: 1, request: 2, op: 'put', key: 'a', value: 'new' });
    expect(kv.apply({ client: 1, request: 1, op: 'put', key: 'a', value: 'old' })).toEqual({ kind: 'stale' });
    expect(kv.get('a')).toBe('new');
  });

  test('a snapshot restores the same state, sessions included, and is canonical', () => {
    const a = new KvStore();
    a.apply({ client: 2, request: 1, op: 'put', key: 'b', value: '1' });
    a.apply({ client: 1, request: 1, op: 'put', key: 'a', value: '2' });
    const b = new KvStore();
    b.apply({ client: 1, request: 1, op: 'put', key: 'a', value: '2' });
    b.apply({ client: 2, request: 1, op: 'put', key: 'b', value: '1' });
    expect(Buffer.from(a.snapshot()).toString()).toBe(Buffer.from(b.snapshot()).toString());
    const r = KvStore.restore(a.snapshot());
    expect(r.canonical()).toBe(a.canonical());
    expect(r.apply({ client: 2, request: 1, op: 'put', key: 'b', value: 'again' })).toEqual({ kind: 'write' });
    expect(r.get('b')).toBe('1');
    expect(KvStore.restore(new Uint8Array(0)).canonical()).toBe(new KvStore().canonical());
  });

  test('commands round-trip through their encoding and malformed ones are refused', () => {
    const cmds: KvCommand[] = [
      { client: 1, request: 2, op: 'put', key: 'k', value: 'v' },
      { client: 1, request: 3, op: 'delete', key: 'k' },
      { client: 1, request: 4, op: 'cas', key: 'k', expected: null, value: 'w' },
    ];
    for (const c of cmds) expect(decodeCommand(encodeCommand(c))).toEqual(c);
    expect(() => decodeCommand(new TextEncoder().encode('{"client":1,"request":1,"key":"k","op":"nope"}'))).toThrow();
    expect(() => decodeCommand(new TextEncoder().encode('{"op":"put"}'))).toThrow();
  });
});
