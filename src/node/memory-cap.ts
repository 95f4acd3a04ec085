// The node-wide memory cap (`--max-memory`). A write is admitted by its
// partition's leader only if no node holding a replica of that partition
// would pass its cap: the cap is a rule of admission, never of apply, so the
// state machine stays a pure function of the log and every replica applies
// what the leader admitted (DESIGN.md "Determinism of the replicated state").
//
// Nodes learn each other's accounted bytes and caps by exchanging reports
// every tick; a leader counts the growth it admitted and has not applied yet
// as its own, and adds it to the other replicas' last reports. The cap is
// therefore exact for the leader's node and, for the others, behind by at
// most the writes other leaders admitted within one exchange.

import { totalmem } from 'node:os';
import type { NodeId } from '../../raft/index.js';
import type { ItemVersionRef } from '../cache/index.js';
import { VeloError } from './errors.js';

/** What a node tells its peers: the item bytes its replicas account for, and its cap. */
export interface MemoryReport {
  bytes: number;
  capBytes: number;
}

/** The smallest cap accepted: below it a node could not hold its own catalog. */
export const MIN_MAX_MEMORY_BYTES = 1 << 20;

/** Left to the process itself (heap, raft logs, sockets) when the cap is derived from the machine. */
const HEADROOM_BYTES = 256 << 20;

/** Default cap: half the machine's memory, less headroom for everything that is not an item. */
export function defaultMaxMemoryBytes(machineBytes = totalmem()): number {
  return Math.max(64 << 20, Math.floor(machineBytes / 2) - HEADROOM_BYTES);
}

/** A node that a write would take past its cap: which, and where it stands. */
export interface OverCap {
  node: NodeId;
  bytes: number;
  capBytes: number;
}

function isReport(r: unknown): r is MemoryReport {
  const o = r as Partial<MemoryReport> | null;
  return typeof o === 'object' && o !== null && Number.isSafeInteger(o.bytes) && o.bytes! >= 0 && Number.isSafeInteger(o.capBytes) && o.capBytes! > 0;
}

export class NodeMemory {
  private readonly peers = new Map<NodeId, MemoryReport>();
  private readonly exchanging = new Set<NodeId>();
  /** Growth this node admitted as leader that its replicas have not applied yet. */
  private pendingBytes = 0;
  /** Per partition, the items (itemKey) named by evict commands in flight: never chosen twice. */
  private readonly evicting = new Map<number, Set<string>>();

  constructor(
    private readonly self: NodeId,
    readonly capBytes: number,
    /** The bytes this node's replicas account for now (the sum of their caches' bytes). */
    private readonly accounted: () => number,
  ) {
    if (!Number.isSafeInteger(capBytes) || capBytes < MIN_MAX_MEMORY_BYTES) throw new RangeError(`the memory cap must be an integer of at least ${MIN_MAX_MEMORY_BYTES} bytes, got ${capBytes}`);
  }

  /** This node's standing, in-flight admissions included. */
  report(): MemoryReport {
    return { bytes: this.accounted() + this.pendingBytes, capBytes: this.capBytes };
  }

  /** Takes a peer's report; one that does not decode to a report is ignored (a peer's word is checked like a client's). */
  record(from: NodeId, report: unknown): void {
    if (from === this.self || !isReport(report)) return;
    this.peers.set(from, { bytes: report.bytes, capBytes: report.capBytes });
  }

  /** What this node last heard from `node` (its own report for itself); undefined if nothing yet. */
  standing(node: NodeId): MemoryReport | undefined {
    return node === this.self ? this.report() : this.peers.get(node);
  }

  /**
   * The first of `replicas` that `growthBytes` more would take past its cap,
   * or null when all have room. A node not heard from yet does not block
   * writes: it reports within an exchange of connecting.
   */
  overCap(replicas: readonly NodeId[], growthBytes: number): OverCap | null {
    for (const node of replicas) {
      const s = this.standing(node);
      if (s !== undefined && s.bytes + growthBytes > s.capBytes) return { node, bytes: s.bytes, capBytes: s.capBytes };
    }
    return null;
  }

