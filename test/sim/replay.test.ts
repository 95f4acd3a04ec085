// A seed must stand for exactly one run: the same schedule, the same
// events, the same stats — and shrinking must start from that schedule.

import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { replayCommand, runSeed, runWith, shrinkSeed } from './replay.js';
import { DEFAULT_PROFILE, parseSchedule, scheduleArb, scheduleForSeed } from './schedule.js';

describe('replay', () => {
  test("a seed's schedule is fast-check's first draw with that seed (so shrinking starts from it)", () => {
    for (const seed of [1, 17, 123456]) {
      for (const nodes of [3, 5] as const) {
        let first: unknown;
        fc.check(
          fc.property(scheduleArb(nodes, DEFAULT_PROFILE), (s) => {
            first ??= s;
            return true;
          }),
          { seed, numRuns: 1 },
        );
        expect(first).toEqual(scheduleForSeed(seed, nodes));
      }
    }
  });

  test('running a seed twice gives identical stats and trace, for 3 and 5 nodes', () => {
    for (const nodes of [3, 5] as const) {
      for (const seed of [2, 99]) {
        const a = runSeed(seed, nodes);
        const b = runSeed(seed, nodes);
        expect(b.schedule).toEqual(a.schedule);
        expect(b.result).toEqual(a.result);
      }
    }
  });

  test('different seeds give different runs', () => {
    const a = runSeed(5, 3).result.stats.traceHash;
    const b = runSeed(6, 3).result.stats.traceHash;
    expect(a).not.toBe(b);
  });

  test('a schedule saved as JSON replays the same run', () => {
    const run = runSeed(11, 5);
    const saved = parseSchedule(JSON.stringify(run.schedule), 5);
    expect(runWith(11, 5, undefined, saved)).toEqual(run.result);
  });

  test('malformed schedule files are refused with a reason', () => {
    const good = scheduleForSeed(3, 3);
    expect(() => parseSchedule('[]', 3)).toThrow(/invalid schedule/);
    expect(() => parseSchedule(JSON.stringify({ ...good, clients: 0 }), 3)).toThrow(/clients/);
    expect(() => parseSchedule(JSON.stringify({ ...good, events: [{ at: 1, kind: 'crash', node: 7, downTicks: 1 }] }), 3)).toThrow(/node 7/);
  });

  test('a failing seed shrinks to a smaller schedule that still fails', () => {
    // voteBeforePersist on seed 4 is caught within a few ticks; see bugs.test.ts.
    const run = runSeed(4, 3, 'voteBeforePersist');
    expect(run.result.ok).toBe(false);
    const shrunk = shrinkSeed(4, 3, 'voteBeforePersist', 8_000); // the best found in 8 s
    expect(shrunk).not.toBeNull();
    expect(shrunk!.result.ok).toBe(false);
    expect(shrunk!.schedule.events.length).toBeLessThanOrEqual(run.schedule.events.length);
    expect(replayCommand(4, 3, 'voteBeforePersist', 'f.json')).toBe('npm run sim -- --seed 4 --nodes 3 --bug voteBeforePersist --schedule f.json');
  }, 120_000);
});
