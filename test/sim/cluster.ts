// The simulated cluster: 3 or 5 SimNodes on one SimNetwork, the invariant
// checker fed by every node, and the faults a schedule can inflict — crash and
// restart, pause, partitions, network storms, clock skew, leadership transfer
// and membership changes. Time is the integer step; STEPS_PER_TICK steps make
// one tick of a node's clock (a skewed clock ticks faster or slower).
//
// Choices worth knowing:
// - Messages to a paused node queue in its inbox and are handled, in order,
//   when it resumes (a stopped process's socket buffers fill up); its clock
//   does not tick meanwhile. Messages to a crashed node are lost.
// - Every node's disk is bootstrapped with the group's initial configuration,
//   including the spares that join later: the configuration at index 0 is a
//   fact of the group, and a joiner that replays the log from index 1 must
//   start from it to reach the configuration everyone else has.
// - A removed node is never added back under the same id (as in etcd); it
//   keeps running, so a removed server that did not learn of its removal
//   gets to try to disrupt the cluster.

import { ConfChangeType, MessageType, Role } from '../../raft/types.js';
import type { ConfChange, ConfState, Entry, Message, NodeId, Ready, Snapshot } from '../../raft/types.js';
import { InvariantChecker } from './invariants.js';
import type { KvResult } from './kv.js';
import { SimNetwork, partitionLinks } from './network.js';
import type { NetworkFaults, PartitionShape } from './network.js';
import { Prng, TraceHash } from './prng.js';
import type { FaultEvent, NodeRef, PartitionSpec, Schedule } from './schedule.js';
import { SimNode } from './sim-node.js';
import type { NodeHooks, NodeSettings } from './sim-node.js';
import type { CrashKind } from './sim-disk.js';

export const STEPS_PER_TICK = 10;
/** Every message takes 1..BASE_LATENCY_STEPS steps before any fault adds to it. */
export const BASE_LATENCY_STEPS = 5;

export interface ClusterStats {
  crashes: number;
  restarts: number;
  pauses: number;
  partitions: number;
  storms: number;
  skews: number;
  transfers: number;
  confChanges: number;
  readies: number;
  snapshotsInstalled: number;
  snapshotChunksSent: number;
  compactions: number;
  /** Messages that reached a crashed node. */
  lostToCrashed: number;
  /** Nodes whose recovery refused their data directory (they stay down). */
  refusals: number;
  bitRots: number;
}

interface Timer {
  at: number;
  seq: number;
  run: () => void;
}

export class Cluster implements NodeHooks {
  readonly ids: NodeId[];
  readonly nodes: SimNode[];
  readonly network: SimNetwork;
  readonly invariants: InvariantChecker;
  readonly trace = new TraceHash();
  readonly bootstrap: ConfState;
  readonly stats: ClusterStats = {
    crashes: 0,
    restarts: 0,
    pauses: 0,
    partitions: 0,
    storms: 0,
    skews: 0,
    transfers: 0,
    confChanges: 0,
    readies: 0,
    snapshotsInstalled: 0,
    snapshotChunksSent: 0,
    compactions: 0,
    lostToCrashed: 0,
    refusals: 0,
    bitRots: 0,
  };
  now = 0;
  /** Node ids that were removed from the group (never added back). */
  readonly retired = new Set<NodeId>();