  /**
   * Adds growth admitted here to what the other replicas' nodes last
   * reported, until their next report (which holds it once applied there):
   * without it, every write this leader admits between two reports would
   * count for nothing on a follower near its cap.
   */
  private count(replicas: readonly NodeId[], growthBytes: number): void {
    for (const node of replicas) {
      const s = node === this.self ? undefined : this.peers.get(node);
      if (s !== undefined) s.bytes = Math.max(0, s.bytes + growthBytes);
    }
  }

  /** Counts an admitted write's growth until it settles; call the returned function then. */
  reserve(growthBytes: number): () => void {
    const n = Math.max(0, growthBytes);
    this.pendingBytes += n;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.pendingBytes -= n;
    };
  }

  /** Starts an exchange with `peer` unless one is in flight; false: skip it this round. */
  beginExchange(peer: NodeId): boolean {
    if (this.exchanging.has(peer)) return false;
    this.exchanging.add(peer);
    return true;
  }

  endExchange(peer: NodeId): void {
    this.exchanging.delete(peer);
  }

  /** Forgets peers no longer in the cluster. */
  retain(peers: ReadonlySet<NodeId>): void {
    for (const id of this.peers.keys()) if (!peers.has(id)) this.peers.delete(id);
  }

  /**
   * Admission of a put that grows partition `partition` by `growthBytes`, at
   * its leader. With room on every replica's node: admitted. Otherwise a cache
   * with eviction 'lru' makes room — `choose` names its least recently used
   * items, enough to free the growth and the excess over the fullest node's
   * cap — and the leader proposes their eviction before the write, so every
   * replica applies the same choice; any other cache is refused with
   * node_full. Call `settle` once the write is answered.
   */
  admitPut(p: {
    partition: number;
    replicas: readonly NodeId[];
    growthBytes: number;
    cache: string;
    eviction: 'lru' | 'none';
    /** The item written: never evicted to make room for itself. */
    written: string;
    choose: (bytesToFree: number, skip: ReadonlySet<string>) => { items: ItemVersionRef[]; bytes: number };
    itemKey: (ref: ItemVersionRef) => string;
  }): { evict: ItemVersionRef[]; settle: () => void } {
    if (p.growthBytes <= 0) return { evict: [], settle: () => {} };
    const full = this.overCap(p.replicas, p.growthBytes);
    if (full === null) {
      this.count(p.replicas, p.growthBytes);
      return { evict: [], settle: this.reserve(p.growthBytes) };
    }
    const where = `node ${full.node} accounts for ${full.bytes} bytes of its ${full.capBytes}-byte memory cap (--max-memory) and this write adds ${p.growthBytes}`;
    if (p.eviction !== 'lru') throw new VeloError('node_full', `${where}; cache "${p.cache}" does not evict (eviction "none"): delete items or raise --max-memory`);
    const chosen = this.evicting.get(p.partition) ?? new Set<string>();
    const skip = new Set([...chosen, p.written]);
    const need = Math.max(p.growthBytes, full.bytes + p.growthBytes - full.capBytes);
    const pick = p.choose(need, skip);
    if (pick.bytes < p.growthBytes) throw new VeloError('node_full', `${where}; cache "${p.cache}" has only ${pick.bytes} evictable bytes in this partition`);
    const keys = pick.items.map(p.itemKey);
    for (const k of keys) chosen.add(k);
    this.evicting.set(p.partition, chosen);
    this.count(p.replicas, p.growthBytes - pick.bytes);
    const release = this.reserve(p.growthBytes - pick.bytes);
    return {
      evict: pick.items,
      settle: () => {
        release();
        for (const k of keys) chosen.delete(k);
        if (chosen.size === 0 && this.evicting.get(p.partition) === chosen) this.evicting.delete(p.partition);
      },
    };
  }
}
