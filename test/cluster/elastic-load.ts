// The client load of the elastic-scale tests (issue 9): test/fault's
// Workload — strong reads, writes, compare-and-set and deletes, each sent to
// a random node of a pool, every operation recorded for the linearizability
// checker — against a ProcessCluster whose membership changes under it; and
// what those tests measure: the runs of failed requests each client saw, and
// the cluster's placement as GET /v1/cluster reports it.

import { checkLinearizable, formatOperation } from '../lincheck/index.js';
import type { Operation } from '../lincheck/index.js';
import { Workload, keyName, prepare } from '../fault/workload.js';
import type { Mix } from '../fault/workload.js';
import { seededRandom } from '../support/random.js';
import type { ClusterView } from '../../src/node/service.js';
import type { ProcessCluster } from './process-cluster.js';
import { untilNoComplaint } from '../../scripts/poll.js';

export type { ClusterView };

export interface LoadOptions {
  clients: number;
  keys: number;
  seed: number;
  /** A client gives up on a request after this long (the request is then indeterminate). */
  requestTimeoutMs: number;
  mix?: Mix;
}

/** Mostly reads and writes, some compare-and-set, a few deletes. */
const DEFAULT_MIX: Mix = { read: 4, write: 4, cas: 2, delete: 1 };

export class ElasticLoad {
  readonly workload: Workload;
  /** The nodes clients send requests to: a node joins the pool once it serves, and leaves it before it is stopped. */
  private readonly pool = new Set<string>();
  /** Client ids after the load's own: the preload's and each final pass's. */
  private nextClient: number;

  constructor(
    private readonly cluster: ProcessCluster,
    private readonly o: LoadOptions,
  ) {
    this.nextClient = o.clients;
    this.workload = new Workload({
      nodes: () => [...this.pool].map((id) => cluster.url(id, '')),
      clients: o.clients,
      keys: o.keys,
      mix: o.mix ?? DEFAULT_MIX,
      requestTimeoutMs: o.requestTimeoutMs,
      random: seededRandom(o.seed),
    });
  }

  serve(...ids: string[]): void {
    for (const id of ids) this.pool.add(id);
  }

  withdraw(...ids: string[]): void {
    for (const id of ids) this.pool.delete(id);
  }

  /** Creates the cache and writes every key once (recorded too: the checker sees where each key starts). */
  async preload(via: string): Promise<void> {
    await prepare(this.cluster.url(via, ''));
    const client = this.nextClient++;
    for (let k = 0; k < this.o.keys; k++) {
      for (let attempt = 0; ; attempt++) {
        if (await this.workload.run(client, this.cluster.url(via, ''), keyName(k), { kind: 'write', value: `pre-${k}-${attempt}` })) break;
        if (attempt >= 20) throw new Error(`preloading ${keyName(k)} failed 20 times`);
      }
    }
  }

  start(): void {
    if (this.pool.size === 0) throw new Error('no node in the pool to send requests to');
    this.workload.start();
  }

  /** Stops the clients; throws if one saw an answer outside the contract. */
  stop(): Promise<void> {
    return this.workload.stop();
  }

  /** After stop: one strong read of every key through each node of `via`, each pass as a client of its own. */
  async finalReads(via: string[]): Promise<void> {
    for (const id of via) await this.workload.finalReads(() => this.cluster.url(id, ''), this.nextClient++);
  }

  operations(): Operation[] {
    return this.workload.operations();
  }

  /** Operations invoked so far: `answeredSince(mark())` later tells whether every client got through after this point. */
  mark(): number {
    return this.workload.operations().length;
  }

  /** True once every load client has had a definite answer to a request invoked after `mark`. */
  answeredSince(mark: number): boolean {
    const ops = this.workload.operations();
    const answered = new Set<number>();
    for (let i = mark; i < ops.length; i++) if (ops[i]!.complete !== null && ops[i]!.client < this.o.clients) answered.add(ops[i]!.client);
    return answered.size === this.o.clients;
  }

  /** The checker's verdict on the whole history, as one paragraph; null when linearizable. */
  linearizabilityFailure(history = this.operations()): string | null {
    const r = checkLinearizable(history);
    if (r.ok) return null;
    const shown = r.ops.length > 60 ? [...r.ops.slice(0, 30), ...r.ops.slice(-30)] : r.ops;
    return `${r.reason} on key ${r.key}: ${r.explanation}\n${shown.map(formatOperation).join('\n')}`;
  }

  /** Per load client, its longest run of failed requests (see `longestFailureRuns`). */
  failureRuns(): FailureRun[] {
    return longestFailureRuns(this.operations(), this.o.clients);
  }
}

