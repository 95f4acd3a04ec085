import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { placePartitions } from '../../src/node/partition-map.js';
import { loadOf, metaVoters, movesBetween, rebalance, type Placement } from '../../src/node/rebalance.js';

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `n${i + 1}`);
const bootstrap = (nodes: number, partitions: number, replicas: number): string[][] =>
  placePartitions(ids(nodes), partitions, replicas).map((p) => p.replicas);
const spread = (xs: number[]): number => Math.max(...xs) - Math.min(...xs);

/** Every partition on R′ distinct members; replica and leader counts each within one. */
function expectBalanced(out: Placement, members: readonly string[], replicas: number): void {
  const r = Math.min(replicas, new Set(members).size);
  const member = new Set(members);
  const wrong = out.filter((reps) => reps.length !== r || new Set(reps).size !== r || reps.some((id) => !member.has(id)));
  expect(wrong).toEqual([]);
  const load = [...loadOf(out, members).values()];
  expect(spread(load.map((l) => l.replicas))).toBeLessThanOrEqual(1);
  expect(spread(load.map((l) => l.leaders))).toBeLessThanOrEqual(1);
}

/** An arbitrary valid starting point: up to 10 known nodes, some of them not members; partitions short, full or over-full. */
const anyCase = fc
  .record({ known: fc.integer({ min: 1, max: 10 }), replicas: fc.integer({ min: 1, max: 5 }), partitions: fc.integer({ min: 1, max: 40 }) })
  .chain(({ known, replicas, partitions }) =>
    fc.record({
      members: fc.shuffledSubarray(ids(known), { minLength: 1 }),
      current: fc.array(fc.shuffledSubarray(ids(known), { maxLength: Math.min(known, replicas + 1) }), { minLength: partitions, maxLength: partitions }),
      replicas: fc.constant(replicas),
    }),
  );

/** A balanced placement (bootstrapped, maybe rebalanced once), then one or two nodes join or leave. */
const membershipChange = fc
  .record({
    nodes: fc.integer({ min: 1, max: 9 }),
    partitions: fc.integer({ min: 1, max: 64 }),
    replicas: fc.integer({ min: 1, max: 5 }),
    change: fc.constantFrom(1, 2, -1, -2),
    earlier: fc.boolean(),
    k: fc.integer({ min: 1, max: 4 }),
  })
  .filter(({ nodes, change }) => nodes + change >= 1);

/**
 * What the meta leader does: release the first ≤ k partitions whose target
 * differs from the plan, then plan again from the placement so changed.
 */
function releaseInRounds(start: Placement, members: readonly string[], replicas: number, k: number, maxRounds: number) {
  let current = start.map((reps) => [...reps]);
  let rounds = 0;
  let moves = 0;
  for (;;) {
    const plan = rebalance(current, members, replicas);
    const differing = plan.map((_, p) => p).filter((p) => !sameList(plan[p]!, current[p]!));
    if (differing.length === 0) return { rounds, moves, end: current };
    if (rounds === maxRounds) throw new Error(`no fixed point after ${maxRounds} rounds`);
    const next = [...current];
    for (const p of differing.slice(0, k)) next[p] = plan[p]!;
    moves += movesBetween(current, next);
    current = next;
    rounds++;
  }
}

const sameList = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

const deepFreeze = (p: string[][]): Placement => Object.freeze(p.map((reps) => Object.freeze([...reps])));

describe('rebalance: membership changes', () => {
  test('adding n4 then n5 to a bootstrapped 3-node cluster balances replicas and leaders with exactly the moves needed', () => {
    const start = bootstrap(3, 16, 3);
    const four = rebalance(start, ids(4), 3);
    expectBalanced(four, ids(4), 3);
    // 48 replicas over 4 nodes: 12 each, all of them new on n4.
    expect(movesBetween(start, four)).toBe(12);
    expect([...loadOf(four, ids(4)).values()]).toEqual(Array(4).fill({ replicas: 12, leaders: 4 }));
    for (let p = 0; p < 16; p++) for (const id of four[p]!) if (id !== 'n4') expect(start[p]).toContain(id);

    const five = rebalance(four, ids(5), 3);
    expectBalanced(five, ids(5), 3);
    // 48 over 5: three nodes keep 10 of their 12, one keeps 9: n5 gets 9.
    expect(movesBetween(four, five)).toBe(9);
    expect(loadOf(five, ids(5)).get('n5')!.replicas).toBe(9);
  });

  test('a removed member keeps no replica; each of its replicas is re-created once, on the others', () => {
    const four = rebalance(bootstrap(3, 16, 3), ids(4), 3);
    const three = rebalance(four, ['n1', 'n3', 'n4'], 3);
    expectBalanced(three, ['n1', 'n3', 'n4'], 3);
    for (const reps of three) expect(reps).not.toContain('n2');
    expect(movesBetween(four, three)).toBe(12); // n2 held 12

    // Fewer members than the replication factor: R′ = 2.
    const two = rebalance(three, ['n4', 'n1'], 3);
    expectBalanced(two, ['n1', 'n4'], 3);
    for (const reps of two) expect([...reps].sort()).toEqual(['n1', 'n4']);
  });

  test('a bootstrap placement is already balanced and comes back unchanged', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 5 }), (n, p, r) => {
        const start = bootstrap(n, p, r);
        expect(rebalance(start, ids(n), r)).toEqual(start);
      }),
      { seed: 42, numRuns: 300 },
    );
  });
});

