// The property the fault tests and `npm run torture` check: for every
// generated schedule, runSchedule finds nothing wrong. fast-check generates
// schedules from a seed and shrinks a failing one (each shrink step is
// another real run); every failing run's schedule, failure and history are
// written to a folder, with the command that replays the schedule.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { runSchedule } from './run.js';
import type { RunOptions, RunResult } from './run.js';
import { scheduleArb } from './schedule.js';
import type { Schedule } from './schedule.js';

export interface Shape {
  nodes: 3 | 5;
  persistent: boolean;
  maxPhases?: number;
}

export interface PropertyTally {
  runs: number;
  ops: number;
  seconds: number;
  failures: string[];
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
  return fc.asyncProperty(scheduleArb(shape), async (s) => {
    let r: RunResult;
    try {
      r = await runSchedule(s, opts);
    } catch (e) {
      r = { ok: false, failure: `the run broke: ${(e as Error).stack ?? String(e)}`, ops: 0, history: [], seconds: 0 };
    }
    opts.tally.runs++;
    opts.tally.ops += r.ops;
    opts.tally.seconds += r.seconds;
    opts.log?.(`${shapeName(shape)}: ${r.ok ? 'ok' : 'FAILED'} — ${s.phases.length} phase(s), ${r.ops} ops in ${r.seconds.toFixed(1)} s`);
    if (r.ok) return true;
    const file = saveFailure(opts.failuresDir, s, r, `${shapeName(shape)}-${Date.now()}`);
    opts.tally.failures.push(`${r.failure}\n(saved to ${file}; replay with: npm run torture -- --replay ${file})`);
    return false;
  });
}
