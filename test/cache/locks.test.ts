import { describe, expect, test } from 'vitest';
import type { LockCommand, UnlockCommand } from '../../src/cache/index.js';
import { dec, del, enc, Harness, put, T0 } from './support.js';

const lock = (handle: string, o: Partial<LockCommand> = {}): LockCommand => ({
  type: 'lock',
  cache: 'default',
  region: null,
  key: 'k',
  handle,
  lockExpiresAt: T0 + 1000,
  now: T0,
  ...o,
});
const unlock = (handle: string, o: Partial<UnlockCommand> = {}): UnlockCommand => ({ type: 'unlock', cache: 'default', region: null, key: 'k', handle, now: T0, ...o });

function lockedItem(): Harness {
  const h = new Harness();
  h.run(put('k', { value: enc('original') }));
  expect(h.run(lock('h1'))).toMatchObject({ code: 'ok', handle: 'h1', lockExpiresAt: T0 + 1000 });
  return h;
}

describe('locks (GetAndLock, PutAndUnlock, Unlock)', () => {
  test('lock answers the item as a read would, with the handle', () => {
    const h = new Harness();
    h.run(put('k', { value: enc('v'), contentType: 'application/json' }));
    const r = h.run(lock('h1'));
    expect(r.code).toBe('ok');
    if (r.code !== 'ok') return;
    expect(dec(r.item.value)).toBe('v');
    expect(r.item).toMatchObject({ key: 'k', version: 1, contentType: 'application/json' });
  });

  test('a second lock by another handle answers locked (423); a missing item answers not_found (404)', () => {
    const h = lockedItem();
    expect(h.run(lock('h2'))).toMatchObject({ code: 'locked' });
    expect(h.run(lock('h2', { key: 'missing' }))).toMatchObject({ code: 'not_found' });
  });

  test('a PUT without the handle on a locked item answers locked (423) and writes nothing', () => {
    const h = lockedItem();
    expect(h.run(put('k', { value: enc('intruder') }))).toMatchObject({ code: 'locked' });
    expect(h.run(put('k', { value: enc('intruder'), lockHandle: 'wrong' }))).toMatchObject({ code: 'locked' });
    expect(dec(h.sm.get('default', null, 'k', T0)!.value)).toBe('original');
  });

  test('a PUT with the handle writes and keeps the lock; with unlock it releases it', () => {
    const h = lockedItem();
    expect(h.run(put('k', { value: enc('mine'), lockHandle: 'h1' }))).toMatchObject({ code: 'ok', created: false });
    expect(h.run(put('k', { value: enc('intruder') }))).toMatchObject({ code: 'locked' });
    expect(h.run(put('k', { value: enc('mine again'), lockHandle: 'h1', unlock: true }))).toMatchObject({ code: 'ok' });
    expect(h.run(put('k', { value: enc('anyone') }))).toMatchObject({ code: 'ok' });
    expect(dec(h.sm.get('default', null, 'k', T0)!.value)).toBe('anyone');
  });

  test('DELETE on a locked item needs the handle', () => {
    const h = lockedItem();
    expect(h.run(del('k'))).toMatchObject({ code: 'locked' });
    expect(h.run(del('k', { lockHandle: 'h2' }))).toMatchObject({ code: 'locked' });
    expect(h.run(del('k', { lockHandle: 'h1' }))).toMatchObject({ code: 'ok' });
    expect(h.sm.get('default', null, 'k', T0)).toBeNull();
  });

  test('unlock with the handle releases (204); without it answers lock_not_held (409)', () => {
    const h = lockedItem();
    expect(h.run(unlock('h2'))).toMatchObject({ code: 'lock_not_held' });
    expect(h.run(unlock('h1'))).toEqual({ code: 'ok' });
    expect(h.run(unlock('h1'))).toMatchObject({ code: 'lock_not_held' });
    expect(h.run(put('k'))).toMatchObject({ code: 'ok' });
  });

  test('a lock whose deadline has passed at the command’s now counts as released', () => {
    const h = lockedItem();
    const at = T0 + 1000; // the deadline itself: released
    expect(h.run(put('k', { value: enc('after'), now: at - 1 }))).toMatchObject({ code: 'locked' });
    expect(h.run(lock('h2', { now: at, lockExpiresAt: at + 50 }))).toMatchObject({ code: 'ok', handle: 'h2' });
    expect(h.run(put('k', { value: enc('x'), now: at }))).toMatchObject({ code: 'locked' });
    expect(h.run(put('k', { value: enc('x'), now: at + 50 }))).toMatchObject({ code: 'ok' });
  });

  test('a handle whose lock expired is refused with lock_not_held, so a stale read-modify-write is not applied', () => {
    const h = lockedItem();
    expect(h.run(put('k', { lockHandle: 'h1', now: T0 + 1000 }))).toMatchObject({ code: 'lock_not_held' });
    expect(h.run(del('k', { lockHandle: 'h1', now: T0 + 1000 }))).toMatchObject({ code: 'lock_not_held' });
    expect(h.run(unlock('h1', { now: T0 + 1000 }))).toMatchObject({ code: 'lock_not_held' });
    expect(h.run(put('k', { lockHandle: 'h1', key: 'never-locked' }))).toMatchObject({ code: 'lock_not_held' });
  });

  test('the lock does not survive the item: after a delete and re-add, the key is unlocked', () => {
    const h = lockedItem();
    h.run(del('k', { lockHandle: 'h1' }));
    h.run(put('k'));
    expect(h.run(put('k', { value: enc('free') }))).toMatchObject({ code: 'ok' });
  });

  test('a lock dies with its item’s expiry', () => {
    const h = new Harness();
    h.run(put('k', { expiresAt: T0 + 10 }));
    h.run(lock('h1', { lockExpiresAt: T0 + 1000 }));
    expect(h.run(lock('h2', { now: T0 + 10, lockExpiresAt: T0 + 20 }))).toMatchObject({ code: 'not_found' });
    expect(h.run(put('k', { now: T0 + 10 }))).toMatchObject({ code: 'ok', created: true });
  });

  test('the same handle locking again extends its own lock (a retried proposal)', () => {
    const h = lockedItem();
    expect(h.run(lock('h1', { lockExpiresAt: T0 + 5000 }))).toMatchObject({ code: 'ok', lockExpiresAt: T0 + 5000 });
    expect(h.run(put('k', { now: T0 + 2000 }))).toMatchObject({ code: 'locked' });
  });

  test('touch works on a locked item and leaves the lock', () => {
    const h = lockedItem();
    expect(h.run({ type: 'touch', cache: 'default', region: null, key: 'k', expiresAt: T0 + 9000, now: T0 })).toMatchObject({ code: 'ok' });
    expect(h.run(put('k'))).toMatchObject({ code: 'locked' });
  });
});
