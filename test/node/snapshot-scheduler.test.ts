// Background snapshots: the drive loop takes them between passes, one
// partition per event-loop turn, the group furthest past its threshold first;
// either threshold (entries or bytes) makes a group due. In process, with
// single-voter groups on memory storage and the event loop's turns stepped by
// hand (the loop's `defer`), so every step is deterministic.
import { describe, expect, test } from 'vitest';
import { RaftNode } from '../../raft/index.js';
import { MemoryStorage } from '../../storage/memory-storage.js';
import { DriveLoop } from '../../src/node/drive-loop.js';
import { Group } from '../../src/node/group.js';
import { ManualDisk, Turns } from '../support/event-loop.js';
import type { GroupObserver, GroupStateMachine, SnapshotPolicy } from '../../src/node/group.js';

/** State = the index of the last entry applied; its snapshot records that index, so a snapshot shows what it was taken of. */
class IndexState implements GroupStateMachine {
  index = 0;
  apply(index: number): unknown {
    this.index = index;
    return index;
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(String(this.index));
  }
  restore(data: Uint8Array, index: number): void {
    expect(new TextDecoder().decode(data)).toBe(String(index));
    this.index = index;
  }
}

async function setup(partitions: number, policy: SnapshotPolicy, disk?: ManualDisk) {
  const turns = new Turns();
  const taken: number[] = [];
  const observer: GroupObserver = {
    proposalCommitted: () => {},
    applied: () => {},
    roleChanged: () => {},
    snapshotTaken: (partition) => taken.push(partition),
  };
  const loop = new DriveLoop({ tickMs: 1000, send: () => {}, flush: () => {}, now: () => 0, defer: turns.defer, ...(disk ? { commit: disk.commit } : {}) });
  const groups: Group[] = [];
  for (let p = 0; p < partitions; p++) {
    const storage = new MemoryStorage({ voters: ['n1'], learners: [] });
    const raft = new RaftNode({ id: 'n1', storage, rng: { int: () => 0 }, electionTicks: 5, heartbeatTicks: 1 });
    const g = new Group(p, raft, storage, new IndexState(), policy, observer);
    groups.push(g);
    loop.add(g);
  }
  /** Runs turns (and completes syncs) until nothing is left to do. */
  const drain = async () => {
    while (turns.queued > 0 || (disk?.pending ?? 0) > 0) {
      turns.run();
      if (disk) await disk.complete();
    }
  };
  for (let i = 0; i < 50 && !groups.every((g) => g.isLeader()); i++) {
    for (const g of groups) g.raft.tick();
    loop.schedule();
    await drain();
  }
  expect(groups.every((g) => g.isLeader())).toBe(true);
  await drain(); // the new leaders' empty entries applied
  const pending: Promise<unknown>[] = [];
  const propose = (partition: number, entries: number, bytes = 8) => {
    for (let i = 0; i < entries; i++) pending.push(groups[partition]!.propose(new Uint8Array(bytes).fill(1), Infinity));
  };
  /** Finishes the running pass: completes its syncs until it has applied and ended. */
  const finishPass = async () => {
    while (disk!.pending > 0) await disk!.complete();
  };
  const applied = () => groups.map((g) => g.raft.status().applied);
  return { turns, taken, loop, groups, drain, propose, finishPass, applied, pending };
}

/** The snapshot a group holds is of its state at the snapshot's index, and the in-memory log starts right after it. */
function expectSnapshotAtApplied(g: Group): void {
  const snap = g.storage.snapshot();
  expect(snap.metadata.index).toBe(g.raft.status().applied);
  expect(new TextDecoder().decode(snap.data)).toBe(String(snap.metadata.index));
  expect(g.storage.firstIndex()).toBe(snap.metadata.index + 1);
}

describe('background snapshots', () => {
  test('the entry threshold makes a group due; snapshots come after the pass that applied, one partition per turn, furthest behind first', async () => {
    const h = await setup(4, { everyEntries: 10, everyBytes: 1 << 30 });
    expect(h.applied()).toEqual([1, 1, 1, 1]); // each leader's empty entry: below the threshold
    h.propose(0, 12);
    h.propose(1, 30);
    h.propose(2, 20);
    h.propose(3, 15);

    h.turns.run(); // the pass: persist, commit, apply, answer
    expect(h.applied()).toEqual([13, 31, 21, 16]);
    expect(h.taken).toEqual([]); // not in the apply path
    await Promise.all(h.pending); // every write answered before any snapshot

    const perTurn: number[][] = [];
    while (h.turns.queued > 0) {
      const before = h.taken.length;
      h.turns.run();
      perTurn.push(h.taken.slice(before));
    }
    expect(perTurn).toEqual([[1], [2], [3], [0]]);
    for (const g of h.groups) expectSnapshotAtApplied(g);
  });

  test('the byte threshold alone makes a group due, counted from its last snapshot', async () => {
    const h = await setup(3, { everyEntries: 1000, everyBytes: 1000 });
    h.propose(0, 2, 600); // 1,200 bytes: due
    h.propose(1, 1, 600); // 600 bytes: not yet
    h.propose(2, 100, 1); // 100 entries of 1 byte: neither
    await h.drain();
    expect(h.taken).toEqual([0]);
    expectSnapshotAtApplied(h.groups[0]!);
    expect(h.groups[1]!.storage.snapshot().metadata.index).toBe(0);

    h.propose(0, 1, 600); // 600 since its snapshot
    h.propose(1, 1, 600); // 1,200 since the start
    await h.drain();
    expect(h.taken).toEqual([0, 1]);
    expectSnapshotAtApplied(h.groups[1]!);
    expect(h.groups[2]!.storage.snapshot().metadata.index).toBe(0);
  });

  test('a pass that ends with a group due hands the next turn to its snapshot, even with the next pass already queued', async () => {
    const disk = new ManualDisk();
    const h = await setup(1, { everyEntries: 10, everyBytes: 1 << 30 }, disk);
    h.propose(0, 15);
    h.turns.run(); // the pass starts, and waits for its sync
    expect(disk.pending).toBe(1);
    h.loop.schedule(); // a message arriving meanwhile queues the next pass
    await h.finishPass();
    expect(h.applied()).toEqual([16]);
    expect(h.taken).toEqual([]);
    h.propose(0, 1); // the queued pass has work: it would hold the loop busy through its sync

    h.turns.run();
    expect(h.taken).toEqual([0]);
    expectSnapshotAtApplied(h.groups[0]!);
    await h.drain(); // the held pass runs after
    expect(h.applied()).toEqual([17]);
    await Promise.all(h.pending);
  });

  test('no snapshot is taken while a pass is running: its turn waits for the pass to end', async () => {
    const disk = new ManualDisk();
    const h = await setup(2, { everyEntries: 10, everyBytes: 1 << 30 }, disk);
    h.propose(0, 15);
    h.propose(1, 12);
    h.turns.run();
    await h.finishPass();
    h.turns.run(); // the first snapshot; the second gets a turn of its own
    expect(h.taken).toEqual([0]);
    expect(h.turns.queued).toBe(1);
    await disk.complete(); // the snapshot's own sync

    h.propose(1, 1);
    h.loop.pass(); // a pass that began after the snapshot turn was queued
    expect(disk.pending).toBe(1);
    h.turns.run();
    expect(h.taken).toEqual([0]);

    await h.finishPass();
    await h.drain();
    expect(h.taken).toEqual([0, 1]);
    expectSnapshotAtApplied(h.groups[1]!);
    await Promise.all(h.pending);
  });
});