export interface FailureRun {
  client: number;
  /** How long the run lasted; 0 when the client saw no failure. */
  ms: number;
  /** Failed requests in the run. */
  failed: number;
  /** When it began (the workload's clock). */
  at: number;
}

/**
 * For each client < `clients`, its longest run of consecutive failed requests
 * (no definite answer: 503, 504, a timeout, a broken connection), as the time
 * from the invocation of the run's first request to the client's next
 * invocation — a client sends its next request as soon as one ends — or, for
 * a run that lasts until the load stops, to the last event of any client.
 */
export function longestFailureRuns(history: readonly Operation[], clients: number): FailureRun[] {
  const own = history.filter((op) => op.client < clients);
  const end = Math.max(0, ...own.map((op) => op.complete ?? op.invoke));
  const out: FailureRun[] = [];
  for (let c = 0; c < clients; c++) {
    const ops = own.filter((op) => op.client === c).sort((a, b) => a.invoke - b.invoke);
    let best: FailureRun = { client: c, ms: 0, failed: 0, at: 0 };
    for (let i = 0; i < ops.length; ) {
      if (ops[i]!.complete !== null) {
        i++;
        continue;
      }
      let j = i;
      while (j < ops.length && ops[j]!.complete === null) j++;
      const until = j < ops.length ? ops[j]!.invoke : end;
      const run = { client: c, ms: until - ops[i]!.invoke, failed: j - i, at: ops[i]!.invoke };
      if (run.ms > best.ms) best = run;
      i = j;
    }
    out.push(best);
  }
  return out;
}

/** The node a raft member id belongs to: the part before `@incarnation`. */
export const nodeOf = (member: string): string => member.split('@')[0]!;

export async function clusterView(cluster: ProcessCluster, id: string): Promise<ClusterView> {
  const r = await fetch(cluster.url(id, '/v1/cluster'), { signal: AbortSignal.timeout(3000) });
  if (r.status !== 200) throw new Error(`GET /v1/cluster on ${id}: ${r.status} ${await r.text()}`);
  return (await r.json()) as ClusterView;
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && [...a].sort().join() === [...b].sort().join();

/**
 * What is wrong with `v` as the end of a rebalance onto the active members,
 * or null when nothing is: the rebalance reports balanced; each active
 * member's replicas and leaderships within one of the average; every
 * partition led, its voters exactly its `replicas` target replicas (by node,
 * none of them a member id in `dead`) and no learner left.
 */
export function unbalanced(v: ClusterView, replicas: number, dead: ReadonlySet<string> = new Set()): string | null {
  if (!v.rebalance.balanced) {
    const moving = v.partitions.filter((p) => p.moving).map((p) => `partition ${p.id} (target ${p.replicas.join(',')}, voters ${p.voters.join(',')}, learners ${p.learners.join(',')}, leader ${p.leader})`);
    return `rebalance not done: ${JSON.stringify(v.rebalance)}; moving: ${moving.join('; ') || 'none'}`;
  }
  const active = v.members.filter((m) => m.status === 'active');
  const avgReplicas = (v.partitions.length * replicas) / active.length;
  const avgLeaders = v.partitions.length / active.length;
  for (const m of active) {
    if (Math.abs(m.replicas - avgReplicas) > 1) return `${m.id} holds ${m.replicas} replicas, average ${avgReplicas.toFixed(2)}`;
    if (Math.abs(m.leaders - avgLeaders) > 1) return `${m.id} leads ${m.leaders} partitions, average ${avgLeaders.toFixed(2)}`;
  }
  for (const p of v.partitions) {
    if (p.leader === null) return `partition ${p.id} has no leader`;
    if (p.replicas.length !== replicas) return `partition ${p.id} targets ${p.replicas.join(',')}`;
    if (!sameSet(p.voters.map(nodeOf), p.replicas)) return `partition ${p.id}: voters ${p.voters.join(',')}, target ${p.replicas.join(',')}`;
    const gone = p.voters.filter((m) => dead.has(m));
    if (gone.length > 0) return `partition ${p.id}: voters ${p.voters.join(',')} include the dead incarnation(s) ${gone.join(',')}`;
    if (p.learners.length > 0) return `partition ${p.id}: learners ${p.learners.join(',')} left`;
  }
  return null;
}

/** Polls `check` until it returns null (holds); after `timeoutMs`, fails with its last complaint. */
export async function settle(what: string, check: () => Promise<string | null>, timeoutMs: number): Promise<void> {
  await untilNoComplaint(check, timeoutMs, (last) => new Error(`${what}: not within ${timeoutMs / 1000} s; last seen: ${last}`));
}
