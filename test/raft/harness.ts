// A small, perfectly ordered network for unit tests of the core (etcd's
// raft_test.go `network`): deliver every message at once unless a link is cut.
import { MessageType, RaftNode, Role, emptyMessage } from '../../raft/index.js';
import type { Entry, InjectedBugs, Message, NodeId, RaftConfig, ReadState, Rng, Snapshot } from '../../raft/index.js';
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
  /** Snapshots the node's Readies asked the driver to install. */
  snapshots: Snapshot[];
}

/** Decides the fate of a message in flight: deliver it (possibly changed), or drop it (null). */
export type Interceptor = (m: Message) => Message | null;

export class TestNetwork {
  readonly nodes = new Map<NodeId, TestNode>();
  private readonly cut = new Set<string>();
  /** Every message a node emitted, in order, whatever became of it. */
  readonly sent: Message[] = [];
  readonly delivered: Message[] = [];
  /** Messages held back by `hold` for a test to deliver (or drop) by hand. */
  held: Message[] = [];
  private holdFilter: ((m: Message) => boolean) | null = null;
  private interceptor: Interceptor | null = null;
  private readonly seeds = new Map<NodeId, number>();
  private readonly overrides: Partial<RaftConfig>;

  constructor(ids: NodeId[], overrides: Partial<RaftConfig> = {}, voters: NodeId[] = ids) {
    this.overrides = overrides;
    let seed = 1;
    for (const id of ids) {
      const storage = new MemoryStorage({ voters, learners: [] });
      this.add(id, storage, seed++, overrides);
    }
  }

  add(id: NodeId, storage: MemoryStorage, seed: number, overrides: Partial<RaftConfig> = {}): TestNode {
    const raft = new RaftNode({ id, storage, rng: seededRng(seed), electionTicks: 10, heartbeatTicks: 1, ...overrides });
    const node: TestNode = { id, raft, storage, applied: [], reads: [], snapshots: [] };
    this.nodes.set(id, node);
    this.seeds.set(id, seed);
    return node;
  }

