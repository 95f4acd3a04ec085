// Running a schedule by seed, shrinking a failure, and the command that
// replays it — shared by the CLI (scripts/sim.ts) and the tests, so that a
// seed printed by either one replays the same run bit for bit.

import fc from 'fast-check';
import { runSimulation } from './run.js';
import type { SimResult } from './run.js';
import { profileFor, scheduleArb, scheduleForSeed } from './schedule.js';
import type { Schedule, SimBugs } from './schedule.js';

export type BugName = keyof SimBugs;

export const BUG_NAMES: readonly BugName[] = [
  'voteWithoutLogCheck',
  'commitPreviousTermByCounting',
  'readIndexWithoutHeartbeat',
  'voteBeforePersist',
  'appendWithoutPrevCheck',
  'acksBeforePersist',
  'batchWithoutSync',
  'recoveryIgnoresChecksums',
];

export interface SeedRun {
  seed: number;
  nodes: 3 | 5;
  bug: BugName | undefined;
  schedule: Schedule;
  result: SimResult;
}

/** The run a seed stands for: its schedule (drawn with the bug's fault profile, if any) and its outcome. */
export function runSeed(seed: number, nodes: 3 | 5, bug?: BugName, log?: (line: string) => void): SeedRun {
  const schedule = scheduleForSeed(seed, nodes, profileFor(bug));
  return { seed, nodes, bug, schedule, result: runWith(seed, nodes, bug, schedule, log) };
}

export function runWith(seed: number, nodes: 3 | 5, bug: BugName | undefined, schedule: Schedule, log?: (line: string) => void): SimResult {
  return runSimulation({ seed, nodes, schedule, ...(bug ? { bugs: { [bug]: true } } : {}), ...(log ? { log } : {}) });
}

/** The command line that replays a run (with a saved schedule file, the shrunk one). */
export function replayCommand(seed: number, nodes: 3 | 5, bug?: BugName, scheduleFile?: string): string {
  let cmd = `npm run sim -- --seed ${seed} --nodes ${nodes}`;
  if (bug) cmd += ` --bug ${bug}`;
  if (scheduleFile) cmd += ` --schedule ${scheduleFile}`;
  return cmd;
}

export interface Shrunk {
  schedule: Schedule;
  result: SimResult;
  shrinks: number;
}

/**
 * Shrinks a failing seed's schedule with fast-check: with the same seed,
 * fast-check's first draw is exactly `scheduleForSeed(seed)`, so the search
 * starts from the failing schedule and shrinks it while the run (same seed
 * for everything else) keeps failing. Returns null if the seed passes.
 */
export function shrinkSeed(seed: number, nodes: 3 | 5, bug: BugName | undefined, timeLimitMs?: number): Shrunk | null {
  const details = fc.check(
    fc.property(scheduleArb(nodes, profileFor(bug)), (schedule) => runWith(seed, nodes, bug, schedule).ok),
    { seed, numRuns: 1, ...(timeLimitMs !== undefined ? { interruptAfterTimeLimit: timeLimitMs, markInterruptAsFailure: false } : {}) },
  );
  if (!details.failed || !details.counterexample) return null;
  const schedule = details.counterexample[0];
  return { schedule, result: runWith(seed, nodes, bug, schedule), shrinks: details.numShrinks };
}

/** One line describing a failure, with what is needed to replay it. */
export function describeFailure(run: { seed: number; nodes: 3 | 5; bug: BugName | undefined; result: SimResult }): string {
  const v = run.result.violation;
  if (!v) return `seed ${run.seed}: ok`;
  return `seed ${run.seed} (${run.nodes} nodes${run.bug ? `, bug ${run.bug}` : ''}): ${v.invariant} at tick ${v.tick} (${v.phase} phase): ${v.message}\n  replay: ${replayCommand(run.seed, run.nodes, run.bug)}`;
}
