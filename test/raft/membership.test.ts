// Cluster membership changes, one server at a time (Raft thesis §4.1–§4.2):
// learners, promotion, removal, one change at a time, a leader removing
// itself, and configurations that take effect on append and revert on truncation.
import { describe, expect, test } from 'vitest';
import { ConfChangeType, EntryType, MessageType, Role } from '../../raft/index.js';
import type { Entry, Message } from '../../raft/index.js';
import { MemoryStorage } from '../../storage/memory-storage.js';
import { TestNetwork, dec, enc, logTerms, msg } from './harness.js';

const voters = ['a', 'b', 'c'];
const isElection = (m: Message) => m.type === MessageType.Vote || m.type === MessageType.PreVote;
const payloads = (n: { applied: Entry[] }) => n.applied.filter((e) => e.type === EntryType.Normal && e.data.length > 0).map((e) => dec(e.data));

/** a leads {a, b, c}; d runs but is not a member yet (it knows the bootstrap configuration). */
function groupWithSpareNode() {
  const net = new TestNetwork([...voters, 'd'], {}, voters);
  net.campaign('a');
  net.tickAll(1);
  return net;
}

function addLearnerD(net: TestNetwork) {
  expect(net.node('a').raft.proposeConfChange({ type: ConfChangeType.AddLearner, node: 'd' }).ok).toBe(true);
  net.settle();
  net.tickAll(1);
  expect(net.node('a').raft.status().confState).toEqual({ voters, learners: ['d'] });
}

describe('§4.1 learners', () => {
  test('a learner receives the log but does not count toward commitment', () => {
    const net = groupWithSpareNode();
    addLearnerD(net);
    const a = net.node('a');
    expect(logTerms(net.node('d'))).toEqual(logTerms(a));
    expect(net.node('d').raft.status().confState).toEqual({ voters, learners: ['d'] });

    net.partition(['a', 'd'], ['b'], ['c']);
    const commit = a.raft.status().commit;
    a.raft.propose(enc('x'));
    net.settle();
    expect(net.node('d').storage.lastIndex()).toBe(a.storage.lastIndex());
    expect(a.raft.status().commit).toBe(commit); // the leader and a learner are not a majority of 3
    net.heal();
    net.tickAll(2);
    expect(a.raft.status().commit).toBe(commit + 1);
    expect(payloads(net.node('d'))).toEqual(['x']);
  });

  test('a learner never campaigns and is never asked for its vote', () => {
    const net = groupWithSpareNode();
    addLearnerD(net);
    const d = net.node('d');
    let mark = net.sent.length;
    net.tick('d', 100);
    net.drain(d);
    expect(d.raft.status()).toMatchObject({ role: Role.Follower, term: 1 });
    expect(net.sentSince(mark, isElection)).toEqual([]);

    mark = net.sent.length;
    net.isolate('a');
    net.tickUntil(() => net.agreedLeader(['b', 'c', 'd']) !== undefined);
    const requests = net.sentSince(mark, isElection);
    expect(requests.length).toBeGreaterThan(0);
    expect(requests.filter((m) => m.to === 'd' || m.from === 'd')).toEqual([]);
  });

  test('a learner\'s vote does not count toward winning an election', () => {
    const net = groupWithSpareNode();
    addLearnerD(net);
    net.isolate('b');
    const b = net.node('b');
    while (b.raft.status().role === Role.Follower) b.raft.tick();
    net.drain(b);
    expect(b.raft.status().role).toBe(Role.PreCandidate);
    const term = b.raft.status().term + 1;
    b.raft.step(msg(MessageType.PreVoteResp, 'd', 'b', term));
    net.drain(b);
    expect(b.raft.status().role).toBe(Role.PreCandidate);
    b.raft.step(msg(MessageType.PreVoteResp, 'c', 'b', term));
    net.drain(b);
    expect(b.raft.status().role).toBe(Role.Candidate); // a voter's grant does count
  });

  test('a promoted learner counts toward commitment', () => {
    const net = groupWithSpareNode();
    addLearnerD(net);
    const a = net.node('a');
    expect(a.raft.proposeConfChange({ type: ConfChangeType.AddVoter, node: 'd' }).ok).toBe(true);
    net.settle();
    net.tickAll(1);
    expect(a.raft.status().confState).toEqual({ voters: ['a', 'b', 'c', 'd'], learners: [] });

    // Now a majority is 3 of 4: a and b alone cannot commit; d's acknowledgement is needed.
    net.isolate('c');
    net.hold((m) => m.type === MessageType.Append && m.to === 'd');
    const commit = a.raft.status().commit;
    a.raft.propose(enc('y'));
    net.settle();
    expect(a.raft.status().commit).toBe(commit);
    net.hold(null);
    net.release();
    expect(a.raft.status().commit).toBe(commit + 1);
  });
});

