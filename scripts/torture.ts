// `npm run torture -- --minutes N`: fault schedules on real clusters for as
// long as asked, cycling through 3 and 5 nodes, memory and persistent;
// failing runs (and their shrunk versions) are written to --out.
//
//   npm run torture -- --minutes 30 [--seed S] [--out DIR] [--shape 3-memory|3-persistent|5-memory|5-persistent]
//   npm run torture -- --replay FILE       # runs a saved schedule again
//   npm run torture -- --minutes 2 --unsafe-stale-reads   # must fail: proves the harness catches stale reads
//
// A replay runs the same schedule and client choices; the interleaving of a
// real cluster is not replayable, so a rare failure may need a few replays.

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { emptyTally, faultProperty, saveFailure, shapeName } from '../test/fault/property.js';
import type { Shape } from '../test/fault/property.js';
import { describeCoverage, landedMidWrite } from '../test/fault/coverage.js';
import { runSchedule } from '../test/fault/run.js';
import type { Schedule } from '../test/fault/schedule.js';

function usage(message: string): never {
  process.stderr.write(`torture: ${message}\nusage: npm run torture -- --minutes N [--seed S] [--out DIR] [--shape 3-memory|3-persistent|5-memory|5-persistent] [--unsafe-stale-reads] | --replay FILE\n`);
  process.exit(2);
}

function parse(argv: string[]): { minutes: number; seed: number; out: string; shapes: Shape[]; replay: string | null; unsafe: boolean } {
  const o = { minutes: 5, seed: Date.now() % 2 ** 31, out: 'fault-failures', shapes: [] as Shape[], replay: null as string | null, unsafe: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${flag} needs a value`);
      return v;
    };
    const int = (min: number) => {
      const v = value();
      if (!/^\d+$/.test(v) || Number(v) < min) usage(`${flag} must be an integer ≥ ${min}, got "${v}"`);
      return Number(v);
    };
    if (flag === '--minutes') o.minutes = int(1);
    else if (flag === '--seed') o.seed = int(0);
    else if (flag === '--out') o.out = value();
    else if (flag === '--replay') o.replay = value();
    else if (flag === '--unsafe-stale-reads') o.unsafe = true;
    else if (flag === '--shape') {
      const m = /^([35])-(memory|persistent)$/.exec(value());
      if (!m) usage('--shape is 3-memory, 3-persistent, 5-memory or 5-persistent');
      o.shapes.push({ nodes: Number(m[1]) as 3 | 5, persistent: m[2] === 'persistent' });
    } else usage(`unknown flag ${flag}`);
  }
  if (o.shapes.length === 0) {
    o.shapes = [
      { nodes: 3, persistent: false },
      { nodes: 3, persistent: true },
      { nodes: 5, persistent: false },
      { nodes: 5, persistent: true },
    ];
  }
  return o;
}

const log = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

async function replay(file: string, out: string, unsafe: boolean): Promise<number> {
  let s: Schedule;
  try {
    s = (JSON.parse(readFileSync(file, 'utf8')) as { schedule: Schedule }).schedule;
  } catch (e) {
    usage(`cannot read a schedule from ${file}: ${(e as Error).message}`);
  }
  const r = await runSchedule(s, { log, unsafeStaleReads: unsafe });
  log(`what the run did: ${describeCoverage(r.coverage)}`);
  if (r.ok) {
    log(`replay passed: ${r.ops} ops (${r.definite} definite) in ${r.seconds.toFixed(1)} s`);
    return 0;
  }
  log(`replay FAILED: ${r.failure}\nsaved to ${saveFailure(out, s, r, `replay-${Date.now()}`)}`);
  return 1;
}

async function main(): Promise<number> {
  const o = parse(process.argv.slice(2));
  if (o.replay) return replay(o.replay, o.out, o.unsafe);
  const tally = emptyTally();
  const deadline = Date.now() + o.minutes * 60_000;
  log(`torture for ${o.minutes} min from seed ${o.seed}; failures go to ${o.out}/`);
  for (let round = 0; Date.now() < deadline; round++) {
    const shape = o.shapes[round % o.shapes.length]!;
    const seed = o.seed + round;
    const failuresBefore = tally.failures.length;
    const out = await fc.check(faultProperty({ ...shape, maxPhases: 4 }, { log, unsafeStaleReads: o.unsafe, failuresDir: o.out, tally }), {
      seed,
      numRuns: 1,
      interruptAfterTimeLimit: Math.max(1, deadline - Date.now()),
    });
    // An interrupt at the deadline leaves the run going: let it stop its cluster.
    await tally.running;
    // An interrupt at the deadline is not a failure; a run that failed left its account in the tally.
    if (tally.failures.length > failuresBefore) {
      log(`${shapeName(shape)} seed ${seed} FAILED after shrinking ${out.numShrinks} time(s):\n${tally.failures.at(-1)}\nthe generator replays with: npm run torture -- --seed ${seed} --shape ${shape.nodes}-${shape.persistent ? 'persistent' : 'memory'} --minutes 1`);
    }
  }
  const minutes = tally.seconds / 60;
  log(`${tally.runs} schedules, ${tally.ops} operations (${tally.definite} definite) checked in ${minutes.toFixed(1)} min: ${(tally.runs / minutes).toFixed(2)} schedules/min, ${Math.round(tally.ops / minutes)} ops/min; ${tally.failures.length} failing run(s)`);
  const overlapped = tally.records.filter((r) => r.coverage.overlaps.length > 0).length;
  const midWrite = tally.records.filter((r) => landedMidWrite(r.coverage)).length;
  log(`${overlapped} schedule(s) had faults on at the same time, ${midWrite} a kill -9 that met a write in flight on the killed node`);
  return tally.failures.length === 0 ? 0 : 1;
}

process.exitCode = await main();
