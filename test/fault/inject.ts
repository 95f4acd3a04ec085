// Injecting and healing faults on a real cluster when several may be on at
// once, each with its own start and stop:
//   - links: each network fault holds its own effect on the links it touches
//     (cut, one direction blocked, delay, throttle); a link carries the sum of
//     what is held on it (cut if any cut, the longest delay, the thinnest
//     rate), so healing one fault leaves the others in place;
//   - nodes: a node stays killed while any kill holds it and paused while any
//     pause does (a node restarted while a pause still holds it is paused
//     again);
//   - in memory, before a kill, the state the kill relies on is checked, not
//     assumed: every partition with a voter on the victim keeps a majority of
//     voters, other than the victim, that are up and kept their memory;
//   - a kill may be timed against the clients' writes (Fault.midWrite).
// Every fault's active interval and every kill timed against writes are
// recorded for coverage.ts.

import { untilNoComplaint } from '../../scripts/poll.js';
import type { ProcessCluster } from '../cluster/process-cluster.js';
import type { Direction, TcpProxy } from '../cluster/tcp-proxy.js';
import type { ActiveFault, MidWriteKill } from './coverage.js';
import { describeFault } from './schedule.js';
import type { Fault, MidWrite } from './schedule.js';
import type { Workload } from './workload.js';

/** What the harness (not the product) got wrong, or a state the next step relies on that never came: the run fails with it. */
export class Failure extends Error {}

/** How long a state a step relies on (a quorum before a kill, a restarted node serving) may take. */
export const STATE_WAIT_MS = 30_000;
/** A kill timed against writes waits at most this long for them, then goes ahead on the clock (and says so in the coverage). */
const MID_WRITE_WAIT_MS = 8_000;

export interface LinkEffect {
  cut?: boolean;
  block?: Direction;
  delayMs?: number;
  bytesPerSecond?: number;
}

interface LinkState {
  cut: boolean;
  blocked: Set<Direction>;
  delayMs: number;
  bytesPerSecond: number;
}

/** What LinkFaults drives on one directed link's proxy. */
export type LinkControl = Pick<TcpProxy, 'partition' | 'block' | 'delay' | 'throttle' | 'heal'>;

/** Network faults held at once on the proxies of a cluster's links. */
export class LinkFaults {
  /** Per held fault, its effect on each link (`from>to`). */
  private readonly held = new Set<Map<string, LinkEffect>>();
  private readonly applied = new Map<string, LinkState>();

  constructor(private readonly link: (from: string, to: string) => LinkControl) {}

  /** Holds `effects` until the returned release is called. */
  hold(effects: [from: string, to: string, effect: LinkEffect][]): () => void {
    const mine = new Map<string, LinkEffect>();
    for (const [from, to, e] of effects) mine.set(`${from}>${to}`, { ...mine.get(`${from}>${to}`), ...e });
    this.held.add(mine);
    for (const link of mine.keys()) this.update(link);
    return () => {
      if (!this.held.delete(mine)) return;
      for (const link of mine.keys()) this.update(link);
    };
  }

  private update(link: string): void {
    const want: LinkState = { cut: false, blocked: new Set(), delayMs: 0, bytesPerSecond: Infinity };
    for (const h of this.held) {
      const e = h.get(link);
      if (!e) continue;
      if (e.cut) want.cut = true;
      if (e.block) want.blocked.add(e.block);
      if (e.delayMs !== undefined) want.delayMs = Math.max(want.delayMs, e.delayMs);
      if (e.bytesPerSecond !== undefined) want.bytesPerSecond = Math.min(want.bytesPerSecond, e.bytesPerSecond);
    }
    const [from, to] = link.split('>') as [string, string];
    const proxy = this.link(from, to);
    let now = this.applied.get(link) ?? { cut: false, blocked: new Set<Direction>(), delayMs: 0, bytesPerSecond: Infinity };
    // A proxy only loosens all at once (heal): then the faults still held go back on, in the same tick.
    if ((now.cut && !want.cut) || [...now.blocked].some((d) => !want.blocked.has(d))) {
      proxy.heal();
      now = { cut: false, blocked: new Set(), delayMs: 0, bytesPerSecond: Infinity };
    }
    if (want.cut && !now.cut) proxy.partition();
    for (const d of want.blocked) if (!now.blocked.has(d)) proxy.block(d);
    if (want.delayMs !== now.delayMs) proxy.delay(want.delayMs);
    if (want.bytesPerSecond !== now.bytesPerSecond) proxy.throttle(want.bytesPerSecond);
    this.applied.set(link, want);
  }
}

