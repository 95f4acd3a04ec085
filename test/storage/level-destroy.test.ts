// Destroying a group's storage (a replica that left its group: the partition
// moved to other nodes), against real LevelDB files in temp directories. What
// matters is what is on disk after the commit: no key of the destroyed group,
// every key of the others, and a fresh start for the same id.

import { Level } from 'level';
import { describe, expect, test } from 'vitest';
import { MessageType, RaftNode, emptyMessage } from '../../raft/index.js';
import { Kind, parseKey } from '../../storage/level-codec.js';
import { LevelStore } from '../../storage/level-store.js';
import { conf, dump, ents, levelFixtures } from './level-fixtures.js';

const { tempDir, openStore } = levelFixtures('velo-destroy-');




/** Every group key in the (closed) database, as "group:kind[index]" strings, read through LevelDB itself. */
async function keysOnDisk(dir: string): Promise<string[]> {
  const db = new Level<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  try {
    const out: string[] = [];
    for (const k of await db.keys({ gte: Buffer.from('g'), lt: Buffer.from('h') }).all()) {
      const p = parseKey(k)!;
      out.push(`${p.group}:${String.fromCharCode(p.kind)}${p.kind === Kind.Entry ? p.index : ''}`);
    }
    return out;
  } finally {
    await db.close();
  }
}

/** Two groups with every kind of key: hard state, a local snapshot over part of the log, and entries after it. */
function fill(store: LevelStore, id: number, tag: string): void {
  const g = store.group(id);
  g.bootstrap(conf);
  g.stage({ hardState: { term: 2, vote: 'n2', commit: 9 }, entries: ents(1, 12, 2, tag), snapshot: null });
  g.createSnapshot(4, conf, new Uint8Array(1000).fill(id));
}

