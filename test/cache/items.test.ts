import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { CacheStateMachine, CommandError, encodeCommand } from '../../src/cache/index.js';
import { dec, del, enc, Harness, put, T0 } from './support.js';

describe('put and get', () => {
  test('a put creates (created: true, 201), a second replaces (created: false, 200); versions are the log indexes', () => {
    const h = new Harness();
    expect(h.run(put('k', { value: enc('one') }))).toEqual({ code: 'ok', version: 1, created: true });
    expect(h.run(put('k', { value: enc('two') }))).toEqual({ code: 'ok', version: 2, created: false });
    const item = h.sm.get('default', null, 'k', T0)!;
    expect(dec(item.value)).toBe('two');
    expect(item.version).toBe(2);
    expect(item.contentType).toBe('text/plain');
  });

  test('a read returns the same bytes and content type that were written', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom('application/json', 'image/png', 'text/plain; charset=utf-8'), (value, contentType) => {
        const h = new Harness();
        h.run(put('k', { value, contentType }));
        const item = h.sm.get('default', null, 'k', T0)!;
        expect(item.value).toEqual(value);
        expect(item.contentType).toBe(contentType);
      }),
    );
  });

  test('the stored value is a copy: changing the buffer the command carried changes nothing', () => {
    const h = new Harness();
    const value = enc('abc');
    h.run(put('k', { value }));
    value[0] = 0x7a;
    expect(dec(h.sm.get('default', null, 'k', T0)!.value)).toBe('abc');
  });

  test('a region item and a default-space item of the same key are different items', () => {
    const h = new Harness();
    h.run(put('k', { value: enc('plain') }));
    h.run(put('k', { region: 'r', value: enc('in r') }));
    expect(dec(h.sm.get('default', null, 'k', T0)!.value)).toBe('plain');
    expect(dec(h.sm.get('default', 'r', 'k', T0)!.value)).toBe('in r');
    expect(h.sm.get('default', 'other', 'k', T0)).toBeNull();
  });

  test('versions strictly increase for a key across replace, delete and re-add', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('put', 'delete', 'other'), { minLength: 1, maxLength: 40 }), (ops) => {
        const h = new Harness();
        let last = 0;
        for (const op of ops) {
          if (op === 'put') h.run(put('k'));
          else if (op === 'delete') h.run(del('k'));
          else h.run(put('unrelated'));
          const v = h.sm.get('default', null, 'k', T0)?.version;
          if (v !== undefined && op === 'put') {
            expect(v).toBeGreaterThan(last);
            last = v;
          }
        }
      }),
    );
  });

  test('apply refuses a log index that does not increase, and a malformed command', () => {
    const sm = new CacheStateMachine();
    sm.apply(5, put('k'));
    expect(() => sm.apply(5, put('k'))).toThrow(/indexes must increase/);
    expect(() => sm.apply(4, put('k'))).toThrow(/indexes must increase/);
    expect(() => sm.apply(6, put('k', { key: '' }))).toThrow(CommandError);
    expect(sm.appliedIndex).toBe(5);
  });

  test('applyEncoded applies the bytes of a log entry', () => {
    const sm = new CacheStateMachine();
    const { result } = sm.applyEncoded(1, encodeCommand(put('k', { value: enc('v') })));
    expect(result).toEqual({ code: 'ok', version: 1, created: true });
    expect(dec(sm.get('default', null, 'k', T0)!.value)).toBe('v');
  });
});

