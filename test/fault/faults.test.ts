// Property-based failure tests on real processes (Jepsen-style): fast-check
// generates fault schedules — kill -9 of a node, a leader or a majority
// (on the clock, or the moment a write to the victim is in flight), SIGSTOP
// pauses, halves, an isolated leader, a bridge, one-way links, slow links,
// several of them on at once with their own start and stop — and client
// mixes; each schedule runs against a fresh cluster of real Velo processes
// behind a proxy on every link, and must leave a linearizable history, one
// leader per partition and converged replicas.
//
// The tests fail if a planned schedule did not run, if the clients got few
// definite answers, and if, in memory or on disk, no run had faults on at the
// same time or a kill that met a write in flight (measured, not planned).
//
// Budget in `npm test`: a fixed number of seeded schedules per shape (about
// five minutes on two cores); `npm run torture -- --minutes N` runs more.
// A failure prints the fast-check seed and the saved schedule's replay command.

import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { landedMidWrite } from './coverage.js';
import { emptyTally, faultProperty, shapeName } from './property.js';
import type { PropertyTally, Shape } from './property.js';
import { runSchedule } from './run.js';
import type { Schedule } from './schedule.js';

const FAILURES = fileURLToPath(new URL('../../fault-failures', import.meta.url));
const log = (line: string) => process.stdout.write(`${line}\n`);
/** After a failure, fast-check shrinks the schedule (each step a real run) for at most this long. */
const SHRINK_MS = 5 * 60_000;

const BUDGET: { shape: Shape; runs: number; seed: number }[] = [
  { shape: { nodes: 3, persistent: false }, runs: 8, seed: 301 },
  { shape: { nodes: 3, persistent: true }, runs: 6, seed: 302 },
  { shape: { nodes: 5, persistent: false }, runs: 5, seed: 501 },
  { shape: { nodes: 5, persistent: true }, runs: 5, seed: 502 },
];

/**
 * A schedule's clients must get at least this many definite answers: fewer
 * means that run checked next to nothing. Low on purpose (the fewest seen on
 * a loaded machine was 37, a leader isolated for half a second); the sum per
 * shape is the main guard.
 */
const MIN_DEFINITE_PER_SCHEDULE = 10;

/** Each shape's tally, for the coverage tests after them. */
const tallies = new Map<string, PropertyTally>();

describe('fault schedules on real clusters', () => {
  for (const { shape, runs, seed } of BUDGET) {
    test(`${shapeName(shape)}: ${runs} schedules keep histories linearizable, one leader per partition, replicas converged`, async () => {
      const tally = emptyTally();
      tallies.set(shapeName(shape), tally);
      const timeLimitMs = 60_000 * runs + SHRINK_MS;
      const out = await fc.check(faultProperty(shape, { log, failuresDir: FAILURES, tally }), { seed, numRuns: runs, plugins: [fc.interruptAfterTimeLimit(timeLimitMs)] });
      // After an interrupt the last run is still going: let it stop its cluster.
      await tally.running;
      const planned = tally.records.filter((r) => !r.shrinking);
      const overlapped = planned.filter((r) => r.coverage.overlaps.length > 0).length;
      const midWrite = planned.filter((r) => landedMidWrite(r.coverage)).length;
      log(
        `${shapeName(shape)}: ${planned.length} of ${runs} schedules (+${tally.runs - planned.length} shrink steps), ${tally.definite} definite answers of ${tally.ops} operations checked in ${tally.seconds.toFixed(0)} s; ` +
          `${overlapped} with faults on at the same time, ${midWrite} with a kill that met a write in flight`,
      );
      // The smallest failing schedule is the last one recorded.
      expect(out.failed ? `seed ${seed} (fast-check path ${out.counterexamplePath}, ${out.numShrinks} shrinks):\n${tally.failures.at(-1)}` : null).toBeNull();
      // An interrupt is no pass: a schedule that never ran checked nothing.
      expect({ interrupted: out.interrupted, schedulesRun: planned.length }, `every planned schedule ran within ${timeLimitMs / 1000} s`).toEqual({ interrupted: false, schedulesRun: runs });
      // The clients did real work: answers that say what happened, not time-outs and 503s.
      expect(tally.definite, 'definite answers to the clients over all schedules').toBeGreaterThan(runs * 100);
      expect(
        planned.filter((r) => r.definite < MIN_DEFINITE_PER_SCHEDULE).map((r) => `${r.definite} definite of ${r.ops}`),
        `schedules whose clients got fewer than ${MIN_DEFINITE_PER_SCHEDULE} definite answers`,
      ).toEqual([]);
    }, 60_000 * runs + SHRINK_MS + 60_000);
  }

  // What the generator adds is only tested if it happens: measured in the runs above, not read off the schedules.
  for (const persistent of [false, true]) {
    const mode = persistent ? 'on disk (--data-dir)' : 'in memory';
    test(`${mode}, the schedules above had faults on at the same time and a kill -9 that met a write in flight on the killed node`, () => {
      const shapes = BUDGET.filter((b) => b.shape.persistent === persistent);
      const planned = shapes.flatMap((b) => tallies.get(shapeName(b.shape))?.records.filter((r) => !r.shrinking) ?? []);
      expect(planned.length, 'the shape tests above ran every planned schedule').toBe(shapes.reduce((n, b) => n + b.runs, 0));
      const overlapped = planned.filter((r) => r.coverage.overlaps.length > 0).length;
      const midWrite = planned.filter((r) => landedMidWrite(r.coverage)).length;
      expect({ 'some faults overlapped in time': overlapped > 0, 'some kill left a write sent to the victim unanswered': midWrite > 0 }).toEqual({
        'some faults overlapped in time': true,
        'some kill left a write sent to the victim unanswered': true,
      });
    });
  }
});


describe('the harness itself', () => {
  test('finds the stale reads of nodes that serve strong reads from their own replica (a test-only switch)', async () => {
    // A leader cut off for 4 s keeps serving its frozen replica while the majority moves on.
    const schedule: Schedule = {
      nodes: 3,
      persistent: false,
      partitions: 4,
      clients: 6,
      keys: 2,
      mix: { read: 3, write: 2, cas: 0, delete: 0 },
      clientSeed: 1,
      phases: [{ fault: { kind: 'isolateLeader', partition: 0 }, durationMs: 4000, quietMs: 500 }],
    };
    const r = await runSchedule(schedule, { unsafeStaleReads: true, log });
    expect(r.ok).toBe(false);
    expect(r.failure).toMatch(/^not_linearizable on key/);
  }, 120_000);
});