  private readonly rng: Prng;
  private readonly faultRng: Prng;
  private readonly timers: Timer[] = [];
  private timerSeq = 0;
  private readonly baseFaults: NetworkFaults;
  private readonly storms: NetworkFaults[] = [];
  /** Nodes to crash right after they next grant a vote → how long they stay down (steps). */
  private readonly crashOnVote = new Map<NodeId, number>();
  /** Membership changes waiting for a leader that can take them (their `pick`s). */
  private readonly confChangeQueue: number[] = [];
  /** Durations (steps) of isolations waiting for the next new leader. */
  private readonly isolateOnLeadership: number[] = [];
  /** The highest term any node was seen leading (to tell a new leader). */
  private newestLeaderTerm = 0;
  /** Nodes to crash between the fsync and the sends of their next Ready that has messages → downtime (steps). */
  private readonly crashBeforeSend = new Map<NodeId, number>();
  /** Downtimes (steps) of crashes waiting for a new leader's first commit. */
  private readonly crashOnFirstCommit: number[] = [];
  /** node → the term in which it last applied entries as leader (to tell a leader's first commit). */
  private readonly leaderCommittedInTerm = new Map<NodeId, number>();
  /** Nodes that must crash right after the Ready being processed: downtime (steps), and how. */
  private readonly crashAfterReady = new Map<NodeId, { down: number; kind: CrashKind }>();
  /** Nodes to crash while they write their next batch → downtime (steps), and how. */
  private readonly crashInWrite = new Map<NodeId, { down: number; kind: CrashKind }>();
  private readonly index = new Map<NodeId, number>();
  /** Lease reads are on: clock skew is bounded and a resumed node catches up on missed ticks. */
  private readonly leases: boolean;

  constructor(
    readonly seed: number,
    nodeCount: 3 | 5,
    schedule: Schedule,
    settings: NodeSettings,
  ) {
    this.rng = new Prng(seed);
    this.leases = settings.leaseDriftTicks !== null;
    this.faultRng = this.rng.fork('faults');
    this.ids = Array.from({ length: nodeCount }, (_, i) => `n${i + 1}`);
    this.ids.forEach((id, i) => this.index.set(id, i));
    // A 5-node membership run starts with three voters; the other two join later.
    const voters = schedule.membership && nodeCount === 5 ? this.ids.slice(0, 3) : [...this.ids];
    this.bootstrap = { voters, learners: [] };
    this.invariants = new InvariantChecker(this.bootstrap);
    this.network = new SimNetwork(this.rng.fork('network'), BASE_LATENCY_STEPS);
    this.baseFaults = {
      dropRate: schedule.network.dropPermille / 1000,
      dupRate: schedule.network.dupPermille / 1000,
      delayRate: schedule.network.delayPermille / 1000,
      maxExtraDelaySteps: schedule.network.maxExtraDelayTicks * STEPS_PER_TICK,
    };
    this.network.faults = { ...this.baseFaults };
    const phases = this.rng.fork('tick-phases');
    this.nodes = this.ids.map(
      (id) => new SimNode(id, this.bootstrap, settings, this, STEPS_PER_TICK, phases.int(STEPS_PER_TICK), this.rng.fork(`disk:${id}`)),
    );
    for (const n of this.nodes) this.startNode(n);
  }

  byId(id: NodeId): SimNode | undefined {
    const i = this.index.get(id);
    return i === undefined ? undefined : this.nodes[i];
  }

  /** The running leader with the highest term, if any. */
  leader(): SimNode | null {
    let best: SimNode | null = null;
    let bestTerm = -1;
    for (const n of this.nodes) {
      if (!n.running) continue;
      const st = n.raft!.status();
      if (st.role === Role.Leader && st.term > bestTerm) {
        best = n;
        bestTerm = st.term;
      }
    }
    return best;
  }

  /** A leader that no running member of its configuration has overtaken in term. */
  stableLeader(): SimNode | null {
    const l = this.leader();
    if (!l) return null;
    const st = l.raft!.status();
    if (!st.confState.voters.includes(l.id)) return null;
    for (const id of [...st.confState.voters, ...st.confState.learners]) {
      const n = this.byId(id);
      if (n?.running && n.raft!.status().term > st.term) return null;
    }
    return l;
  }

  // ------------------------------------------------------------ NodeHooks

  persisted(node: SimNode, rd: Ready): boolean {
    this.stats.readies++;
    if (rd.snapshot) this.stats.snapshotsInstalled++;
    this.invariants.persisted(node, rd);
    if (rd.messages.length > 0 && !rd.sendBeforePersist) {
      const down = this.crashBeforeSend.get(node.id);
      if (down !== undefined) {
        this.crashBeforeSend.delete(node.id);
        this.crashAfterReady.set(node.id, { down, kind: 'process' });
        return true;
      }
    }
    if (rd.committedEntries.length > 0) {
      const st = node.raft!.status();
      if (st.role === Role.Leader && this.leaderCommittedInTerm.get(node.id) !== st.term) {
        this.leaderCommittedInTerm.set(node.id, st.term);
        const down = this.crashOnFirstCommit.shift();
        if (down !== undefined) {
          // Its commit index is on disk; nobody has heard of it, and it applied nothing.
          this.crashAfterReady.set(node.id, { down, kind: 'process' });
          return true;
        }
      }
    }
    return false;
  }