describe('conditions', () => {
  test('If-None-Match: * creates a missing key and refuses an existing one with 412', () => {
    const h = new Harness();
    expect(h.run(put('k', { condition: { kind: 'ifNoneMatch' } }))).toMatchObject({ code: 'ok', created: true });
    expect(h.run(put('k', { condition: { kind: 'ifNoneMatch' }, value: enc('x') }))).toMatchObject({ code: 'precondition_failed' });
    expect(dec(h.sm.get('default', null, 'k', T0)!.value)).toBe('value of k');
  });

  test('If-None-Match: * succeeds on an expired item still stored (it no longer exists for clients)', () => {
    const h = new Harness();
    h.run(put('k', { expiresAt: T0 + 10 }));
    expect(h.run(put('k', { now: T0 + 10, condition: { kind: 'ifNoneMatch' } }))).toMatchObject({ code: 'ok', created: true });
  });

  test('If-Match replaces only the current version; a stale or missing one answers 412', () => {
    const h = new Harness();
    expect(h.run(put('k', { condition: { kind: 'ifMatch', version: 1 } }))).toMatchObject({ code: 'precondition_failed' });
    const v = h.run(put('k'));
    expect(v).toEqual({ code: 'ok', version: 2, created: true });
    expect(h.run(put('k', { condition: { kind: 'ifMatch', version: 1 } }))).toMatchObject({ code: 'precondition_failed' });
    expect(h.run(put('k', { condition: { kind: 'ifMatch', version: 2 } }))).toEqual({ code: 'ok', version: 4, created: false });
    expect(h.run(put('k', { condition: { kind: 'ifMatch', version: 2 } }))).toMatchObject({ code: 'precondition_failed' });
  });

  test('If-Match on an expired item answers 412', () => {
    const h = new Harness();
    h.run(put('k', { expiresAt: T0 + 10 }));
    expect(h.run(put('k', { now: T0 + 10, condition: { kind: 'ifMatch', version: 1 } }))).toMatchObject({ code: 'precondition_failed' });
  });

  test('DELETE with If-Match removes only the current version', () => {
    const h = new Harness();
    h.run(put('k'));
    expect(h.run(del('k', { ifMatch: 7 }))).toMatchObject({ code: 'precondition_failed' });
    expect(h.run(del('k', { ifMatch: 1 }))).toEqual({ code: 'ok', version: 1 });
    expect(h.sm.get('default', null, 'k', T0)).toBeNull();
  });

  test('a failed command changes nothing and yields no event', () => {
    const h = new Harness();
    h.run(put('k'));
    const before = { item: h.sm.get('default', null, 'k', T0), stats: h.sm.stats('default') };
    const { result, events } = h.apply(put('k', { value: enc('other'), condition: { kind: 'ifNoneMatch' } }));
    expect(result.code).toBe('precondition_failed');
    expect(events).toEqual([]);
    expect({ item: h.sm.get('default', null, 'k', T0), stats: h.sm.stats('default') }).toEqual(before);
  });
});

describe('delete', () => {
  test('removes an item (204) and answers not_found (404) for a missing one', () => {
    const h = new Harness();
    h.run(put('k'));
    expect(h.run(del('k'))).toEqual({ code: 'ok', version: 1 });
    expect(h.run(del('k'))).toMatchObject({ code: 'not_found' });
    expect(h.sm.get('default', null, 'k', T0)).toBeNull();
  });

  test('a re-added key gets a new, higher version and counts as created', () => {
    const h = new Harness();
    h.run(put('k'));
    h.run(del('k'));
    expect(h.run(put('k'))).toEqual({ code: 'ok', version: 3, created: true });
  });
});

