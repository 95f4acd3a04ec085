// Schedules the simulation once failed on, replayed with the strict
// liveness bound: each must now pass (test/sim/FINDINGS.md).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { runSimulation } from './run.js';
import { parseSchedule } from './schedule.js';

const finding = (name: string) => readFileSync(fileURLToPath(new URL(`./findings/${name}`, import.meta.url)), 'utf8');

describe('regressions found by the simulation', () => {
  test('a candidate behind in term learns the higher term from the refusal (livelock, seed 3912): a leader within 10 election timeouts of the heal', () => {
    const schedule = parseSchedule(finding('stale-candidate-livelock-seed-3912.json'), 3);
    const result = runSimulation({ seed: 3912, nodes: 3, schedule, leaderBoundTicks: 100 });
    expect(result.violation ?? null).toBeNull();
    expect(result.ok).toBe(true);
  });
});
