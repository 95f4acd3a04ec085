// Fault schedules: which faults, when and for how long, and the client mix —
// generated and shrunk by fast-check. A schedule is plain data, printed with
// a failing run and replayed by `npm run torture -- --replay FILE`.

import fc from 'fast-check';
import type { Mix } from './workload.js';

export type Fault =
  /** kill -9 of one node; restarted when the phase ends. */
  | { kind: 'kill'; node: number }
  /** kill -9 of the node leading `partition` when the phase starts. */
  | { kind: 'killLeader'; partition: number }
  /** kill -9 of a majority (persistent clusters only: in memory that loses data by design). */
  | { kind: 'killMajority' }
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

export interface Phase {
  fault: Fault;
  /** How long the fault lasts. */
  durationMs: number;
  /** How long the clients run on the healed cluster before the next fault. */
  quietMs: number;
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

export function faultArb(nodes: number, partitions: number, persistent: boolean): fc.Arbitrary<Fault> {
  const node = fc.nat(nodes - 1);
  const partition = fc.nat(partitions - 1);
  const options: fc.Arbitrary<Fault>[] = [
    node.map((n) => ({ kind: 'kill' as const, node: n })),
    partition.map((p) => ({ kind: 'killLeader' as const, partition: p })),
    node.map((n) => ({ kind: 'pause' as const, node: n })),
    partition.map((p) => ({ kind: 'pauseLeader' as const, partition: p })),
    fc.integer({ min: 1, max: nodes - 1 }).map((split) => ({ kind: 'halves' as const, split })),
    partition.map((p) => ({ kind: 'isolateLeader' as const, partition: p })),
    fc.constant({ kind: 'bridge' as const }),
    fc.tuple(node, node).filter(([a, b]) => a !== b).map(([from, to]) => ({ kind: 'oneWay' as const, from, to })),
    fc.integer({ min: 20, max: 300 }).map((ms) => ({ kind: 'slow' as const, ms })),
    fc.integer({ min: 2_000, max: 200_000 }).map((bytesPerSecond) => ({ kind: 'throttle' as const, bytesPerSecond })),
  ];
  if (persistent) options.push(fc.constant({ kind: 'killMajority' as const }));
  return fc.oneof(...options);
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
    phases: fc.array(
      fc.record({
        fault: faultArb(shape.nodes, partitions, shape.persistent),
        durationMs: fc.integer({ min: 500, max: 4000 }),
        quietMs: fc.integer({ min: 500, max: 2500 }),
      }),
      { minLength: 1, maxLength: shape.maxPhases ?? 3 },
    ),
  });
}

export function describeFault(f: Fault): string {
  switch (f.kind) {
    case 'kill':
    case 'pause':
      return `${f.kind} n${f.node + 1}`;
    case 'killLeader':
    case 'pauseLeader':
    case 'isolateLeader':
      return `${f.kind} of partition ${f.partition}`;
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