describe('expiry', () => {
  test('an item is invisible from its expiry instant on, before any expire command', () => {
    const h = new Harness();
    h.run(put('k', { expiresAt: T0 + 100 }));
    expect(h.sm.get('default', null, 'k', T0 + 99)?.expiresAt).toBe(T0 + 100);
    expect(h.sm.get('default', null, 'k', T0 + 100)).toBeNull();
    expect(h.sm.stats('default')!.items).toBe(1); // still stored until the expire command
    expect(h.run(del('k', { now: T0 + 100 }))).toMatchObject({ code: 'not_found' });
  });

  test('a put over an expired item counts as a creation', () => {
    const h = new Harness();
    h.run(put('k', { expiresAt: T0 + 1 }));
    expect(h.run(put('k', { now: T0 + 5 }))).toEqual({ code: 'ok', version: 2, created: true });
    expect(h.sm.get('default', null, 'k', T0 + 1000)?.expiresAt).toBeNull();
  });

  test('expire removes an item only at the version named and only if expired at the command’s now', () => {
    const h = new Harness();
    h.run(put('k', { expiresAt: T0 + 10 }));
    expect(h.run({ type: 'expire', items: [{ cache: 'default', region: null, key: 'k', version: 1 }], now: T0 + 9 })).toEqual({ code: 'ok', removed: 0 });
    expect(h.run({ type: 'expire', items: [{ cache: 'default', region: null, key: 'k', version: 9 }], now: T0 + 10 })).toEqual({ code: 'ok', removed: 0 });
    const { result, events } = h.apply({ type: 'expire', items: [{ cache: 'default', region: null, key: 'k', version: 1 }], now: T0 + 10 });
    expect(result).toEqual({ code: 'ok', removed: 1 });
    expect(events).toEqual([{ type: 'expire', cache: 'default', region: null, key: 'k', version: 1 }]);
    expect(h.sm.stats('default')).toMatchObject({ items: 0, expirations: 1 });
  });

  test('a touch applied after the leader chose an item to expire saves it', () => {
    const h = new Harness();
    h.run(put('k', { expiresAt: T0 + 10 }));
    const due = h.sm.expiredItems(T0 + 10);
    expect(due).toEqual([{ cache: 'default', region: null, key: 'k', version: 1 }]);
    h.run({ type: 'touch', cache: 'default', region: null, key: 'k', expiresAt: T0 + 50, now: T0 + 5 });
    expect(h.run({ type: 'expire', items: due, now: T0 + 10 })).toEqual({ code: 'ok', removed: 0 });
    expect(h.sm.get('default', null, 'k', T0 + 40)).not.toBeNull();
  });

  test('touch resets the expiry, keeps the version, and answers not_found for a missing or expired item', () => {
    const h = new Harness();
    h.run(put('k', { expiresAt: T0 + 10 }));
    expect(h.run({ type: 'touch', cache: 'default', region: null, key: 'k', expiresAt: T0 + 500, now: T0 + 5 })).toEqual({
      code: 'ok',
      version: 1,
      expiresAt: T0 + 500,
    });
    expect(h.sm.get('default', null, 'k', T0 + 499)?.version).toBe(1);
    expect(h.run({ type: 'touch', cache: 'default', region: null, key: 'k', expiresAt: null, now: T0 + 5 })).toMatchObject({ code: 'ok', expiresAt: null });
    expect(h.sm.get('default', null, 'k', Number.MAX_SAFE_INTEGER)).not.toBeNull();
    expect(h.run({ type: 'touch', cache: 'default', region: null, key: 'nope', expiresAt: null, now: T0 })).toMatchObject({ code: 'not_found' });
    h.run(put('e', { expiresAt: T0 + 1 }));
    expect(h.run({ type: 'touch', cache: 'default', region: null, key: 'e', expiresAt: T0 + 100, now: T0 + 1 })).toMatchObject({ code: 'not_found' });
  });
});

describe('change events', () => {
  test('put and delete yield one event each with the version written or removed', () => {
    const h = new Harness();
    expect(h.apply(put('k', { region: 'r' })).events).toEqual([{ type: 'put', cache: 'default', region: 'r', key: 'k', version: 1 }]);
    expect(h.apply(del('k', { region: 'r' })).events).toEqual([{ type: 'delete', cache: 'default', region: 'r', key: 'k', version: 1 }]);
  });

  test('touch, lock and unlock change no value and yield no event', () => {
    const h = new Harness();
    h.run(put('k'));
    expect(h.apply({ type: 'touch', cache: 'default', region: null, key: 'k', expiresAt: null, now: T0 }).events).toEqual([]);
    expect(h.apply({ type: 'lock', cache: 'default', region: null, key: 'k', handle: 'h', lockExpiresAt: T0 + 9, now: T0 }).events).toEqual([]);
    expect(h.apply({ type: 'unlock', cache: 'default', region: null, key: 'k', handle: 'h', now: T0 }).events).toEqual([]);
  });
});
