// Linearizable reads (Raft thesis §6.4): ReadIndex confirmed by a heartbeat
// round that a quorum acknowledges, batched per round; leader leases (§6.4.1).
import { describe, expect, test } from 'vitest';
import { MessageType, Role } from '../../raft/index.js';
import type { Message } from '../../raft/index.js';
import { TestNetwork, enc, msg } from './harness.js';

const ids = ['a', 'b', 'c'];
const isHeartbeatFrom = (from: string) => (m: Message) => m.type === MessageType.Heartbeat && m.from === from;

function led() {
  const net = new TestNetwork(ids);
  net.campaign('a');
  net.tickAll(1);
  return net;
}

/** A group with leader leases (or not), elected by ticks so that every node is past its first election timeout. */
function ledWithLeases(leases: boolean) {
  const net = new TestNetwork(ids, leases ? { leaseReads: { maxClockDriftTicks: 2 } } : {});
  net.tickUntil(() => net.agreedLeader(ids) !== undefined);
  const l = net.agreedLeader(ids)!;
  // One quorum-acknowledged round, right now.
  l.raft.readIndex('warmup');
  net.settle();
  expect(l.reads.map((r) => r.context)).toContain('warmup');
  return { net, l };
}

describe('§6.4 ReadIndex', () => {
  test('a read becomes a ReadState only once a quorum acknowledged a heartbeat round sent after it', () => {
    const net = led();
    const a = net.node('a');
    // Answers to a round sent before the read must not confirm it.
    net.hold((m) => m.type === MessageType.HeartbeatResp);
    net.tickAll(1);
    const early = net.held.length;
    expect(early).toBe(2);
    expect(a.raft.readIndex('r1')).toEqual({ ok: true });
    net.settle();
    net.release((m) => net.held.indexOf(m) < early);
    expect(a.reads).toEqual([]);
    // One answer to the read's own round makes a quorum with the leader.
    net.hold(null);
    net.release((m) => m.from === 'b');
    expect(a.reads).toEqual([{ context: 'r1', index: a.raft.status().commit }]);
  });

  test('reads issued together share one heartbeat round', () => {
    const net = led();
    const a = net.node('a');
    let mark = net.sent.length;
    for (let i = 0; i < 5; i++) a.raft.readIndex(`r${i}`);
    net.settle();
    expect(net.sentSince(mark, isHeartbeatFrom('a'))).toHaveLength(2); // one per follower
    expect(a.reads.map((r) => r.context)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);

    // Reads issued one Ready apart take one round each.
    mark = net.sent.length;
    a.raft.readIndex('s0');
    net.settle();
    a.raft.readIndex('s1');
    net.settle();
    expect(net.sentSince(mark, isHeartbeatFrom('a'))).toHaveLength(4);
  });

  test('the read index is the commit index when the read was issued', () => {
    const net = led();
    const a = net.node('a');
    const commitAtRead = a.raft.status().commit;
    net.hold((m) => m.type === MessageType.HeartbeatResp);
    a.raft.readIndex('r');
    net.settle();
    a.raft.propose(enc('later'));
    net.settle();
    expect(a.raft.status().commit).toBe(commitAtRead + 1);
    net.hold(null);
    net.release();
    expect(a.reads).toEqual([{ context: 'r', index: commitAtRead }]);
  });

  test('a partitioned leader never confirms a read', () => {
    const net = led();
    const a = net.node('a');
    net.isolate('a');
    expect(a.raft.readIndex('r').ok).toBe(true);
    for (let i = 0; i < 30; i++) {
      net.tick('a');
      net.settle();
      expect(a.reads).toEqual([]);
    }
    // Check-quorum has deposed it by now; reads are refused outright.
    expect(a.raft.status().role).toBe(Role.Follower);
    expect(a.raft.readIndex('r2')).toMatchObject({ ok: false, reason: 'not_leader' });
  });

  test('a new leader\'s reads wait for its no-op to commit, and read at least at the no-op', () => {
    const net = new TestNetwork(ids);
    net.hold((m) => m.type === MessageType.Append && m.from === 'a');
    net.campaign('a');
    const a = net.node('a');
    expect(a.raft.status()).toMatchObject({ role: Role.Leader, commit: 0 });
    expect(a.raft.readIndex('r').ok).toBe(true);
    net.tickAll(3); // heartbeat rounds are acknowledged, but the no-op has not committed
    expect(a.reads).toEqual([]);
    net.hold(null);
    net.release();
    expect(a.raft.status().commit).toBe(1);
    expect(a.reads).toEqual([{ context: 'r', index: 1 }]);
  });

  test('a read pending when the leader loses its leadership is never confirmed', () => {
    const net = led();
    const a = net.node('a');
    net.hold((m) => m.type === MessageType.HeartbeatResp);
    a.raft.readIndex('r');
    net.settle();
    // A higher term reaches a before the answers do.
    a.raft.step(msg(MessageType.Append, 'b', 'a', 2, { index: 1, logTerm: 1, commit: 1 }));
    net.drain(a);
    expect(a.raft.status().role).toBe(Role.Follower);
    net.hold(null);
    net.release();
    expect(a.reads).toEqual([]);
  });

  test('a follower refuses a read and names the leader', () => {
    const net = led();
    expect(net.node('b').raft.readIndex('r')).toEqual({ ok: false, reason: 'not_leader', leader: 'a' });
  });

  test('a single-voter group confirms a read at once, without messages', () => {
    const net = new TestNetwork(['a']);
    net.campaign('a');
    const a = net.node('a');
    a.raft.readIndex('r');
    const out = net.drain(a);
    expect(out).toEqual([]);
    expect(a.reads).toEqual([{ context: 'r', index: 1 }]);
  });
});

