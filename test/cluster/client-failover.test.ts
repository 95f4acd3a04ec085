// The client through kill -9 of a partition's leader, with real processes:
// reads and puts keep succeeding once a new leader is elected (none fails,
// none takes longer than the client's deadline), and a compare-and-set in
// flight at the kill either succeeded with a version that is then readable,
// or failed definitely and consistently with the final state, or is an
// IndeterminateError — never a wrong answer. Two ways to have them in flight:
// the leader frozen (SIGSTOP) with the requests in its socket, so that none
// was applied; and the followers' acknowledgements cut (a proxy on every raft
// link), so that the leader replicated them but could not commit or answer —
// the next leader applies them. A client that sent such a request again
// would get PreconditionFailedError for its own write.
import { describe, expect, test } from 'vitest';
import { ProcessCluster } from './process-cluster.js';
import { VeloClient } from '../../src/client/client.js';
import { HttpBackend } from '../../src/client/http-backend.js';
import { IndeterminateError, PreconditionFailedError, UnavailableError } from '../../src/client/errors.js';
import { partitionOf } from '../../src/node/partition-map.js';

const PARTITIONS = 4;
const TIMEOUT_MS = 10_000;
const WORKERS = 3;
const CAS_COUNT = 8;

type View = { partitions: { id: number; replicas: string[]; leader: string | null }[] };

async function view(cluster: ProcessCluster, id: string): Promise<View> {
  return (await (await fetch(cluster.url(id, '/v1/cluster'))).json()) as View;
}

/** A counter from a node's GET /metrics. */
async function metric(cluster: ProcessCluster, id: string, name: string): Promise<number> {
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(await (await fetch(cluster.url(id, '/metrics'))).text());
  if (!m) throw new Error(`no ${name} in ${id}'s metrics`);
  return Number(m[1]);
}

/** Three nodes, every partition led by its preferred replica on every node (leadership no longer moves by itself). */
async function startCluster(proxied: boolean): Promise<ProcessCluster> {
  const cluster = await ProcessCluster.start(['n1', 'n2', 'n3'], ['--partitions', String(PARTITIONS), '--log-level', 'warn'], { proxied });
  try {
    await cluster.allReady();
    await cluster.until('every partition led by its preferred replica on every node', async () => {
      for (const id of cluster.nodes.keys()) if (!(await view(cluster, id)).partitions.every((p) => p.leader === p.replicas[0])) return false;
      return true;
    });
    return cluster;
  } catch (e) {
    await cluster.stop();
    throw e;
  }
}

/** Until every node sees `leader` leading partition `p`: the leader a fault is aimed at is checked, not assumed to have stayed. */
async function untilLeads(cluster: ProcessCluster, p: number, leader: string): Promise<void> {
  await cluster.until(`${leader} leads partition ${p}, as every node sees it`, async () => {
    for (const id of cluster.nodes.keys()) if ((await view(cluster, id)).partitions[p]!.leader !== leader) return false;
    return true;
  });
}

function clientOf(cluster: ProcessCluster): { backend: HttpBackend; client: VeloClient } {
  const backend = new HttpBackend({ nodes: [...cluster.nodes.values()].map((n) => n.http), timeoutMs: TIMEOUT_MS });
  return { backend, client: new VeloClient({ backend }) };
}

/** Keys of the default cache that live in partition `p`. */
function keysIn(p: number, prefix: string, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (partitionOf(PARTITIONS, 'default', null, `${prefix}${i}`) === p) out.push(`${prefix}${i}`);
  return out;
}

interface WorkerOp {
  op: 'put' | 'get';
  ms: number;
  error: unknown;
  endedAt: number;
}

