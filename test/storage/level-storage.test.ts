// The LevelDB storage against real LevelDB files in temp directories: the
// shared suite, then what only a durable store has — recovery, group commit,
// refusing directories that are not this node's, and deleting compacted keys.

import { createHash } from 'node:crypto';
import { cpSync } from 'node:fs';
import { chmod, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Level } from 'level';
import { describe, expect, test, vi } from 'vitest';
import { entryRange, parseKey } from '../../storage/level-codec.js';
import { LevelStore } from '../../storage/level-store.js';
import { storageSuite } from './storage-suite.js';
import { conf, dump, ents, levelFixtures } from './level-fixtures.js';

const { tempDir, openStore } = levelFixtures('velo-level-');

storageSuite('level', async (conf) => {
  const g = (await openStore(await tempDir())).group(1);
  g.bootstrap(conf);
  return g;
});




/** Every file's name and content hash: "refused without modifying it". */
async function fingerprint(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).sort();
  return Promise.all(names.map(async (n) => `${n}:${createHash('sha256').update(await readFile(path.join(dir, n))).digest('hex')}`));
}

describe('level store', () => {
  test('hard state, log, truncation and snapshot of several groups survive close and reopen exactly', async () => {
    const dir = await tempDir();
    const store = await openStore(dir);
    const [a, b, c, d] = [store.group(1), store.group(2), store.group(7), store.group(0xffffffff)];
    for (const g of [a, b, c]) g.bootstrap(conf);
    a.stage({ hardState: { term: 3, vote: 'n2', commit: 4 }, entries: ents(1, 8, 3, 'a'), snapshot: null });
    // b: a suffix overwritten by a new leader's entries.
    b.stage({ hardState: { term: 1, vote: null, commit: 2 }, entries: ents(1, 9, 1, 'b'), snapshot: null });
    b.stage({ hardState: { term: 2, vote: 'n3', commit: 2 }, entries: ents(5, 6, 2, 'b'), snapshot: null });
    // c: a snapshot taken locally, and entries after it.
    c.stage({ hardState: { term: 5, vote: 'n1', commit: 10 }, entries: ents(1, 12, 5, 'c'), snapshot: null });
    c.createSnapshot(10, { voters: ['n1', 'n2'], learners: ['n3'] }, new Uint8Array(3 << 20).fill(7));
    // d: never bootstrapped, installed from a leader's snapshot.
    const snap = { metadata: { index: 40, term: 6, confState: conf }, data: new Uint8Array([4, 2]) };
    d.stage({ hardState: { term: 6, vote: null, commit: 40 }, entries: ents(41, 42, 6, 'd'), snapshot: snap });
    await store.commit();
    const before = [a, b, c, d].map(dump);
    expect(before[1]!.last).toBe(6);
    expect(before[2]!.first).toBe(11);
    await store.close();

    const again = await openStore(dir);
    expect(again.groupIds().sort((x, y) => x - y)).toEqual([1, 2, 7, 0xffffffff]);
    expect([1, 2, 7, 0xffffffff].map((id) => dump(again.group(id)))).toEqual(before);
    expect(again.group(2).term(5)).toBe(2);
    expect(again.group(7).initialState().confState).toEqual({ voters: ['n1', 'n2'], learners: ['n3'] });
    expect(again.group(3).exists()).toBe(false);
    expect(() => again.group(1).bootstrap(conf)).toThrow(/already has state/);
  });

  test('save() alone is durable when it resolves: the store commits on its own', async () => {
    const dir = await tempDir();
    const store = await openStore(dir);
    const g = store.group(5);
    g.bootstrap(conf);
    const copy = await tempDir();
    const batch = vi.spyOn(Level.prototype, 'batch');
    try {
      await Promise.all([g.save({ hardState: { term: 1, vote: 'n1', commit: 0 }, entries: ents(1, 3, 1), snapshot: null }), store.group(6).save({ hardState: { term: 2, vote: null, commit: 0 }, entries: [], snapshot: null })]);
      // The first handle stays open: close() commits whatever is staged, so reading after it would
      // prove nothing about save(). LevelDB locks its directory, so its files are copied as they are
      // the moment save() resolved — synchronously, so that nothing the store does later can land in
      // the copy — and the copy is opened as a node restarting after a crash would open it.
      cpSync(dir, copy, { recursive: true });
      const again = await openStore(copy);
      expect(again.group(5).lastIndex()).toBe(3);
      expect(again.group(5).initialState().hardState).toEqual({ term: 1, vote: 'n1', commit: 0 });
      expect(again.group(6).initialState().hardState).toEqual({ term: 2, vote: null, commit: 0 });
      // In the files is not yet on the disk: the one write both saves shared was a synced one.
      expect((batch.mock.calls as unknown as [unknown, { sync?: boolean }][]).map(([, options]) => options.sync)).toEqual([true]);
    } finally {
      batch.mockRestore();
    }
  });

  test('group commit: ten groups staging, then one commit(), is one synced LevelDB write', async () => {
    const store = await openStore(await tempDir());
    const spy = vi.spyOn(Level.prototype, 'batch');
    try {
      for (let id = 1; id <= 10; id++) {
        const g = store.group(id);
        g.bootstrap(conf);
        g.stage({ hardState: { term: 1, vote: 'n1', commit: 0 }, entries: ents(1, 2, 1), snapshot: null });
      }
      await store.commit();
      expect(spy).toHaveBeenCalledTimes(1);
      const [ops, options] = spy.mock.calls[0] as unknown as [unknown[], { sync: boolean }];
      expect(ops.length).toBe(10 * 4); // bootstrap snapshot, two entries, hard state
      expect(options.sync).toBe(true);
      await store.commit(); // nothing staged: no write
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      spy.mockRestore();
    }
  });

  test('a snapshot deletes the log entries it covers from LevelDB, in the same batch', async () => {
    const dir = await tempDir();
    const store = await openStore(dir);
    for (const id of [1, 2]) {
      store.group(id).bootstrap(conf);
      store.group(id).stage({ hardState: null, entries: ents(1, 10, 1), snapshot: null });
    }
    await store.commit();
    store.group(1).createSnapshot(6, conf, new Uint8Array([1]));
    await store.close();

    const db = new Level<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    const indices = async (group: number) => (await db.keys(entryRange(group)).all()).map((k) => parseKey(k)!.index);
    try {
      expect(await indices(1)).toEqual([7, 8, 9, 10]);
      expect(await indices(2)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    } finally {
      await db.close();
    }
  });

  test('a received snapshot and a truncation delete the replaced keys', async () => {
    const dir = await tempDir();
    const store = await openStore(dir);
    const g = store.group(1);
    g.bootstrap(conf);
    g.stage({ hardState: null, entries: ents(1, 10, 1), snapshot: null });
    g.stage({ hardState: null, entries: ents(4, 5, 2), snapshot: null });
    store.group(2).stage({ hardState: null, entries: ents(1, 5, 1), snapshot: null });
    store.group(2).stage({ hardState: null, entries: ents(8, 9, 3), snapshot: { metadata: { index: 7, term: 3, confState: conf }, data: new Uint8Array(0) } });
    await store.close();

    const db = new Level<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    try {
      expect((await db.keys(entryRange(1)).all()).map((k) => parseKey(k)!.index)).toEqual([1, 2, 3, 4, 5]);
      expect((await db.keys(entryRange(2)).all()).map((k) => parseKey(k)!.index)).toEqual([8, 9]);
    } finally {
      await db.close();
    }
  });

  test('a commit fsyncs when anything staged asked for it, and skips the fsync when only commit indexes moved', async () => {
    const store = await openStore(await tempDir());
    const g = store.group(1);
    g.bootstrap(conf);
    await store.commit();
    const spy = vi.spyOn(Level.prototype, 'batch');
    try {
      const syncOf = () => ((spy.mock.calls.at(-1) as unknown[])[1] as { sync: boolean }).sync;
      g.stage({ hardState: { term: 1, vote: 'n1', commit: 0 }, entries: ents(1, 3, 1), snapshot: null, sync: true });
      await store.commit();
      expect(syncOf()).toBe(true);
      g.stage({ hardState: { term: 1, vote: 'n1', commit: 3 }, entries: [], snapshot: null, sync: false });
      await store.commit();
      expect(syncOf()).toBe(false);
      // One batch of several groups is synced if any of them needs it.
      g.stage({ hardState: { term: 1, vote: 'n1', commit: 3 }, entries: [], snapshot: null, sync: false });
      store.group(2).stage({ hardState: { term: 4, vote: 'n2', commit: 0 }, entries: [], snapshot: null, sync: true });
      await store.commit();
      expect(syncOf()).toBe(true);
      expect(spy).toHaveBeenCalledTimes(3);
    } finally {
      spy.mockRestore();
    }
    await store.close();
    const again = await openStore(store.dir);
    expect(again.group(1).initialState().hardState).toEqual({ term: 1, vote: 'n1', commit: 3 });
  });

  test('a failed write is fatal: its savers are told, and every later write is refused', async () => {
    const store = await LevelStore.open(await tempDir());
    const g = store.group(1);
    g.bootstrap(conf);
    const spy = vi.spyOn(Level.prototype, 'batch').mockRejectedValueOnce(new Error('No space left on device'));
    try {
      const saved = g.save({ hardState: { term: 1, vote: 'n1', commit: 0 }, entries: [], snapshot: null });
      await expect(saved).rejects.toThrow(/failed, so this node must stop: No space left on device/);
      expect(() => g.stage({ hardState: { term: 2, vote: null, commit: 0 }, entries: [], snapshot: null })).toThrow(/must stop/);
      await expect(store.commit()).rejects.toThrow(/must stop/);
    } finally {
      spy.mockRestore();
    }
    await expect(store.close()).rejects.toThrow(/must stop/); // closes the database all the same
  });

  test('compact() never drops entries after the snapshot: a restart needs them', async () => {
    const store = await openStore(await tempDir());
    const g = store.group(1);
    g.bootstrap(conf);
    await g.save({ hardState: null, entries: ents(1, 10, 1), snapshot: null });
    g.createSnapshot(4, conf, new Uint8Array(0));
    g.compact(3); // already compacted: nothing to do
    expect(() => g.compact(6)).toThrow(/past its snapshot/);
    expect(g.firstIndex()).toBe(5);
  });
});

describe('level store refuses a directory that is not its own', () => {
  test("another node's or another cluster's directory, leaving its data as it was", async () => {
    const dir = await tempDir();
    const owner = await openStore(dir, { clusterId: 'c', nodeId: 'n2' });
    owner.group(1).bootstrap(conf);
    owner.group(1).stage({ hardState: { term: 4, vote: 'n2', commit: 1 }, entries: ents(1, 2, 4), snapshot: null });
    await owner.close();

    await expect(LevelStore.open(dir, { clusterId: 'c', nodeId: 'n1' })).rejects.toThrow(
      `data directory ${dir} belongs to node n2 of cluster c, not node n1 of cluster c`,
    );
    await expect(LevelStore.open(dir, { clusterId: 'other', nodeId: 'n2' })).rejects.toThrow(/belongs to node n2 of cluster c, not node n2 of cluster other/);

    // LevelDB rewrites its own bookkeeping files on open; the data is untouched.
    const again = await openStore(dir, { clusterId: 'c', nodeId: 'n2' });
    expect(again.identity).toEqual({ clusterId: 'c', nodeId: 'n2' });
    expect(again.group(1).initialState().hardState).toEqual({ term: 4, vote: 'n2', commit: 1 });
    expect(again.group(1).lastIndex()).toBe(2);
  });

  test('a directory whose CURRENT file is junk, untouched', async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'CURRENT'), 'not a manifest\n');
    await writeFile(path.join(dir, '000001.log'), 'x');
    const before = await fingerprint(dir);
    await expect(LevelStore.open(dir, { clusterId: 'c', nodeId: 'n1' })).rejects.toThrow(/corrupt or not a LevelDB database/);
    expect(await fingerprint(dir)).toEqual(before);
  });

  test('a non-empty directory that holds no database, untouched', async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'notes.txt'), 'mine');
    const before = await fingerprint(dir);
    await expect(LevelStore.open(dir, { clusterId: 'c', nodeId: 'n1' })).rejects.toThrow(/not empty but holds no LevelDB database/);
    expect(await fingerprint(dir)).toEqual(before);
  });

  test('a plain file, untouched', async () => {
    const file = path.join(await tempDir(), 'data');
    await writeFile(file, 'plain');
    await expect(LevelStore.open(file, { clusterId: 'c', nodeId: 'n1' })).rejects.toThrow(`data directory ${file} is not a directory`);
    expect(await readFile(file, 'utf8')).toBe('plain');
  });

  test("a LevelDB database that is not Velo's", async () => {
    const dir = await tempDir();
    const db = new Level(dir);
    await db.put('someone', 'else');
    await db.close();
    await expect(LevelStore.open(dir, { clusterId: 'c', nodeId: 'n1' })).rejects.toThrow(/not Velo's/);
    const check = new Level(dir);
    expect(await check.get('someone')).toBe('else');
    await check.close();
  });

  test('a directory in use by another open store', async () => {
    const dir = await tempDir();
    await openStore(dir);
    await expect(LevelStore.open(dir, { clusterId: 'c', nodeId: 'n1' })).rejects.toThrow(/cannot open data directory .*lock/i);
  });

  test('a missing directory, or an empty one, is initialised', async () => {
    const missing = path.join(await tempDir(), 'a', 'b');
    const empty = await tempDir();
    for (const dir of [missing, empty]) {
      const s = await openStore(dir);
      expect(s.groupIds()).toEqual([]);
      expect(s.identity).toEqual({ clusterId: 'c', nodeId: 'n1' });
    }
  });
});

describe('the data directory is its owner’s alone', () => {
  const mode = async (p: string) => ((await stat(p)).mode & 0o777).toString(8);

  test('a missing one is created 0700 even under umask 0', async () => {
    const dir = path.join(await tempDir(), 'new');
    const umask = process.umask(0);
    try {
      await openStore(dir);
    } finally {
      process.umask(umask);
    }
    expect(await mode(dir)).toBe('700');
  });

  test('an existing one left readable by others, and its files, are tightened to 0700 and 0600 on open', async () => {
    const dir = await tempDir();
    await (await LevelStore.open(dir, { clusterId: 'c', nodeId: 'n1' })).close();
    await chmod(dir, 0o755);
    for (const n of await readdir(dir)) await chmod(path.join(dir, n), 0o644);
    await openStore(dir);
    expect(await mode(dir)).toBe('700');
    const names = await readdir(dir);
    expect(names).toContain('CURRENT');
    for (const n of names) expect({ n, mode: await mode(path.join(dir, n)) }).toEqual({ n, mode: '600' });
  });
});
