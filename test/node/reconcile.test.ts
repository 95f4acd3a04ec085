// The leader's next configuration change (src/node/reconcile.ts): each rule
// and its priority as a table, whole moves as scripts of the steps taken, and
// a property over random moves: the target is reached in a bounded number of
// steps, and on the way the group never has fewer desired voters than it
// started with (up to R) nor an empty configuration.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ConfChangeType } from '../../raft/types.js';
import { configMatches, nextStep, nodeOfMember } from '../../src/node/reconcile.js';
import type { ReconcileInput, ReconcileStep } from '../../src/node/reconcile.js';

const LAST = 10;

/** A leader `a` of {a,b,c} at index 10, everything committed, every member caught up and connected. */
function input(over: Partial<Omit<ReconcileInput, 'match'>> & { match?: Record<string, number>; down?: string[] } = {}): ReconcileInput {
  const { match, down, ...rest } = over;
  const base: ReconcileInput = {
    self: 'a',
    voters: ['a', 'b', 'c'],
    learners: [],
    desiredVoters: ['a', 'b', 'c'],
    desiredLearners: [],
    match: new Map(),
    commit: LAST,
    lastIndex: LAST,
    connected: (m) => !(down ?? []).includes(m),
    ...rest,
  };
  const all = [...base.voters, ...base.learners];
  return { ...base, match: new Map(all.map((m) => [m, match?.[m] ?? LAST])) };
}

/** A step as one line of a script: `add-learner d`, `add-voter d`, `remove c`, `transfer d`, `none`. */
function show(s: ReconcileStep): string {
  if (s.kind === 'none') return 'none';
  if (s.kind === 'transfer') return `transfer ${s.to}`;
  return `${['add-voter', 'add-learner', 'remove'][s.type]} ${s.member}`;
}

describe('nextStep: each rule, in priority order', () => {
  const cases: Array<[name: string, over: Parameters<typeof input>[0], expected: string]> = [
    // 1. promote
    ['a caught-up learner that is a desired voter is promoted', { learners: ['d'], desiredVoters: ['a', 'b', 'd'] }, 'add-voter d'],
    ['a learner behind the commit index is not promoted yet', { learners: ['d'], desiredVoters: ['a', 'b', 'd'], match: { d: LAST - 1 } }, 'none'],
    ['nothing counts as caught up before anything is committed', { learners: ['d'], desiredVoters: ['a', 'b', 'd'], commit: 0, match: { d: 0 } }, 'none'],
    ['learners are promoted in desired order', { learners: ['e', 'd'], desiredVoters: ['a', 'd', 'e'] }, 'add-voter d'],
    ['a new incarnation’s old voter is removed before it is promoted', { self: 'b', learners: ['a@2'], desiredVoters: ['a@2', 'b', 'c'] }, 'remove a'],
    ['a new incarnation is promoted when its old id is the only voter', { voters: ['a'], learners: ['a@2'], desiredVoters: ['a@2'] }, 'add-voter a@2'],
    ['a leader whose node has a new incarnation hands leadership to a caught-up voter', { learners: ['a@2'], desiredVoters: ['a@2', 'b', 'c'] }, 'transfer b'],
    ['a new incarnation still catching up leaves its old voter alone', { self: 'b', learners: ['a@2'], desiredVoters: ['a@2', 'b', 'c'], match: { 'a@2': 3 } }, 'none'],
    ['promotion comes before dropping an unwanted learner', { learners: ['x', 'd'], desiredVoters: ['a', 'b', 'd'] }, 'add-voter d'],
    // 2. remove unwanted learners
    ['a learner in neither desired list is removed', { learners: ['x'] }, 'remove x'],
    ['a learner that is a desired learner stays', { learners: ['x'], desiredLearners: ['x'] }, 'none'],
    ['dropping an unwanted learner comes before adding a replica', { learners: ['x'], desiredVoters: ['a', 'b', 'c', 'd'] }, 'remove x'],
    // 3. add
    ['a missing desired voter is added as a learner', { desiredVoters: ['a', 'b', 'c', 'd'] }, 'add-learner d'],
    ['desired voters are added before desired learners', { desiredVoters: ['a', 'b', 'c', 'd'], desiredLearners: ['e'] }, 'add-learner d'],
    ['a missing desired learner is added as a learner', { desiredLearners: ['e'] }, 'add-learner e'],
    ['no replica is added while a desired voter catches up', { learners: ['d'], desiredVoters: ['a', 'd', 'e'], match: { d: 3 } }, 'none'],
    ['no desired learner is added while a desired voter catches up', { learners: ['d'], desiredVoters: ['a', 'b', 'c', 'd'], desiredLearners: ['e'], match: { d: 3 } }, 'none'],
    ['desired learners catch up side by side', { learners: ['e'], desiredLearners: ['e', 'f'], match: { e: 0 } }, 'add-learner f'],
    ['adding the replacement comes before removing the voter that leaves', { desiredVoters: ['a', 'b', 'd'] }, 'add-learner d'],
    // 4. remove voters that leave
    ['no voter leaves while its replacement is still a learner', { learners: ['d'], desiredVoters: ['a', 'b', 'd'], match: { d: 3 } }, 'none'],
    ['a voter leaves once every desired voter is a voter', { voters: ['a', 'b', 'c', 'd'], desiredVoters: ['a', 'b', 'd'] }, 'remove c'],
    ['a voter that should be a learner leaves the voters first', { desiredVoters: ['a', 'b'], desiredLearners: ['c'] }, 'remove c'],
    ['the leader removes other leaving voters before itself', { self: 'c', voters: ['a', 'b', 'c', 'x'], desiredVoters: ['a', 'b'] }, 'remove x'],
    ['a leader that leaves hands leadership to the first ready desired voter', { self: 'c', voters: ['a', 'b', 'c', 'd'], desiredVoters: ['d', 'a', 'b'] }, 'transfer d'],
    ['a disconnected or lagging voter is no transfer target', { self: 'c', voters: ['a', 'b', 'c', 'd'], desiredVoters: ['d', 'a', 'b'], down: ['d'], match: { a: LAST - 1 } }, 'transfer b'],
    ['a leader that leaves waits when no desired voter is ready', { self: 'c', voters: ['a', 'b', 'c', 'd'], desiredVoters: ['d', 'a', 'b'], down: ['d', 'a', 'b'] }, 'none'],
    // 5. leadership
    ['leadership goes to the preferred replica once it is ready', { self: 'b' }, 'transfer a'],
    ['leadership stays when the preferred replica is disconnected', { self: 'b', down: ['a'] }, 'none'],
    ['leadership stays when the preferred replica lacks the last entry', { self: 'b', match: { a: LAST - 1 } }, 'none'],
    ['leadership stays with the preferred replica', {}, 'none'],
    ['configuration changes come before leadership', { self: 'b', desiredVoters: ['a', 'b', 'c', 'd'] }, 'add-learner d'],
  ];
  test.each(cases)('%s', (_name, over, expected) => {
    expect(show(nextStep(input(over)))).toBe(expected);
  });

  test('a change carries its raft type and a reason', () => {
    const s = nextStep(input({ learners: ['d'], desiredVoters: ['a', 'b', 'd'] }));
    expect(s).toMatchObject({ kind: 'change', type: ConfChangeType.AddVoter, member: 'd' });
    expect((s as { why: string }).why).toMatch(/caught up/);
  });
});

