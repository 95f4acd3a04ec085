// Flow control of replication (as etcd's raft_flow_control_test.go): the
// window of appends in flight per follower, entries and bytes per append,
// pipelining in Replicate state and one-at-a-time probing in Probe state.
import { describe, expect, test } from 'vitest';
import { MessageType } from '../../raft/index.js';
import type { Message } from '../../raft/index.js';
import { ProgressState } from '../../raft/progress.js';
import { TestNetwork, enc, isAppendTo } from './harness.js';

const ids = ['a', 'b', 'c'];
const withEntries = (m: Message) => m.type === MessageType.Append && m.entries.length > 0;
const bytesOf = (m: Message) => m.entries.reduce((n, e) => n + e.data.length, 0);

function replicating(overrides = {}) {
  const net = new TestNetwork(ids, { maxInflightAppends: 3, maxEntriesPerAppend: 2, ...overrides });
  net.campaign('a');
  net.tickAll(1);
  expect(net.node('a').raft.status().progress!.get('b')!.state).toBe(ProgressState.Replicate);
  return net;
}

describe('flow control', () => {
  test('with maxInflightAppends=3 a leader sends at most 3 appends to a follower before it answers', () => {
    const net = replicating();
    net.hold(isAppendTo('b'));
    for (let i = 0; i < 10; i++) {
      expect(net.node('a').raft.propose(enc(`e${i}`)).ok).toBe(true);
      net.settle();
    }
    const inFlight = net.held.filter(withEntries);
    expect(inFlight).toHaveLength(3);
    // Pipelined: three appends out at once, the follower still in Replicate state.
    expect(net.node('a').raft.status().progress!.get('b')!.state).toBe(ProgressState.Replicate);
    expect(inFlight.map((m) => m.index)).toEqual([1, 2, 3]);
  });

  test('answers free the window and the leader refills it with appends of at most maxEntriesPerAppend entries', () => {
    const net = replicating();
    net.hold(isAppendTo('b'));
    for (let i = 0; i < 10; i++) net.node('a').raft.propose(enc(`e${i}`));
    net.settle();
    const seen: Message[] = [...net.held.filter(withEntries)];
    for (let step = 0; step < 50 && net.held.length > 0; step++) {
      const first = net.held[0]!;
      net.release((m) => m === first);
      for (const m of net.held) if (withEntries(m) && !seen.includes(m)) seen.push(m);
      expect(net.held.filter(withEntries).length).toBeLessThanOrEqual(3);
    }
    expect(net.held).toEqual([]);
    expect(seen.every((m) => m.entries.length <= 2)).toBe(true);
    expect(seen.some((m) => m.entries.length === 2)).toBe(true); // entries that waited go out batched
    expect(net.node('b').storage.lastIndex()).toBe(11);
  });

  test('maxBytesPerAppend bounds the bytes of one append; an entry larger than the limit goes alone', () => {
    const net = replicating({ maxInflightAppends: 1, maxEntriesPerAppend: 100, maxBytesPerAppend: 10 });
    net.hold(isAppendTo('b'));
    for (let i = 0; i < 7; i++) net.node('a').raft.propose(enc(`abc${i}`)); // 4 bytes each
    net.node('a').raft.propose(new Uint8Array(25));
    net.node('a').raft.propose(enc('tail'));
    net.settle();
    const seen: Message[] = [];
    for (let step = 0; step < 50 && net.held.length > 0; step++) {
      const first = net.held[0]!;
      if (withEntries(first)) seen.push(first);
      net.release((m) => m === first);
    }
    expect(net.node('b').storage.lastIndex()).toBe(10);
    for (const m of seen) {
      if (m.entries.length > 1) expect(bytesOf(m)).toBeLessThanOrEqual(10);
    }
    expect(Math.max(...seen.map((m) => m.entries.length))).toBe(2);
    expect(seen.find((m) => m.entries.some((e) => e.data.length === 25))!.entries).toHaveLength(1);
  });

  test('a follower in Probe state gets one append at a time until it answers', () => {
    const net = replicating();
    net.isolate('c');
    for (let i = 0; i < 10; i++) net.node('a').raft.propose(enc(`e${i}`));
    net.settle();
    net.heal();
    net.hold(isAppendTo('c'));
    net.tickAll(1); // the heartbeat answer makes the leader try c again
    expect(net.held.length).toBeGreaterThan(0);
    // c rejects what it is sent (its log ends at 1): the leader falls back to probing.
    for (let i = 0; i < 5 && net.node('a').raft.status().progress!.get('c')!.state !== ProgressState.Probe; i++) {
      const first = net.held[0]!;
      net.release((m) => m === first);
    }
    expect(net.node('a').raft.status().progress!.get('c')!.state).toBe(ProgressState.Probe);
    const probes = net.held.length;
    expect(probes).toBe(1);
    for (let i = 0; i < 3; i++) net.node('a').raft.propose(enc(`more${i}`));
    net.settle();
    expect(net.held).toHaveLength(probes);

    net.hold(null);
    net.release();
    net.tickAll(2);
    expect(net.node('c').storage.lastIndex()).toBe(net.node('a').storage.lastIndex());
  });

  test('a heartbeat answer frees a slot of a full window, so lost appends do not stall a follower', () => {
    const net = replicating();
    net.intercept((m) => (withEntries(m) && m.to === 'b' ? null : m));
    const mark = net.sent.length;
    for (let i = 0; i < 5; i++) net.node('a').raft.propose(enc(`e${i}`));
    net.settle();
    expect(net.sentSince(mark, (m) => withEntries(m) && m.to === 'b')).toHaveLength(3);
    net.settle();
    expect(net.node('b').storage.lastIndex()).toBe(1); // the window stays full without a tick
    net.intercept(null);
    net.tickAll(3);
    expect(net.node('b').storage.lastIndex()).toBe(6);
  });

  test('a leader refuses proposals beyond maxUncommittedEntries until some commit', () => {
    const net = new TestNetwork(ids, { maxUncommittedEntries: 5 });
    net.campaign('a');
    net.tickAll(1);
    net.isolate('a');
    const a = net.node('a').raft;
    for (let i = 0; i < 5; i++) expect(a.propose(enc(`e${i}`)).ok).toBe(true);
    expect(a.propose(enc('one-too-many'))).toEqual({ ok: false, reason: 'too_many_pending', leader: 'a' });
    net.settle();
    net.heal();
    net.tickAll(1);
    expect(a.propose(enc('now')).ok).toBe(true);
  });
});