interface ClusterPartition {
  id: number;
  replicas: string[];
  leader: string | null;
  voters: string[];
  learners: string[];
}

export async function clusterView(cluster: ProcessCluster, id: string, timeoutMs = 1000): Promise<{ partitions: ClusterPartition[] }> {
  const r = await fetch(cluster.url(id, '/v1/cluster'), { signal: AbortSignal.timeout(timeoutMs) });
  return (await r.json()) as { partitions: ClusterPartition[] };
}

/** The node of a raft member id: `n1`, or `n1@incarnation` after a memory-losing restart. */
function nodeOf(member: string): string {
  return member.split('@')[0]!;
}

export interface InjectorOptions {
  cluster: ProcessCluster;
  ids: string[];
  persistent: boolean;
  /** Nodes killed and not yet restarted: the clients leave them alone. */
  down: Set<string>;
  workload: Workload;
  /** ms since the run started. */
  clock: () => number;
  log: (line: string) => void;
}

export class FaultInjector {
  readonly active: ActiveFault[] = [];
  readonly midWriteKills: MidWriteKill[] = [];
  private readonly links: LinkFaults;
  private readonly kills = new Map<string, number>();
  private readonly pauses = new Map<string, number>();
  /** Per node, a restart in progress. */
  private readonly restarting = new Map<string, Promise<void>>();
  /** In memory: per node, the wall-clock time of its last kill; a member id of it from an incarnation before that lost its memory. */
  private readonly memoryLostAt = new Map<string, number>();

  constructor(private readonly o: InjectorOptions) {
    this.links = new LinkFaults((from, to) => o.cluster.link(from, to));
  }

  /** Injects `f`; resolves once it is in place, with what heals it. */
  async inject(f: Fault): Promise<() => Promise<void>> {
    const { ids } = this.o;
    const label = describeFault(f);
    const network = (effects: [string, string, LinkEffect][]) => {
      const release = this.links.hold(effects);
      const a = this.activated(label);
      return async () => {
        a.to = this.o.clock();
        release();
      };
    };
    const cut = (a: string[], b: string[]): [string, string, LinkEffect][] =>
      a.flatMap((x) =>
        b.flatMap((y): [string, string, LinkEffect][] => [
          [x, y, { cut: true }],
          [y, x, { cut: true }],
        ]),
      );
    const everyLink = (e: LinkEffect): [string, string, LinkEffect][] => ids.flatMap((a) => ids.filter((b) => b !== a).map((b): [string, string, LinkEffect] => [a, b, e]));
    switch (f.kind) {
      case 'kill':
        return this.kill([ids[f.node]!], label, f.midWrite);
      case 'killLeader':
        return this.kill([await this.leaderOf(f.partition)], label, f.midWrite);
      case 'killMajority':
        if (!this.o.persistent) throw new Failure('killMajority is for persistent clusters only');
        return this.kill(ids.slice(0, Math.floor(ids.length / 2) + 1), label, f.midWrite);
      case 'pause':
        return this.pause(ids[f.node]!, label);
      case 'pauseLeader':
        return this.pause(await this.leaderOf(f.partition), label);
      case 'halves':
        return network(cut(ids.slice(0, f.split), ids.slice(f.split)));
      case 'isolateLeader': {
        const leader = await this.leaderOf(f.partition);
        return network(cut([leader], ids.filter((id) => id !== leader)));
      }
      case 'bridge': {
        const mid = Math.floor(ids.length / 2);
        return network(cut(ids.slice(0, mid), ids.slice(mid + 1)));
      }
      case 'oneWay': {
        // Whichever node dials, these two stop every byte from `from` to `to` (tcp-proxy.ts).
        const from = ids[f.from]!;
        const to = ids[f.to]!;
        return network([
          [from, to, { block: 'forward' }],
          [to, from, { block: 'backward' }],
        ]);
      }
      case 'slow':
        return network(everyLink({ delayMs: f.ms }));
      case 'throttle':
        return network(everyLink({ bytesPerSecond: f.bytesPerSecond }));
    }
  }