describe('nextStep: input no leader can hold is refused with a reason', () => {
  test.each([
    ['no desired voter', { desiredVoters: [] }, /desiredVoters is empty/],
    ['two desired incarnations of one node', { desiredVoters: ['a', 'b', 'a@2'] }, /a and a@2 are both desired/],
    ['a member desired as voter and learner', { desiredLearners: ['b'] }, /b is listed twice/],
    ['an empty configuration', { voters: [] }, /no voter/],
    ['a member both voter and learner', { learners: ['c'] }, /c is both a voter and a learner/],
  ] as const)('%s', (_name, over, message) => {
    expect(() => nextStep(input({ ...over }))).toThrow(message);
  });
});

describe('configMatches', () => {
  test.each([
    [['a', 'b', 'c'], [], ['c', 'a', 'b'], [], true],
    [['a', 'b', 'c'], ['d'], ['a', 'b', 'c'], ['d'], true],
    [['a', 'b', 'c'], [], ['a', 'b', 'd'], [], false],
    [['a', 'b', 'c', 'd'], [], ['a', 'b', 'c'], [], false],
    [['a', 'b'], ['c'], ['a', 'b', 'c'], [], false],
    [['a', 'b', 'c'], [], ['a', 'b', 'c'], ['d'], false],
  ])('voters %j learners %j vs desired %j / %j → %s', (voters, learners, desiredVoters, desiredLearners, expected) => {
    expect(configMatches({ voters, learners, desiredVoters, desiredLearners })).toBe(expected);
  });
});

interface Move {
  self: string;
  voters: string[];
  learners?: string[];
  desiredVoters: string[];
  desiredLearners?: string[];
  /** Members whose node is unreachable: never caught up, never connected. */
  down?: string[];
}

interface MoveResult {
  script: string[];
  voters: string[];
  learners: string[];
  self: string;
  /** Per step, the configuration after it, and who then holds the whole log. */
  history: Array<{ voters: string[]; learners: string[]; caughtUp: string[] }>;
}

