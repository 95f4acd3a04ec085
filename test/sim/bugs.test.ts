// Each injected bug must be caught by the generic checks — the invariants or
// the linearizability checker — within a bounded number of seeds. The fault
// mix is tailored per bug (schedule.ts BUG_PROFILES) to make its window
// likely; nothing in the checks knows which bug is on.
//
// A catch counts only if it is the safety violation the bug causes (a
// liveness failure, or a crash of the simulator, is not one), and only if the
// same seed and schedule pass every check with the bug off: otherwise the
// schedule, not the bug, is what failed.

import { describe, expect, test } from 'vitest';
import { BUG_NAMES, describeFailure, runSeed, runWith } from './replay.js';
import type { BugName } from './replay.js';

/** Seeds tried per bug before the test gives up. */
const MAX_SEEDS = 300;
const NODES = 3;

/** The violation each bug leads to first: what it breaks, named as the checks name it (invariants.ts, run.ts). */
const CAUGHT_AS: Record<BugName, string> = {
  // §5.4.1: a candidate missing committed entries wins, and is a leader without them.
  voteWithoutLogCheck: 'leader completeness',
  // §5.4.2 (Figure 3.7): an old-term entry counted committed is overwritten by a leader that lacks it.
  commitPreviousTermByCounting: 'leader completeness',
  // No log or state is wrong, only a read: a deposed leader answers from its stale state.
  readIndexWithoutHeartbeat: 'linearizability',
  // A vote answered, then lost in a crash: the server votes again in the same term.
  voteBeforePersist: 'election safety',
  // An append accepted over a log whose previous entry differs: two logs disagree on a prefix.
  appendWithoutPrevCheck: 'log matching',
  // A follower acknowledges entries a crash then takes: a quorum of disks lacks a committed entry.
  acksBeforePersist: 'committed entry lost',
  // The store writes batches without sync and the host acts on them: a power loss takes what it had made durable.
  batchWithoutSync: 'durable state',
  // Recovery replays what it can parse of a torn or corrupt record: the node comes back with a log it never wrote.
  recoveryIgnoresChecksums: 'durable state',
};

describe.each(BUG_NAMES.map((b) => [b]))('injected bug %s', (bug: BugName) => {
  test(
    `is caught within ${MAX_SEEDS} seeds, as the violation it causes, by a schedule that passes without it`,
    () => {
      for (let seed = 1; seed <= MAX_SEEDS; seed++) {
        const run = runSeed(seed, NODES, bug);
        if (run.result.ok) continue;
        const v = run.result.violation!;
        console.log(`[bugs] ${bug}: caught after ${seed} seed(s) by ${v.invariant} — ${describeFailure(run).split('\n')[0]!.slice(0, 300)}`);
        // The first failure must be the bug's own: any other kind (liveness, a simulator exception,
        // another invariant) means the checks did not see what this bug breaks.
        expect({ seed, violation: v.invariant }).toEqual({ seed, violation: CAUGHT_AS[bug] });
        // The same seed and schedule without the bug: every check passes.
        const without = runWith(seed, NODES, undefined, run.schedule);
        expect(without.violation ?? null, `seed ${seed} without ${bug}`).toBeNull();
        expect(without.ok).toBe(true);
        return;
      }
      expect.fail(`${bug} was not caught in seeds 1..${MAX_SEEDS} on ${NODES} nodes`);
    },
    300_000,
  );
});
