// The drive loop's order of persisting and sending, with a disk (LevelDB in
// production): a leader's appends leave while its own disk writes the same
// entries (thesis §10.2.1), but a follower acks only what is durable, a
// candidate asks for votes only once its vote is durable, and nothing is
// applied or answered before the write that holds it. Two nodes in process,
// each with its own hand-stepped event loop and a disk whose syncs complete
// when the test says so.
import { describe, expect, test, vi } from 'vitest';
import { MessageType, RaftNode } from '../../raft/index.js';
import type { Message, NodeId } from '../../raft/index.js';
import { MemoryStorage } from '../../storage/memory-storage.js';
import { DriveLoop } from '../../src/node/drive-loop.js';
import { Group } from '../../src/node/group.js';
import { ManualDisk, Turns } from '../support/event-loop.js';
import type { GroupStateMachine } from '../../src/node/group.js';

class Counter implements GroupStateMachine {
  applied: number[] = [];
  apply(index: number): unknown {
    this.applied.push(index);
    return index;
  }
  snapshot(): Uint8Array {
    return new Uint8Array(0);
  }
  restore(): void {}
}

interface TestNode {
  id: NodeId;
  turns: Turns;
  disk: ManualDisk;
  group: Group;
  sm: Counter;
  /** Messages this node put on the wire (flushed), in order. */
  wire: Message[];
  /** Every message flushed, with whether something this node staged was not yet durable then. */
  log: { m: Message; unsynced: boolean }[];
}

function node(id: NodeId, voters: NodeId[]): TestNode {
  const turns = new Turns();
  const disk = new ManualDisk();
  const wire: Message[] = [];
  const log: { m: Message; unsynced: boolean }[] = [];
  let queued: Message[] = [];
  const loop = new DriveLoop({
    tickMs: 1000,
    send: (_g, m) => queued.push(m),
    flush: () => {
      for (const m of queued) log.push({ m, unsynced: disk.dirty });
      wire.push(...queued);
      queued = [];
    },
    now: () => 0,
    defer: turns.defer,
    commit: disk.commit,
  });
  const storage = new MemoryStorage({ voters, learners: [] });
  const stage = storage.stage.bind(storage);
  storage.stage = (batch) => {
    if (batch.hardState !== null || batch.entries.length > 0) disk.stage();
    stage(batch);
  };
  const raft = new RaftNode({ id, storage, rng: { int: () => 0 }, electionTicks: 5, heartbeatTicks: 1 });
  const sm = new Counter();
  const group = new Group(0, raft, storage, sm, { everyEntries: 1e9, everyBytes: 1e12 });
  loop.add(group);
  return { id, turns, disk, group, sm, wire, log };
}

/** Delivers everything `from` has put on the wire to `to` (and forgets it). */
function deliver(from: TestNode, to: TestNode): Message[] {
  const ms = from.wire.splice(0).filter((m) => m.to === to.id);
  for (const m of ms) to.group.raft.step(m);
  to.group.wake();
  return ms;
}

const types = (ms: Message[]) => ms.map((m) => m.type);

async function electedPair(): Promise<[TestNode, TestNode]> {
  const a = node('n1', ['n1', 'n2']);
  const b = node('n2', ['n1', 'n2']);
  // n1 campaigns (its election timer is the shortest, rng 0) ...
  for (let i = 0; i < 20 && a.wire.length === 0; i++) {
    a.group.raft.tick();
    a.group.wake();
    a.turns.run();
    // ... and its pre-vote and vote requests wait for nothing but its own sync of the new term.
    while (a.disk.pending > 0) await a.disk.complete();
  }
  for (let i = 0; i < 10 && !a.group.isLeader(); i++) {
    deliver(a, b);
    b.turns.run();
    while (b.disk.pending > 0) await b.disk.complete();
    deliver(b, a);
    a.turns.run();
    while (a.disk.pending > 0) await a.disk.complete();
  }
  expect(a.group.isLeader()).toBe(true);
  // Settle: the leader's empty entry replicated and applied on both.
  for (let i = 0; i < 6; i++) {
    deliver(a, b);
    b.turns.run();
    while (b.disk.pending > 0) await b.disk.complete();
    deliver(b, a);
    a.turns.run();
    while (a.disk.pending > 0) await a.disk.complete();
  }
  return [a, b];
}