describe('rebalance: properties over arbitrary placements', () => {
  test('the result has R′ distinct members per partition, replica and leader counts within one', () => {
    fc.assert(
      fc.property(anyCase, ({ current, members, replicas }) => {
        expectBalanced(rebalance(current, members, replicas), members, replicas);
      }),
      { seed: 42, numRuns: 1500 },
    );
  });

  test('it is idempotent, ignores the order of members, and leaves its inputs alone', () => {
    fc.assert(
      fc.property(anyCase, ({ current, members, replicas }) => {
        const frozen = deepFreeze(current);
        const out = rebalance(frozen, Object.freeze([...members]), replicas);
        expect(rebalance(out, members, replicas)).toEqual(out);
        expect(rebalance(current, [...members].sort(), replicas)).toEqual(out);
        expect(rebalance(current, [...members].reverse(), replicas)).toEqual(out);
        expect(frozen).toEqual(current);
      }),
      { seed: 42, numRuns: 800 },
    );
  });

  test('it adds the fewest replicas, then changes the fewest preferred leaders (exhaustive check on small clusters)', () => {
    const small = fc
      .record({ known: fc.integer({ min: 1, max: 5 }), replicas: fc.integer({ min: 1, max: 3 }), partitions: fc.integer({ min: 1, max: 4 }) })
      .chain(({ known, replicas, partitions }) =>
        fc.record({
          members: fc.shuffledSubarray(ids(known), { minLength: 1, maxLength: Math.min(known, 4) }),
          current: fc.array(fc.shuffledSubarray(ids(known), { maxLength: Math.min(known, replicas + 1) }), { minLength: partitions, maxLength: partitions }),
          replicas: fc.constant(replicas),
        }),
      );
    fc.assert(
      fc.property(small, ({ current, members, replicas }) => {
        const out = rebalance(current, members, replicas);
        expect(movesBetween(current, out)).toBe(fewestAdditions(current, members, replicas));
        const changed = out.filter((reps, p) => reps[0] !== current[p]![0]).length;
        expect(changed).toBe(fewestLeaderChanges(out, current, members));
      }),
      { seed: 42, numRuns: 400 },
    );
  });
});

