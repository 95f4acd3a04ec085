// Scenarios shared by more than one test file.
import { expect } from 'vitest';
import { MessageType, Role } from '../../raft/index.js';
import type { InjectedBugs } from '../../raft/index.js';
import { TestNetwork, enc } from './harness.js';

export const five = ['s1', 's2', 's3', 's4', 's5'];

/** Ticks `id` alone (settling after each tick) until it leads; throws if it never does. */
export function tickToLeadership(net: TestNetwork, id: string, maxTicks = 200): void {
  for (let i = 0; i < maxTicks; i++) {
    if (net.node(id).raft.status().role === Role.Leader) return;
    net.tick(id);
    net.settle();
  }
  throw new Error(`${id} did not become leader within ${maxTicks} ticks`);
}

/**
 * Raft thesis Figure 3.7, steps (a)–(c), with the no-op that our leaders
 * append on election standing in for the paper's client entries:
 *
 * (a) s1 leads term 1; index 1 is everywhere; X (index 2, term 1) reaches s2 only.
 * (b) s1 crashes; s5 is elected in term 2 by s3, s4 and itself, and appends
 *     its no-op at index 2 (term 2), which reaches nobody.
 * (c) s5 crashes; s1 restarts, is elected in term 3 and brings X to s3 and s4,
 *     but none of its own term-3 entries get through: X is stored on a
 *     majority while the leader's term is 3.
 *
 * `bugs` are the injected bugs of the restarted s1 (the leader of step c).
 * Elections use neither pre-vote nor check-quorum, as in the paper.
 */
export function figure37(bugs: InjectedBugs = {}): TestNetwork {
  const net = new TestNetwork(five, { preVote: false, checkQuorum: false, maxEntriesPerAppend: 1 });
  // (a)
  net.campaign('s1');
  net.partition(['s1', 's2'], ['s3', 's4', 's5']);
  net.node('s1').raft.propose(enc('X'));
  net.settle();
  expect(net.node('s2').storage.term(2)).toBe(1);
  // (b)
  net.heal();
  net.isolate('s1');
  net.intercept((m) => (m.from === 's5' && m.type === MessageType.Append ? null : m));
  net.campaign('s5');
  expect(net.node('s5').raft.status()).toMatchObject({ role: Role.Leader, term: 2 });
  expect(net.node('s5').storage.term(2)).toBe(2);
  // (c)
  net.heal();
  net.isolate('s5');
  net.restart('s1', { bugs });
  net.intercept((m) =>
    m.from === 's1' && m.type === MessageType.Append ? { ...m, entries: m.entries.filter((e) => e.term < 3) } : m,
  );
  tickToLeadership(net, 's1');
  net.settle();
  expect(net.node('s1').raft.status().term).toBe(3);
  for (const id of ['s1', 's2', 's3', 's4']) expect(net.node(id).storage.term(2)).toBe(1);
  return net;
}
