// One fault schedule against a real cluster: start the processes (behind a
// proxy on every directed link), run the clients, inject each phase's fault
// and heal it, then check what must hold after healing:
//   - the history (with a final strong read of every key) is linearizable,
//     so every acknowledged write not overwritten is readable;
//   - every partition has one leader that every node agrees on;
//   - every partition's replicas converge to the same applied state.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessCluster } from '../cluster/process-cluster.js';
import { untilNoComplaint } from '../../scripts/poll.js';
import { checkLinearizable, formatOperation } from '../lincheck/index.js';
import type { Operation } from '../lincheck/index.js';
import { seededRandom } from '../support/random.js';
import { describeFault } from './schedule.js';
import type { Fault, Schedule } from './schedule.js';
import { Workload, prepare } from './workload.js';

export interface RunOptions {
  /** Test-only: nodes serve strong reads from their local replica (the harness must catch it). */
  unsafeStaleReads?: boolean;
  log?: (line: string) => void;
}

export interface RunResult {
  ok: boolean;
  /** What failed, in one paragraph; null when ok. */
  failure: string | null;
  ops: number;
  /** The clients' operations that got a definite answer (ok, or a definite no such as a 412 or a 404); indeterminate ones and the final reads excluded. */
  definite: number;
  history: Operation[];
  seconds: number;
}

/** How long the cluster may take to recover after a fault is healed before the run counts as a liveness failure. */
const RECOVERY_MS = 30_000;
const REQUEST_TIMEOUT_MS = 1500;

interface ClusterPartition {
  id: number;
  replicas: string[];
  leader: string | null;
  voters: string[];
  learners: string[];
}

class Failure extends Error {}

export async function runSchedule(s: Schedule, opts: RunOptions = {}): Promise<RunResult> {
  const started = performance.now();
  const log = opts.log ?? (() => {});
  const ids = Array.from({ length: s.nodes }, (_, i) => `n${i + 1}`);
  const dataRoot = s.persistent ? mkdtempSync(join(tmpdir(), 'velo-fault-')) : null;
  const args = ['--partitions', String(s.partitions), '--replicas', '3', '--request-timeout-ms', String(REQUEST_TIMEOUT_MS), '--log-level', 'warn', '--snapshot-entries', '200'];
  if (opts.unsafeStaleReads) args.push('--unsafe-stale-strong-reads-for-testing');
  let cluster: ProcessCluster | null = null;
  const down = new Set<string>();
  const workload = new Workload({
    nodes: () => ids.filter((id) => !down.has(id)).map((id) => cluster!.url(id, '')),
    clients: s.clients,
    keys: s.keys,
    mix: s.mix,
    requestTimeoutMs: REQUEST_TIMEOUT_MS + 1000,
    random: seededRandom(s.clientSeed),
  });
  let failure: string | null = null;
  try {
    cluster = await ProcessCluster.start(ids, args, { proxied: true, nodeArgs: (id) => (dataRoot ? ['--data-dir', join(dataRoot, id)] : []) });
    await cluster.allReady();
    await prepare(cluster.url(ids[0]!, ''));
    workload.start();
    for (const [i, phase] of s.phases.entries()) {
      log(`phase ${i + 1}/${s.phases.length}: ${describeFault(phase.fault)} for ${phase.durationMs} ms`);
      const heal = await inject(cluster, ids, phase.fault, s.persistent, down);
      await pause(phase.durationMs);
      await heal();
      await recovered(cluster, ids, s.persistent ? null : 3);
      await pause(phase.quietMs);
    }
    await workload.stop();
    let turn = 0;
    const c = cluster;
    await workload.finalReads(() => c.url(ids[turn++ % ids.length]!, ''), s.clients);
    const history = workload.operations();
    const lin = checkLinearizable(history);
    if (!lin.ok) {
      throw new Failure(`${lin.reason} on key ${lin.key}:\n${lin.explanation}\n${lin.ops.map(formatOperation).join('\n')}`);
    }
    await oneLeaderEach(cluster, ids);
    await converged(cluster, ids, s.partitions);
  } catch (e) {
    failure = e instanceof Failure ? e.message : `the run broke: ${(e as Error).stack ?? String(e)}`;
    await workload.stop().catch(() => {});
  } finally {
    await cluster?.stop();
    if (dataRoot) rmSync(dataRoot, { recursive: true, force: true });
  }
  const history = workload.operations();
  // The final reads are recorded as client s.clients: they check the end state, they are not the load.
  const definite = history.filter((op) => op.client < s.clients && op.complete !== null).length;
  return { ok: failure === null, failure, ops: history.length, definite, history, seconds: (performance.now() - started) / 1000 };
}

/** The schedule's own time: how long a fault lasts. Never used to wait for the system to reach a state. */
function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function clusterView(cluster: ProcessCluster, id: string): Promise<{ partitions: ClusterPartition[] }> {
  const r = await fetch(cluster.url(id, '/v1/cluster'), { signal: AbortSignal.timeout(1000) });
  return (await r.json()) as { partitions: ClusterPartition[] };
}

async function leaderOf(cluster: ProcessCluster, ids: string[], partition: number): Promise<string> {
  for (const id of ids) {
    try {
      const leader = (await clusterView(cluster, id)).partitions[partition]?.leader;
      if (leader) return leader;
    } catch {
      // that node is down or paused: ask another
    }
  }
  return ids[partition % ids.length]!;
}

