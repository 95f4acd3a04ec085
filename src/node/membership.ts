// A node's part in membership changes (README "Growing and shrinking the
// cluster"): as the leader of a group it moves the group's configuration
// toward its target; as the metadata group's leader it plans and releases the
// moves and replaces members that stay down; on every node it keeps its own
// registration current and deletes the replicas it no longer holds.

import type { Logger } from 'pino';
import { ConfChangeType } from '../../raft/index.js';
import type { ConfState, NodeId } from '../../raft/index.js';
import { META_GROUP, encodeMetaCommand, sameList } from './cluster-meta.js';
import type { ClusterMeta, MetaCommand, MetaState } from './cluster-meta.js';
import { VeloError } from './errors.js';
import type { Group } from './group.js';
import { metaVoters, rebalance } from './rebalance.js';
import { configMatches, nextStep, nodeOfMember } from './reconcile.js';
import type { NodeRequest } from './requests.js';

/** What the membership duties need of the node that runs them. */
export interface MembershipHost {
  readonly id: NodeId;
  /** This node's raft member id in every group (decided once, at start). */
  memberId(): string;
  readonly meta: ClusterMeta;
  readonly log: Logger;
  readonly settings: { readonly raft: string; readonly http: string; readonly maxConcurrentMoves: number; readonly replaceAfterMs: number; readonly requestTimeoutMs: number };
  groups(): Iterable<Group>;
  /** Whether the transport has a live connection to `node`. */
  connected(node: NodeId): boolean;
  /** The cluster refused this node's registration: its id was removed. */
  refused(why: string): void;
  /** Runs a request at the leader of its partition (META_GROUP: the metadata group). */
  route(req: NodeRequest): Promise<{ result: Record<string, unknown>; value: Uint8Array | null }>;
  /** Deletes this node's replica of a partition. */
  dropGroup(partition: number): void;
  /** Asks the drive loop for a pass soon. */
  schedule(): void;
}

/** How logs name a group. */
export function groupName(g: number): string {
  return g === META_GROUP ? 'metadata group' : `partition ${g}`;
}

export class Membership {
  /** Metadata leader: since when each member has been unreachable (auto-replacement). */
  private readonly downSince = new Map<NodeId, number>();
  /** One metadata proposal batch of the planner, one registration, one move report and one collection per partition at a time. */
  private planning = false;
  private registering = false;
  private lastBlindRegister = 0;
  private readonly reporting = new Set<number>();
  private readonly collecting = new Set<number>();

  constructor(private readonly host: MembershipHost) {}