describe('destroying a group', () => {
  test('after commit and reopen the destroyed group has no key left and the other group is intact', async () => {
    const dir = await tempDir();
    const store = await openStore(dir);
    fill(store, 3, 'a');
    fill(store, 4, 'b');
    await store.commit();
    const kept = dump(store.group(4));

    store.destroyGroup(3);
    await store.close();

    const keys = await keysOnDisk(dir);
    expect(keys.filter((k) => k.startsWith('3:'))).toEqual([]);
    expect(keys.filter((k) => k.startsWith('4:'))).toEqual(['4:e5', '4:e6', '4:e7', '4:e8', '4:e9', '4:e10', '4:e11', '4:e12', '4:h', '4:s']);

    const again = await openStore(dir);
    expect(again.groupIds()).toEqual([4]);
    expect(again.group(3).exists()).toBe(false);
    expect(dump(again.group(4))).toEqual(kept);
  });

  test('writes staged for the group in the same batch as its destruction are deleted too', async () => {
    const dir = await tempDir();
    const store = await openStore(dir);
    fill(store, 3, 'a');
    await store.commit();
    // The replica's last Ready, staged but not yet committed when the node removes it.
    store.group(3).stage({ hardState: { term: 3, vote: null, commit: 14 }, entries: ents(13, 15, 3, 'a'), snapshot: null });
    store.destroyGroup(3);
    await store.close();
    expect(await keysOnDisk(dir)).toEqual([]);
  });

  test('the store forgets the group at once: group(id) is a new, empty storage and groupIds() omits it', async () => {
    const store = await openStore(await tempDir());
    fill(store, 3, 'a');
    fill(store, 4, 'b');
    const old = store.group(3);
    store.destroyGroup(3);
    expect(store.groupIds()).toEqual([4]);
    expect(old.exists()).toBe(false);
    const fresh = store.group(3);
    expect(fresh).not.toBe(old);
    expect(fresh.exists()).toBe(false);
    expect(fresh.lastIndex()).toBe(0);
    // Empty but for the vote the old replica cast (term 2, for n2): see the last test.
    expect(fresh.initialState()).toEqual({ hardState: { term: 2, vote: 'n2', commit: 0 }, confState: { voters: [], learners: [] } });
  });

  test('the old handle refuses every write, so a replica still stopping cannot write the group back', async () => {
    const store = await openStore(await tempDir());
    fill(store, 3, 'a');
    const old = store.group(3);
    store.destroyGroup(3);
    const refused = /raft group 3 was destroyed on this node/;
    expect(() => old.stage({ hardState: { term: 9, vote: null, commit: 0 }, entries: [], snapshot: null })).toThrow(refused);
    await expect(old.save({ hardState: null, entries: ents(13, 13, 2), snapshot: null })).rejects.toThrow(refused);
    expect(() => old.createSnapshot(8, conf, new Uint8Array(0))).toThrow(refused);
    expect(() => old.bootstrap(conf)).toThrow(refused);
    expect(old.lastIndex()).toBe(12); // the refused writes left even the in-memory copy alone
  });

  test('the same id bootstrapped again after destruction, in the same batch, survives reopen with only its new state', async () => {
    const dir = await tempDir();
    const store = await openStore(dir);
    fill(store, 3, 'a');
    await store.commit();
    store.destroyGroup(3);
    const g = store.group(3);
    g.bootstrap({ voters: ['n1'], learners: ['n4'] });
    // It starts from the old replica's term 2 (its kept vote), so its own state is at a later term.
    g.stage({ hardState: { term: 3, vote: 'n1', commit: 2 }, entries: ents(1, 2, 3, 'new'), snapshot: null });
    expect(store.groupIds()).toEqual([3]);
    const made = dump(g);
    await store.close();

    expect(await keysOnDisk(dir)).toEqual(['3:e1', '3:e2', '3:h', '3:s']);
    const again = await openStore(dir);
    expect(again.groupIds()).toEqual([3]);
    expect(dump(again.group(3))).toEqual(made);
    expect(again.group(3).initialState().confState).toEqual({ voters: ['n1'], learners: ['n4'] });
  });

  test('the same id re-created from a leader snapshot after a committed destruction survives reopen', async () => {
    const dir = await tempDir();
    const store = await openStore(dir);
    fill(store, 3, 'a');
    await store.commit();
    store.destroyGroup(3);
    await store.commit();
    const snap = { metadata: { index: 30, term: 5, confState: conf }, data: new Uint8Array([9, 9, 9]) };
    store.group(3).stage({ hardState: { term: 5, vote: null, commit: 30 }, entries: ents(31, 31, 5, 'new'), snapshot: snap });
    const made = dump(store.group(3));
    await store.close();

    const again = await openStore(dir);
    expect(dump(again.group(3))).toEqual(made);
    expect(again.group(3).firstIndex()).toBe(31);
  });

  test('destroying a group that has no state, or twice, does nothing; an id that is not a u32 is refused', async () => {
    const dir = await tempDir();
    const store = await openStore(dir);
    fill(store, 4, 'b');
    store.group(5); // handed out, never written
    store.destroyGroup(5);
    store.destroyGroup(6);
    store.destroyGroup(4);
    store.destroyGroup(4);
    expect(store.groupIds()).toEqual([]);
    expect(() => store.destroyGroup(-1)).toThrow(/group id -1 is not a u32/);
    expect(() => store.destroyGroup(1.5)).toThrow(/group id 1.5 is not a u32/);
    await store.close();
    expect(await keysOnDisk(dir)).toEqual([]);
  });

  // A replica deleted here, and re-created when its partition moves back,
  // must not vote twice in one term: with a data directory the node may have
  // restarted in between, so the vote has to outlive the group on disk.
  test('a destroyed group leaves its vote behind: re-created after a restart, the replica refuses a second vote in that term', async () => {
    const dir = await tempDir();
    const store = await openStore(dir);
    fill(store, 3, 'a'); // voted for n2 in term 2
    await store.commit();
    store.destroyGroup(3);
    await store.close();

    const again = await openStore(dir);
    expect(again.groupIds()).toEqual([]);
    const fresh = again.group(3);
    expect(fresh.exists()).toBe(false);
    expect(fresh.initialState().hardState).toEqual({ term: 2, vote: 'n2', commit: 0 });

    // The partition moves back: an empty replica, and n3 campaigns in the same term 2.
    const raft = new RaftNode({ id: 'n1', storage: fresh, applied: 0, rng: { int: () => 0 }, electionTicks: 10, heartbeatTicks: 1 });
    raft.step({ ...emptyMessage(MessageType.Vote, 'n3', 'n1', 2), index: 99, logTerm: 2 });
    const answers = raft.ready().messages.filter((m) => m.type === MessageType.VoteResp);
    expect(answers.map((m) => ({ to: m.to, term: m.term, reject: m.reject }))).toEqual([{ to: 'n3', term: 2, reject: true }]);
  });
});
