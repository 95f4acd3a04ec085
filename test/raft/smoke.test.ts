import { describe, expect, test } from 'vitest';
import { Role } from '../../raft/index.js';
import { TestNetwork, dec, enc } from './harness.js';

describe('a three-node group', () => {
  test('elects one leader and replicates a proposal to every node', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.campaign('a');
    expect(net.node('a').raft.status().role).toBe(Role.Leader);
    expect(net.node('b').raft.status().leader).toBe('a');
    const r = net.node('a').raft.propose(enc('x=1'));
    expect(r.ok).toBe(true);
    net.settle();
    net.tickAll(2);
    for (const id of ['a', 'b', 'c']) {
      const data = net.node(id).applied.filter((e) => e.data.length > 0).map((e) => dec(e.data));
      expect(data).toEqual(['x=1']);
    }
  });
});