  /**
   * Moves a group's raft configuration toward its target, one safe change at
   * a time (reconcile.ts): a new replica joins as a learner, catches up (by
   * snapshot), is promoted, and only then does a leaving one go; then
   * leadership goes to the preferred replica. A partition whose configuration
   * matches its target reports its move done to the metadata group.
   */
  reconcile(g: Group, s: MetaState): void {
    const st = g.raft.status();
    const conf = st.confState;
    const memberOf = (id: NodeId): string | undefined => s.members.find((m) => m.id === id)?.member;
    let voterNodes: NodeId[];
    let learnerNodes: NodeId[];
    if (g.partition === META_GROUP) {
      const active = s.members.filter((m) => m.status === 'active').map((m) => m.id);
      const current = conf.voters.map(nodeOfMember).filter((id) => s.members.some((m) => m.id === id));
      voterNodes = active.length > 0 ? metaVoters(current, active, s.replicas) : current;
      learnerNodes = s.members.filter((m) => m.status !== 'removed' && !voterNodes.includes(m.id)).map((m) => m.id);
    } else {
      voterNodes = s.targets[g.partition]!.replicas;
      learnerNodes = [];
    }
    const desiredVoters = voterNodes.map(memberOf);
    const desiredLearners = learnerNodes.map(memberOf);
    if (desiredVoters.some((m) => m === undefined) || desiredLearners.some((m) => m === undefined)) return;
    const input = {
      self: this.host.memberId(),
      voters: conf.voters,
      learners: conf.learners,
      desiredVoters: desiredVoters as string[],
      desiredLearners: desiredLearners as string[],
      match: new Map([...(st.progress ?? new Map<string, { match: number }>())].map(([m, pr]) => [m, pr.match])),
      commit: st.commit,
      lastIndex: st.lastIndex,
      // The member id itself must have answered lately, not merely its node: a node that restarted
      // without its memory runs under a new member id, and the old one (which may still match the
      // whole log) never answers again. Leadership handed to it would never arrive, and the group
      // would refuse every proposal while the transfer lasted — over and over (issue 15 §1).
      connected: (m: string) => nodeOfMember(m) === this.host.id || (this.host.connected(nodeOfMember(m)) && st.progress?.get(m)?.recentActive === true),
    };
    // A replica that has nothing (match 0) can only start from a snapshot: appends from index 1 never
    // carry the bootstrap configuration. Whoever leads now, it must have one past the bootstrap to send.
    if (g.storage.snapshot().metadata.index === 0 && st.applied > 0 && [...conf.voters, ...conf.learners].some((m) => m !== this.host.memberId() && (input.match.get(m) ?? 0) === 0)) {
      g.takeSnapshot();
      this.host.schedule();
    }
    // Done once the configuration that matches is committed (applied here), not merely proposed.
    const applied = g.raft.appliedConfState();
    if (g.partition !== META_GROUP && s.targets[g.partition]!.moving && configMatches({ ...input, voters: applied.voters, learners: applied.learners })) this.reportMoveDone(g.partition, voterNodes);
    let step: ReturnType<typeof nextStep>;
    try {
      step = nextStep(input);
    } catch (e) {
      // A configuration this code cannot move from: say so, and leave the group as it is.
      this.host.log.error({ partition: g.partition, err: (e as Error).message, voters: conf.voters, learners: conf.learners }, `${groupName(g.partition)}: cannot reconcile its configuration`);
      return;
    }
    if (step.kind === 'change') {
      // A learner takes the group from a snapshot: make sure there is one past the bootstrap.
      if (step.type === ConfChangeType.AddLearner && g.storage.snapshot().metadata.index === 0 && st.applied > 0) g.takeSnapshot();
      const r = g.raft.proposeConfChange({ type: step.type, node: step.member });
      if (r.ok) this.host.log.info({ partition: g.partition, term: st.term, change: ['add_voter', 'add_learner', 'remove'][step.type], member: step.member, why: step.why }, `${groupName(g.partition)}: membership change proposed`);
      this.host.schedule();
    } else if (step.kind === 'transfer') {
      g.raft.transferLeadership(step.to);
      this.host.schedule();
    }
  }

  private reportMoveDone(partition: number, replicas: NodeId[]): void {
    if (this.reporting.has(partition)) return;
    this.reporting.add(partition);
    this.command({ type: 'moveDone', partition, replicas })
      .then(() => this.host.log.info({ partition, replicas }, `partition ${partition}: move done, replicas on ${replicas.join(', ')}`))
      .catch(() => {})
      .finally(() => this.reporting.delete(partition));
  }

  /**
   * The metadata leader's duties: drain members unreachable for longer than
   * replaceAfterMs (if set); mark drained members removed; and release the
   * moves toward the balanced placement, at most maxConcurrentMoves at once.
   */
  plan(g: Group, s: MetaState, now: number): void {
    if (this.planning) return;
    const out: MetaCommand[] = [];
    const active = s.members.filter((m) => m.status === 'active');
    if (this.host.settings.replaceAfterMs > 0) {
      for (const m of active) {
        if (m.id === this.host.id || this.host.connected(m.id)) {
          this.downSince.delete(m.id);
          continue;
        }
        const since = this.downSince.get(m.id) ?? now;
        this.downSince.set(m.id, since);
        if (now - since >= this.host.settings.replaceAfterMs && active.length > 1) {
          this.host.log.warn({ member: m.id, downMs: now - since }, `${m.id} has been unreachable for ${now - since} ms: replacing its replicas on the other members`);
          out.push({ type: 'setStatus', id: m.id, status: 'draining' });
        }
      }
    }
    const anyMoving = s.targets.some((t) => t.moving);
    for (const m of s.members) {
      if (m.status === 'draining' && !anyMoving && !s.targets.some((t) => t.replicas.includes(m.id))) out.push({ type: 'setStatus', id: m.id, status: 'removed' });
    }
    const activeIds = new Set(active.map((m) => m.id));
    if (activeIds.size > 0) {
      const ideal = rebalance(s.targets.map((t) => t.replicas), [...activeIds], s.replicas);
      let inFlight = s.targets.filter((t) => t.moving).length;
      s.targets.forEach((t, p) => {
        const next = ideal[p]!;
        if (sameList(next, t.replicas)) return;
        // A move toward a member that is no longer active can never finish: re-plan it at once.
        const stale = t.replicas.some((id) => !activeIds.has(id));
        if (t.moving && !stale) return;
        if (!t.moving) {
          if (inFlight >= this.host.settings.maxConcurrentMoves) return;
          inFlight++;
        }
        out.push({ type: 'setTarget', partition: p, from: t.replicas, replicas: next });
      });
    }
    if (out.length === 0) return;
    this.planning = true;
    const deadline = now + this.host.settings.requestTimeoutMs;
    for (const c of out) if (c.type === 'setTarget') this.host.log.info({ partition: c.partition, from: c.from, to: c.replicas }, `partition ${c.partition}: moving replicas ${c.from.join(',')} → ${c.replicas.join(',')}`);
    Promise.allSettled(out.map((c) => g.propose(encodeMetaCommand(c), deadline))).finally(() => {
      this.planning = false;
    });
  }

