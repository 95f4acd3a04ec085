import { describe, expect, test } from 'vitest';
import { EventLog, decodeEventId, encodeEventId } from '../../src/node/event-log.js';
import type { ChangeEvent } from '../../src/cache/index.js';

const ev = (key: string, version: number): ChangeEvent => ({ type: 'put', cache: 'default', region: null, key, version });

describe('event log', () => {
  test('since() returns exactly the events after a position, across entries with several events', () => {
    const log = new EventLog(100);
    log.append(3, [ev('a', 3)]);
    log.append(5, [ev('b', 5), ev('c', 5)]);
    log.append(6, []);
    log.append(7, [ev('d', 7)]);
    const keys = (index: number, seq: number) => {
      const r = log.since({ index, seq }, 100);
      if (r.lost) throw new Error('lost');
      return r.events.map((e) => e.event.key);
    };
    expect(keys(0, 0)).toEqual(['a', 'b', 'c', 'd']);
    expect(keys(3, 1)).toEqual(['b', 'c', 'd']);
    expect(keys(5, 1)).toEqual(['c', 'd']);
    expect(keys(5, 2)).toEqual(['d']);
    expect(keys(7, 1)).toEqual([]);
    expect(log.head()).toEqual({ index: 7, seq: 1 });
  });

  test('a reader from before what the bounded log holds is told its history is lost', () => {
    const log = new EventLog(3);
    for (let i = 1; i <= 5; i++) log.append(i, [ev(`k${i}`, i)]);
    expect(log.since({ index: 1, seq: 1 }, 10).lost).toBe(true);
    const r = log.since({ index: 2, seq: 1 }, 10);
    expect(r.lost ? null : r.events.map((e) => e.index)).toEqual([3, 4, 5]);
  });

  test('after a snapshot restore, earlier positions are lost and the head moves past the snapshot', () => {
    const log = new EventLog(10);
    log.append(1, [ev('a', 1)]);
    log.reset(50);
    expect(log.since({ index: 1, seq: 1 }, 10).lost).toBe(true);
    log.append(51, [ev('b', 51)]);
    const r = log.since(log.head(), 10);
    expect(r.lost).toBe(false);
  });

  test('event ids carry the cursor, and garbage is refused', () => {
    const cursor = new Map([
      [0, { index: 4, seq: 1 }],
      [3, { index: 9, seq: 2 }],
    ]);
    const id = encodeEventId(3, { index: 9, seq: 2 }, cursor);
    expect(id).toBe('3.9.2~0:4.1,3:9.2');
    expect(decodeEventId(id)).toEqual(cursor);
    for (const bad of ['', 'x', '1.2.3', '1.2.3~', '1.2.3~a:1.1', '1.2.3~1:1']) expect(() => decodeEventId(bad)).toThrow(/Last-Event-ID/);
  });
});