  /**
   * Crashes `id` and starts it again from what its storage holds (a durable
   * driver persists every Ready before advance(), so nothing is lost). The
   * new instance gets the network's config plus `overrides`.
   */
  restart(id: NodeId, overrides: Partial<RaftConfig> = {}): TestNode {
    const old = this.node(id);
    const seed = (this.seeds.get(id) ?? 1) + 1000;
    return this.add(id, old.storage, seed, { ...this.overrides, ...overrides });
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

  /** Replaces the cuts: nodes talk only within their group; nodes in no group are isolated. */
  partition(...groups: NodeId[][]): void {
    this.cut.clear();
    const groupOf = new Map<NodeId, number>();
    groups.forEach((g, i) => g.forEach((id) => groupOf.set(id, i)));
    for (const a of this.nodes.keys()) {
      for (const b of this.nodes.keys()) {
        if (a === b) continue;
        const ga = groupOf.get(a);
        if (ga === undefined || ga !== groupOf.get(b)) this.cut.add(`${a}>${b}`);
      }
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

  intercept(fn: Interceptor | null): void {
    this.interceptor = fn;
  }

  /** Delivers (and clears) the held messages that match `filter`, then settles. */
  release(filter: (m: Message) => boolean = () => true): void {
    const now = this.held.filter(filter);
    this.held = this.held.filter((m) => !filter(m));
    for (const m of now) this.deliverNow(m);
    this.settle();
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
    if (this.interceptor) {
      const changed = this.interceptor(m);
      if (changed === null) return;
      m = changed;
    }
    if (this.holdFilter?.(m)) {
      this.held.push(m);
      return;
    }
    this.deliverNow(m);
  }

  private deliverNow(m: Message): void {
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
      if (rd.snapshot) n.snapshots.push(rd.snapshot);
      out.push(...rd.messages);
      n.applied.push(...rd.committedEntries);
      n.reads.push(...rd.readStates);
      n.raft.advance();
    }
    this.sent.push(...out);
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

  /** Ticks every node (settling after each tick) until `done()`; throws after `maxTicks`. */
  tickUntil(done: () => boolean, maxTicks = 200): number {
    for (let i = 0; i < maxTicks; i++) {
      if (done()) return i;
      this.tickAll();
    }
    if (done()) return maxTicks;
    throw new Error(`condition not reached within ${maxTicks} ticks`);
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

  /** The leader of the highest term among `ids`, if any. */
  leaderAmong(ids: NodeId[]): TestNode | undefined {
    let best: TestNode | undefined;
    for (const id of ids) {
      const n = this.node(id);
      const s = n.raft.status();
      if (s.role === Role.Leader && (!best || s.term > best.raft.status().term)) best = n;
    }
    return best;
  }

  /** A leader that every node of `ids` follows in the same term (no stale leader among them), if any. */
  agreedLeader(ids: NodeId[]): TestNode | undefined {
    const l = this.leaderAmong(ids);
    if (!l) return undefined;
    const { term } = l.raft.status();
    const all = ids.every((id) => {
      const s = this.node(id).raft.status();
      return s.term === term && s.leader === l.id;
    });
    return all ? l : undefined;
  }

  /** Messages emitted since position `from` of `sent` that match `pred`. */
  sentSince(from: number, pred: (m: Message) => boolean): Message[] {
    return this.sent.slice(from).filter(pred);
  }
}

/** The (index, term) pairs of a node's durable log, from its first stored index. */
export function logTerms(n: { storage: MemoryStorage }): [number, number][] {
  const out: [number, number][] = [];
  for (let i = n.storage.firstIndex(); i <= n.storage.lastIndex(); i++) out.push([i, n.storage.term(i)]);
  return out;
}

/** A message of `type` with the given fields; the rest zero (as the core's own). */
export function msg(type: MessageType, from: NodeId, to: NodeId, term: number, fields: Partial<Message> = {}): Message {
  return { ...emptyMessage(type, from, to, term), ...fields };
}

export function isAppendTo(to: NodeId): (m: Message) => boolean {
  return (m) => m.type === MessageType.Append && m.to === to;
}

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
export type { InjectedBugs };

/**
 * One node outside any network, over a log with the given terms at indexes
 * 1..n: for tests that feed it messages by hand and read what it answers.
 */
export class Solo {
  raft: RaftNode;
  readonly storage: MemoryStorage;
  readonly applied: Entry[] = [];
  readonly hardStates: { term: number; vote: NodeId | null; commit: number }[] = [];

  constructor(
    readonly id: NodeId,
    voters: NodeId[],
    terms: number[] = [],
    opts: { term?: number; vote?: NodeId | null; commit?: number; config?: Partial<RaftConfig> } = {},
  ) {
    this.storage = new MemoryStorage({ voters, learners: [] });
    this.storage.append(terms.map((term, i) => ({ index: i + 1, term, type: 0, data: enc(`e${i + 1}`) })));
    this.storage.setHardState({ term: opts.term ?? terms[terms.length - 1] ?? 0, vote: opts.vote ?? null, commit: opts.commit ?? 0 });
    this.config = opts.config ?? {};
    this.raft = new RaftNode({ id, storage: this.storage, rng: seededRng(7), electionTicks: 10, heartbeatTicks: 1, ...this.config });
  }

  private readonly config: Partial<RaftConfig>;

  /** Crashes the node and starts it again from its storage, with the same config plus `config`. */
  restart(config: Partial<RaftConfig> = {}): void {
    this.raft = new RaftNode({ id: this.id, storage: this.storage, rng: seededRng(8), electionTicks: 10, heartbeatTicks: 1, ...this.config, ...config });
  }

  /** Steps `m` and returns what the node sends in answer (persisting its Ready first). */
  step(m: Message): Message[] {
    this.raft.step(m);
    return this.out();
  }

  out(): Message[] {
    const msgs: Message[] = [];
    while (this.raft.hasReady()) {
      const rd = this.raft.ready();
      if (rd.hardState) this.hardStates.push(rd.hardState);
      this.storage.saveSync({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot });
      msgs.push(...rd.messages);
      this.applied.push(...rd.committedEntries);
      this.raft.advance();
    }
    return msgs;
  }
}
