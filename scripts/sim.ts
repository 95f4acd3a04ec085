// The deterministic simulation from the command line.
//
//   npm run sim -- --seeds N [--seed S] [--nodes 3|5] [--bug NAME]
//       runs N seeded schedules (seeds S, S+1, …; S defaults to 1) and prints
//       a summary; on a failure, the seed, the shrunk schedule (saved under
//       sim-failures/) and the exact commands that replay both.
//   npm run sim -- --seed S [--nodes 3|5] [--bug NAME] [--schedule FILE]
//       replays one run bit for bit, printing its fault log and stats.
//
// Every run is a pure function of (seed, nodes, bug, schedule); the wall
// clock is read only to report speed.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { BUG_NAMES, describeFailure, replayCommand, runSeed, runWith, shrinkSeed } from '../test/sim/replay.js';
import type { BugName, SeedRun } from '../test/sim/replay.js';
import type { SimResult, SimStats } from '../test/sim/run.js';
import { parseSchedule } from '../test/sim/schedule.js';

interface Args {
  seeds: number | null;
  seed: number | null;
  nodes: 3 | 5;
  bug: BugName | undefined;
  schedule: string | null;
  shrinkSeconds: number;
  keepGoing: boolean;
}

const USAGE = `usage: npm run sim -- --seeds N [--seed S] [--nodes 3|5] [--bug NAME] [--keep-going] [--shrink-seconds T]
       npm run sim -- --seed S [--nodes 3|5] [--bug NAME] [--schedule FILE]
  --seeds N           run N schedules, seeds S, S+1, … (S defaults to 1)
  --seed S            the first seed; alone (without --seeds), replay that one run verbosely
  --nodes 3|5         cluster size (default 3)
  --bug NAME          turn on an injected bug: ${BUG_NAMES.join(', ')}
  --schedule FILE     replay a saved (shrunk) schedule with --seed S instead of the seed's own
  --keep-going        do not stop at the first failing seed
  --shrink-seconds T  time allowed for shrinking a failure (default 120; 0 = do not shrink)`;

class UsageError extends Error {}

