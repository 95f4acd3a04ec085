import { describe, expect, test } from 'vitest';
import { peerAddresses } from '../../src/node/peer-addresses.js';

const none = new Map<string, string>();

describe('where a node reaches its peers', () => {
  test('a joined node that applied only the start of the metadata log (no member registered yet) keeps the addresses the join answer gave', () => {
    const fromJoin = new Map([['n1', '10.0.0.1:7101'], ['n2', '10.0.0.2:7101'], ['n3', '10.0.0.3:7101']]);
    const bootstrapPrefix = ['n1', 'n2', 'n3', 'n4'].map((id) => ({ id, raft: '' }));
    expect(peerAddresses('n4', fromJoin, bootstrapPrefix, none)).toEqual(fromJoin);
  });

  test('a registered address replaces the known one, --peers overrides both, and this node is never its own peer', () => {
    const known = new Map([['n1', 'old:1'], ['n2', 'old:2']]);
    const members = [{ id: 'n1', raft: 'new:1' }, { id: 'n2', raft: 'new:2' }, { id: 'n3', raft: 'new:3' }, { id: 'n4', raft: 'me:4' }];
    expect(peerAddresses('n4', known, members, new Map([['n2', 'proxy:2'], ['n4', 'me:4']]))).toEqual(
      new Map([['n1', 'new:1'], ['n2', 'proxy:2'], ['n3', 'new:3']]),
    );
  });
});
