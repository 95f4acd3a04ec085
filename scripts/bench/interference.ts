// The machine may be shared: CPU time spent by processes other than the
// benchmark's own (this process and its children) during a figure is
// measured, so that a disturbed figure is measured again or marked.
//   foreign = Δ(user + nice + system time of the whole machine, /proc/stat)
//           − Δ(time of this process, its reaped children and its live children)
// Interrupt time is left out on both sides: loopback networking is
// accounted there, and it is the benchmark's own.
import { readFileSync } from 'node:fs';
import { trackedPids } from './procs.js';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

function machineTicks(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0] = cpu;
  return user + nice + system;
}

/** utime + stime (+ cutime + cstime) of a process, in ticks; 0 if it is gone. */
function processTicks(pid: number | 'self', withChildren: boolean): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces), from field 3 on.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    const [utime, stime, cutime, cstime] = [f[11]!, f[12]!, f[13]!, f[14]!];
    return utime + stime + (withChildren ? cutime + cstime : 0);
  } catch {
    return 0;
  }
}

interface Sample {
  at: number;
  machine: number;
  own: number;
  /** Ticks of each live child at this sample, so that one that exits is not counted twice. */
  live: Map<number, number>;
}

function sample(): Sample {
  const live = new Map(trackedPids().map((pid) => [pid, processTicks(pid, false)]));
  return { at: Date.now(), machine: machineTicks(), own: processTicks('self', true), live };
}

/** Cores' worth of CPU used by other processes between two samples (0.5 = half a core). */
function foreignCores(a: Sample, b: Sample): number {
  let ownDelta = b.own - a.own;
  // Live children: their growth; one that ended in between is in b.own (reaped), less what it had at a.
  for (const [pid, ticks] of b.live) ownDelta += ticks - (a.live.get(pid) ?? 0);
  for (const [pid, ticks] of a.live) if (!b.live.has(pid)) ownDelta -= ticks;
  const seconds = (b.at - a.at) / 1000;
  return seconds > 0 ? Math.max(0, (b.machine - a.machine - ownDelta) / TICKS_PER_SECOND / seconds) : 0;
}

/** Measures the foreign CPU over whatever runs between start and stop. */
export function watchForeignCpu(): { stop(): number } {
  const start = sample();
  return { stop: () => foreignCores(start, sample()) };
}

/**
 * Waits until other processes use less than `quietCores` over a window of
 * `windowMs`, or `maxWaitMs` has passed; resolves with the last window's use.
 */
export async function waitForQuiet(quietCores: number, windowMs: number, maxWaitMs: number): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  for (;;) {
    const w = watchForeignCpu();
    await new Promise((r) => setTimeout(r, windowMs));
    const used = w.stop();
    if (used < quietCores || Date.now() >= deadline) return used;
  }
}
