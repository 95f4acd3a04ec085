// Log replication and commitment, checked against the Raft thesis: §3.5 the
// AppendEntries consistency check, log repair and fast back-off; §3.6.2
// committing entries from previous terms (Figure 3.7).
import { describe, expect, test } from 'vitest';
import { MessageType, Role } from '../../raft/index.js';
import { Solo, TestNetwork, dec, enc, logTerms, msg } from './harness.js';
import { figure37, five, tickToLeadership } from './scenarios.js';

const ids = ['a', 'b', 'c'];
const entry = (index: number, term: number, data = `n${index}`) => ({ index, term, type: 0, data: enc(data) });
const payloads = (n: { applied: { data: Uint8Array }[] }) => n.applied.filter((e) => e.data.length > 0).map((e) => dec(e.data));

describe('§3.5 log replication', () => {
  test('an entry commits once a majority stores it, and a lagging follower catches up later', () => {
    const net = new TestNetwork(ids);
    net.campaign('a');
    net.cutLink('a', 'c');
    const r = net.node('a').raft.propose(enc('x'));
    expect(r.ok).toBe(true);
    net.settle();
    expect(net.node('a').raft.status().commit).toBe(2);
    expect(payloads(net.node('a'))).toEqual(['x']);
    expect(net.node('c').storage.lastIndex()).toBe(1);
    net.heal();
    net.tickAll(2);
    expect(payloads(net.node('c'))).toEqual(['x']);
  });

  test('the consistency check: a follower rejects an append whose previous entry it does not hold', () => {
    const b = new Solo('b', ids, [1, 1]);
    const out = b.step(msg(MessageType.Append, 'a', 'b', 2, { index: 2, logTerm: 2, entries: [entry(3, 2)], commit: 0 }));
    const resp = out.find((m) => m.type === MessageType.AppendResp)!;
    expect(resp).toMatchObject({ reject: true, index: 2, rejectHint: 2, logTerm: 1 });
    expect(logTerms(b)).toEqual([
      [1, 1],
      [2, 1],
    ]);
  });

  test('a follower deletes a conflicting suffix and takes the leader\'s entries', () => {
    const b = new Solo('b', ids, [1, 1, 1, 1]);
    const out = b.step(msg(MessageType.Append, 'a', 'b', 2, { index: 1, logTerm: 1, entries: [entry(2, 2), entry(3, 2)], commit: 0 }));
    expect(out.find((m) => m.type === MessageType.AppendResp)).toMatchObject({ reject: false, index: 3 });
    expect(logTerms(b)).toEqual([
      [1, 1],
      [2, 2],
      [3, 2],
    ]);
  });

  test('a follower keeps entries after the append that do not conflict (a reordered, older append truncates nothing)', () => {
    const b = new Solo('b', ids, [1, 1, 1, 1], { term: 1 });
    const out = b.step(msg(MessageType.Append, 'a', 'b', 1, { index: 1, logTerm: 1, entries: [entry(2, 1, 'e2')], commit: 0 }));
    expect(out.find((m) => m.type === MessageType.AppendResp)).toMatchObject({ reject: false, index: 2 });
    expect(b.storage.lastIndex()).toBe(4);
  });

  test('a follower commits up to the leader\'s commit index, but never past the entries the append proved', () => {
    const b = new Solo('b', ids, [1, 1, 1, 1, 1], { term: 1 });
    b.step(msg(MessageType.Append, 'a', 'b', 1, { index: 1, logTerm: 1, entries: [entry(2, 1, 'e2')], commit: 5 }));
    // Entries 3..5 were not proved to match the leader's log by this append.
    expect(b.raft.status().commit).toBe(2);
    expect(b.applied.map((e) => e.index)).toEqual([1, 2]);
  });

  test('an append below the follower\'s commit index is answered with that index and changes nothing', () => {
    const b = new Solo('b', ids, [1, 1, 1], { term: 1, commit: 3 });
    const out = b.step(msg(MessageType.Append, 'a', 'b', 1, { index: 1, logTerm: 1, entries: [entry(2, 1, 'other')], commit: 3 }));
    expect(out.find((m) => m.type === MessageType.AppendResp)).toMatchObject({ reject: false, index: 3 });
    expect(dec(b.storage.entries(2, 3, Infinity)[0]!.data)).toBe('e2');
  });

  test('follower logs converge after conflicting suffixes built by partitions', () => {
    const ns = ['a', 'b', 'c', 'd', 'e'];
    const net = new TestNetwork(ns);
    net.campaign('a');
    net.node('a').raft.propose(enc('c1'));
    net.node('a').raft.propose(enc('c2'));
    net.settle();
    net.tickAll(1);

    // a, cut off, appends three entries of term 1 that nobody else will have.
    net.isolate('a');
    for (let i = 0; i < 3; i++) net.node('a').raft.propose(enc(`a-only-${i}`));
    net.settle();

    // The other four elect a leader; it reaches one follower with three entries of its term.
    net.tickUntil(() => net.agreedLeader(['b', 'c', 'd', 'e']) !== undefined);
    const l2 = net.agreedLeader(['b', 'c', 'd', 'e'])!.id;
    const [p, q, r] = ['b', 'c', 'd', 'e'].filter((id) => id !== l2) as [string, string, string];
    net.partition([l2, p], [q, r], ['a']);
    for (let i = 0; i < 3; i++) net.node(l2).raft.propose(enc(`l2-only-${i}`));
    net.settle();
    expect(net.node(p).storage.lastIndex()).toBe(net.node(l2).storage.lastIndex());

    // a rejoins q and r: they elect one of q and r (a's log is older) and commit over a's suffix.
    net.partition([l2, p], ['a', q, r]);
    net.tickUntil(() => net.agreedLeader(['a', q, r]) !== undefined);
    const l3 = net.agreedLeader(['a', q, r])!;
    expect(l3.id).not.toBe('a');
    l3.raft.propose(enc('l3-1'));
    net.settle();
    expect(logTerms(net.node('a'))).toEqual(logTerms(l3));

    // Everyone rejoins: p's suffix of the old leader's term is replaced too.
    net.heal();
    net.tickAll(5);
    l3.raft.propose(enc('l3-2'));
    net.settle();
    net.tickAll(2);
    const reference = logTerms(l3);
    for (const id of ns) {
      expect(logTerms(net.node(id))).toEqual(reference);
      expect(payloads(net.node(id))).toEqual(['c1', 'c2', 'l3-1', 'l3-2']);
    }
  });

  test('fast back-off: a follower holding 50 entries of an old term is repaired with one rejection', () => {
    const net = new TestNetwork(ids);
    net.campaign('a');
    // a, cut off, appends 50 entries of term 1.
    net.isolate('a');
    for (let i = 0; i < 50; i++) net.node('a').raft.propose(enc(`old${i}`));
    net.settle();
    // b and c elect b, which commits 50 entries of its term with c.
    for (let i = 0; i < 100 && !net.leaderAmong(['b', 'c']); i++) {
      net.tick('b');
      net.tick('c');
      net.settle();
    }
    const b = net.leaderAmong(['b', 'c'])!;
    for (let i = 0; i < 50; i++) b.raft.propose(enc(`new${i}`));
    net.settle();
    // The other (c) leads next, with a long log; a is probed from c's last index down.
    net.heal();
    net.isolate(b.id);
    const other = b.id === 'b' ? 'c' : 'b';
    const mark = net.sent.length;
    net.tickUntil(() => net.agreedLeader(['a', other]) !== undefined);
    net.tickAll(3);
    const lead = net.node(other);
    expect(lead.raft.status().role).toBe(Role.Leader);
    expect(logTerms(net.node('a'))).toEqual(logTerms(lead));
    const rejections = net.sentSince(mark, (m) => m.type === MessageType.AppendResp && m.from === 'a' && m.reject);
    // One per entry would be ~50.
    expect(rejections.length).toBeGreaterThanOrEqual(1);
    expect(rejections.length).toBeLessThanOrEqual(2);
  });

  test('fast back-off: a follower missing 50 entries is brought up with one rejection', () => {
    const net = new TestNetwork(ids);
    net.campaign('a');
    net.isolate('c');
    for (let i = 0; i < 50; i++) net.node('a').raft.propose(enc(`e${i}`));
    net.settle();
    net.heal();
    const mark = net.sent.length;
    net.tickAll(3);
    expect(net.node('c').storage.lastIndex()).toBe(51);
    const rejections = net.sentSince(mark, (m) => m.type === MessageType.AppendResp && m.from === 'c' && m.reject);
    expect(rejections.length).toBeLessThanOrEqual(1);
  });
});

