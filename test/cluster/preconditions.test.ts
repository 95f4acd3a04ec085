// The checks the real-process tests make before a kill (preconditions.ts), on
// views written out by hand: each must refuse the situations that made a test
// kill a node the cluster could not spare (issue 15, section 2).
import { describe, expect, test } from 'vitest';
import type { ClusterView } from '../../src/node/service.js';
import { deadMemberLeft, incarnationsOf, quorumLostWithout } from './preconditions.js';

type Part = ClusterView['partitions'][number];

function view(partitions: Partial<Part>[], opts: { down?: string[]; metaVoters?: string[]; metaLearners?: string[]; metadata?: null } = {}): ClusterView {
  const ids = ['n1', 'n2', 'n3', 'n4'];
  return {
    node: 'n2',
    members: ids.map((id) => ({ id, http: '', raft: '', state: opts.down?.includes(id) ? 'down' : 'up', status: 'active', replicas: 0, leaders: 0 })),
    partitions: partitions.map((p, id) => ({ id, replicas: ['n1', 'n2', 'n3'], leader: 'n1', term: 1, commitIndex: 1, voters: ['n1', 'n2', 'n3'], learners: [], moving: false, ...p })),
    metadata: opts.metadata === null ? null : { leader: 'n1', term: 1, voters: opts.metaVoters ?? ['n1', 'n2', 'n3'], learners: opts.metaLearners ?? [] },
    rebalance: { balanced: true, movesInFlight: 0, movesPending: 0, maxConcurrentMoves: 1, moveBytesPerSecond: 0 },
  };
}

describe('quorumLostWithout', () => {
  test('a healthy 3-voter cluster can lose any one node', () => {
    for (const n of ['n1', 'n2', 'n3']) expect(quorumLostWithout(view([{}, {}]), n)).toBeNull();
  });

  test('issue 15: n4 died after its promotion, its new incarnation is still a learner — n1 cannot go too', () => {
    const v = view([{ replicas: ['n4', 'n1', 'n2'], voters: ['n1', 'n2', 'n4'], learners: ['n4@7'], leader: 'n1', moving: true }, {}]);
    const dead = new Set(incarnationsOf(view([{ voters: ['n1', 'n2', 'n4'] }]), 'n4'));
    expect(dead).toEqual(new Set(['n4']));
    expect(quorumLostWithout(v, 'n1', dead)).toMatch(/killing n1 would leave partition 0 1 live voter\(s\) of 3, below its quorum of 2: voters n1 \(the victim\), n2, n4 \(dead\); learners n4@7/);
    // Once the new n4 replaced the dead one, n1 can go.
    expect(quorumLostWithout(view([{ voters: ['n1', 'n2', 'n4@7'] }, {}]), 'n1', dead)).toBeNull();
    expect(deadMemberLeft(v, dead)).toMatch(/partition 0 still lists the dead incarnation\(s\) n4/);
  });

  test('a voter on a node that is down does not count', () => {
    expect(quorumLostWithout(view([{}, {}], { down: ['n3'] }), 'n1')).toMatch(/partition 0 1 live voter/);
  });

  test('during a move, four voters need three live ones', () => {
    const moving = view([{ voters: ['n1', 'n2', 'n3', 'n4'], moving: true }]);
    expect(quorumLostWithout(moving, 'n1')).toBeNull();
    expect(quorumLostWithout(view([{ voters: ['n1', 'n2', 'n3', 'n4'] }], { down: ['n4'] }), 'n1')).toMatch(/2 live voter\(s\) of 4, below its quorum of 3/);
  });

  test('the metadata group counts too, and what is not seen is not assumed', () => {
    expect(quorumLostWithout(view([{ voters: ['n1', 'n3', 'n4'] }], { metaVoters: ['n1', 'n2', 'n3'], down: ['n2'] }), 'n1')).toMatch(/the metadata group 1 live voter/);
    expect(quorumLostWithout(view([{}], { metadata: null }), 'n1')).toMatch(/no replica of the metadata group/);
    expect(quorumLostWithout(view([{ voters: [] }]), 'n1')).toMatch(/sees no configuration of partition 0/);
  });
});