  /**
   * The first answer to GET /v1/cluster from the nodes that are up (all asked
   * at once: a paused node never answers, and while one is paused every
   * node's answer waits up to 1 s for it) that `accept` takes; null if none.
   */
  private async anyView<T>(accept: (v: { partitions: ClusterPartition[] }) => T | null): Promise<T | null> {
    const { cluster, ids, down } = this.o;
    const asks = ids
      .filter((id) => !down.has(id))
      .map(async (id) => {
        const got = accept(await clusterView(cluster, id, 3000));
        if (got === null) throw new Error(`${id}: not that`);
        return got;
      });
    try {
      return await Promise.any(asks);
    } catch {
      return null;
    }
  }

  /** Records that a fault took effect now; its `to` is set when its healing begins. */
  private activated(label: string): ActiveFault {
    const a: ActiveFault = { label, from: this.o.clock(), to: Infinity };
    this.active.push(a);
    return a;
  }

  /** The leader of `partition` as the first node to answer names it (some node when none does: the fault still lands somewhere). */
  private async leaderOf(partition: number): Promise<string> {
    const leader = await this.anyView((v) => v.partitions[partition]?.leader ?? null);
    return leader ?? this.o.ids[partition % this.o.ids.length]!;
  }

  private pause(id: string, label: string): () => Promise<void> {
    const count = (this.pauses.get(id) ?? 0) + 1;
    this.pauses.set(id, count);
    if (count === 1) this.o.cluster.pause(id);
    const a = this.activated(label);
    return async () => {
      a.to = this.o.clock();
      const left = this.pauses.get(id)! - 1;
      this.pauses.set(id, left);
      // SIGCONT to a killed node is a no-op; its restart does not pause it when no pause holds it.
      if (left === 0) this.o.cluster.resume(id);
    };
  }

  /**
   * In memory, a kill must leave every partition a majority of voters that
   * kept their memory (DESIGN.md "Durability": any minority at once). Waits
   * for it (a node restarted earlier may still be a learner), and fails the
   * run if it never holds: the schedule would otherwise lose data by design.
   */
  private async quorumWithout(victims: string[]): Promise<void> {
    const { down } = this.o;
    const kept = (member: string) => {
      const node = nodeOf(member);
      if (victims.includes(node) || down.has(node)) return false;
      const lostAt = this.memoryLostAt.get(node);
      if (lostAt === undefined) return true;
      // A member id made after that kill: `node@incarnation`, the incarnation being the new process's start (wall-clock ms).
      const incarnation = Number(member.split('@')[1]);
      return Number.isFinite(incarnation) && incarnation > lostAt;
    };
    await untilNoComplaint(
      async () => {
        const view = await this.anyView((v) => v);
        if (view === null) return 'no node answered GET /v1/cluster';
        for (const p of view.partitions) {
          const holds = p.replicas.some((r) => victims.includes(r)) || p.voters.some((m) => victims.includes(nodeOf(m)));
          if (!holds) continue;
          if (p.voters.length === 0) return `partition ${p.id}: no replica reported its configuration`;
          const intact = p.voters.filter(kept);
          if (intact.length < Math.floor(p.voters.length / 2) + 1) {
            return `partition ${p.id}: voters ${p.voters.join(',')}, of which only ${intact.join(',') || 'none'} would be up with their memory`;
          }
        }
        return null;
      },
      STATE_WAIT_MS,
      (last) => new Failure(`before killing ${victims.join(',')} (memory): every partition it holds keeps a quorum of voters that kept their memory did not hold within ${STATE_WAIT_MS / 1000} s: ${last}`),
    );
  }

