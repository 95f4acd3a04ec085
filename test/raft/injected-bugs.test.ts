// The switches of RaftConfig.bugs: each turns on one deliberate bug, so that
// the simulation can prove it catches it. Each test is a small scenario in
// which the core with the switch on misbehaves exactly as the switch says,
// beside the same scenario with the switch off.
import { describe, expect, test } from 'vitest';
import { MessageType, Role } from '../../raft/index.js';
import type { InjectedBugs } from '../../raft/index.js';
import { Solo, TestNetwork, enc, logTerms, msg } from './harness.js';
import { figure37 } from './scenarios.js';

const ids = ['a', 'b', 'c'];
const entry = (index: number, term: number) => ({ index, term, type: 0, data: enc(`n${index}`) });

describe('injected bugs', () => {
  test('voteWithoutLogCheck: a vote is granted to a candidate whose log is behind', () => {
    const ask = (bugs: InjectedBugs) => {
      const voter = new Solo('a', ids, [1, 1, 2], { term: 2, config: { bugs } });
      const out = voter.step(msg(MessageType.Vote, 'b', 'a', 3, { index: 2, logTerm: 1 }));
      return out.find((m) => m.type === MessageType.VoteResp)!.reject;
    };
    expect(ask({})).toBe(true);
    expect(ask({ voteWithoutLogCheck: true })).toBe(false);
  });

  test('appendWithoutPrevCheck: an append whose previous entry does not match is accepted, breaking log matching', () => {
    const append = (bugs: InjectedBugs) => {
      const b = new Solo('b', ids, [1, 1], { term: 1, config: { bugs } });
      // The leader of term 2 has (2, 2) before its new entry; b has (2, 1).
      const out = b.step(msg(MessageType.Append, 'a', 'b', 2, { index: 2, logTerm: 2, entries: [entry(3, 2)], commit: 0 }));
      return { resp: out.find((m) => m.type === MessageType.AppendResp)!, log: logTerms(b) };
    };
    const sound = append({});
    expect(sound.resp.reject).toBe(true);
    expect(sound.log).toEqual([
      [1, 1],
      [2, 1],
    ]);
    const buggy = append({ appendWithoutPrevCheck: true });
    expect(buggy.resp).toMatchObject({ reject: false, index: 3 });
    expect(buggy.log).toEqual([
      [1, 1],
      [2, 1],
      [3, 2],
    ]);
  });

  test('commitPreviousTermByCounting: in Figure 3.7 (c) the leader commits and applies the old-term entry', () => {
    const sound = figure37();
    expect(sound.node('s1').raft.status().commit).toBe(1);
    const buggy = figure37({ commitPreviousTermByCounting: true });
    const s1 = buggy.node('s1');
    expect(s1.raft.status().commit).toBe(2);
    expect(s1.applied.some((e) => e.index === 2 && e.term === 1)).toBe(true);
    // …an entry that step (d) of the figure may legitimately overwrite (see paper-replication.test.ts).
  });

  test('readIndexWithoutHeartbeat: a partitioned leader serves a read at once', () => {
    const read = (bugs: InjectedBugs) => {
      const net = new TestNetwork(ids, { bugs });
      net.campaign('a');
      net.tickAll(1);
      net.isolate('a');
      net.node('a').raft.readIndex('r');
      net.settle();
      return net.node('a').reads;
    };
    expect(read({})).toEqual([]);
    expect(read({ readIndexWithoutHeartbeat: true })).toEqual([{ context: 'r', index: 1 }]);
  });

  test('voteBeforePersist: a vote goes out before it is persisted, and after a restart the node votes again in the same term', () => {
    const run = (bugs: InjectedBugs) => {
      const a = new Solo('a', ids, [], { config: { bugs } });
      a.raft.step(msg(MessageType.Vote, 'b', 'a', 1));
      const rd = a.raft.ready();
      const granted = rd.messages.some((m) => m.type === MessageType.VoteResp && !m.reject);
      a.storage.saveSync({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot });
      a.raft.advance();
      a.restart();
      const second = a.step(msg(MessageType.Vote, 'c', 'a', 1)).find((m) => m.type === MessageType.VoteResp)!;
      return { granted, persistedVote: rd.hardState?.vote ?? null, secondGranted: !second.reject };
    };
    expect(run({})).toEqual({ granted: true, persistedVote: 'b', secondGranted: false });
    expect(run({ voteBeforePersist: true })).toEqual({ granted: true, persistedVote: null, secondGranted: true });
  });

  test('voteBeforePersist: two leaders are elected in one term across a restart', () => {
    const run = (bugs: InjectedBugs) => {
      const net = new TestNetwork(ids, { preVote: false, checkQuorum: false, bugs });
      net.isolate('c');
      // b votes for a in term 1; a's no-op is lost, so b's log stays as short as c's.
      net.intercept((m) => (m.type === MessageType.Append ? null : m));
      net.campaign('a');
      expect(net.node('a').raft.status()).toMatchObject({ role: Role.Leader, term: 1 });
      net.intercept(null);
      net.restart('b');
      net.heal();
      net.isolate('a');
      const c = net.node('c');
      while (c.raft.status().role === Role.Follower) c.raft.tick();
      net.settle();
      return { a: net.node('a').raft.status(), c: c.raft.status() };
    };
    const sound = run({});
    expect(sound.c).toMatchObject({ role: Role.Candidate, term: 1 });
    const buggy = run({ voteBeforePersist: true });
    expect(buggy.a).toMatchObject({ role: Role.Leader, term: 1 });
    expect(buggy.c).toMatchObject({ role: Role.Leader, term: 1 }); // election safety violated
  });
});
