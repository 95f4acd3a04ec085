// Fault schedules: which faults, when and for how long, and the client mix —
// generated and shrunk by fast-check. A schedule is plain data, printed with
// a failing run and replayed by `npm run torture -- --replay FILE`.
//
// A phase is one fault, optionally joined by others that start while it is
// on and stop on their own clock (a partition while a node is paused, a kill
// during a slow link); a kill may be timed against the clients' writes
// instead of the clock (SIGKILL the moment a write to the victim is in
// flight). Schedules saved before these fields existed replay unchanged.

import fc from 'fast-check';
import type { Mix } from './workload.js';

/**
 * A kill timed against the clients' writes rather than the clock: SIGKILL is
 * sent the moment a write's request has been sent in full to the (first)
 * victim while at least `inFlight` writes to it are unanswered. With 1 the
 * write has just arrived; with 2 an earlier one is further along (proposed,
 * being synced or replicated) when the process dies.
 */
export interface MidWrite {
  inFlight: 1 | 2;
}

export type Fault =
  /** kill -9 of one node; restarted when the fault ends. */
  | { kind: 'kill'; node: number; midWrite?: MidWrite }
  /** kill -9 of the node leading `partition` when the fault starts. */
  | { kind: 'killLeader'; partition: number; midWrite?: MidWrite }
  /** kill -9 of a majority (persistent clusters only: in memory that loses data by design). */
  | { kind: 'killMajority'; midWrite?: MidWrite }
  /** SIGSTOP, then SIGCONT when the phase ends. */
  | { kind: 'pause'; node: number }
  | { kind: 'pauseLeader'; partition: number }
  /** Nodes [0, split) cannot reach the others, nor they them. */
  | { kind: 'halves'; split: number }
  | { kind: 'isolateLeader'; partition: number }
  /** Two sides that only one node in the middle reaches both of. */
  | { kind: 'bridge' }
  /** Nothing from `from` reaches `to`; the other way works. */
  | { kind: 'oneWay'; from: number; to: number }
  /** Every link holds every byte for `ms`. */
  | { kind: 'slow'; ms: number }
  /** Every link carries at most `bytesPerSecond` each way. */
  | { kind: 'throttle'; bytesPerSecond: number };

/** A fault that joins a phase's own fault while that one is on, and stops on its own clock. */
export interface OverlappingFault {
  fault: Fault;
  /** When it starts, counted from the moment the phase's fault is in place; less than the phase's durationMs. */
  startMs: number;
  /** How long it lasts; it may outlast the phase's fault. */
  durationMs: number;
}

export interface Phase {
  fault: Fault;
  /** How long the fault lasts. */
  durationMs: number;
  /** How long the clients run on the healed cluster (every fault of the phase healed) before the next fault. */
  quietMs: number;
  /** Faults active at the same time as `fault`, each with its own start and stop. */
  overlap?: OverlappingFault[];
}

export interface Schedule {
  nodes: 3 | 5;
  persistent: boolean;
  partitions: number;
  clients: number;
  keys: number;
  mix: Mix;
  /** Seeds the clients' choices (keys, nodes, operations). */
  clientSeed: number;
  phases: Phase[];
}

/** The faults that kill: in memory at most one of them per phase (two at once may take a partition's majority, and its data, by design). */
export function isKill(f: Fault): boolean {
  return f.kind === 'kill' || f.kind === 'killLeader' || f.kind === 'killMajority';
}

/** An overlapping fault starts at least this long before the phase's fault heals, so that the two are on together. */
const MIN_OVERLAP_MS = 300;