describe('§6.4.1 leader leases', () => {
  test('with leaseReads, a read right after a quorum-acknowledged round is served without a new round', () => {
    const { net, l } = ledWithLeases(true);
    l.raft.readIndex('r');
    const out = net.drain(l);
    expect(out.filter((m) => m.type === MessageType.Heartbeat)).toEqual([]);
    expect(l.reads.map((r) => r.context)).toEqual(['warmup', 'r']);
  });

  // Both wait for a heartbeat round of their own: with leases off, and with
  // leases on when the driver cannot vouch for its clock (lease: false).
  test.each([
    ['without leaseReads, the same read', false, {}],
    ['a read the driver asks to take no lease (its clock is in doubt)', true, { lease: false }],
  ] as const)('%s waits for a round of its own', (_name, leases, opts) => {
    const { net, l } = ledWithLeases(leases);
    net.hold((m) => m.type === MessageType.HeartbeatResp);
    l.raft.readIndex('r', opts);
    const out = net.drain(l);
    expect(out.filter((m) => m.type === MessageType.Heartbeat)).toHaveLength(2);
    for (const m of out) net.deliver(m);
    net.settle();
    expect(l.reads.map((r) => r.context)).toEqual(['warmup']);
    net.hold(null);
    net.release();
    expect(l.reads.map((r) => r.context)).toEqual(['warmup', 'r']);
  });

  test('the lease ends electionTicks − maxClockDriftTicks ticks after the confirming round was sent', () => {
    const { net, l } = ledWithLeases(true);
    net.isolate(l.id);
    net.tick(l.id, 7);
    net.drain(l);
    l.raft.readIndex('in-lease');
    expect(net.drain(l).filter((m) => m.type === MessageType.Heartbeat)).toEqual([]);
    expect(l.reads.map((r) => r.context)).toContain('in-lease');
    net.tick(l.id, 1);
    net.drain(l);
    expect(l.raft.status().role).toBe(Role.Leader);
    l.raft.readIndex('expired');
    expect(net.drain(l).filter((m) => m.type === MessageType.Heartbeat)).toHaveLength(2);
    expect(l.reads.map((r) => r.context)).not.toContain('expired');
  });

  test('a leader that sent TimeoutNow no longer serves reads from its lease', () => {
    const { net, l } = ledWithLeases(true);
    const target = ids.find((id) => id !== l.id)!;
    net.isolate(target); // TimeoutNow is lost: the transfer may still happen, the lease cannot be trusted
    expect(l.raft.transferLeadership(target).ok).toBe(true);
    net.settle();
    expect(net.sent.some((m) => m.type === MessageType.TimeoutNow && m.to === target)).toBe(true);
    l.raft.readIndex('r');
    expect(net.drain(l).filter((m) => m.type === MessageType.Heartbeat)).toHaveLength(2);
    expect(l.reads.map((r) => r.context)).not.toContain('r');
  });

  test('a lease never overlaps a newer leader while clocks drift within maxClockDriftTicks', () => {
    // The old leader is cut off; the others' clocks run faster than its own.
    // Whenever they have a leader of a newer term, the old one must not serve
    // a read from its lease. Returns how many lease reads overlapped a newer leader.
    const overlaps = (followerTicks: number, leaderTicks: number) => {
      const { net, l } = ledWithLeases(true);
      const others = ids.filter((id) => id !== l.id);
      net.partition([l.id], others);
      let n = 0;
      for (let step = 0; step < 60; step++) {
        for (const id of others) net.tick(id);
        if (step % followerTicks < leaderTicks) net.tick(l.id);
        net.settle();
        if (net.agreedLeader(others) && l.raft.status().role === Role.Leader) {
          const before = l.reads.length;
          l.raft.readIndex(`probe${step}`);
          net.settle();
          if (l.reads.length > before) n++;
        }
      }
      return n;
    };
    // maxClockDriftTicks 2 of electionTicks 10: the leader's clock may run at 8/10 of the others'.
    expect(overlaps(5, 4)).toBe(0);
    // Beyond the bound the lease is no longer safe, which shows the check above can fail.
    expect(overlaps(10, 7)).toBeGreaterThan(0);
  });

  test('with leaseReads, a node ignores vote requests for one election timeout after it starts', () => {
    // It cannot know when it last heard from a leader whose lease may still run.
    const net = new TestNetwork(ids, { leaseReads: { maxClockDriftTicks: 2 } });
    const b = net.node('b');
    const request = () => msg(MessageType.Vote, 'c', 'b', 1, { index: 0, logTerm: 0 });
    b.raft.step(request());
    expect(net.drain(b).filter((m) => m.type === MessageType.VoteResp)).toEqual([]);
    expect(b.raft.status().term).toBe(0);
    net.isolate('b');
    net.tick('b', 10);
    net.drain(b);
    b.raft.step(request());
    const resp = net.drain(b).filter((m) => m.type === MessageType.VoteResp);
    expect(resp.map((m) => m.reject)).toEqual([false]);
  });
});
