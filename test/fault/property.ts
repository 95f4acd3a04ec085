// The property the fault tests and `npm run torture` check: for every
// generated schedule, runSchedule finds nothing wrong. fast-check generates
// schedules from a seed and shrinks a failing one (each shrink step is
// another real run); every failing run's schedule, failure and history are
// written to a folder, with the command that replays the schedule.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describeCoverage } from './coverage.js';
import type { Coverage } from './coverage.js';
import { runSchedule } from './run.js';
import type { RunOptions, RunResult } from './run.js';
import { scheduleArb } from './schedule.js';
import type { Schedule } from './schedule.js';

export interface Shape {
  nodes: 3 | 5;
  persistent: boolean;
  maxPhases?: number;
}

/** One run of the property: a generated schedule, or one of fast-check's shrink steps after a failure. */
export interface ScheduleRecord {
  shape: string;
  ok: boolean;
  /** Run after a failure in the same check: a shrink step, not one of the planned schedules. */
  shrinking: boolean;
  ops: number;
  definite: number;
  seconds: number;
  /** What the run really did (coverage.ts). */
  coverage: Coverage;
}

export interface PropertyTally {
  runs: number;
  ops: number;
  /** Operations with a definite answer (RunResult.definite), summed. */
  definite: number;
  seconds: number;
  failures: string[];
  records: ScheduleRecord[];
  /**
   * The run in progress, if any. fast-check's time limit returns without
   * stopping it; await this before the test ends, or its cluster's
   * processes outlive the test.
   */
  running: Promise<void> | null;
}

export function emptyTally(): PropertyTally {
  return { runs: 0, ops: 0, definite: 0, seconds: 0, failures: [], records: [], running: null };
}

export function shapeName(s: Shape): string {
  return `${s.nodes}-nodes-${s.persistent ? 'persistent' : 'memory'}`;
}

/** Writes a failing run where `npm run torture -- --replay FILE` can run it again. */
export function saveFailure(dir: string, s: Schedule, r: RunResult, tag: string): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${tag}.json`);
  writeFileSync(file, JSON.stringify({ schedule: s, failure: r.failure, history: r.history }, null, 1));
  return file;
}

export function faultProperty(shape: Shape, opts: RunOptions & { failuresDir: string; tally: PropertyTally }): fc.IAsyncPropertyWithHooks<[Schedule]> {
  // fast-check runs the property for the planned schedules until one fails, then only to shrink that one.
  let failedBefore = false;
  return fc.asyncProperty(scheduleArb(shape), async (s) => {
    let r: RunResult;
    const run = runSchedule(s, opts);
    opts.tally.running = run.then(
      () => {},
      () => {},
    );
    try {
      r = await run;
    } catch (e) {
      r = { ok: false, failure: `the run broke: ${(e as Error).stack ?? String(e)}`, ops: 0, definite: 0, history: [], seconds: 0, coverage: { overlaps: [], midWriteKills: [] } };
    }
    const shrinking = failedBefore;
    opts.tally.runs++;
    opts.tally.ops += r.ops;
    opts.tally.definite += r.definite;
    opts.tally.seconds += r.seconds;
    opts.tally.records.push({ shape: shapeName(shape), ok: r.ok, shrinking, ops: r.ops, definite: r.definite, seconds: r.seconds, coverage: r.coverage });
    opts.log?.(`${shapeName(shape)}: ${r.ok ? 'ok' : 'FAILED'} — ${s.phases.length} phase(s), ${r.ops} ops (${r.definite} definite) in ${r.seconds.toFixed(1)} s; ${describeCoverage(r.coverage)}`);
    if (r.ok) return true;
    failedBefore = true;
    const file = saveFailure(opts.failuresDir, s, r, `${shapeName(shape)}-${Date.now()}`);
    opts.tally.failures.push(`${r.failure}\n(saved to ${file}; replay with: npm run torture -- --replay ${file})`);
    return false;
  });
}
