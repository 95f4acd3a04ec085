// The metadata leader's planning (Membership.plan) against a fake host and a
// fake metadata group that applies what it is given: how many moves it
// releases at once, what it re-plans at once, when it drains and removes.
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import { ClusterMeta, META_GROUP, applyCommand, initialMeta } from '../../src/node/cluster-meta.js';
import { Role } from '../../raft/index.js';
import type { MetaCommand, MetaState } from '../../src/node/cluster-meta.js';
import type { Group } from '../../src/node/group.js';
import { Membership } from '../../src/node/membership.js';
import { VeloError } from '../../src/node/errors.js';

interface Setup {
  membership: Membership;
  meta: ClusterMeta;
  proposed: MetaCommand[];
  group: Group;
  down: Set<string>;
  /** Metadata commands this node sent to the metadata leader (registrations). */
  routed: MetaCommand[];
  /** What host.refused was told. */
  refusals: string[];
  /** Lets the planner's proposals settle (they apply at once here) so it plans again. */
  settle(): Promise<void>;
}

function setup(state: MetaState, settings: { maxConcurrentMoves?: number; replaceAfterMs?: number; id?: string } = {}): Setup {
  const id = settings.id ?? 'n1';
  const meta = new ClusterMeta(state);
  const proposed: MetaCommand[] = [];
  const down = new Set<string>();
  const routed: MetaCommand[] = [];
  const refusals: string[] = [];
  const group = {
    partition: 1 << 20,
    propose: (data: Uint8Array) => {
      const c = JSON.parse(new TextDecoder().decode(data)) as MetaCommand;
      proposed.push(c);
      return Promise.resolve(applyCommand(meta.state!, c));
    },
  } as unknown as Group;
  const membership = new Membership({
    id,
    memberId: () => id,
    meta,
    log: pino({ level: 'silent' }),
    settings: { raft: '127.0.0.1:1', http: '127.0.0.1:2', maxConcurrentMoves: settings.maxConcurrentMoves ?? 2, replaceAfterMs: settings.replaceAfterMs ?? 0, requestTimeoutMs: 1000 },
    groups: () => [],
    connected: (node) => !down.has(node),
    refused: (why) => refusals.push(why),
    route: (req) => {
      if (req.op !== 'meta') return Promise.reject(new Error('only metadata commands are routed in this test'));
      routed.push(req.command);
      const r = applyCommand(meta.state!, req.command);
      return r.code === 'ok' ? Promise.resolve({ result: r, value: null }) : Promise.reject(new VeloError('conflict', r.message));
    },
    dropGroup: () => {},
    schedule: () => {},
  });
  return { membership, meta, proposed, routed, refusals, group, down, settle: () => new Promise((r) => setImmediate(r)) };
}

const join = (s: MetaState, id: string) => applyCommand(s, { type: 'register', id, raft: `127.0.0.1:${id.length}`, http: '', member: id });
const setTargets = (x: Setup) => x.proposed.filter((c) => c.type === 'setTarget');

describe('the metadata leader plans moves', () => {
  test('a new member gets its share, at most maxConcurrentMoves partitions moving at once', async () => {
    const x = setup(initialMeta(['n1', 'n2', 'n3'], 16, 3), { maxConcurrentMoves: 2 });
    join(x.meta.state!, 'n4');
    x.membership.plan(x.group, x.meta.state!, 0);
    await x.settle();
    expect(setTargets(x)).toHaveLength(2);
    expect(x.meta.state!.targets.filter((t) => t.moving)).toHaveLength(2);
    // Nothing more while both are in flight.
    x.membership.plan(x.group, x.meta.state!, 1);
    await x.settle();
    expect(setTargets(x)).toHaveLength(2);
    // Each finished move frees a slot, until n4 holds 12 of the 48 replicas.
    for (let round = 0; round < 20; round++) {
      x.meta.state!.targets.forEach((t, p) => applyCommand(x.meta.state!, { type: 'moveDone', partition: p, replicas: t.replicas }));
      x.membership.plan(x.group, x.meta.state!, 2 + round);
      await x.settle();
      expect(x.meta.state!.targets.filter((t) => t.moving).length).toBeLessThanOrEqual(2);
    }
    expect(x.meta.state!.targets.filter((t) => t.replicas.includes('n4'))).toHaveLength(12);
  });

  test('a moving target on a member that stopped being active is re-planned at once, beyond the limit', async () => {
    const x = setup(initialMeta(['n1', 'n2', 'n3', 'n4'], 8, 3), { maxConcurrentMoves: 1 });
    const s = x.meta.state!;
    const p = s.targets.findIndex((t) => t.replicas.includes('n4'));
    s.targets.forEach((t) => (t.moving = true)); // every slot taken
    applyCommand(s, { type: 'setStatus', id: 'n4', status: 'draining' });
    x.membership.plan(x.group, s, 0);
    await x.settle();
    expect(setTargets(x).map((c) => (c as { partition: number }).partition)).toContain(p);
    expect(s.targets.every((t) => !t.replicas.includes('n4'))).toBe(true);
  });

  test('with replaceAfterMs, a member down that long is drained; not before, and not without the setting', async () => {
    for (const replaceAfterMs of [0, 5000]) {
      const x = setup(initialMeta(['n1', 'n2', 'n3', 'n4'], 8, 3), { replaceAfterMs });
      x.down.add('n4');
      x.membership.plan(x.group, x.meta.state!, 1000);
      await x.settle();
      x.membership.plan(x.group, x.meta.state!, 5999);
      await x.settle();
      expect(x.meta.state!.members.find((m) => m.id === 'n4')!.status).toBe('active');
      x.membership.plan(x.group, x.meta.state!, 6000);
      await x.settle();
      expect(x.meta.state!.members.find((m) => m.id === 'n4')!.status).toBe(replaceAfterMs === 0 ? 'active' : 'draining');
    }
  });

  test('a member that comes back before the time is up starts its count again', async () => {
    const x = setup(initialMeta(['n1', 'n2', 'n3', 'n4'], 8, 3), { replaceAfterMs: 5000 });
    x.down.add('n4');
    x.membership.plan(x.group, x.meta.state!, 0);
    x.down.delete('n4');
    x.membership.plan(x.group, x.meta.state!, 4000);
    x.down.add('n4');
    x.membership.plan(x.group, x.meta.state!, 4500);
    x.membership.plan(x.group, x.meta.state!, 9000);
    await x.settle();
    expect(x.meta.state!.members.find((m) => m.id === 'n4')!.status).toBe('active');
  });

  test('a drained member is marked removed only once no partition holds it and none is moving', async () => {
    const x = setup(initialMeta(['n1', 'n2', 'n3', 'n4'], 8, 3), { maxConcurrentMoves: 64 });
    const s = x.meta.state!;
    applyCommand(s, { type: 'setStatus', id: 'n4', status: 'draining' });
    x.membership.plan(x.group, s, 0);
    await x.settle();
    expect(s.targets.some((t) => t.replicas.includes('n4'))).toBe(false);
    // No target names n4 any more, but its moves are still under way: it may still be a voter somewhere.
    x.membership.plan(x.group, s, 1);
    await x.settle();
    expect(s.members.find((m) => m.id === 'n4')!.status).toBe('draining');
    s.targets.forEach((t, p) => applyCommand(s, { type: 'moveDone', partition: p, replicas: t.replicas }));
    x.membership.plan(x.group, s, 2);
    await x.settle();
    expect(s.members.find((m) => m.id === 'n4')!.status).toBe('removed');
  });
});