/**
 * Runs a move as the leader would: ask, apply the change (one log entry,
 * committed at once), and let every live member catch up — except a learner
 * just added, which stays at 0 for one more round, as a snapshot takes time.
 * Stops when nothing is left to do and nobody is catching up.
 */
function runMove(m: Move, maxSteps: number): MoveResult {
  let voters = [...m.voters];
  let learners = [...(m.learners ?? [])];
  let self = m.self;
  let lastIndex = LAST;
  const down = new Set(m.down ?? []);
  const match = new Map<string, number>([...voters, ...learners].map((x) => [x, down.has(x) ? 1 : lastIndex]));
  // Learners present at the start are still taking their snapshot.
  let catchingUp = new Set(learners);
  for (const l of learners) match.set(l, 0);
  const script: string[] = [];
  const history: MoveResult['history'] = [];
  for (let n = 0; n < maxSteps; n++) {
    const step = nextStep({
      self, voters, learners, desiredVoters: m.desiredVoters, desiredLearners: m.desiredLearners ?? [],
      match, commit: lastIndex, lastIndex, connected: (x) => !down.has(x),
    });
    const arrived = [...catchingUp].filter((x) => !down.has(x));
    catchingUp = new Set();
    if (step.kind === 'none') {
      if (arrived.length === 0) return { script, voters, learners, self, history };
      script.push('wait');
    } else if (step.kind === 'transfer') {
      expect(voters).toContain(step.to);
      self = step.to;
      script.push(show(step));
    } else {
      // Thesis §4.2.1: a server votes only once it holds the committed log.
      if (step.type === ConfChangeType.AddVoter) expect(match.get(step.member)).toBeGreaterThanOrEqual(lastIndex);
      voters = voters.filter((x) => x !== step.member);
      learners = learners.filter((x) => x !== step.member);
      if (step.type === ConfChangeType.AddVoter) voters.push(step.member);
      if (step.type === ConfChangeType.AddLearner) {
        learners.push(step.member);
        catchingUp.add(step.member);
      }
      lastIndex++;
      script.push(show(step));
    }
    for (const x of [...voters, ...learners]) if (!down.has(x) && !catchingUp.has(x)) match.set(x, lastIndex);
    for (const x of catchingUp) match.set(x, 0);
    for (const x of arrived) match.set(x, lastIndex);
    history.push({ voters: [...voters], learners: [...learners], caughtUp: [...match].filter(([, i]) => i >= lastIndex).map(([x]) => x) });
  }
  throw new Error(`no convergence in ${maxSteps} steps: ${script.join(', ')}`);
}

describe('whole moves, step by step', () => {
  test('{a,b,c} → {a,b,d}: d joins as a learner, is promoted, and only then c leaves', () => {
    const r = runMove({ self: 'a', voters: ['a', 'b', 'c'], desiredVoters: ['a', 'b', 'd'] }, 20);
    expect(r.script).toEqual(['add-learner d', 'wait', 'add-voter d', 'remove c']);
    expect(configMatches({ ...r, desiredVoters: ['a', 'b', 'd'], desiredLearners: [] })).toBe(true);
  });

  test('{a,b,c} → {d,e,f}: all three join one at a time, leadership moves to d while e catches up, then the old leave', () => {
    const r = runMove({ self: 'a', voters: ['a', 'b', 'c'], desiredVoters: ['d', 'e', 'f'] }, 30);
    expect(r.script).toEqual([
      'add-learner d', 'wait', 'add-voter d',
      'add-learner e', 'transfer d', 'add-voter e',
      'add-learner f', 'wait', 'add-voter f',
      'remove a', 'remove b', 'remove c',
    ]);
    expect(r.self).toBe('d');
    expect(new Set(r.voters)).toEqual(new Set(['d', 'e', 'f']));
  });

  test('rejoin {a,b,c} → {a@2,b,c}: node a never holds two votes, and leads again at the end', () => {
    const r = runMove({ self: 'b', voters: ['a', 'b', 'c'], desiredVoters: ['a@2', 'b', 'c'] }, 20);
    expect(r.script).toEqual(['add-learner a@2', 'wait', 'remove a', 'add-voter a@2', 'transfer a@2']);
    for (const h of r.history) expect(h.voters.filter((v) => nodeOfMember(v) === 'a').length).toBeLessThanOrEqual(1);
  });

  test('metadata group: from one voter to three voters and two learners', () => {
    const r = runMove({ self: 'n1', voters: ['n1'], desiredVoters: ['n1', 'n2', 'n3'], desiredLearners: ['n4', 'n5'] }, 30);
    expect(r.script).toEqual([
      'add-learner n2', 'wait', 'add-voter n2',
      'add-learner n3', 'wait', 'add-voter n3',
      'add-learner n4', 'add-learner n5', 'wait',
    ]);
    expect(new Set(r.learners)).toEqual(new Set(['n4', 'n5']));
  });

  test('metadata group: a learner becomes a voter and the voter it replaces becomes a learner', () => {
    const r = runMove({ self: 'n1', voters: ['n1', 'n2', 'n3'], learners: ['n4'], desiredVoters: ['n1', 'n2', 'n4'], desiredLearners: ['n3'] }, 20);
    expect(r.script).toEqual(['wait', 'add-voter n4', 'remove n3', 'add-learner n3', 'wait']);
    expect(r.learners).toEqual(['n3']);
  });

  test('a leader that leaves hands over before it is removed', () => {
    const r = runMove({ self: 'c', voters: ['a', 'b', 'c'], desiredVoters: ['d', 'a', 'b'] }, 20);
    expect(r.script).toEqual(['add-learner d', 'wait', 'add-voter d', 'transfer d', 'remove c']);
  });

  test('a dead voter is replaced: the new replica is promoted before the dead one is removed', () => {
    const r = runMove({ self: 'a', voters: ['a', 'b', 'c'], desiredVoters: ['a', 'b', 'd'], down: ['c'] }, 20);
    expect(r.script).toEqual(['add-learner d', 'wait', 'add-voter d', 'remove c']);
  });
});