  /** SIGKILL, now: synchronous, so that a trigger can land it before any other I/O. */
  private killNow(victims: string[], label: string): ActiveFault {
    const a = this.activated(label);
    for (const id of victims) {
      const count = (this.kills.get(id) ?? 0) + 1;
      this.kills.set(id, count);
      if (count > 1) continue; // already down
      this.o.down.add(id);
      if (!this.o.persistent) this.memoryLostAt.set(id, Date.now());
      // ProcessCluster.kill sends SIGKILL before its first await.
      void this.o.cluster.kill(id);
    }
    return a;
  }

  private async kill(victims: string[], label: string, midWrite: MidWrite | undefined): Promise<() => Promise<void>> {
    // A restart in progress finishes first: the node is then up for the kill.
    await Promise.all(victims.map((id) => this.restarting.get(id)));
    if (!this.o.persistent) await this.quorumWithout(victims);
    const a = midWrite && !this.kills.get(victims[0]!) ? await this.killMidWrite(victims, label, midWrite) : this.killNow(victims, label);
    return async () => {
      a.to = this.o.clock();
      await Promise.all(victims.map((id) => this.release(id)));
    };
  }

  /** Kills `victims` the moment the clients have `inFlight` writes out to the first one (or after MID_WRITE_WAIT_MS regardless), recording the writes outstanding on them. */
  private killMidWrite(victims: string[], label: string, midWrite: MidWrite): Promise<ActiveFault> {
    const { cluster, workload } = this.o;
    const nodes = victims.map((id) => cluster.url(id, ''));
    return new Promise<ActiveFault>((resolve) => {
      const now = (fellBack: boolean) => {
        // What is in flight on the victims at the instant of the kill; the workload keeps each write's fate up to date.
        this.midWriteKills.push({ nodes: victims, writes: nodes.flatMap((n) => workload.writesTo(n)), fellBack });
        resolve(this.killNow(victims, label));
      };
      const timer = setTimeout(() => {
        cancel();
        this.o.log(`no ${midWrite.inFlight} write(s) in flight to ${victims[0]} within ${MID_WRITE_WAIT_MS / 1000} s: ${label} goes ahead on the clock`);
        now(true);
      }, MID_WRITE_WAIT_MS);
      const cancel = workload.onWritesInFlight(nodes[0]!, midWrite.inFlight, () => {
        clearTimeout(timer);
        now(false);
      });
    });
  }

  /** Drops one kill's hold on `id`; the last one restarts it (paused again if a pause still holds it). */
  private async release(id: string): Promise<void> {
    const left = this.kills.get(id)! - 1;
    this.kills.set(id, left);
    if (left > 0) return;
    const restart = (async () => {
      await this.startNode(id);
      if ((this.pauses.get(id) ?? 0) > 0) this.o.cluster.pause(id);
      if ((this.kills.get(id) ?? 0) === 0) this.o.down.delete(id);
    })();
    this.restarting.set(id, restart);
    try {
      await restart;
    } finally {
      if (this.restarting.get(id) === restart) this.restarting.delete(id);
    }
  }

  private async startNode(id: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Failure(`${id} did not serve within ${STATE_WAIT_MS / 1000} s of its restart`)), STATE_WAIT_MS);
    });
    const started = this.o.cluster.startNode(id);
    // If the bound wins, the run ends and its cluster is stopped: that start then fails, and no one is waiting for it.
    started.catch(() => {});
    try {
      await Promise.race([started, bound]);
    } finally {
      clearTimeout(timer);
    }
  }
}