describe('drive loop with a disk: what may leave before the sync', () => {
  test("votes are asked for and granted only once the new term and vote are durable", async () => {
    const [a, b] = await electedPair();
    const votes = [...a.log, ...b.log].filter(({ m }) => m.type === MessageType.Vote || m.type === MessageType.VoteResp);
    expect(votes.map(({ m }) => m.type)).toEqual([MessageType.Vote, MessageType.VoteResp]);
    expect(votes.filter(({ unsynced }) => unsynced)).toEqual([]);
  });

  test("a leader's appends leave before its own sync; the write is applied and answered only after it", async () => {
    const [a, b] = await electedPair();
    const appliedBefore = a.sm.applied.length;
    let answered = false;
    const write = a.group.propose(new Uint8Array([1]), Infinity).then(() => (answered = true));

    a.turns.run(); // the leader's pass: stages the entry, sends the append, waits for its sync
    expect(a.disk.pending).toBe(1);
    const sent = deliver(a, b);
    expect(types(sent)).toContain(MessageType.Append);
    expect(sent.find((m) => m.type === MessageType.Append)!.entries.length).toBe(1);

    // The follower writes it, but acks only after its own sync.
    b.turns.run();
    expect(b.disk.pending).toBe(1);
    expect(b.wire.filter((m) => m.type === MessageType.AppendResp)).toEqual([]);
    await b.disk.complete();
    expect(types(b.wire)).toContain(MessageType.AppendResp);

    // The ack reaches the leader while its own sync is still running: the
    // entry is committed by count, but nothing is applied or answered yet.
    deliver(b, a);
    a.turns.run();
    await new Promise((r) => setImmediate(r));
    expect(a.sm.applied.length).toBe(appliedBefore);
    expect(answered).toBe(false);

    while (a.disk.pending > 0) await a.disk.complete();
    a.turns.run();
    while (a.disk.pending > 0) await a.disk.complete();
    await write;
    expect(a.sm.applied.length).toBe(appliedBefore + 1);
  });
});

describe('drive loop clock: ticks follow the monotonic clock, leases only while it is trusted', () => {
  function clockedLoop() {
    vi.useFakeTimers(); // the loop's own setInterval never fires: the test calls tick() itself
    let now = 0;
    const loop = new DriveLoop({ tickMs: 50, send: () => {}, flush: () => {}, now: () => 0, defer: () => {}, monotonicNow: () => now });
    const storage = new MemoryStorage({ voters: ['n1', 'n2'], learners: [] });
    const raft = new RaftNode({ id: 'n1', storage, rng: { int: () => 0 }, electionTicks: 5, heartbeatTicks: 1 });
    const group = new Group(0, raft, storage, new Counter(), { everyEntries: 1e9, everyBytes: 1e12 });
    loop.add(group);
    let ticks = 0;
    const tick = raft.tick.bind(raft);
    raft.tick = () => {
      ticks++;
      tick();
    };
    const leases: boolean[] = [];
    const readIndex = raft.readIndex.bind(raft);
    raft.readIndex = (ctx, opts) => {
      leases.push(opts?.lease ?? true);
      return readIndex(ctx, opts);
    };
    loop.start();
    return {
      loop,
      group,
      at(t: number) {
        now = t;
      },
      ticks: () => ticks,
      leases,
      done() {
        loop.stop();
        vi.useRealTimers();
      },
    };
  }

  test('a late timer callback gives the ticks that are due; an early one none; a stall at most 64', () => {
    const c = clockedLoop();
    try {
      c.at(49);
      c.loop.tick();
      expect(c.ticks()).toBe(0);
      c.at(50);
      c.loop.tick();
      expect(c.ticks()).toBe(1);
      c.at(180); // two callbacks came late: both ticks given at once
      c.loop.tick();
      expect(c.ticks()).toBe(3);
      c.at(180 + 10_000); // a 10 s stall: capped
      c.loop.tick();
      expect(c.ticks()).toBe(3 + 64);
      c.at(180 + 10_050); // and the count goes on from the clock, not from the cap
      c.loop.tick();
      expect(c.ticks()).toBe(3 + 64 + 1);
    } finally {
      c.done();
    }
  });

  test('reads may use a lease only while the timer ran within the last two ticks', async () => {
    const c = clockedLoop();
    try {
      c.at(50);
      c.loop.tick();
      c.at(149);
      expect(c.loop.clockTrusted()).toBe(true);
      void c.group.read(() => 1, Infinity).catch(() => {}); // not a leader: refused, but asked with the lease flag
      c.at(150);
      expect(c.loop.clockTrusted()).toBe(false);
      void c.group.read(() => 1, Infinity).catch(() => {});
      c.loop.tick(); // the overdue timer runs: trusted again
      expect(c.loop.clockTrusted()).toBe(true);
      void c.group.read(() => 1, Infinity).catch(() => {});
      c.loop.stop();
      expect(c.loop.clockTrusted()).toBe(false);
      expect(c.leases).toEqual([true, false, true]);
    } finally {
      c.done();
    }
  });
});
