// Each injected bug must be caught by the generic checks — the invariants or
// the linearizability checker — within a bounded number of seeds. The fault
// mix is tailored per bug (schedule.ts BUG_PROFILES) to make its window
// likely; nothing in the checks knows which bug is on.

import { describe, expect, test } from 'vitest';
import { BUG_NAMES, describeFailure, runSeed } from './replay.js';
import type { BugName } from './replay.js';

/** Seeds tried per bug before the test gives up. */
const MAX_SEEDS = 300;
const NODES = 3;

const caughtBy: Partial<Record<BugName, string>> = {};

describe.each(BUG_NAMES.map((b) => [b]))('injected bug %s', (bug: BugName) => {
  test(
    `is caught within ${MAX_SEEDS} seeds`,
    () => {
      for (let seed = 1; seed <= MAX_SEEDS; seed++) {
        const run = runSeed(seed, NODES, bug);
        if (run.result.ok) continue;
        const v = run.result.violation!;
        caughtBy[bug] = v.invariant;
        console.log(`[bugs] ${bug}: caught after ${seed} seed(s) by ${v.invariant} — ${describeFailure(run).split('\n')[0]!.slice(0, 300)}`);
        // A crash of the simulator itself is not a catch.
        expect(v.invariant).not.toBe('exception');
        return;
      }
      expect.fail(`${bug} was not caught in seeds 1..${MAX_SEEDS} on ${NODES} nodes`);
    },
    300_000,
  );
});