describe('the client through kill -9 of a leader', () => {
  test('reads and puts succeed after the new election, and a compare-and-set in flight at the kill is never a wrong answer', async () => {
    const cluster = await startCluster(false);
    const { backend, client } = clientOf(cluster);
    const cache = client.cache();
    try {
      const p = 0;
      const victim = (await view(cluster, 'n1')).partitions[p]!.leader!;
      const victimOrigin = `http://${cluster.node(victim).http}`;
      const workerKeys = keysIn(p, 'w', WORKERS);
      const casKeys = keysIn(p, 'c', CAS_COUNT);
      const initial = new Map<string, string>();
      for (const k of casKeys) initial.set(k, (await cache.put(k, { n: 0 })).version);
      for (const k of [...workerKeys, ...casKeys]) expect(backend.routeOf({ cache: 'default', region: null, key: k })).toBe(victim);

      // Each worker puts its key's next value and reads it back, one after the other.
      let running = true;
      const ops: WorkerOp[][] = workerKeys.map(() => []);
      const acked = new Map<string, number>();
      const wrongReads: string[] = [];
      const timed = async (w: number, op: 'put' | 'get', run: () => Promise<unknown>) => {
        const t0 = Date.now();
        try {
          const r = await run();
          ops[w]!.push({ op, ms: Date.now() - t0, error: null, endedAt: Date.now() });
          return r;
        } catch (error) {
          ops[w]!.push({ op, ms: Date.now() - t0, error, endedAt: Date.now() });
          return undefined;
        }
      };
      const loops = workerKeys.map(async (key, w) => {
        for (let i = 1; running; i++) {
          const put = await timed(w, 'put', () => cache.put(key, i));
          if (put !== undefined) acked.set(key, i);
          const got = await timed(w, 'get', () => cache.get<number>(key));
          if (got !== undefined && got !== acked.get(key)) wrongReads.push(`${key}: read ${String(got)}, last acknowledged ${acked.get(key)}`);
        }
      });
      const okAfter = (t: number) => ops.map((list) => list.filter((o) => o.error === null && o.endedAt > t).length);
      await cluster.until('every worker did some operations', async () => okAfter(0).every((n) => n >= 10));

      // Freeze the leader, send the compare-and-sets, and kill it with them in flight.
      await untilLeads(cluster, p, victim);
      cluster.pause(victim);
      let settledBeforeKill = 0;
      let killed = false;
      const cas = casKeys.map((k) =>
        cache.compareAndSet(k, { n: 1 }, initial.get(k)!).then(
          (r) => ({ key: k, version: r.version, error: null as unknown }),
          (error: unknown) => ({ key: k, version: null, error }),
        ).finally(() => {
          if (!killed) settledBeforeKill++;
        }),
      );
      await cluster.until('the compare-and-sets and every worker wait on the frozen leader', async () => (backend.inFlight().get(victimOrigin) ?? 0) >= CAS_COUNT + WORKERS, 5_000);
      killed = true;
      const killedAt = Date.now();
      await cluster.kill(victim);
      const outcomes = await Promise.all(cas);
      await cluster.until('every worker succeeded 10 times after the kill', async () => okAfter(killedAt).every((n) => n >= 10), 30_000);
      running = false;
      await Promise.all(loops);

      // Reads and puts: none failed, none outlasted the deadline, every read saw the last acknowledged put.
      const all = ops.flat();
      const failed = all.filter((o) => o.error !== null);
      expect(failed.map((o) => `${o.op}: ${String(o.error)}`)).toEqual([]);
      const slowest = Math.max(...all.map((o) => o.ms));
      expect(slowest).toBeLessThan(TIMEOUT_MS);
      expect(wrongReads).toEqual([]);
      for (const k of workerKeys) expect(await cache.get(k, { consistency: 'strong' })).toBe(acked.get(k));

      // Compare-and-sets: each outcome is judged against what a final strong read finds (nobody else writes these keys).
      const counts = { succeeded: 0, indeterminate: 0, unavailable: 0, preconditionFailed: 0 };
      const wrongAnswers: string[] = [];
      for (const o of outcomes) {
        const final = (await cache.getItem<{ n: number }>(o.key, { consistency: 'strong' }))!;
        const untouched = final.version === initial.get(o.key) && final.value.n === 0;
        const state = JSON.stringify(final);
        if (o.error === null) {
          counts.succeeded++;
          if (!(final.version === o.version && final.value.n === 1)) wrongAnswers.push(`${o.key}: succeeded with version ${o.version}, yet the final state is ${state}`);
        } else if (o.error instanceof IndeterminateError) {
          counts.indeterminate++;
          if (!(untouched || final.value.n === 1)) wrongAnswers.push(`${o.key}: indeterminate, yet the final state is ${state}`);
        } else if (o.error instanceof UnavailableError) {
          // Says the write was not applied.
          counts.unavailable++;
          if (!untouched) wrongAnswers.push(`${o.key}: unavailable (not applied), yet the final state is ${state}`);
        } else if (o.error instanceof PreconditionFailedError) {
          // Right only if someone else changed the version: here nobody else writes these keys, so never.
          counts.preconditionFailed++;
          wrongAnswers.push(`${o.key}: PreconditionFailedError, yet nobody else writes it; the final state is ${state}`);
        } else {
          wrongAnswers.push(`${o.key}: ${String(o.error)}`);
        }
      }
      const electionGapMs = Math.max(0, ...all.filter((o) => o.endedAt > killedAt).map((o) => o.ms));
      console.log(
        `kill -9 of ${victim}: compare-and-sets in flight ${CAS_COUNT - settledBeforeKill}/${CAS_COUNT}: ${JSON.stringify(counts)}; ` +
          `${all.length} reads and puts, none failed, slowest ${slowest} ms (slowest after the kill: ${electionGapMs} ms)`,
      );
      // What the name claims: every compare-and-set was in flight at the kill (none had an answer
      // before it: they waited on the frozen leader), and none of them got a wrong answer.
      expect(settledBeforeKill, 'compare-and-sets answered before the kill').toBe(0);
      expect(wrongAnswers).toEqual([]);
      expect(backend.routeOf({ cache: 'default', region: null, key: workerKeys[0]! })).not.toBe(victim);
    } finally {
      await client.close();
      await cluster.stop();
    }
  }, 120_000);

  test('a compare-and-set the cluster applied but whose answer was lost is an IndeterminateError, never a retry’s PreconditionFailedError', async () => {
    const cluster = await startCluster(true);
    const { backend, client } = clientOf(cluster);
    const cache = client.cache();
    try {
      const p = 1;
      const victim = (await view(cluster, 'n1')).partitions[p]!.leader!;
      const followers = [...cluster.nodes.keys()].filter((id) => id !== victim);
      const casKeys = keysIn(p, 'a', CAS_COUNT);
      const initial = new Map<string, string>();
      for (const k of casKeys) initial.set(k, (await cache.put(k, { n: 0 })).version);
      for (const k of casKeys) expect(backend.routeOf({ cache: 'default', region: null, key: k })).toBe(victim);
      await untilLeads(cluster, p, victim);

      // Drop every byte from the followers to the leader: it still replicates to them, but never hears back.
      for (const f of followers) {
        cluster.link(f, victim).block('forward');
        cluster.link(victim, f).block('backward');
      }
      // Each compare-and-set's new value names its key, so that the test can see it pass on the wire to
      // each follower (either node of a pair may have dialled the connection that carries it).
      const newValue = (k: string) => ({ n: 1, cas: k });
      const onWire = (k: string) => JSON.stringify(newValue(k)).slice('{"n":1,'.length);
      const notYetAt = followers.map((f) => {
        const dialledByLeader = cluster.link(victim, f).watch('forward', casKeys.map(onWire));
        const dialledByFollower = cluster.link(f, victim).watch('backward', casKeys.map(onWire));
        return { f, missing: () => dialledByLeader().filter((t) => dialledByFollower().includes(t)) };
      });
      const proposed = await metric(cluster, victim, 'velo_proposals_total');
      const cas = casKeys.map((k) =>
        cache.compareAndSet(k, newValue(k), initial.get(k)!).then(
          (r) => ({ key: k, version: r.version, error: null as unknown }),
          (error: unknown) => ({ key: k, version: null, error }),
        ),
      );
      await cluster.until('the leader proposed every compare-and-set', async () => (await metric(cluster, victim, 'velo_proposals_total')) >= proposed + CAS_COUNT, 10_000);
      // The next leader can only apply what reached the followers: check that every entry did, rather than assume it.
      await cluster.until(
        'every compare-and-set passed on to both followers',
        async () => notYetAt.every((w) => w.missing().length === 0),
        10_000,
      );
      await cluster.kill(victim);
      const outcomes = await Promise.all(cas);

      const counts = { succeeded: 0, indeterminate: 0, applied: 0 };
      for (const o of outcomes) {
        const final = (await cache.getItem<{ n: number }>(o.key, { consistency: 'strong' }))!;
        const untouched = final.version === initial.get(o.key) && final.value.n === 0;
        if (final.value.n === 1) counts.applied++;
        if (o.error === null) {
          counts.succeeded++;
          expect(final).toMatchObject({ version: o.version, value: { n: 1 } });
        } else if (o.error instanceof IndeterminateError) {
          counts.indeterminate++;
          expect(untouched || final.value.n === 1).toBe(true);
        } else {
          // PreconditionFailedError here is the client answering for its own applied write; anything else is a bug too.
          throw o.error;
        }
      }
      console.log(`acknowledgements cut, then kill -9 of ${victim}: ${JSON.stringify(counts)} of ${CAS_COUNT} compare-and-sets`);
      // Not vacuous: every compare-and-set reached both followers before the kill, so the next leader
      // applied them all, and the old one, which never heard back, answered none of them.
      expect(counts.applied).toBe(CAS_COUNT);
      expect(counts.indeterminate).toBe(CAS_COUNT);
    } finally {
      await client.close();
      await cluster.stop();
    }
  }, 120_000);
});
