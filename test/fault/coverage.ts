// What a run really did, as opposed to what its schedule asked for: which
// faults were on at the same time (measured from the moments each took effect
// and began to heal), and which kills landed while a write was in flight on
// the killed node. The tests assert across their schedules that both cases
// happened, so the generators cannot silently stop making them.

import type { WriteInFlight } from './workload.js';

/** A fault from the moment it took effect (SIGKILL sent, SIGSTOP sent, links cut) to the moment its healing began; ms since the run started. */
export interface ActiveFault {
  label: string;
  from: number;
  to: number;
}

/** A kill timed against the clients' writes, and the writes it met. */
export interface MidWriteKill {
  /** The nodes killed at that instant. */
  nodes: string[];
  /** The writes outstanding on those nodes when SIGKILL was sent (kept up to date by the workload). */
  writes: WriteInFlight[];
  /** The trigger did not fire within its bound: the kill went ahead on the clock. */
  fellBack: boolean;
}

export interface Coverage {
  /** Pairs of faults that were on at the same time: "a + b". */
  overlaps: string[];
  /** Per kill timed against writes: how many writes were outstanding on the victim, sent in full, and never answered. */
  midWriteKills: { nodes: string[]; outstanding: number; sent: number; unanswered: number; fellBack: boolean }[];
}

/** Whether a kill timed against writes landed while one was in flight: a write that had gone out in full to the victim got no answer. */
export function landedMidWrite(c: Coverage): boolean {
  return c.midWriteKills.some((k) => k.unanswered > 0);
}

export function coverageOf(active: ActiveFault[], kills: MidWriteKill[]): Coverage {
  const overlaps: string[] = [];
  for (let i = 0; i < active.length; i++) {
    for (let j = i + 1; j < active.length; j++) {
      const a = active[i]!;
      const b = active[j]!;
      if (Math.max(a.from, b.from) < Math.min(a.to, b.to)) overlaps.push(`${a.label} + ${b.label}`);
    }
  }
  return {
    overlaps,
    midWriteKills: kills.map((k) => ({
      nodes: k.nodes,
      outstanding: k.writes.length,
      sent: k.writes.filter((w) => w.sent).length,
      // Still null only if the run ended with it open: no answer either.
      unanswered: k.writes.filter((w) => w.sent && w.answered !== true).length,
      fellBack: k.fellBack,
    })),
  };
}

export function describeCoverage(c: Coverage): string {
  const parts: string[] = [];
  if (c.overlaps.length > 0) parts.push(`overlapped: ${c.overlaps.join('; ')}`);
  for (const k of c.midWriteKills) {
    parts.push(`kill of ${k.nodes.join(',')} ${k.fellBack ? 'on the clock (no write came in time)' : 'mid-write'}: ${k.outstanding} write(s) outstanding, ${k.sent} sent, ${k.unanswered} never answered`);
  }
  return parts.join('; ') || 'no overlap, no kill timed against a write';
}
