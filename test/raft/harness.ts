// A small, perfectly ordered network for unit tests of the core (etcd's
// raft_test.go `network`): deliver every message at once unless a link is cut.
import { RaftNode } from '../../raft/index.js';
import type { Entry, InjectedBugs, Message, NodeId, RaftConfig, ReadState, Rng } from '../../raft/index.js';
import { MemoryStorage } from '../../storage/memory-storage.js';

export function seededRng(seed: number): Rng {
  let s = seed >>> 0 || 1;
  return {
    int(n: number): number {
      // xorshift32: enough for unit tests; the simulation has its own.
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      return s % n;
    },
  };
}

export interface TestNode {
  id: NodeId;
  raft: RaftNode;
  storage: MemoryStorage;
  applied: Entry[];
  reads: ReadState[];
}

export class TestNetwork {
  readonly nodes = new Map<NodeId, TestNode>();
  private readonly cut = new Set<string>();
  readonly delivered: Message[] = [];
  /** Messages held back by `hold` for a test to deliver (or drop) by hand. */
  held: Message[] = [];
  private holdFilter: ((m: Message) => boolean) | null = null;

  constructor(ids: NodeId[], overrides: Partial<RaftConfig> = {}, voters: NodeId[] = ids) {
    let seed = 1;
    for (const id of ids) {
      const storage = new MemoryStorage({ voters, learners: [] });
      this.add(id, storage, seed++, overrides);
    }
  }

  add(id: NodeId, storage: MemoryStorage, seed: number, overrides: Partial<RaftConfig> = {}): TestNode {
    const raft = new RaftNode({ id, storage, rng: seededRng(seed), electionTicks: 10, heartbeatTicks: 1, ...overrides });
    const node: TestNode = { id, raft, storage, applied: [], reads: [] };
    this.nodes.set(id, node);
    return node;
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}>${other}`);
      this.cut.add(`${other}>${id}`);
    }
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`);
  }

  heal(): void {
    this.cut.clear();
  }

  hold(filter: ((m: Message) => boolean) | null): void {
    this.holdFilter = filter;
  }

  /** Processes every node's Ready and delivers messages until the network is quiet. */
  settle(maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      const outbox: Message[] = [];
      for (const n of this.nodes.values()) outbox.push(...this.drain(n));
      if (outbox.length === 0) return;
      for (const m of outbox) this.deliver(m);
    }
    throw new Error('network did not settle');
  }

  deliver(m: Message): void {
    if (this.cut.has(`${m.from}>${m.to}`)) return;
    if (this.holdFilter?.(m)) {
      this.held.push(m);
      return;
    }
    const to = this.nodes.get(m.to);
    if (!to) return;
    this.delivered.push(m);
    to.raft.step(m);
  }

  /** Persists, applies and collects the messages of one node's pending Readies. */
  drain(n: TestNode): Message[] {
    const out: Message[] = [];
    while (n.raft.hasReady()) {
      const rd = n.raft.ready();
      n.storage.saveSync({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot });
      out.push(...rd.messages);
      n.applied.push(...rd.committedEntries);
      n.reads.push(...rd.readStates);
      n.raft.advance();
    }
    return out;
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.node(id).raft.tick();
  }

  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const n of this.nodes.values()) n.raft.tick();
      this.settle();
    }
  }

  /** Ticks `id` until it starts an election, then settles. */
  campaign(id: NodeId): void {
    const n = this.node(id);
    for (let i = 0; i < 100 && n.raft.status().role === 0; i++) n.raft.tick();
    this.settle();
  }

  leader(): TestNode | undefined {
    for (const n of this.nodes.values()) if (n.raft.status().role === 3) return n;
    return undefined;
  }
}

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
export type { InjectedBugs };