describe('§3.6.2 committing entries from previous terms (Figure 3.7)', () => {
  test('(c) an entry of an old term stored on a majority is not committed by counting', () => {
    const net = figure37();
    const s1 = net.node('s1');
    expect(s1.raft.status().progress!.get('s3')!.match).toBe(2);
    expect(s1.raft.status().commit).toBe(1);
    expect(s1.applied.map((e) => e.index)).toEqual([1]);
  });

  test('(d) so a later leader may overwrite it, and no server ever applied it', () => {
    const net = figure37();
    net.intercept(null);
    net.heal();
    net.isolate('s1'); // s1 crashes again
    net.restart('s5');
    tickToLeadership(net, 's5');
    net.tickAll(3);
    for (const id of ['s2', 's3', 's4', 's5']) {
      expect(net.node(id).storage.term(2)).toBe(2);
      expect(net.node(id).raft.status().commit).toBe(3);
    }
    for (const id of five) expect(net.node(id).applied.some((e) => e.index === 2 && e.term === 1)).toBe(false);
  });

  test('(e) once an entry of the leader\'s term reaches a majority, it commits with the old entry before it', () => {
    const net = figure37();
    net.intercept(null);
    net.tickAll(2);
    const s1 = net.node('s1');
    expect(s1.raft.status().commit).toBe(3);
    expect(payloads(s1)).toEqual(['X']);
  });
});