function cutBetween(cluster: ProcessCluster, a: string[], b: string[]): void {
  for (const x of a) {
    for (const y of b) {
      cluster.link(x, y).partition();
      cluster.link(y, x).partition();
    }
  }
}

/** Injects `f`; returns what heals it. */
async function inject(cluster: ProcessCluster, ids: string[], f: Fault, persistent: boolean, down: Set<string>): Promise<() => Promise<void>> {
  const restart = (victims: string[]) => async () => {
    await Promise.all(victims.map((id) => cluster.startNode(id)));
    for (const id of victims) down.delete(id);
  };
  const kill = async (victims: string[]) => {
    for (const id of victims) down.add(id);
    await Promise.all(victims.map((id) => cluster.kill(id)));
    return restart(victims);
  };
  const freeze = (id: string) => {
    cluster.pause(id);
    return async () => cluster.resume(id);
  };
  const heal = async () => cluster.heal();
  switch (f.kind) {
    case 'kill':
      return kill([ids[f.node]!]);
    case 'killLeader':
      return kill([await leaderOf(cluster, ids, f.partition)]);
    case 'killMajority':
      if (!persistent) throw new Error('killMajority is for persistent clusters only');
      return kill(ids.slice(0, Math.floor(ids.length / 2) + 1));
    case 'pause':
      return freeze(ids[f.node]!);
    case 'pauseLeader':
      return freeze(await leaderOf(cluster, ids, f.partition));
    case 'halves':
      cutBetween(cluster, ids.slice(0, f.split), ids.slice(f.split));
      return heal;
    case 'isolateLeader':
      cluster.isolate(await leaderOf(cluster, ids, f.partition));
      return heal;
    case 'bridge': {
      const mid = Math.floor(ids.length / 2);
      cutBetween(cluster, ids.slice(0, mid), ids.slice(mid + 1));
      return heal;
    }
    case 'oneWay': {
      const from = ids[f.from]!;
      const to = ids[f.to]!;
      cluster.link(from, to).block('forward');
      cluster.link(to, from).block('backward');
      return heal;
    }
    case 'slow':
      for (const a of ids) for (const b of ids) if (a !== b) cluster.link(a, b).delay(f.ms);
      return heal;
    case 'throttle':
      for (const a of ids) for (const b of ids) if (a !== b) cluster.link(a, b).throttle(f.bytesPerSecond);
      return heal;
  }
}

/** Polls `check` until it returns null (holds) or RECOVERY_MS passes; then fails with its last complaint. */
async function within(what: string, check: () => Promise<string | null>): Promise<void> {
  await untilNoComplaint(check, RECOVERY_MS, (last) => new Failure(`${what} did not hold ${RECOVERY_MS / 1000} s after healing: ${last}`));
}

/**
 * After healing: every node ready, and in memory (`replicas` given) every
 * partition back to full strength with no learner — a node that lost its
 * memory has rejoined and caught up — before the next fault, which is the
 * durability promise of memory mode (any minority at once).
 */
async function recovered(cluster: ProcessCluster, ids: string[], replicas: number | null): Promise<void> {
  await within('every node ready', async () => {
    for (const id of ids) {
      const r = await fetch(cluster.url(id, '/readyz'), { signal: AbortSignal.timeout(1000) });
      if (r.status !== 200) return `${id} answers /readyz ${r.status}`;
    }
    return null;
  });
  if (replicas === null) return;
  await within('every partition at full strength', async () => {
    const placement = (await clusterView(cluster, ids[0]!)).partitions;
    for (const { id, replicas: on } of placement) {
      // Only a replica of the partition knows its configuration.
      const p = (await clusterView(cluster, on[0]!)).partitions[id]!;
      if (p.learners.length > 0 || p.voters.length !== replicas) return `partition ${id} as ${on[0]} sees it: voters ${p.voters.join(',')}, learners ${p.learners.join(',')}`;
    }
    return null;
  });
}

/** Every partition has a leader that all its replicas name (a node without a replica need not know it: API.md allows null). */
async function oneLeaderEach(cluster: ProcessCluster, ids: string[]): Promise<void> {
  await within('one leader per partition, agreed by its replicas', async () => {
    const views = new Map(await Promise.all(ids.map(async (id) => [id, await clusterView(cluster, id)] as const)));
    for (const part of views.get(ids[0]!)!.partitions) {
      const named = part.replicas.map((r) => `${r}: ${views.get(r)!.partitions[part.id]!.leader}`);
      const leaders = new Set(part.replicas.map((r) => views.get(r)!.partitions[part.id]!.leader));
      if (leaders.size !== 1 || leaders.has(null)) return `partition ${part.id}: ${named.join(', ')}`;
    }
    return null;
  });
}

interface Digest {
  applied: number;
  digest: string;
}

async function converged(cluster: ProcessCluster, ids: string[], partitions: number): Promise<void> {
  await within('replicas converged', async () => {
    for (let p = 0; p < partitions; p++) {
      const seen: string[] = [];
      for (const id of ids) {
        const r = await fetch(cluster.url(id, `/v1/admin/partitions/${p}/digest`), { signal: AbortSignal.timeout(1000) });
        if (r.status === 404) continue; // no replica of p here
        const d = (await r.json()) as Digest;
        seen.push(`${id}@${d.applied}:${d.digest}`);
      }
      const states = new Set(seen.map((x) => x.split('@')[1]));
      if (seen.length < 3 || states.size !== 1) return `partition ${p}: ${seen.join(' ')}`;
    }
    return null;
  });
}
