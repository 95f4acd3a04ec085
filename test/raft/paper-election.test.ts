// Leader election, checked against the Raft thesis (Ongaro 2014) section by
// section, as etcd's raft_paper_test.go: §3.4 elections, §5.4.1 the election
// restriction, §9.6 pre-vote, §6.2/§4.2.3 check-quorum and vote leases.
import { describe, expect, test } from 'vitest';
import { EntryType, MessageType, Role } from '../../raft/index.js';
import { Solo, TestNetwork, enc, msg } from './harness.js';

const ids = ['a', 'b', 'c'];

describe('§3.4 leader election', () => {
  test('one round of RequestVote elects a leader that every node then follows', () => {
    const net = new TestNetwork(ids);
    net.campaign('a');
    const a = net.node('a').raft.status();
    expect(a.role).toBe(Role.Leader);
    expect(a.term).toBe(1);
    for (const id of ['b', 'c']) {
      const s = net.node(id).raft.status();
      expect(s).toMatchObject({ role: Role.Follower, term: 1, leader: 'a', vote: 'a' });
    }
    // One pre-vote round and one vote round: one request to each peer each.
    const requests = net.sent.filter((m) => m.type === MessageType.Vote || m.type === MessageType.PreVote);
    expect(requests.map((m) => `${m.type}:${m.to}`).sort()).toEqual(
      [`${MessageType.PreVote}:b`, `${MessageType.PreVote}:c`, `${MessageType.Vote}:b`, `${MessageType.Vote}:c`].sort(),
    );
  });

  test('election timeouts are randomized in [electionTicks, 2·electionTicks)', () => {
    const timeouts = new Set<number>();
    for (let seed = 1; seed <= 30; seed++) {
      const net = new TestNetwork(['x'], {}, ['x', 'y', 'z']);
      // Replace the node with one of a different seed.
      const n = net.add('x', net.node('x').storage, seed);
      let ticks = 0;
      while (n.raft.status().role === Role.Follower && ticks < 100) {
        n.raft.tick();
        ticks++;
      }
      expect(ticks).toBeGreaterThanOrEqual(10);
      expect(ticks).toBeLessThan(20);
      timeouts.add(ticks);
    }
    expect(timeouts.size).toBeGreaterThan(3);
  });

  test('a server votes for at most one candidate per term, and repeats its vote to the same one', () => {
    const a = new Solo('a', ids);
    const grant = (from: string) => a.step(msg(MessageType.Vote, from, 'a', 1)).find((m) => m.type === MessageType.VoteResp)!;
    expect(grant('b').reject).toBe(false);
    expect(a.storage.initialState().hardState).toMatchObject({ term: 1, vote: 'b' });
    expect(grant('c').reject).toBe(true);
    expect(grant('b').reject).toBe(false); // a retransmitted request gets the same answer
    expect(a.raft.status().vote).toBe('b');
  });

  test('§5.4.1 a voter refuses a candidate whose log is less up to date than its own', () => {
    // Voter log: terms [1, 1, 2]; last entry (3, 2).
    const cases: { lastIndex: number; lastTerm: number; granted: boolean }[] = [
      { lastIndex: 2, lastTerm: 2, granted: false }, // same last term, shorter
      { lastIndex: 5, lastTerm: 1, granted: false }, // longer, but an older last term
      { lastIndex: 3, lastTerm: 2, granted: true }, // identical
      { lastIndex: 4, lastTerm: 2, granted: true }, // same term, longer
      { lastIndex: 1, lastTerm: 3, granted: true }, // shorter, but a newer last term
    ];
    for (const c of cases) {
      const voter = new Solo('a', ids, [1, 1, 2], { term: 2 });
      const out = voter.step(msg(MessageType.Vote, 'b', 'a', 3, { index: c.lastIndex, logTerm: c.lastTerm }));
      const resp = out.find((m) => m.type === MessageType.VoteResp)!;
      expect({ ...c, granted: !resp.reject }).toEqual(c);
    }
  });

  test('§5.4.1 a candidate with a stale log loses; an up-to-date one then wins', () => {
    // No pre-vote and no lease, so that only the log check can refuse the vote.
    const net = new TestNetwork(ids, { preVote: false, checkQuorum: false });
    net.campaign('a');
    net.isolate('c');
    for (let i = 0; i < 3; i++) net.node('a').raft.propose(enc(`x${i}`));
    net.settle();
    expect(net.node('b').storage.lastIndex()).toBe(4);
    expect(net.node('c').storage.lastIndex()).toBe(1);

    net.heal();
    net.isolate('a'); // the leader crashes
    const mark = net.sent.length;
    net.campaign('c');
    expect(net.node('c').raft.status().role).toBe(Role.Candidate);
    const answer = net.sentSince(mark, (m) => m.type === MessageType.VoteResp && m.from === 'b' && m.to === 'c');
    expect(answer.map((m) => m.reject)).toEqual([true]);

    net.campaign('b');
    expect(net.node('b').raft.status().role).toBe(Role.Leader);
    net.tickAll(2);
    expect(net.node('c').storage.lastIndex()).toBe(net.node('b').storage.lastIndex());
  });

  test('split votes are resolved by randomized election timeouts', () => {
    const four = ['a', 'b', 'c', 'd'];
    const net = new TestNetwork(four, { preVote: false });
    // b and c time out together; a hears only b, d hears only c: 2 votes each of 4.
    for (const id of ['b', 'c']) {
      const n = net.node(id);
      while (n.raft.status().role !== Role.Candidate) n.raft.tick();
    }
    net.cutLink('b', 'd');
    net.cutLink('c', 'a');
    net.settle();
    expect(net.node('b').raft.status()).toMatchObject({ role: Role.Candidate, term: 1 });
    expect(net.node('c').raft.status()).toMatchObject({ role: Role.Candidate, term: 1 });
    expect(net.leader()).toBeUndefined();

    net.heal();
    net.tickUntil(() => net.leader() !== undefined, 100);
    const leader = net.leader()!;
    const term = leader.raft.status().term;
    expect(term).toBeGreaterThanOrEqual(2);
    for (const id of four) {
      const s = net.node(id).raft.status();
      expect(s.term).toBe(term);
      expect(s.leader).toBe(leader.id);
    }
    expect(four.filter((id) => net.node(id).raft.status().role === Role.Leader)).toHaveLength(1);
  });

  test('a new leader appends an empty no-op entry of its own term', () => {
    const net = new TestNetwork(ids);
    net.campaign('a');
    const [first] = net.node('a').storage.entries(1, 2, Infinity);
    expect(first).toMatchObject({ index: 1, term: 1, type: EntryType.Normal });
    expect(first!.data.length).toBe(0);

    // A second leader, in a later term, appends its own.
    net.isolate('a');
    net.tickUntil(() => net.leaderAmong(['b', 'c']) !== undefined);
    const b = net.leaderAmong(['b', 'c'])!;
    const term = b.raft.status().term;
    expect(term).toBeGreaterThan(1);
    const [second] = b.storage.entries(2, 3, Infinity);
    expect(second).toMatchObject({ index: 2, term, type: EntryType.Normal });
    expect(second!.data.length).toBe(0);
    expect(b.applied.map((e) => [e.index, e.term])).toEqual([
      [1, 1],
      [2, term],
    ]);
  });

  test('a stale leader steps down when it hears of a higher term, and its uncommitted entries are discarded', () => {
    const net = new TestNetwork(ids);
    net.campaign('a');
    net.isolate('a');
    net.node('a').raft.propose(enc('lost'));
    net.settle();
    // Only b and c tick: a stays a leader of term 1 while b and c elect a new one.
    for (let i = 0; i < 100 && !net.leaderAmong(['b', 'c']); i++) {
      net.tick('b');
      net.tick('c');
      net.settle();
    }
    const nl = net.leaderAmong(['b', 'c'])!;
    expect(net.node('a').raft.status()).toMatchObject({ role: Role.Leader, term: 1 });
    net.node(nl.id).raft.propose(enc('kept'));
    net.heal();
    net.tickAll(3);
    expect(net.node('a').raft.status()).toMatchObject({ role: Role.Follower, leader: nl.id, term: nl.raft.status().term });
    const applied = net.node('a').applied.filter((e) => e.data.length > 0).map((e) => new TextDecoder().decode(e.data));
    expect(applied).toEqual(['kept']);
  });
});

