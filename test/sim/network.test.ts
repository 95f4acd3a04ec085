import { describe, expect, test } from 'vitest';
import { MessageType, emptyMessage } from '../../raft/types.js';
import type { Message } from '../../raft/types.js';
import { SimNetwork, partitionLinks } from './network.js';
import { Prng } from './prng.js';

function msg(from: string, to: string, index = 0): Message {
  return { ...emptyMessage(MessageType.Heartbeat, from, to, 1), index };
}

/** Delivers everything up to `until`, returning (step, index) pairs. */
function drain(net: SimNetwork, until: number): [number, number][] {
  const out: [number, number][] = [];
  for (let t = 0; t <= until; t++) for (const m of net.deliverDue(t)) out.push([t, m.index]);
  return out;
}

describe('SimNetwork', () => {
  test('without faults every message arrives once, within the base latency', () => {
    const net = new SimNetwork(new Prng(1), 5);
    for (let i = 0; i < 100; i++) net.send(msg('a', 'b', i), 0);
    const got = drain(net, 10);
    expect(got.map(([, i]) => i).sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    for (const [t] of got) expect(t >= 1 && t <= 5).toBe(true);
  });

  test('drops, duplicates and delays at about the configured rates', () => {
    const net = new SimNetwork(new Prng(2), 1);
    net.faults = { dropRate: 0.2, dupRate: 0.1, delayRate: 0.3, maxExtraDelaySteps: 100 };
    for (let i = 0; i < 10_000; i++) net.send(msg('a', 'b', i), 0);
    expect(net.stats.dropped).toBeGreaterThan(1700);
    expect(net.stats.dropped).toBeLessThan(2300);
    expect(net.stats.duplicated).toBeGreaterThan(600);
    expect(net.stats.duplicated).toBeLessThan(1000);
    const got = drain(net, 200);
    expect(got.length).toBe(10_000 - net.stats.dropped + net.stats.duplicated);
    const late = got.filter(([t]) => t > 1).length;
    expect(late / got.length).toBeGreaterThan(0.25);
    // Delays reorder: some later message overtakes an earlier one.
    const order = got.map(([, i]) => i);
    expect(order.some((v, k) => k > 0 && v < order[k - 1]!)).toBe(true);
  });

  test('the same seed gives the same deliveries', () => {
    const run = (): [number, number][] => {
      const net = new SimNetwork(new Prng(5), 5);
      net.faults = { dropRate: 0.1, dupRate: 0.1, delayRate: 0.5, maxExtraDelaySteps: 30 };
      for (let i = 0; i < 500; i++) net.send(msg('a', 'b', i), i % 7);
      return drain(net, 100);
    };
    expect(run()).toEqual(run());
  });

  test('a cut link loses messages in one direction only, and restoring it heals it', () => {
    const net = new SimNetwork(new Prng(3), 1);
    net.cut('a', 'b');
    net.send(msg('a', 'b', 1), 0);
    net.send(msg('b', 'a', 2), 0);
    expect(net.deliverDue(5).map((m) => m.index)).toEqual([2]);
    net.restore('a', 'b');
    net.send(msg('a', 'b', 3), 5);
    expect(net.deliverDue(10).map((m) => m.index)).toEqual([3]);
  });

  test('a message in flight is lost if its link is cut before it arrives', () => {
    const net = new SimNetwork(new Prng(3), 1);
    net.send(msg('a', 'b', 1), 0);
    net.cut('a', 'b');
    expect(net.deliverDue(5)).toEqual([]);
    expect(net.stats.cut).toBe(1);
  });

  test('overlapping partitions compose: a link heals only when no partition cuts it', () => {
    const net = new SimNetwork(new Prng(3), 1);
    net.cut('a', 'b');
    net.cut('a', 'b');
    net.restore('a', 'b');
    expect(net.isCut('a', 'b')).toBe(true);
    net.restore('a', 'b');
    expect(net.isCut('a', 'b')).toBe(false);
  });

  test('receivers get copies: mutating a delivered message does not touch the sent one', () => {
    const net = new SimNetwork(new Prng(4), 1);
    const m = { ...msg('a', 'b'), entries: [{ term: 1, index: 1, type: 0 as const, data: new Uint8Array([1]) }] };
    net.send(m, 0);
    const [got] = net.deliverDue(2);
    got!.entries[0]!.term = 99;
    expect(m.entries[0]!.term).toBe(1);
  });
});

describe('partitionLinks', () => {
  const nodes = ['n1', 'n2', 'n3', 'n4', 'n5'];
  const has = (links: [string, string][], a: string, b: string): boolean => links.some(([x, y]) => x === a && y === b);

  test('isolate cuts every link to and from one node', () => {
    const links = partitionLinks({ kind: 'isolate', node: 'n2' }, nodes);
    expect(links.length).toBe(8);
    expect(has(links, 'n2', 'n1') && has(links, 'n1', 'n2')).toBe(true);
    expect(has(links, 'n1', 'n3')).toBe(false);
  });

  test('halves cut every link across the two groups, both ways', () => {
    const links = partitionLinks({ kind: 'halves', groupA: ['n1', 'n2'] }, nodes);
    expect(links.length).toBe(2 * 2 * 3);
    expect(has(links, 'n1', 'n3') && has(links, 'n3', 'n1')).toBe(true);
    expect(has(links, 'n1', 'n2') || has(links, 'n3', 'n4')).toBe(false);
  });

  test('a bridge node keeps talking to both groups', () => {
    const links = partitionLinks({ kind: 'bridge', bridge: 'n3', groupA: ['n1', 'n2'] }, nodes);
    expect(links.some(([x, y]) => x === 'n3' || y === 'n3')).toBe(false);
    expect(has(links, 'n1', 'n4') && has(links, 'n5', 'n2')).toBe(true);
  });

  test('links cut exactly the directed pairs given (asymmetric partitions)', () => {
    expect(partitionLinks({ kind: 'links', links: [['n1', 'n2'], ['n3', 'n3']] }, nodes)).toEqual([['n1', 'n2']]);
  });
});