describe('§4.1 adding and removing voters', () => {
  test('removing a voter shrinks the majority; the removed node stops hearing from the leader and cannot disrupt it', () => {
    const four = ['a', 'b', 'c', 'd'];
    const net = new TestNetwork(four);
    net.campaign('a');
    net.tickAll(1);
    const a = net.node('a');
    net.partition(['a', 'b'], ['c'], ['d']);
    const commit = a.raft.status().commit;
    a.raft.propose(enc('x'));
    net.settle();
    expect(a.raft.status().commit).toBe(commit); // 2 of 4 is no majority
    net.heal();
    net.tickAll(1);

    expect(a.raft.proposeConfChange({ type: ConfChangeType.RemoveNode, node: 'd' }).ok).toBe(true);
    net.settle();
    net.tickAll(1);
    expect(a.raft.status().confState).toEqual({ voters: ['a', 'b', 'c'], learners: [] });
    expect(a.raft.status().progress!.has('d')).toBe(false);

    net.partition(['a', 'b'], ['c'], ['d']);
    const before = a.raft.status().commit;
    a.raft.propose(enc('y'));
    net.settle();
    expect(a.raft.status().commit).toBe(before + 1); // 2 of 3 is

    net.heal();
    const mark = net.sent.length;
    const term = a.raft.status().term;
    net.tickAll(30);
    expect(net.sentSince(mark, (m) => m.to === 'd')).toEqual([]);
    // §4.2.3: d never received the entry that removed it (the change took
    // effect on the leader when appended), so it times out and campaigns; the
    // others ignore it while they hear from the leader, and pre-vote keeps its term.
    expect(net.sentSince(mark, (m) => m.from === 'd' && isElection(m)).length).toBeGreaterThan(0);
    expect(a.raft.status()).toMatchObject({ role: Role.Leader, term });
    expect(net.node('d').raft.status().term).toBe(term);
  });

  test('removing the last voter is refused (invalid_conf_change), not thrown', () => {
    const net = new TestNetwork(['a']);
    net.campaign('a');
    net.settle();
    const a = net.node('a');
    expect(a.raft.status().role).toBe(Role.Leader);
    expect(a.raft.proposeConfChange({ type: ConfChangeType.RemoveNode, node: 'a' })).toEqual({ ok: false, reason: 'invalid_conf_change', leader: 'a' });
    net.settle();
    expect(a.raft.status().confState).toEqual({ voters: ['a'], learners: [] });
  });

  test('a second configuration change is refused while one is uncommitted', () => {
    const net = groupWithSpareNode();
    const a = net.node('a');
    net.hold((m) => m.type === MessageType.Append && m.from === 'a');
    expect(a.raft.proposeConfChange({ type: ConfChangeType.AddLearner, node: 'd' }).ok).toBe(true);
    net.settle();
    expect(a.raft.proposeConfChange({ type: ConfChangeType.AddLearner, node: 'e' })).toEqual({
      ok: false,
      reason: 'conf_change_pending',
      leader: 'a',
    });
    expect(a.raft.propose(enc('ordinary')).ok).toBe(true); // other proposals are not held back
    net.hold(null);
    net.release();
    expect(a.raft.proposeConfChange({ type: ConfChangeType.AddLearner, node: 'e' }).ok).toBe(true);
  });

  test('a new leader refuses configuration changes until its no-op has committed', () => {
    const net = new TestNetwork([...voters, 'd'], {}, voters);
    net.hold((m) => m.type === MessageType.Append && m.from === 'a');
    net.campaign('a');
    const a = net.node('a');
    expect(a.raft.status()).toMatchObject({ role: Role.Leader, commit: 0 });
    expect(a.raft.proposeConfChange({ type: ConfChangeType.AddLearner, node: 'd' })).toMatchObject({
      ok: false,
      reason: 'conf_change_pending',
    });
    net.hold(null);
    net.release();
    expect(a.raft.status().commit).toBe(1);
    expect(a.raft.proposeConfChange({ type: ConfChangeType.AddLearner, node: 'd' }).ok).toBe(true);
  });

  test('§4.2.2 a leader that removes itself steps down once the change commits, and the rest carry on', () => {
    const net = new TestNetwork(voters);
    net.campaign('a');
    net.tickAll(1);
    const a = net.node('a');
    net.hold((m) => m.type === MessageType.Append && m.from === 'a');
    expect(a.raft.proposeConfChange({ type: ConfChangeType.RemoveNode, node: 'a' }).ok).toBe(true);
    net.settle();
    // In force at once (§4.1), but the leader manages the cluster until it commits.
    expect(a.raft.status()).toMatchObject({ role: Role.Leader, confState: { voters: ['b', 'c'], learners: [] } });
    net.hold(null);
    net.release();
    expect(a.raft.status().role).toBe(Role.Follower);

    const mark = net.sent.length;
    net.tickUntil(() => net.agreedLeader(['b', 'c']) !== undefined);
    net.tickAll(20);
    expect(net.sentSince(mark, (m) => m.from === 'a' && isElection(m))).toEqual([]);
    const l = net.agreedLeader(['b', 'c'])!;
    expect(l.raft.status().confState).toEqual({ voters: ['b', 'c'], learners: [] });
    l.raft.propose(enc('z'));
    net.settle();
    net.tickAll(1);
    expect(payloads(net.node('b'))).toEqual(['z']);
    expect(payloads(net.node('c'))).toEqual(['z']);
  });

  test('a configuration takes effect on every server when appended, before it commits', () => {
    const net = groupWithSpareNode();
    const a = net.node('a');
    net.hold((m) => m.type === MessageType.AppendResp); // nothing commits
    const commit = a.raft.status().commit;
    a.raft.proposeConfChange({ type: ConfChangeType.AddLearner, node: 'd' });
    net.settle();
    for (const id of voters) {
      const s = net.node(id).raft.status();
      expect(s.commit).toBe(commit);
      expect(s.confState).toEqual({ voters, learners: ['d'] });
    }
  });

  test('a configuration reverts when its uncommitted entry is truncated by a later leader', () => {
    const ns = ['a', 'b', 'c', 'd', 'e'];
    const net = new TestNetwork(ns);
    net.campaign('a');
    net.tickAll(1);
    net.partition(['a', 'b'], ['c', 'd', 'e']);
    expect(net.node('a').raft.proposeConfChange({ type: ConfChangeType.AddLearner, node: 'f' }).ok).toBe(true);
    net.settle();
    for (const id of ['a', 'b']) expect(net.node(id).raft.status().confState.learners).toEqual(['f']);

    net.tickUntil(() => net.agreedLeader(['c', 'd', 'e']) !== undefined);
    const l = net.agreedLeader(['c', 'd', 'e'])!;
    l.raft.propose(enc('w'));
    net.settle();
    net.heal();
    net.tickAll(5);
    for (const id of ns) {
      expect(logTerms(net.node(id))).toEqual(logTerms(l));
      expect(net.node(id).raft.status().confState).toEqual({ voters: ns, learners: [] });
    }
  });

  // DESIGN.md: a node that lost its memory "rejoins as a learner, catches up
  // by snapshot". Its storage is new (`new MemoryStorage()`: an empty log and
  // an empty configuration). If the leader has not compacted its log, appends
  // from index 1 would bring it up instead, and the group's bootstrap
  // configuration — held in the leader's storage, not in any entry — would
  // never reach it: it ended up with {voters: [], learners: [d]} and, once
  // promoted, believed it was the only voter (FINDINGS.md, F2). Since
  // cf9ce80 a node with no configuration refuses appends, and takes one from
  // the snapshot the leader sends once its log is compacted.
  test('a node that joins with no configuration refuses appends until a snapshot gives it one (FINDINGS.md, F2)', () => {
    const net = new TestNetwork(voters);
    net.campaign('a');
    const a = net.node('a');
    a.raft.propose(enc('x'));
    net.settle();
    const d = net.add('d', new MemoryStorage(), 99);
    expect(a.raft.proposeConfChange({ type: ConfChangeType.AddLearner, node: 'd' }).ok).toBe(true);
    net.settle();
    net.tickAll(2);
    // From an uncompacted log the bootstrap configuration cannot reach d: it takes nothing.
    expect(d.storage.lastIndex()).toBe(0);
    expect(d.raft.status().confState).toEqual({ voters: [], learners: [] });
    // Once the leader compacts, d gets a snapshot carrying the configuration, then the rest by appends.
    const applied = a.raft.status().applied;
    a.storage.createSnapshot(applied, a.raft.appliedConfState(), new Uint8Array([1]));
    net.tickAll(3);
    expect(d.storage.lastIndex()).toBe(a.storage.lastIndex());
    expect(d.raft.status().confState).toEqual({ voters, learners: ['d'] });
  });
});