describe('§9.6 pre-vote', () => {
  function isolatedFollower(preVote: boolean) {
    const net = new TestNetwork(ids, { preVote });
    net.campaign('a');
    net.isolate('c');
    net.tickAll(50);
    return net;
  }

  test('an isolated node does not increase its term', () => {
    const net = isolatedFollower(true);
    expect(net.node('c').raft.status().term).toBe(1);
    expect(net.node('a').raft.status()).toMatchObject({ role: Role.Leader, term: 1 });
  });

  test('without pre-vote the same isolated node keeps raising its term (the check above can fail)', () => {
    const net = isolatedFollower(false);
    expect(net.node('c').raft.status().term).toBeGreaterThan(2);
  });

  test('a node that rejoins after a partition does not depose a healthy leader', () => {
    const net = isolatedFollower(true);
    net.heal();
    net.tickAll(30);
    expect(net.node('a').raft.status()).toMatchObject({ role: Role.Leader, term: 1 });
    expect(net.node('c').raft.status()).toMatchObject({ role: Role.Follower, term: 1, leader: 'a' });
  });

  test('without pre-vote the rejoining node deposes the leader (the check above can fail)', () => {
    const net = isolatedFollower(false);
    net.heal();
    net.tickAll(1);
    expect(net.node('a').raft.status().term).toBeGreaterThan(1);
  });

  // Thesis §9.6: voters grant a pre-vote only "if the candidate's log is
  // sufficiently up-to-date, and the voters have not received heartbeats from
  // a valid leader for at least a baseline election timeout". The core checks
  // the second condition whenever pre-vote or check-quorum is on (FINDINGS.md, F1).
  test('pre-vote alone: voters that heard from a leader within the election timeout refuse a pre-vote', () => {
    const net = new TestNetwork(ids, { preVote: true, checkQuorum: false });
    net.campaign('a');
    net.tickAll(3); // b and c hear heartbeats
    // c stops hearing the leader and its timer fires; a and b heard from a just now.
    const c = net.node('c');
    while (c.raft.status().role === Role.Follower) c.raft.tick();
    net.settle();
    expect(net.node('a').raft.status()).toMatchObject({ role: Role.Leader, term: 1 });
    expect(net.node('c').raft.status().term).toBe(1);
  });

  test('with check-quorum (the default) the same pre-vote is refused and the leader stays', () => {
    const net = new TestNetwork(ids);
    net.campaign('a');
    net.tickAll(3);
    const c = net.node('c');
    while (c.raft.status().role === Role.Follower) c.raft.tick();
    net.settle();
    expect(net.node('a').raft.status()).toMatchObject({ role: Role.Leader, term: 1 });
    expect(net.node('c').raft.status().term).toBe(1);
  });
});