  /** `crashBeforeSend` on a Ready whose messages went first: the crash falls between the sends and the write. */
  sentBeforePersist(node: SimNode, rd: Ready): boolean {
    if (rd.messages.length === 0 || (rd.entries.length === 0 && rd.hardState === null)) return false;
    const down = this.crashBeforeSend.get(node.id);
    if (down === undefined) return false;
    this.crashBeforeSend.delete(node.id);
    this.crashAfterReady.set(node.id, { down, kind: 'process' });
    return true;
  }

  /** `tornWrite`: the process (or the machine) dies while this batch is being written. */
  tearWrite(node: SimNode): boolean {
    const crash = this.crashInWrite.get(node.id);
    if (crash === undefined) return false;
    this.crashInWrite.delete(node.id);
    this.crashAfterReady.set(node.id, crash);
    return true;
  }

  send(node: SimNode, m: Message): void {
    this.invariants.sent(node, m);
    this.trace.add(m.type, this.index.get(m.from) ?? 99, this.index.get(m.to) ?? 99, m.term, m.index, m.entries.length, this.now);
    if (m.type === MessageType.Snapshot) this.stats.snapshotChunksSent++;
    if (m.type === MessageType.VoteResp && !m.reject) {
      const down = this.crashOnVote.get(node.id);
      if (down !== undefined) {
        this.crashOnVote.delete(node.id);
        this.crashAfterReady.set(node.id, { down, kind: 'process' });
      }
    }
    this.network.send(m, this.now);
  }

  restored(node: SimNode, snap: Snapshot): void {
    this.trace.add(1000, this.index.get(node.id)!, snap.metadata.index, snap.metadata.term);
    this.invariants.restored(node, snap);
  }

  applied(node: SimNode, entry: Entry, result: KvResult | null): void {
    this.trace.add(2000, this.index.get(node.id)!, entry.index, entry.term);
    this.invariants.applied(node, entry, result !== null);
  }

  compacted(node: SimNode, index: number): void {
    this.stats.compactions++;
    this.invariants.compacted(node, index);
  }

  // ------------------------------------------------------------ the step

  runTimers(now: number): void {
    while (this.timers.length > 0 && this.timers[0]!.at <= now) this.timers.shift()!.run();
  }

  deliverMessages(now: number): void {
    for (const m of this.network.deliverDue(now)) {
      const n = this.byId(m.to);
      if (!n || !n.up) {
        this.stats.lostToCrashed++;
        continue;
      }
      if (n.paused) n.inbox.push(m);
      else n.raft!.step(m);
    }
  }

  tickNodes(now: number): void {
    for (const n of this.nodes) {
      if (now < n.nextTickAt) continue;
      n.nextTickAt += n.tickSteps;
      if (n.running) n.raft!.tick();
      else if (n.up) n.missedTicks++;
    }
  }

  /** One Ready per node per step; a node that granted a vote under `crashAfterVote` crashes right after. */
  processReadies(): void {
    if (this.isolateOnLeadership.length > 0) this.isolateNewLeaders();
    for (const n of this.nodes) {
      n.processReady();
      const crash = this.crashAfterReady.get(n.id);
      if (crash !== undefined) {
        this.crashAfterReady.delete(n.id);
        this.crashFor(n, crash.down, crash.kind);
      }
    }
  }

  /** A node that just became leader, and has sent nothing as leader yet, gets cut off. */
  private isolateNewLeaders(): void {
    for (const n of this.nodes) {
      if (!n.running || this.isolateOnLeadership.length === 0) continue;
      const st = n.raft!.status();
      if (st.role !== Role.Leader || st.term <= this.newestLeaderTerm) continue;
      this.newestLeaderTerm = st.term;
      this.isolateFor(n, this.isolateOnLeadership.shift()!);
    }
  }

