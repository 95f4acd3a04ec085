// Shared by the simulation test files: run a range of seeds, collect what
// they covered, and describe failures with everything needed to replay them.

import { describeFailure, runSeed } from './replay.js';
import type { BugName, SeedRun } from './replay.js';
import type { SimStats } from './run.js';
import { emptyDiskStats } from './sim-disk.js';

export interface SeedRangeReport {
  failures: SeedRun[];
  schedules: number;
  totals: {
    ticks: number;
    messages: number;
    ops: number;
    opsChecked: number;
    indeterminate: number;
    unverifiedHistories: number;
    elections: number;
    crashes: number;
    pauses: number;
    partitions: number;
    transfers: number;
    confChanges: number;
    snapshotsInstalled: number;
    compactions: number;
    /** The simulated disks' counters, summed over the runs. */
    disk: SimStats['disk'];
  };
}

export function runSeedRange(first: number, count: number, nodes: 3 | 5, bug?: BugName): SeedRangeReport {
  const report: SeedRangeReport = {
    failures: [],
    schedules: 0,
    totals: {
      ticks: 0,
      messages: 0,
      ops: 0,
      opsChecked: 0,
      indeterminate: 0,
      unverifiedHistories: 0,
      elections: 0,
      crashes: 0,
      pauses: 0,
      partitions: 0,
      transfers: 0,
      confChanges: 0,
      snapshotsInstalled: 0,
      compactions: 0,
      disk: { ...emptyDiskStats(), refusals: 0, bitRots: 0 },
    },
  };
  for (let seed = first; seed < first + count; seed++) {
    const run = runSeed(seed, nodes, bug);
    const s = run.result.stats;
    const t = report.totals;
    report.schedules++;
    t.ticks += s.ticks;
    t.messages += s.messages.sent;
    t.ops += s.ops.invoked;
    t.opsChecked += s.opsChecked;
    t.indeterminate += s.ops.indeterminate;
    if (s.lincheckBudgetExceeded) t.unverifiedHistories++;
    t.elections += s.elections;
    t.crashes += s.crashes;
    t.pauses += s.pauses;
    t.partitions += s.partitions;
    t.transfers += s.transfers;
    t.confChanges += s.confChanges;
    t.snapshotsInstalled += s.snapshotsInstalled;
    t.compactions += s.compactions;
    for (const k of Object.keys(t.disk) as (keyof SimStats['disk'])[]) t.disk[k] += s.disk[k];
    if (!run.result.ok) report.failures.push(run);
  }
  return report;
}

/** The assertion message for failing seeds: each with its violation and replay command. */
export function failureMessage(failures: SeedRun[]): string {
  return (
    `${failures.length} schedule(s) failed:\n${failures.map(describeFailure).join('\n')}\n` +
    `(a replay command reruns that seed's schedule bit for bit and prints its fault log; ` +
    `\`npm run sim -- --seeds 1 --seed S --nodes N\` also shrinks the schedule)`
  );
}
