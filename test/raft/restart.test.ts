// Restart from storage: what a node persisted through its Readies is all it
// needs to come back — term, vote, log and configuration — and committed
// entries are handed over again from the applied index the driver gives.
import { describe, expect, test } from 'vitest';
import { ConfChangeType, MessageType, Role } from '../../raft/index.js';
import { TestNetwork, dec, enc, logTerms, msg } from './harness.js';

const ids = ['a', 'b', 'c'];

function withEntries() {
  const net = new TestNetwork([...ids, 'd'], {}, ids);
  net.campaign('a');
  for (let i = 0; i < 3; i++) net.node('a').raft.propose(enc(`e${i}`));
  net.settle();
  net.tickAll(1);
  return net;
}

describe('restart from storage', () => {
  test('a node rebuilt from its storage keeps its term, vote, log and commit index', () => {
    const net = withEntries();
    const before = net.node('b').raft.status();
    const log = logTerms(net.node('b'));
    expect(before).toMatchObject({ term: 1, vote: 'a', commit: 4 });
    const b = net.restart('b');
    const after = b.raft.status();
    expect(after).toMatchObject({ role: Role.Follower, term: before.term, vote: before.vote, commit: before.commit, lastIndex: before.lastIndex });
    expect(logTerms(b)).toEqual(log);
  });

  test('a restarted node re-emits the committed entries after `applied`, and only those', () => {
    const net = withEntries();
    let b = net.restart('b', { applied: 2 });
    net.drain(b);
    expect(b.applied.map((e) => e.index)).toEqual([3, 4]);
    b = net.restart('b');
    net.drain(b);
    expect(b.applied.map((e) => e.index)).toEqual([1, 2, 3, 4]);
    expect(b.applied.slice(1).map((e) => dec(e.data))).toEqual(['e0', 'e1', 'e2']);
  });

  test('a restarted node does not vote twice in a term', () => {
    const net = withEntries();
    const b = net.restart('b');
    const last = b.raft.status().lastIndex;
    b.raft.step(msg(MessageType.Vote, 'c', 'b', 1, { index: last, logTerm: 1 }));
    const resp = net.drain(b).filter((m) => m.type === MessageType.VoteResp);
    expect(resp.map((m) => m.reject)).toEqual([true]);
    b.raft.step(msg(MessageType.Vote, 'a', 'b', 1, { index: last, logTerm: 1 }));
    expect(net.drain(b).filter((m) => m.type === MessageType.VoteResp).map((m) => m.reject)).toEqual([false]);
  });

  test('a restarted node has the latest configuration in its log in force, committed or not', () => {
    const net = withEntries();
    net.node('a').raft.proposeConfChange({ type: ConfChangeType.AddLearner, node: 'd' });
    net.settle();
    net.tickAll(1);
    // An uncommitted change on top: b appends it, nothing commits.
    net.hold((m) => m.type === MessageType.AppendResp);
    net.node('a').raft.proposeConfChange({ type: ConfChangeType.AddVoter, node: 'd' });
    net.settle();
    const b = net.restart('b');
    expect(b.raft.status().confState).toEqual({ voters: ['a', 'b', 'c', 'd'], learners: [] });
    expect(b.raft.status().commit).toBeLessThan(b.raft.status().lastIndex);
    expect(b.raft.appliedConfState()).toEqual({ voters: ids, learners: [] });
  });

  test('a restarted leader comes back as a follower of its term and the group goes on', () => {
    const net = withEntries();
    const log = logTerms(net.node('a'));
    const a = net.restart('a');
    expect(a.raft.status()).toMatchObject({ role: Role.Follower, term: 1, leader: null });
    net.tickUntil(() => net.agreedLeader(ids) !== undefined);
    const l = net.agreedLeader(ids)!;
    l.raft.propose(enc('after'));
    net.settle();
    net.tickAll(1);
    expect(logTerms(a).slice(0, log.length)).toEqual(log);
    expect(a.applied.filter((e) => e.data.length > 0).map((e) => dec(e.data))).toEqual(['e0', 'e1', 'e2', 'after']);
  });
});