  private isolateFor(n: SimNode, steps: number): void {
    const links = partitionLinks({ kind: 'isolate', node: n.id }, this.ids);
    for (const [a, b] of links) this.network.cut(a, b);
    this.stats.partitions++;
    this.at(this.now + steps, () => {
      for (const [a, b] of links) this.network.restore(a, b);
    });
  }

  // ------------------------------------------------------------ faults

  private at(step: number, run: () => void): void {
    const t: Timer = { at: step, seq: this.timerSeq++, run };
    let i = this.timers.length;
    while (i > 0 && (this.timers[i - 1]!.at > t.at || (this.timers[i - 1]!.at === t.at && this.timers[i - 1]!.seq > t.seq))) i--;
    this.timers.splice(i, 0, t);
  }

  private startNode(n: SimNode): void {
    n.start(this.rng.fork(`node:${n.id}:${n.incarnation + 1}`));
    this.invariants.restarted(n);
  }

  /**
   * Crashes `n` now — the process, or the whole machine (`power`: unsynced
   * writes at risk) — and restarts it `downSteps` later, unless recovery
   * refused its data directory: then it stays down for good.
   */
  crashFor(n: SimNode, downSteps: number, kind: CrashKind = 'process'): void {
    if (!n.up) return;
    n.crash(kind);
    this.stats.crashes++;
    this.invariants.recovered(n);
    if (n.refused) this.stats.refusals++;
    const incarnation = n.incarnation;
    this.at(this.now + Math.max(1, downSteps), () => {
      if (!n.up && n.incarnation === incarnation) this.restart(n);
    });
  }

  restart(n: SimNode): void {
    if (n.up || n.refused) return;
    this.startNode(n);
    this.stats.restarts++;
  }

  pauseFor(n: SimNode, steps: number): void {
    if (!n.running) return;
    n.paused = true;
    n.missedTicks = 0;
    this.stats.pauses++;
    const incarnation = n.incarnation;
    this.at(this.now + steps, () => {
      if (n.incarnation === incarnation) this.resume(n);
    });
  }

  resume(n: SimNode): void {
    if (!n.up || !n.paused) return;
    n.paused = false;
    // With leases, time must not stand still for a stalled process: its host
    // reads a monotonic clock and delivers the ticks it missed before anything
    // else (otherwise its lease would outlive a pause — the GC-pause hazard).
    // Without leases we keep the plain timer's behaviour: missed ticks are lost.
    const missed = n.missedTicks;
    n.missedTicks = 0;
    if (this.leases) for (let i = 0; i < missed; i++) n.raft!.tick();
    const inbox = n.inbox;
    n.inbox = [];
    for (const item of inbox) {
      if (!n.raft) break;
      if (typeof item === 'function') item();
      else n.raft.step(item);
    }
  }

  private resolve(ref: NodeRef): SimNode {
    if (typeof ref === 'number') return this.nodes[ref % this.nodes.length]!;
    const leader = this.leader();
    if (ref === 'leader' && leader) return leader;
    const others = this.nodes.filter((n) => n !== leader && n.up);
    return others.length > 0 ? this.faultRng.pick(others) : this.faultRng.pick(this.nodes);
  }

  private groupFromMask(mask: number): NodeId[] {
    return this.ids.filter((_, i) => (mask >> i) & 1);
  }

  private resolvePartition(spec: PartitionSpec): PartitionShape {
    switch (spec.kind) {
      case 'isolate':
        return { kind: 'isolate', node: this.resolve(spec.node).id };
      case 'halves':
        return { kind: 'halves', groupA: this.groupFromMask(spec.mask) };
      case 'bridge':
        return { kind: 'bridge', bridge: this.resolve(spec.node).id, groupA: this.groupFromMask(spec.mask) };
      case 'links':
        return { kind: 'links', links: spec.links.map(([a, b]) => [this.ids[a % this.ids.length]!, this.ids[b % this.ids.length]!]) };
    }
  }