export function faultArb(nodes: number, partitions: number, persistent: boolean): fc.Arbitrary<Fault> {
  const node = fc.nat(nodes - 1);
  const partition = fc.nat(partitions - 1);
  // Three kills in four are timed against writes in flight; the others against the clock.
  const midWrite = fc.oneof({ arbitrary: fc.constant(undefined), weight: 1 }, { arbitrary: fc.constantFrom<MidWrite>({ inFlight: 1 }, { inFlight: 2 }), weight: 3 });
  const timed = <F extends Fault>(f: F, m: MidWrite | undefined): F => (m ? { ...f, midWrite: m } : f);
  // Kills weigh double, so that about half the schedules in memory and two thirds on disk have one timed against writes.
  const options: fc.WeightedArbitrary<Fault>[] = [
    { weight: 2, arbitrary: fc.tuple(node, midWrite).map(([n, m]) => timed({ kind: 'kill' as const, node: n }, m)) },
    { weight: 2, arbitrary: fc.tuple(partition, midWrite).map(([p, m]) => timed({ kind: 'killLeader' as const, partition: p }, m)) },
    ...[
      node.map((n): Fault => ({ kind: 'pause', node: n })),
      partition.map((p): Fault => ({ kind: 'pauseLeader', partition: p })),
      fc.integer({ min: 1, max: nodes - 1 }).map((split): Fault => ({ kind: 'halves', split })),
      partition.map((p): Fault => ({ kind: 'isolateLeader', partition: p })),
      fc.constant<Fault>({ kind: 'bridge' }),
      fc.tuple(node, node).filter(([a, b]) => a !== b).map(([from, to]): Fault => ({ kind: 'oneWay', from, to })),
      fc.integer({ min: 20, max: 300 }).map((ms): Fault => ({ kind: 'slow', ms })),
      fc.integer({ min: 2_000, max: 200_000 }).map((bytesPerSecond): Fault => ({ kind: 'throttle', bytesPerSecond })),
    ].map((arbitrary) => ({ weight: 1, arbitrary })),
  ];
  if (persistent) options.push({ weight: 1, arbitrary: midWrite.map((m) => timed({ kind: 'killMajority' as const }, m)) });
  return fc.oneof(...options);
}

export function phaseArb(nodes: number, partitions: number, persistent: boolean): fc.Arbitrary<Phase> {
  const fault = faultArb(nodes, partitions, persistent);
  return fc
    .record({
      fault,
      durationMs: fc.integer({ min: 500, max: 4000 }),
      quietMs: fc.integer({ min: 500, max: 2500 }),
      overlap: fc.array(fc.record({ fault, startMs: fc.integer({ min: 0, max: 4000 - MIN_OVERLAP_MS }), durationMs: fc.integer({ min: 300, max: 3000 }) }), { maxLength: 2 }),
    })
    .filter((p) => persistent || [p.fault, ...p.overlap.map((o) => o.fault)].filter(isKill).length <= 1)
    .map(({ overlap, ...p }): Phase => {
      if (overlap.length === 0) return p;
      // Each one starts while the phase's fault is still on.
      return { ...p, overlap: overlap.map((o) => ({ ...o, startMs: Math.min(o.startMs, p.durationMs - MIN_OVERLAP_MS) })) };
    });
}

export function scheduleArb(shape: { nodes: 3 | 5; persistent: boolean; maxPhases?: number }): fc.Arbitrary<Schedule> {
  const partitions = 4;
  return fc.record({
    nodes: fc.constant(shape.nodes),
    persistent: fc.constant(shape.persistent),
    partitions: fc.constant(partitions),
    clients: fc.integer({ min: 3, max: 8 }),
    keys: fc.integer({ min: 2, max: 6 }),
    mix: fc.record({ read: fc.integer({ min: 1, max: 6 }), write: fc.integer({ min: 1, max: 6 }), cas: fc.integer({ min: 0, max: 4 }), delete: fc.integer({ min: 0, max: 2 }) }),
    clientSeed: fc.nat(),
    phases: fc.array(phaseArb(shape.nodes, partitions, shape.persistent), { minLength: 1, maxLength: shape.maxPhases ?? 3 }),
  });
}

export function describeFault(f: Fault): string {
  const when = 'midWrite' in f && f.midWrite ? ` as soon as ${f.midWrite.inFlight} write(s) to it are in flight` : '';
  switch (f.kind) {
    case 'kill':
      return `kill n${f.node + 1}${when}`;
    case 'pause':
      return `${f.kind} n${f.node + 1}`;
    case 'killLeader':
      return `${f.kind} of partition ${f.partition}${when}`;
    case 'pauseLeader':
    case 'isolateLeader':
      return `${f.kind} of partition ${f.partition}`;
    case 'killMajority':
      return `${f.kind}${when}`;
    case 'halves':
      return `halves at ${f.split}`;
    case 'oneWay':
      return `one-way n${f.from + 1} -/-> n${f.to + 1}`;
    case 'slow':
      return `slow links (${f.ms} ms)`;
    case 'throttle':
      return `thin links (${f.bytesPerSecond} B/s)`;
    default:
      return f.kind;
  }
}

export function describePhase(p: Phase): string {
  const joined = (p.overlap ?? []).map((o) => `, with ${describeFault(o.fault)} from ${o.startMs} ms for ${o.durationMs} ms`).join('');
  return `${describeFault(p.fault)} for ${p.durationMs} ms${joined}`;
}
