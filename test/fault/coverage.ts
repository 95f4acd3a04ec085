// What a run really did, as opposed to what its schedule asked for: which
// faults were on at the same time (measured from the moments each took effect
// and began to heal). The tests assert across their schedules that this
// happened, so the generators cannot silently stop making it.

/** A fault from the moment it took effect (SIGKILL sent, SIGSTOP sent, links cut) to the moment its healing began; ms since the run started. */
export interface ActiveFault {
  label: string;
  from: number;
  to: number;
}

export interface Coverage {
  /** Pairs of faults that were on at the same time: "a + b". */
  overlaps: string[];
}

export function coverageOf(active: ActiveFault[]): Coverage {
  const overlaps: string[] = [];
  for (let i = 0; i < active.length; i++) {
    for (let j = i + 1; j < active.length; j++) {
      const a = active[i]!;
      const b = active[j]!;
      if (Math.max(a.from, b.from) < Math.min(a.to, b.to)) overlaps.push(`${a.label} + ${b.label}`);
    }
  }
  return { overlaps };
}

export function describeCoverage(c: Coverage): string {
  const parts: string[] = [];
  if (c.overlaps.length > 0) parts.push(`overlapped: ${c.overlaps.join('; ')}`);
  return parts.join('; ') || 'no overlap';
}