function parseArgs(argv: string[]): Args {
  const args: Args = { seeds: null, seed: null, nodes: 3, bug: undefined, schedule: null, shrinkSeconds: 120, keepGoing: false };
  const int = (flag: string, v: string | undefined, min: number): number => {
    if (v === undefined) throw new UsageError(`${flag} needs a value`);
    if (!/^\d+$/.test(v)) throw new UsageError(`${flag} must be a non-negative integer, got "${v}"`);
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`${flag} must be an integer ≥ ${min}, got "${v}"`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    switch (flag) {
      case '--seeds':
        args.seeds = int(flag, value, 1);
        i++;
        break;
      case '--seed':
        args.seed = int(flag, value, 0);
        if (args.seed > 0x7fffffff) throw new UsageError('--seed must be below 2^31');
        i++;
        break;
      case '--nodes':
        if (value !== '3' && value !== '5') throw new UsageError(`--nodes must be 3 or 5, got "${value ?? ''}"`);
        args.nodes = value === '3' ? 3 : 5;
        i++;
        break;
      case '--bug':
        if (!BUG_NAMES.includes(value as BugName)) throw new UsageError(`--bug must be one of ${BUG_NAMES.join(', ')}; got "${value ?? ''}"`);
        args.bug = value as BugName;
        i++;
        break;
      case '--schedule':
        if (value === undefined) throw new UsageError('--schedule needs a file');
        args.schedule = value;
        i++;
        break;
      case '--shrink-seconds':
        args.shrinkSeconds = int(flag, value, 0);
        i++;
        break;
      case '--keep-going':
        args.keepGoing = true;
        break;
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown argument "${flag}"`);
    }
  }
  if (args.seeds === null && args.seed === null) throw new UsageError('give --seeds N, or --seed S to replay one run');
  if (args.schedule !== null && (args.seed === null || args.seeds !== null)) {
    throw new UsageError('--schedule replays one run: give it with --seed S and without --seeds');
  }
  return args;
}

function printStats(s: SimStats): void {
  console.log(
    `  ${s.ticks} ticks, ${s.messages.sent} messages (${s.messages.dropped} dropped, ${s.messages.duplicated} duplicated, ${s.messages.cut} cut), ` +
      `${s.elections} elections (max term ${s.maxTerm}), ${s.committedEntries} entries committed`,
  );
  console.log(
    `  ops: ${s.ops.invoked} invoked, ${s.ops.completed} completed, ${s.ops.indeterminate} indeterminate, ${s.opsChecked} checked linearizable` +
      (s.lincheckBudgetExceeded ? ' (checker budget exceeded: history NOT verified)' : ''),
  );
  console.log(
    `  faults: ${s.crashes} crashes, ${s.pauses} pauses, ${s.partitions} partitions, ${s.transfers} transfers, ${s.confChanges} conf changes; ` +
      `${s.snapshotsInstalled} snapshots installed, ${s.compactions} compactions; leader ${s.leaderAfterHealTicks ?? '—'} ticks after heal; trace ${s.traceHash}`,
  );
  console.log(`  disk: ${diskLine(s.disk)}`);
}

/** What the simulated disks went through (test/sim/sim-disk.ts). */
function diskLine(d: SimStats['disk']): string {
  return (
    `${d.batches} batches (${d.syncedBatches} synced), ${d.powerLosses} power losses, ${d.tornWrites} crashes mid-write; ` +
    `${d.tornBatches} torn batches, ${d.lostUnsyncedBatches} unsynced batches lost, ${d.corruptionsInjected} corrupted (${d.corruptionsDetected} refused by recovery)` +
    (d.bitRots > 0 ? `; ${d.bitRots} bit rots, ${d.syncedBatchesLost} synced batches lost, ${d.refusals} nodes refused to start` : '')
  );
}

function printViolation(r: SimResult): void {
  const v = r.violation!;
  console.log(`VIOLATION — ${v.invariant} at tick ${v.tick} (step ${v.step}, ${v.phase} phase), seed ${v.seed}:`);
  console.log(v.message.split('\n').map((l) => `  ${l}`).join('\n'));
}

function replayOne(args: Args): number {
  const seed = args.seed!;
  const log = (line: string): void => console.log(`  ${line}`);
  let result: SimResult;
  if (args.schedule !== null) {
    const schedule = parseSchedule(readFileSync(args.schedule, 'utf8'), args.nodes);
    console.log(`replaying seed ${seed}, ${args.nodes} nodes${args.bug ? `, bug ${args.bug}` : ''}, schedule from ${args.schedule}`);
    result = runWith(seed, args.nodes, args.bug, schedule, log);
  } else {
    console.log(`replaying seed ${seed}, ${args.nodes} nodes${args.bug ? `, bug ${args.bug}` : ''}`);
    result = runSeed(seed, args.nodes, args.bug, log).result;
  }
  printStats(result.stats);
  if (result.ok) {
    console.log('ok');
    return 0;
  }
  printViolation(result);
  return 1;
}

function reportFailure(run: SeedRun, args: Args): void {
  console.log('');
  printViolation(run.result);
  console.log(`replay: ${replayCommand(run.seed, run.nodes, run.bug)}`);
  if (args.shrinkSeconds === 0) return;
  console.log(`shrinking the schedule (up to ${args.shrinkSeconds} s)…`);
  const shrunk = shrinkSeed(run.seed, run.nodes, run.bug, args.shrinkSeconds * 1000);
  if (!shrunk) {
    console.log('  (fast-check did not reproduce the failure; the seed replay above stands)');
    return;
  }
  const dir = 'sim-failures';
  mkdirSync(dir, { recursive: true });
  const file = `${dir}/seed-${run.seed}-n${run.nodes}${run.bug ? `-${run.bug}` : ''}.json`;
  writeFileSync(file, JSON.stringify(shrunk.schedule, null, 2) + '\n');
  console.log(`shrunk in ${shrunk.shrinks} steps to ${shrunk.schedule.events.length} events (of ${run.schedule.events.length}); saved to ${file}:`);
  console.log(JSON.stringify(shrunk.schedule));
  if (shrunk.result.violation) console.log(`  which fails with: ${shrunk.result.violation.invariant}: ${shrunk.result.violation.message.split('\n')[0]}`);
  console.log(`replay the shrunk schedule: ${replayCommand(run.seed, run.nodes, run.bug, file)}`);
}

function runMany(args: Args): number {
  const first = args.seed ?? 1;
  const count = args.seeds!;
  const totals = { ticks: 0, messages: 0, ops: 0, opsChecked: 0, elections: 0, crashes: 0, partitions: 0, snapshots: 0, unverified: 0 };
  let disk: SimStats['disk'] | null = null;
  const failures: SeedRun[] = [];
  const started = performance.now();
  let ran = 0;
  for (let seed = first; seed < first + count; seed++) {
    const run = runSeed(seed, args.nodes, args.bug);
    ran++;
    const s = run.result.stats;
    totals.ticks += s.ticks;
    totals.messages += s.messages.sent;
    totals.ops += s.ops.invoked;
    totals.opsChecked += s.opsChecked;
    totals.elections += s.elections;
    totals.crashes += s.crashes;
    totals.partitions += s.partitions;
    totals.snapshots += s.snapshotsInstalled;
    if (disk === null) disk = { ...s.disk };
    else for (const k of Object.keys(disk) as (keyof SimStats['disk'])[]) disk[k] += s.disk[k];
    if (s.lincheckBudgetExceeded) totals.unverified++;
    if (!run.result.ok) {
      failures.push(run);
      console.log(describeFailure(run));
      if (!args.keepGoing) break;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `${ran} schedules (${args.nodes} nodes${args.bug ? `, bug ${args.bug}` : ''}, seeds ${first}..${first + ran - 1}) in ${seconds.toFixed(1)} s: ` +
      `${(ran / seconds).toFixed(1)} schedules/s`,
  );
  console.log(
    `  ${totals.ticks} ticks, ${totals.messages} messages, ${totals.elections} elections, ${totals.crashes} crashes, ${totals.partitions} partitions, ` +
      `${totals.snapshots} snapshots installed`,
  );
  console.log(`  ${totals.ops} ops, ${totals.opsChecked} checked linearizable${totals.unverified ? `, ${totals.unverified} histories over the checker's budget` : ''}`);
  if (disk) console.log(`  disk: ${diskLine(disk)}`);
  if (failures.length === 0) {
    console.log('all passed');
    return 0;
  }
  console.log(`${failures.length} failing schedule(s)${args.bug ? ` — the bug was caught after ${failures[0]!.seed - first + 1} seed(s)` : ''}`);
  reportFailure(failures[0]!, args);
  return 1;
}

function main(): void {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`sim: ${e.message}\n${USAGE}`);
      process.exit(2);
    }
    throw e;
  }
  process.exitCode = args.seeds === null ? replayOne(args) : runMany(args);
}

main();
