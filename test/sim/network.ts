// The simulated network. Time is the simulation's integer step (STEPS_PER_TICK
// steps make one raft tick). A message sent at step t is delivered at
// t + latency, where latency is a small random base, plus — with the delay
// rate — a long extra delay, which reorders messages. Each message may also be
// dropped or duplicated. Partitions cut directed links: a message whose link
// is cut when it is sent, or when it would arrive, is lost.

import type { Message, NodeId } from '../../raft/types.js';
import type { Prng } from './prng.js';

export interface NetworkFaults {
  /** Probability that a message is lost. */
  dropRate: number;
  /** Probability that a message is delivered twice (each copy with its own latency). */
  dupRate: number;
  /** Probability that a message gets an extra delay of up to maxExtraDelaySteps. */
  delayRate: number;
  maxExtraDelaySteps: number;
}

export const NO_FAULTS: NetworkFaults = { dropRate: 0, dupRate: 0, delayRate: 0, maxExtraDelaySteps: 0 };

export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  /** Lost because a partition cut the link. */
  cut: number;
}

interface InFlight {
  deliverAt: number;
  /** Send order: breaks ties so that delivery order is deterministic. */
  seq: number;
  msg: Message;
}

/** A binary min-heap of in-flight messages ordered by (deliverAt, seq). */
class InFlightHeap {
  private readonly items: InFlight[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): InFlight | undefined {
    return this.items[0];
  }

  push(item: InFlight): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(a[i]!, a[parent]!)) break;
      [a[i], a[parent]] = [a[parent]!, a[i]!];
      i = parent;
    }
  }

  pop(): InFlight | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l]!, a[m]!)) m = l;
        if (r < a.length && before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }

  clear(): void {
    this.items.length = 0;
  }
}

function before(x: InFlight, y: InFlight): boolean {
  return x.deliverAt < y.deliverAt || (x.deliverAt === y.deliverAt && x.seq < y.seq);
}

/**
 * A deep enough copy that sender and receiver share nothing mutable — as
 * if the message had been serialised. Entry payloads are treated as immutable.
 */
export function cloneMessage(m: Message): Message {
  return {
    ...m,
    entries: m.entries.map((e) => ({ ...e })),
    snapshot: m.snapshot
      ? {
          ...m.snapshot,
          metadata: {
            ...m.snapshot.metadata,
            confState: { voters: [...m.snapshot.metadata.confState.voters], learners: [...m.snapshot.metadata.confState.learners] },
          },
        }
      : null,
  };
}

export class SimNetwork {
  faults: NetworkFaults = { ...NO_FAULTS };
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, cut: 0 };
  private readonly queue = new InFlightHeap();
  private seq = 0;
  /** Directed cut links "from>to", reference-counted so that overlapping partitions compose. */
  private readonly cuts = new Map<string, number>();

  /**
   * @param baseLatencySteps every message takes 1..baseLatencySteps steps.
   */
  constructor(
    private readonly rng: Prng,
    private readonly baseLatencySteps: number,
  ) {
    if (!(baseLatencySteps >= 1)) throw new Error('baseLatencySteps must be >= 1');
  }

  send(msg: Message, now: number): void {
    this.stats.sent++;
    if (this.isCut(msg.from, msg.to)) {
      this.stats.cut++;
      return;
    }
    if (this.rng.chance(this.faults.dropRate)) {
      this.stats.dropped++;
      return;
    }
    this.enqueue(msg, now);
    if (this.rng.chance(this.faults.dupRate)) {
      this.stats.duplicated++;
      this.enqueue(msg, now);
    }
  }

  private enqueue(msg: Message, now: number): void {
    let latency = 1 + this.rng.int(this.baseLatencySteps);
    if (this.faults.maxExtraDelaySteps > 0 && this.rng.chance(this.faults.delayRate)) {
      latency += 1 + this.rng.int(this.faults.maxExtraDelaySteps);
    }
    this.queue.push({ deliverAt: now + latency, seq: this.seq++, msg: cloneMessage(msg) });
  }

  /** Removes and returns, in order, every message due at or before `now` whose link is still up. */
  deliverDue(now: number): Message[] {
    const out: Message[] = [];
    for (let top = this.queue.peek(); top !== undefined && top.deliverAt <= now; top = this.queue.peek()) {
      this.queue.pop();
      if (this.isCut(top.msg.from, top.msg.to)) {
        this.stats.cut++;
        continue;
      }
      this.stats.delivered++;
      out.push(top.msg);
    }
    return out;
  }

  inFlight(): number {
    return this.queue.size;
  }

  cut(from: NodeId, to: NodeId): void {
    const k = `${from}>${to}`;
    this.cuts.set(k, (this.cuts.get(k) ?? 0) + 1);
  }

  restore(from: NodeId, to: NodeId): void {
    const k = `${from}>${to}`;
    const n = this.cuts.get(k) ?? 0;
    if (n <= 1) this.cuts.delete(k);
    else this.cuts.set(k, n - 1);
  }

  isCut(from: NodeId, to: NodeId): boolean {
    return this.cuts.size > 0 && this.cuts.has(`${from}>${to}`);
  }

  /** Removes every partition and fault rate (the heal phase). In-flight messages stay in flight. */
  heal(): void {
    this.cuts.clear();
    this.faults = { ...NO_FAULTS };
  }
}

/** The shapes of partition a schedule can ask for, over node ids. */
export type PartitionShape =
  /** Every link to and from `node` is cut. */
  | { kind: 'isolate'; node: NodeId }
  /** Two groups that cannot talk to each other. */
  | { kind: 'halves'; groupA: NodeId[] }
  /** Two groups, except `bridge` which talks to both (thesis §3.6 / the "bridge" Jepsen nemesis). */
  | { kind: 'bridge'; bridge: NodeId; groupA: NodeId[] }
  /** An arbitrary set of directed cuts, e.g. one-way (asymmetric) links. */
  | { kind: 'links'; links: [NodeId, NodeId][] };

/** The directed links a partition shape cuts, among `nodes`. */
export function partitionLinks(shape: PartitionShape, nodes: readonly NodeId[]): [NodeId, NodeId][] {
  const out: [NodeId, NodeId][] = [];
  switch (shape.kind) {
    case 'isolate':
      for (const other of nodes) {
        if (other === shape.node) continue;
        out.push([shape.node, other], [other, shape.node]);
      }
      return out;
    case 'halves':
    case 'bridge': {
      const a = new Set(shape.groupA);
      const bridge = shape.kind === 'bridge' ? shape.bridge : null;
      for (const x of nodes) {
        for (const y of nodes) {
          if (x === y || x === bridge || y === bridge) continue;
          if (a.has(x) !== a.has(y)) out.push([x, y]);
        }
      }
      return out;
    }
    case 'links':
      return shape.links.filter(([x, y]) => x !== y);
  }
}
