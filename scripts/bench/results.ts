// What one run of the benchmark measured: the figures, keyed by system,
// workload, connections and value size, with the machine and the settings.
import type { Workload } from './lua.js';
import type { Machine } from './machine.js';
import type { MemoryResult } from './memory.js';
import type { SystemName } from './systems.js';
import type { Figure } from './wrk.js';

export interface Settings {
  secondsPerFigure: number;
  connections: number;
  valueBytes: number;
  keys: number;
  readPercent: number;
  connectionSweep: number[];
  valueSweep: number[];
  memoryItems: number;
  quick: boolean;
  command: string;
  /** --max-wait: seconds each figure waited at most for a quiet machine (absent in results written before it existed: 180). */
  maxWaitSeconds?: number;
}

export interface FigureRecord {
  system: SystemName;
  workload: Workload;
  connections: number;
  valueBytes: number;
  figure: Figure | null;
  /** Why the figure is missing, when it is. */
  error?: string;
  /** Cores' worth of CPU that other processes on the machine used during the figure (see interference.ts). */
  foreignCores?: number;
  /** How many times the figure was measured (again when other processes disturbed it). */
  attempts?: number;
}

/** Other processes using this much CPU during a figure disturb it: it is measured again, or marked. */
export const DISTURBED_CORES = 0.1;

export interface BenchResults {
  machine: Machine;
  settings: Settings;
  /** Every system asked for, with the reason it was skipped, if it was. */
  systems: { name: SystemName; skipped?: string }[];
  figures: FigureRecord[];
  memory: MemoryResult | { skipped: string };
}

export const WORKLOADS: readonly Workload[] = ['writes', 'strong-reads', 'local-reads', 'mixed', 'cas'];

export const WORKLOAD_LABELS: Record<Workload, string> = {
  writes: 'writes (PUT)',
  'strong-reads': 'strong reads',
  'local-reads': 'local reads',
  mixed: '90 % strong reads / 10 % writes',
  cas: 'compare-and-set',
};

/**
 * Systems measured only at the default connections and value size, with only
 * these workloads (no sweeps): velo-secure is there to price HTTPS and tokens
 * against velo-mem, which the writes and strong reads do.
 */
export const HEADLINE_ONLY: Partial<Record<SystemName, readonly Workload[]>> = { 'velo-secure': ['writes', 'strong-reads'] };

export function findFigure(r: BenchResults, system: SystemName, workload: Workload, connections: number, valueBytes: number): FigureRecord | undefined {
  return r.figures.find((f) => f.system === system && f.workload === workload && f.connections === connections && f.valueBytes === valueBytes);
}