describe('rebalance: released a few partitions at a time', () => {
  // Every plan adds the fewest replicas possible, and that optimum is a sum
  // over partitions: applying a planned partition lowers the optimum of what
  // is left by exactly that partition's additions. So the additions made over
  // all rounds never exceed the first plan's: the slack is 0, whatever the
  // start. Rounds stay far below P·R (measured: at most ~P·R/2, one partition
  // per round), and a re-plan never undoes a set change, since each one
  // lowers that optimum.
  test('from any placement it reaches a fixed point, adding no more replicas than the first plan', () => {
    fc.assert(
      fc.property(anyCase, fc.integer({ min: 1, max: 4 }), ({ current, members, replicas }, k) => {
        const bound = current.length * replicas + 10;
        const { rounds, moves, end } = releaseInRounds(current, members, replicas, k, bound);
        expect(rounds).toBeLessThanOrEqual(bound);
        expect(moves).toBeLessThanOrEqual(movesBetween(current, rebalance(current, members, replicas)));
        expectBalanced(end, members, replicas);
      }),
      { seed: 42, numRuns: 600 },
    );
  });

  // Found while writing this: with a greedy plan, one partition's preferred
  // leader flipped between two nodes on every re-plan, forever.
  test('five nodes becoming seven (three leave, five join) one partition at a time reaches a fixed point', () => {
    const start = bootstrap(5, 63, 2);
    const members = ['n1', 'n2', 'n4', 'n6', 'n7', 'n8', 'n11'];
    const { moves, end } = releaseInRounds(start, members, 2, 1, 63 * 2 + 10);
    expect(moves).toBe(movesBetween(start, rebalance(start, members, 2)));
    expectBalanced(end, members, 2);
  });

  // The meta leader's case: nodes join, and the plan is released k at a
  // time. Every re-plan keeps the first plan to the letter, so each partition
  // that must change is released exactly once.
  test('adding n4, then n5: every re-plan keeps the first plan, each partition is released once', () => {
    for (const k of [1, 2, 3, 4]) {
      let start = bootstrap(3, 16, 3);
      for (const members of [ids(4), ids(5)]) {
        const plan = rebalance(start, members, 3);
        const differing = plan.filter((reps, p) => !sameList(reps, start[p]!)).length;
        const { rounds, moves, end } = releaseInRounds(start, members, 3, k, 16 * 3 + 10);
        expect(end).toEqual(plan);
        expect(rounds).toBe(Math.ceil(differing / k));
        expect(moves).toBe(movesBetween(start, plan));
        start = end;
      }
    }
  });

  // In general a re-plan may pick another ordering of leaders (when the
  // one-pass plan gets stuck and the general method takes over), but replica
  // sets are planned once when nodes join a balanced cluster.
  test('after a join, no partition’s replica set changes twice', () => {
    fc.assert(
      fc.property(
        membershipChange.filter(({ change }) => change > 0),
        ({ nodes, partitions, replicas, change, earlier, k }) => {
          const start = earlier ? rebalance(bootstrap(nodes + 1, partitions, replicas), ids(nodes), replicas) : bootstrap(nodes, partitions, replicas);
          const members = ids(nodes + change);
          const plan = rebalance(start, members, replicas);
          const setChanges = new Array<number>(partitions).fill(0);
          let current = start;
          for (let round = 0; round <= partitions * replicas + 10; round++) {
            const next = rebalance(current, members, replicas);
            const differing = next.map((_, p) => p).filter((p) => !sameList(next[p]!, current[p]!));
            if (differing.length === 0) break;
            const released = [...current];
            for (const p of differing.slice(0, k)) {
              if (!sameList([...next[p]!].sort(), [...current[p]!].sort())) setChanges[p]!++;
              released[p] = next[p]!;
            }
            current = released;
          }
          expect(Math.max(...setChanges)).toBeLessThanOrEqual(1);
          expect(current.map((reps) => [...reps].sort())).toEqual(plan.map((reps) => [...reps].sort()));
        },
      ),
      { seed: 42, numRuns: 400 },
    );
  });

  test('after a join or a leave it converges with no extra replica moves', () => {
    fc.assert(
      fc.property(membershipChange, ({ nodes, partitions, replicas, change, earlier, k }) => {
        const start = earlier ? rebalance(bootstrap(nodes + 1, partitions, replicas), ids(nodes), replicas) : bootstrap(nodes, partitions, replicas);
        const members = ids(nodes + change);
        const bound = partitions * replicas + 10;
        const { moves, end } = releaseInRounds(start, members, replicas, k, bound);
        expect(moves).toBe(movesBetween(start, rebalance(start, members, replicas)));
        expectBalanced(end, members, replicas);
      }),
      { seed: 42, numRuns: 400 },
    );
  });
});

describe('rebalance: limits', () => {
  // A guard against an accidental blow-up (the work is a few ms of CPU); the
  // bound is loose because the machine running the tests may be busy.
  test('4096 partitions over 64 nodes with 9 replicas take well under a second', () => {
    const nine = placePartitions(ids(9), 4096, 9).map((p) => p.replicas);
    const full = placePartitions(ids(64), 4096, 9).map((p) => p.replicas);
    const started = performance.now();
    const grown = rebalance(nine, ids(64), 9);
    const shrunk = rebalance(full, ids(63), 9);
    expect(performance.now() - started).toBeLessThan(1000);
    for (const [out, members] of [[grown, ids(64)], [shrunk, ids(63)]] as const) {
      const load = [...loadOf(out, members).values()];
      expect(spread(load.map((l) => l.replicas))).toBeLessThanOrEqual(1);
      expect(spread(load.map((l) => l.leaders))).toBeLessThanOrEqual(1);
    }
  });

  test('bad input is refused with a clear error', () => {
    expect(() => rebalance([['n1']], [], 3)).toThrow(/at least one member/);
    expect(() => rebalance([['n1']], ['n1'], 0)).toThrow(/replicas must be a positive integer/);
    expect(() => rebalance([['n1', 'n2', 'n1']], ['n1', 'n2'], 3)).toThrow(/partition 0 lists a node twice/);
    expect(() => movesBetween([['n1']], [])).toThrow(/partition count/);
    expect(() => metaVoters([], [], 3)).toThrow(/at least one member/);
    expect(() => metaVoters([], ['n1'], 1.5)).toThrow(/replicas must be a positive integer/);
  });

  test('no partitions: nothing to place', () => {
    expect(rebalance([], ['n1', 'n2'], 3)).toEqual([]);
  });
});

