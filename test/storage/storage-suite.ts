// One suite for every implementation of the raft storage interface: the
// memory one and the LevelDB one. Each implementation's test file calls
// storageSuite with a factory for an empty storage bootstrapped with `conf`.

import { describe, expect, test } from 'vitest';
import { CompactedError, UnavailableError } from '../../raft/index.js';
import type { ConfState, Entry, Storage, StorageWriter } from '../../raft/index.js';

export interface SnapshottingStorage extends Storage, StorageWriter {
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): unknown;
}

const conf: ConfState = { voters: ['a', 'b', 'c'], learners: [] };

function ents(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push({ index: i, term, type: 0, data: new TextEncoder().encode(`e${i}`) });
  return out;
}

export function storageSuite(name: string, make: (conf: ConfState) => Promise<SnapshottingStorage>): void {
  describe(`${name} storage`, () => {
    test('a new storage holds an empty log, a zero hard state and the bootstrap configuration', async () => {
      const s = await make(conf);
      expect(s.firstIndex()).toBe(1);
      expect(s.lastIndex()).toBe(0);
      expect(s.term(0)).toBe(0);
      expect(s.initialState()).toEqual({ hardState: { term: 0, vote: null, commit: 0 }, confState: conf });
    });

    test('saved entries and hard state are read back exactly', async () => {
      const s = await make(conf);
      await s.save({ hardState: { term: 2, vote: 'b', commit: 3 }, entries: ents(1, 5, 2), snapshot: null });
      expect(s.lastIndex()).toBe(5);
      expect(s.term(4)).toBe(2);
      expect(s.entries(2, 5, Infinity).map((e) => e.index)).toEqual([2, 3, 4]);
      expect(new TextDecoder().decode(s.entries(3, 4, Infinity)[0]!.data)).toBe('e3');
      expect(s.initialState().hardState).toEqual({ term: 2, vote: 'b', commit: 3 });
    });

    test('appending over a suffix truncates the entries it conflicts with', async () => {
      const s = await make(conf);
      await s.save({ hardState: null, entries: ents(1, 6, 1), snapshot: null });
      await s.save({ hardState: null, entries: ents(4, 4, 2), snapshot: null });
      expect(s.lastIndex()).toBe(4);
      expect(s.term(3)).toBe(1);
      expect(s.term(4)).toBe(2);
      expect(() => s.term(5)).toThrow(UnavailableError);
    });

    test('entries() honours maxBytes but always returns at least one entry', async () => {
      const s = await make(conf);
      await s.save({ hardState: null, entries: ents(1, 9, 1), snapshot: null });
      expect(s.entries(1, 10, 0).length).toBe(1);
      expect(s.entries(1, 10, 5).length).toBe(2); // each entry holds 2 bytes: "e1", "e2"
    });

    test('a snapshot compacts the log before it and keeps the entries after it', async () => {
      const s = await make(conf);
      await s.save({ hardState: null, entries: ents(1, 10, 3), snapshot: null });
      s.createSnapshot(6, conf, new Uint8Array([1, 2, 3]));
      expect(s.firstIndex()).toBe(7);
      expect(s.lastIndex()).toBe(10);
      expect(s.term(6)).toBe(3);
      expect(() => s.term(5)).toThrow(CompactedError);
      expect(() => s.entries(5, 8, Infinity)).toThrow(CompactedError);
      const snap = s.snapshot();
      expect(snap.metadata).toEqual({ index: 6, term: 3, confState: conf });
      expect([...snap.data]).toEqual([1, 2, 3]);
    });

    test('a snapshot no newer than the current one is ignored, and so are entries it covers', async () => {
      const s = await make(conf);
      await s.save({ hardState: null, entries: ents(1, 8, 2), snapshot: null });
      s.createSnapshot(5, conf, new Uint8Array([5]));
      const stale = { metadata: { index: 4, term: 2, confState: conf }, data: new Uint8Array([4]) };
      await s.save({ hardState: null, entries: ents(3, 9, 2), snapshot: stale });
      expect(s.firstIndex()).toBe(6);
      expect(s.lastIndex()).toBe(9);
      expect([...s.snapshot().data]).toEqual([5]);
      expect(s.entries(6, 10, Infinity).map((e) => e.index)).toEqual([6, 7, 8, 9]);
    });

    test('a received snapshot replaces the whole log', async () => {
      const s = await make(conf);
      await s.save({ hardState: null, entries: ents(1, 3, 1), snapshot: null });
      const snapshot = { metadata: { index: 20, term: 4, confState: { voters: ['a', 'b'], learners: ['c'] } }, data: new Uint8Array([9]) };
      await s.save({ hardState: { term: 4, vote: null, commit: 20 }, entries: ents(21, 22, 4), snapshot });
      expect(s.firstIndex()).toBe(21);
      expect(s.lastIndex()).toBe(22);
      expect(s.term(20)).toBe(4);
      expect(s.initialState().confState).toEqual({ voters: ['a', 'b'], learners: ['c'] });
    });
  });
}
