// One fault schedule against a real cluster: start the processes (behind a
// proxy on every directed link), run the clients, inject each phase's faults
// (inject.ts; those of one phase overlap, each on its own clock) and heal
// them, then check what must hold after healing:
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
import { coverageOf } from './coverage.js';
import type { Coverage } from './coverage.js';
import { FaultInjector, Failure, clusterView } from './inject.js';
import { describePhase } from './schedule.js';
import type { Phase, Schedule } from './schedule.js';
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
  /** What the run really did: faults on at the same time, kills that met a write in flight. */
  coverage: Coverage;
}

/** How long the cluster may take to recover after a fault is healed before the run counts as a liveness failure. */
const RECOVERY_MS = 30_000;
const REQUEST_TIMEOUT_MS = 1500;

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
  let injector: FaultInjector | null = null;
  try {
    cluster = await ProcessCluster.start(ids, args, { proxied: true, nodeArgs: (id) => (dataRoot ? ['--data-dir', join(dataRoot, id)] : []) });
    await cluster.allReady();
    await prepare(cluster.url(ids[0]!, ''));
    injector = new FaultInjector({ cluster, ids, persistent: s.persistent, down, workload, clock: () => performance.now() - started, log });
    workload.start();
    for (const [i, phase] of s.phases.entries()) {
      log(`phase ${i + 1}/${s.phases.length}: ${describePhase(phase)}`);
      await runPhase(injector, phase);
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
    // A run that broke outside the checks (a cluster never ready, say) says what each node answered and wrote last.
    failure = e instanceof Failure ? e.message : `the run broke: ${(e as Error).stack ?? String(e)}${cluster ? `\n${await describeNodes(cluster, ids)}` : ''}`;
    await workload.stop().catch(() => {});
  } finally {
    await cluster?.stop();
    if (dataRoot) rmSync(dataRoot, { recursive: true, force: true });
  }
  const history = workload.operations();
  // The final reads are recorded as client s.clients: they check the end state, they are not the load.
  const definite = history.filter((op) => op.client < s.clients && op.complete !== null).length;
  const coverage = coverageOf(injector?.active ?? [], injector?.midWriteKills ?? []);
  return { ok: failure === null, failure, ops: history.length, definite, history, seconds: (performance.now() - started) / 1000, coverage };
}

/** Each node's /readyz answer (or why it gave none) and the end of its output. */
async function describeNodes(cluster: ProcessCluster, ids: string[]): Promise<string> {
  const parts = await Promise.all(
    ids.map(async (id) => {
      let ready: string;
      try {
        const r = await fetch(cluster.url(id, '/readyz'), { signal: AbortSignal.timeout(2000) });
        ready = `${r.status} ${(await r.text()).slice(0, 300)}`;
      } catch (e) {
        ready = `no answer: ${(e as Error).message}`;
      }
      return `--- ${id}: /readyz ${ready}\n${cluster.node(id).output.join('').slice(-3000)}`;
    }),
  );
  return parts.join('\n');
}

/**
 * The phase's fault, and each overlapping one from its start offset (counted
 * from the moment the phase's fault is in place), each healed after its own
 * duration. Waits for every one of them to be healed, even when one fails,
 * so that no fault acts on the cluster after the run has moved on.
 */
async function runPhase(injector: FaultInjector, phase: Phase): Promise<void> {
  const timed = async (heal: () => Promise<void>, durationMs: number) => {
    await pause(durationMs);
    await heal();
  };
  const healFirst = await injector.inject(phase.fault);
  const tasks = [
    timed(healFirst, phase.durationMs),
    ...(phase.overlap ?? []).map(async (o) => {
      await pause(o.startMs);
      await timed(await injector.inject(o.fault), o.durationMs);
    }),
  ];
  const failed = (await Promise.allSettled(tasks)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** The schedule's own time: how long a fault lasts. Never used to wait for the system to reach a state. */
function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
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