  private updateNetworkFaults(): void {
    const f = { ...this.baseFaults };
    for (const s of this.storms) {
      f.dropRate = Math.max(f.dropRate, s.dropRate);
      f.dupRate = Math.max(f.dupRate, s.dupRate);
      f.delayRate = Math.max(f.delayRate, s.delayRate);
      f.maxExtraDelaySteps = Math.max(f.maxExtraDelaySteps, s.maxExtraDelaySteps);
    }
    this.network.faults = f;
  }

  /** Applies one scheduled fault; returns a short description for the run log. */
  apply(e: FaultEvent): string {
    const T = STEPS_PER_TICK;
    switch (e.kind) {
      case 'crash': {
        const n = this.resolve(e.node);
        this.crashFor(n, e.downTicks * T);
        return `crash ${n.id} for ${e.downTicks} ticks`;
      }
      case 'powerLoss': {
        const n = this.resolve(e.node);
        this.crashFor(n, e.downTicks * T, 'power');
        return `power loss on ${n.id} for ${e.downTicks} ticks`;
      }
      case 'tornWrite': {
        const n = this.resolve(e.node);
        const kind: CrashKind = e.power ? 'power' : 'process';
        this.crashInWrite.set(n.id, { down: e.downTicks * T, kind });
        return `arm a ${e.power ? 'power loss' : 'crash'} of ${n.id} in the middle of its next write, for ${e.downTicks} ticks`;
      }
      case 'bitRot': {
        const n = this.resolve(e.node);
        const hit = n.up && n.disk.bitRot();
        if (hit) this.stats.bitRots++;
        return hit ? `bit rot in a synced log record of ${n.id}` : `bit rot on ${n.id}: nothing synced to flip`;
      }
      case 'crashAfterVote': {
        const n = this.resolve(e.node);
        this.crashOnVote.set(n.id, e.downSteps);
        return `arm crash of ${n.id} after its next vote`;
      }
      case 'crashLeaderOnFirstCommit':
        this.crashOnFirstCommit.push(e.downTicks * T);
        return `arm crash of the next leader at its first commit (after the fsync, before the sends), for ${e.downTicks} ticks`;
      case 'crashBeforeSend': {
        const n = this.resolve(e.node);
        this.crashBeforeSend.set(n.id, e.downTicks * T);
        return `arm crash of ${n.id} between the fsync and the sends of its next Ready (or, if its messages go first, between them and the fsync), for ${e.downTicks} ticks`;
      }
      case 'isolateNewLeader': {
        // Leaders already in office do not count as new.
        const leader = this.leader();
        if (leader) this.newestLeaderTerm = Math.max(this.newestLeaderTerm, leader.raft!.status().term);
        this.isolateOnLeadership.push(e.ticks * T);
        return `arm isolation of the next new leader for ${e.ticks} ticks`;
      }
      case 'pause': {
        const n = this.resolve(e.node);
        this.pauseFor(n, e.ticks * T);
        return `pause ${n.id} for ${e.ticks} ticks`;
      }
      case 'partition': {
        const shape = this.resolvePartition(e.shape);
        const links = partitionLinks(shape, this.ids);
        for (const [a, b] of links) this.network.cut(a, b);
        this.stats.partitions++;
        this.at(this.now + e.ticks * T, () => {
          for (const [a, b] of links) this.network.restore(a, b);
        });
        return `partition ${JSON.stringify(shape)} for ${e.ticks} ticks`;
      }
      case 'netStorm': {
        const storm: NetworkFaults = {
          dropRate: e.dropPermille / 1000,
          dupRate: e.dupPermille / 1000,
          delayRate: e.delayPermille / 1000,
          maxExtraDelaySteps: this.baseFaults.maxExtraDelaySteps,
        };
        this.storms.push(storm);
        this.updateNetworkFaults();
        this.stats.storms++;
        this.at(this.now + e.ticks * T, () => {
          this.storms.splice(this.storms.indexOf(storm), 1);
          this.updateNetworkFaults();
        });
        return `network storm for ${e.ticks} ticks`;
      }
      case 'skew': {
        const n = this.resolve(e.node);
        // Lease runs promise a drift bound; keep clock rates within it (±10%).
        n.tickSteps = this.leases ? Math.min(T + 1, Math.max(T - 1, e.tickSteps)) : e.tickSteps;
        this.stats.skews++;
        this.at(this.now + e.ticks * T, () => {
          n.tickSteps = STEPS_PER_TICK;
        });
        return `skew ${n.id} to ${n.tickSteps} steps per tick for ${e.ticks} ticks`;
      }
      case 'transfer': {
        const leader = this.leader();
        if (!leader) return 'transfer: no leader';
        const voters = leader.raft!.status().confState.voters.filter((id) => id !== leader.id);
        if (voters.length === 0) return 'transfer: no other voter';
        let to = this.resolve(e.to).id;
        if (!voters.includes(to)) to = this.faultRng.pick(voters);
        const r = leader.raft!.transferLeadership(to);
        if (r.ok) this.stats.transfers++;
        return `transfer leadership ${leader.id} → ${to}: ${r.ok ? 'started' : 'refused'}`;
      }
      case 'confChange':
        this.confChangeQueue.push(e.pick);
        return `membership change #${this.confChangeQueue.length} queued: ${this.retryConfChanges() ?? 'waiting for a leader'}`;
    }
  }