describe('§6.2 check-quorum and §4.2.3 vote leases', () => {
  test('a leader cut off from a quorum steps down within two election timeouts', () => {
    const net = new TestNetwork(ids);
    net.campaign('a');
    net.tickAll(2);
    net.isolate('a');
    let ticks = 0;
    while (net.node('a').raft.status().role === Role.Leader && ticks < 100) {
      net.tick('a');
      net.settle();
      ticks++;
    }
    expect(net.node('a').raft.status().role).toBe(Role.Follower);
    expect(ticks).toBeLessThanOrEqual(2 * 10);
    expect(ticks).toBeGreaterThan(0);
  });

  test('without check-quorum the cut-off leader stays leader (the check above can fail)', () => {
    const net = new TestNetwork(ids, { checkQuorum: false });
    net.campaign('a');
    net.isolate('a');
    net.tick('a', 100);
    net.settle();
    expect(net.node('a').raft.status().role).toBe(Role.Leader);
  });

  test('a leader that hears from a quorum stays leader indefinitely', () => {
    const net = new TestNetwork(ids);
    net.campaign('a');
    net.isolate('c');
    net.tickAll(100);
    expect(net.node('a').raft.status()).toMatchObject({ role: Role.Leader, term: 1 });
  });

  test('a follower that heard from the leader within the election timeout ignores a RequestVote', () => {
    const net = new TestNetwork(ids);
    net.campaign('a');
    net.tickAll(2);
    const b = net.node('b');
    const last = b.raft.status().lastIndex;
    const request = () => msg(MessageType.Vote, 'c', 'b', 2, { index: last, logTerm: 1 });

    b.raft.step(request());
    const out = net.drain(b);
    expect(out.filter((m) => m.type === MessageType.VoteResp)).toEqual([]);
    expect(b.raft.status()).toMatchObject({ term: 1, leader: 'a' });

    // An election timeout without the leader: the same request is granted.
    net.isolate('a');
    net.tick('b', 10);
    net.drain(b);
    b.raft.step(request());
    const granted = net.drain(b).filter((m) => m.type === MessageType.VoteResp);
    expect(granted).toHaveLength(1);
    expect(granted[0]!.reject).toBe(false);
    expect(b.raft.status()).toMatchObject({ term: 2, vote: 'c' });
  });
});