describe('movesBetween and loadOf', () => {
  test('movesBetween counts replicas added, not removed or reordered', () => {
    expect(movesBetween([['n1', 'n2']], [['n2', 'n1']])).toBe(0);
    expect(movesBetween([['n1', 'n2', 'n3']], [['n1']])).toBe(0);
    expect(movesBetween([['n1', 'n2'], []], [['n3', 'n2'], ['n1', 'n2']])).toBe(3);
  });

  test('loadOf lists every member, zeros included, and the nodes the placement still names', () => {
    const load = loadOf([['n2', 'n1'], ['n1', 'n9']], ['n3', 'n2', 'n1']);
    expect([...load.entries()]).toEqual([
      ['n1', { replicas: 2, leaders: 1 }],
      ['n2', { replicas: 1, leaders: 1 }],
      ['n3', { replicas: 0, leaders: 0 }],
      ['n9', { replicas: 1, leaders: 0 }],
    ]);
  });
});

describe('metaVoters', () => {
  test('a full voter set stays as it is when a member joins', () => {
    expect(metaVoters(['n2', 'n1', 'n3'], ids(5), 3)).toEqual(['n2', 'n1', 'n3']);
  });

  test('a voter that left is replaced by the first member by id that is not a voter', () => {
    expect(metaVoters(['n1', 'n2', 'n3'], ['n5', 'n4', 'n3', 'n1'], 3)).toEqual(['n1', 'n3', 'n4']);
  });

  test('a growing cluster is topped up to min(replicas, members), in id order', () => {
    expect(metaVoters([], ['n3', 'n1', 'n2'], 3)).toEqual(['n1', 'n2', 'n3']);
    expect(metaVoters(['n1'], ['n2', 'n1'], 3)).toEqual(['n1', 'n2']);
    expect(metaVoters(['n9'], ['n2', 'n1'], 1)).toEqual(['n1']);
  });

  test('extra voters beyond the target are dropped, the earliest kept', () => {
    expect(metaVoters(['n3', 'n1', 'n2', 'n4'], ids(4), 3)).toEqual(['n3', 'n1', 'n2']);
    expect(metaVoters(['n3', 'n3', 'n1'], ids(4), 2)).toEqual(['n3', 'n1']);
  });

  test('the order of members does not matter', () => {
    fc.assert(
      fc.property(fc.shuffledSubarray(ids(8)), fc.shuffledSubarray(ids(8), { minLength: 1 }), fc.integer({ min: 1, max: 7 }), (current, members, r) => {
        const voters = metaVoters(current, members, r);
        expect(metaVoters(current, [...members].sort(), r)).toEqual(voters);
        expect(voters).toHaveLength(Math.min(r, members.length));
        expect(new Set(voters).size).toBe(voters.length);
        for (const v of voters) expect(members).toContain(v);
      }),
      { seed: 42, numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------
// Exhaustive oracles for small clusters (P ≤ 4, N ≤ 4, R′ ≤ 3).

function subsets(items: readonly string[], size: number): string[][] {
  if (size === 0) return [[]];
  if (items.length < size) return [];
  const [head, ...rest] = items;
  return [...subsets(rest, size - 1).map((s) => [head!, ...s]), ...subsets(rest, size)];
}

/** The fewest replicas any balanced placement of these members adds to `current`. */
function fewestAdditions(current: Placement, members: readonly string[], replicas: number): number {
  const nodes = [...new Set(members)].sort();
  const options = subsets(nodes, Math.min(replicas, nodes.length));
  let best = Infinity;
  const count = new Map(nodes.map((id) => [id, 0]));
  const visit = (p: number, added: number): void => {
    if (added >= best) return;
    if (p === current.length) {
      if (spread([...count.values()]) <= 1) best = added;
      return;
    }
    for (const set of options) {
      for (const id of set) count.set(id, count.get(id)! + 1);
      visit(p + 1, added + set.filter((id) => !current[p]!.includes(id)).length);
      for (const id of set) count.set(id, count.get(id)! - 1);
    }
  };
  visit(0, 0);
  return best;
}

/** The fewest preferred leaders changed from `current` by any balanced choice of leaders within `sets`. */
function fewestLeaderChanges(sets: Placement, current: Placement, members: readonly string[]): number {
  const count = new Map(members.map((id) => [id, 0]));
  let best = Infinity;
  const visit = (p: number, changed: number): void => {
    if (changed >= best) return;
    if (p === sets.length) {
      if (spread([...count.values()]) <= 1) best = changed;
      return;
    }
    for (const id of sets[p]!) {
      count.set(id, count.get(id)! + 1);
      visit(p + 1, changed + (id === current[p]![0] ? 0 : 1));
      count.set(id, count.get(id)! - 1);
    }
  };
  visit(0, 0);
  return best;
}