describe('property: random moves converge without losing replicas', () => {
  const NODES = ['n0', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
  // A member is a node's first incarnation or its second (`n3@2`).
  const MEMBERS = NODES.flatMap((n) => [n, `${n}@2`]);
  const moves = fc
    .record({
      start: fc.uniqueArray(fc.constantFrom(...MEMBERS), { minLength: 1, maxLength: 7 }),
      startVoters: fc.integer({ min: 1, max: 7 }),
      selfAt: fc.nat(),
      desired: fc.uniqueArray(fc.record({ node: fc.constantFrom(...NODES), second: fc.boolean() }), { minLength: 1, maxLength: 6, selector: (d) => d.node }),
      desiredVoters: fc.integer({ min: 1, max: 6 }),
    })
    .map((g): Move => {
      const k = Math.min(g.startVoters, g.start.length);
      const voters = g.start.slice(0, k);
      const desired = g.desired.map((d) => (d.second ? `${d.node}@2` : d.node));
      const r = Math.min(g.desiredVoters, desired.length);
      return {
        self: voters[g.selfAt % voters.length]!,
        voters,
        learners: g.start.slice(k),
        desiredVoters: desired.slice(0, r),
        desiredLearners: desired.slice(r),
      };
    });

  /**
   * The nodes that hold a vote, counting a node whose new incarnation is a
   * caught-up learner about to be promoted (its old id leaves just before).
   */
  const votingNodes = (h: { voters: string[]; learners: string[]; caughtUp: string[] }, desired: Set<string>): number =>
    new Set([...h.voters, ...h.learners.filter((l) => desired.has(l) && h.caughtUp.includes(l))].map(nodeOfMember)).size;

  test('the target and the preferred leader are reached; replication never dips on the way, voters never empty', () => {
    fc.assert(
      fc.property(moves, (m) => {
        const desired = new Set(m.desiredVoters);
        const R = m.desiredVoters.length;
        const floor = Math.min(R, m.voters.filter((v) => desired.has(v)).length);
        // A voter leaves only once its replacement votes: the voting nodes stay at R, or at what the group had if fewer.
        const nodeFloor = Math.min(R, new Set(m.voters.map(nodeOfMember)).size);
        // Per member at most: add as learner, wait, promote, remove an old incarnation; per start member one removal; two transfers.
        const bound = 4 * (m.desiredVoters.length + (m.desiredLearners ?? []).length) + 2 * (m.voters.length + (m.learners ?? []).length) + 4;
        const r = runMove(m, bound);
        for (const h of r.history) {
          expect(h.voters.length).toBeGreaterThan(0);
          expect(h.voters.filter((v) => desired.has(v)).length).toBeGreaterThanOrEqual(floor);
          expect(votingNodes(h, desired)).toBeGreaterThanOrEqual(nodeFloor);
        }
        expect(configMatches({ voters: r.voters, learners: r.learners, desiredVoters: m.desiredVoters, desiredLearners: m.desiredLearners ?? [] })).toBe(true);
        expect(r.self).toBe(m.desiredVoters[0]);
      }),
      { seed: 0x5ca1e, numRuns: 500 },
    );
  });
});