  /**
   * Tells the metadata group this node's addresses and member id whenever
   * they differ from its record; and, every 2 s, whenever this node cannot
   * trust its copy of the metadata — it has none (a rejoining node), or its
   * metadata replica knows no leader (a node that restarted with metadata the
   * cluster has moved on from, perhaps without it) — the same registration
   * blindly: the leader adds a rejoining node as a learner, changes nothing
   * for a current record, and refuses a removed id, which this node then
   * learns (host.refused).
   */
  registerSelf(s: MetaState | null, metaLeaderKnown: boolean): void {
    if (this.registering) return;
    const rec = s?.members.find((m) => m.id === this.host.id);
    const current = rec !== undefined && rec.raft === this.host.settings.raft && rec.http === this.host.settings.http && rec.member === this.host.memberId();
    const blind = s === null || !metaLeaderKnown;
    if (rec?.status === 'removed' || (current && !blind)) return;
    if (blind && Date.now() - this.lastBlindRegister < 2000) return;
    if (blind) this.lastBlindRegister = Date.now();
    this.registering = true;
    this.command({ type: 'register', id: this.host.id, raft: this.host.settings.raft, http: this.host.settings.http, member: this.host.memberId() })
      .catch((e: unknown) => {
        // A removed id stays removed: the node stops serving rather than retrying in silence.
        if (e instanceof VeloError && e.code === 'conflict') {
          this.host.refused(`the cluster refuses ${this.host.id}: ${e.message}`);
        } else {
          this.host.log.debug({ err: (e as Error).message }, 'registering with the metadata group failed; retrying');
        }
      })
      .finally(() => {
        this.registering = false;
      });
  }

  /**
   * Deletes replicas this node no longer holds: those its targets exclude
   * and whose group, at a committed configuration, no longer lists it — as
   * this replica applied it, or as the partition's leader answers.
   */
  collect(s: MetaState): void {
    for (const g of [...this.host.groups()]) {
      const p = g.partition;
      if (p === META_GROUP || s.targets[p]?.replicas.includes(this.host.id) || this.collecting.has(p)) continue;
      const applied = g.raft.appliedConfState();
      const member = (c: ConfState) => c.voters.includes(this.host.memberId()) || c.learners.includes(this.host.memberId());
      if (!member(applied)) {
        this.host.dropGroup(p);
        continue;
      }
      this.collecting.add(p);
      this.host.route({ op: 'memberOf', partition: p, member: this.host.memberId() })
        .then((out) => {
          const t = this.host.meta.state?.targets[p];
          if (out.result.member === false && t && !t.replicas.includes(this.host.id)) this.host.dropGroup(p);
        })
        .catch(() => {})
        .finally(() => this.collecting.delete(p));
    }
  }

  /** Proposes a command to the metadata group, at its leader wherever it is. */
  async command(command: MetaCommand): Promise<{ result: Record<string, unknown>; value: Uint8Array | null }> {
    return this.host.route({ op: 'meta', partition: META_GROUP, command });
  }
}