describe('a node keeps its registration current', () => {
  test('with metadata whose leader it knows, it registers only while its record differs', async () => {
    const x = setup(initialMeta(['n1', 'n2', 'n3'], 4, 3));
    x.membership.registerSelf(x.meta.state, true);
    await x.settle();
    expect(x.routed).toEqual([{ type: 'register', id: 'n1', raft: '127.0.0.1:1', http: '127.0.0.1:2', member: 'n1' }]);
    x.membership.registerSelf(x.meta.state, true);
    await x.settle();
    expect(x.routed).toHaveLength(1);
    expect(x.refusals).toEqual([]);
  });

  test('when its metadata replica knows no leader, it registers again blindly, at most once per 2 s', async () => {
    const x = setup(initialMeta(['n1', 'n2', 'n3'], 4, 3));
    x.membership.registerSelf(x.meta.state, true);
    await x.settle();
    x.membership.registerSelf(x.meta.state, false);
    await x.settle();
    expect(x.routed).toHaveLength(2);
    x.membership.registerSelf(x.meta.state, false);
    await x.settle();
    expect(x.routed).toHaveLength(2);
  });

  test('a node the cluster removed while it was away is refused, and told so', async () => {
    const x = setup(initialMeta(['n1', 'n2', 'n3', 'n4'], 4, 3));
    x.meta.state!.members.find((m) => m.id === 'n1')!.status = 'removed'; // drained while it was down
    // It comes back without metadata (memory mode), or with a copy that still says active: either way it asks.
    x.membership.registerSelf(null, false);
    await x.settle();
    expect(x.refusals).toEqual(['the cluster refuses n1: n1 was removed from this cluster: start the node under a new id to add it again']);
  });
});

describe('a group leader moves leadership only to a live member', () => {
  /** A group led by n3 at index 4, every voter's match at 4; `answering`: the members heard from within the last election timeout. */
  function ledGroup(partition: number, answering: string[]) {
    const transfers: string[] = [];
    const status = {
      role: Role.Leader,
      leader: 'n3',
      term: 1,
      commit: 4,
      applied: 4,
      lastIndex: 4,
      confState: { voters: ['n1', 'n2', 'n3'], learners: [] },
      progress: new Map(['n1', 'n2', 'n3'].map((m) => [m, { match: 4, next: 5, state: 1, recentActive: answering.includes(m) }])),
    };
    const group = {
      partition,
      raft: {
        status: () => status,
        appliedConfState: () => status.confState,
        transferLeadership: (to: string) => transfers.push(to),
        proposeConfChange: () => ({ ok: true }),
      },
      storage: { snapshot: () => ({ metadata: { index: 1 } }) },
      takeSnapshot: () => {},
    } as unknown as Group;
    return { group, transfers, status };
  }

  // Issue 15 §1: n1, the metadata group's preferred leader, was killed while n3 led it and nothing
  // was written after; restarted without its memory as a new member id, its node was connected
  // again, and the old member id n1 still matched the whole log. The leader handed leadership to
  // n1 over and over — a member id nobody answers for — so the transfer never ended, every proposal
  // was refused while it lasted, and the new incarnation's registration never got in: n1 stayed
  // not ready for good.
  test.each([
    ['the metadata group', META_GROUP],
    ['a partition', 0],
  ])('%s: not to a member id whose node runs again under a new incarnation', (_name, partition) => {
    const x = setup(initialMeta(['n1', 'n2', 'n3'], 4, 3), { id: 'n3' });
    const dead = ledGroup(partition, ['n2', 'n3']);
    x.membership.reconcile(dead.group, x.meta.state!);
    expect(dead.transfers).toEqual([]);
    // The same state with the member id n1 answering: leadership goes to the preferred replica.
    const live = ledGroup(partition, ['n1', 'n2', 'n3']);
    x.membership.reconcile(live.group, x.meta.state!);
    expect(live.transfers).toEqual(['n1']);
  });
});