  /**
   * Proposes the oldest queued membership change if a leader can take it now;
   * called when one is queued and on every tick. Returns what happened, or
   * null if it has to wait (no leader, or another change still pending).
   */
  retryConfChanges(): string | null {
    const pick = this.confChangeQueue[0];
    if (pick === undefined) return null;
    const outcome = this.proposeConfChange(pick);
    if (outcome === null) return null;
    this.confChangeQueue.shift();
    return outcome;
  }

  /**
   * The next membership change, from the configuration the leader has in
   * force: promote a learner, add a spare as learner, or (above three voters)
   * remove or demote a voter; a 3-node group demotes one of its three.
   */
  private proposeConfChange(pick: number): string | null {
    const leader = this.leader();
    if (!leader) return null;
    const conf = leader.raft!.status().confState;
    const members = new Set([...conf.voters, ...conf.learners]);
    const options: ConfChange[] = [];
    for (const id of conf.learners) options.push({ type: ConfChangeType.AddVoter, node: id });
    for (const id of this.ids) {
      if (!members.has(id) && !this.retired.has(id)) options.push({ type: ConfChangeType.AddLearner, node: id });
    }
    if (conf.voters.length > 3) {
      for (const id of conf.voters) options.push({ type: ConfChangeType.RemoveNode, node: id }, { type: ConfChangeType.AddLearner, node: id });
    } else if (conf.voters.length === 3 && this.ids.length === 3) {
      for (const id of conf.voters) options.push({ type: ConfChangeType.AddLearner, node: id });
    }
    if (options.length === 0) return 'conf change: none possible';
    const cc = options[pick % options.length]!;
    const r = leader.raft!.proposeConfChange(cc);
    const what = `${['add voter', 'add learner', 'remove'][cc.type]} ${cc.node}`;
    if (!r.ok) return r.reason === 'too_many_pending' ? `conf change ${what}: refused (${r.reason})` : null;
    this.stats.confChanges++;
    if (cc.type === ConfChangeType.RemoveNode) this.retired.add(cc.node);
    return `conf change ${what} at ${r.index}`;
  }

  /** The heal phase begins: no partitions, no loss, every node up and unpaused, clocks true. */
  heal(): void {
    this.timers.length = 0;
    this.storms.length = 0;
    this.crashOnVote.clear();
    this.isolateOnLeadership.length = 0;
    this.crashOnFirstCommit.length = 0;
    this.crashBeforeSend.clear();
    this.crashInWrite.clear();
    this.confChangeQueue.length = 0;
    this.network.heal();
    for (const n of this.nodes) {
      n.tickSteps = STEPS_PER_TICK;
      if (!n.up) this.restart(n);
      else if (n.paused) this.resume(n);
    }
  }
}
