// Elastic scale on real processes (issue 9): nodes join and leave a cluster
// under a steady client load, nodes die in the middle of moves, and the
// clients' history stays linearizable, nothing acknowledged is lost, the load
// never fails for longer than one election, and the placement ends balanced.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { ProcessCluster } from './process-cluster.js';
import { ElasticLoad, clusterView, nodeOf, settle, unbalanced } from './elastic-load.js';
import { beforeFault, deadMemberLeft, incarnationsOf, quorumLostWithout } from './preconditions.js';
import { seededRandom } from '../support/random.js';

const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));
const REPLICAS = 3;
const PARTITIONS = 8;
/** Node side: a request waiting for a leader gives up (503/504) after this long, so a failure run measures an outage in steps of it. */
const NODE_REQUEST_TIMEOUT_MS = 1500;
/** Client side: only for a node that stops answering at all. */
const CLIENT_TIMEOUT_MS = NODE_REQUEST_TIMEOUT_MS + 1000;
/**
 * "No request fails for longer than one election". The nodes tick every 50 ms
 * and a follower campaigns after 20 ticks without its leader, randomized up to
 * 2× (1–2 s); a pre-vote and a vote round plus the new leader's first commit
 * take a few more ticks. A client's run of failures after a leader's death
 * therefore ends within ~2.2 s, when requests waiting at the nodes find the
 * new leader. 3 s leaves 0.8 s of scheduling slack on a loaded 2-core machine
 * and stays below two election timeouts: an outage that needed a second
 * election (or any move that blocked a partition for seconds) exceeds it.
 */
const MAX_FAILURE_RUN_MS = 3000;

/** Flags every node takes; a joining node takes the cluster's partitions and replicas, so they are not among them. */
const nodeFlags = (extra: string[] = []) => ['--request-timeout-ms', String(NODE_REQUEST_TIMEOUT_MS), '--log-level', 'info', ...extra];
const bootFlags = (extra: string[] = []) => ['--partitions', String(PARTITIONS), '--replicas', String(REPLICAS), ...nodeFlags(extra)];

/** The running test's cluster; kept after it stops, for the failure dump. */
let cluster: ProcessCluster | null = null;

afterEach(async () => {
  await cluster?.stop();
});

/** On failure: every node's whole output (its log is JSON on stderr, at info) in a file, and the path. */
function dumpOnFailure(onTestFailed: (fn: () => void) => void, name: string): void {
  onTestFailed(() => {
    const dir = mkdtempSync(join(tmpdir(), `velo-elastic-${name}-`));
    for (const n of cluster?.nodes.values() ?? []) writeFileSync(join(dir, `${n.id}.log`), n.output.join(''));
    console.log(`the nodes' output is in ${dir}`);
  });
}

async function ready(c: ProcessCluster, id: string): Promise<void> {
  await c.until(`${id} ready`, async () => (await fetch(c.url(id, '/readyz'))).status === 200, 60_000);
}

/** Asserts (a): every load client's longest run of failed requests is below one election; logs the numbers. */
function expectNoLongOutage(load: ElasticLoad, label: string): void {
  const runs = load.failureRuns();
  const worst = runs.reduce((a, b) => (b.ms > a.ms ? b : a));
  const ops = load.operations();
  const failed = ops.filter((op) => op.complete === null).length;
  // Not bounded here (a request may wait out an election and succeed), but worth seeing next to the failures.
  const slowest = Math.max(...ops.map((op) => (op.complete === null ? 0 : op.complete - op.invoke)));
  console.log(`${label}: ${ops.length} ops, ${failed} without a definite answer, slowest answered ${Math.round(slowest)} ms; longest failure run per client: ${runs.map((r) => `c${r.client}=${Math.round(r.ms)}ms/${r.failed}`).join(' ')} (worst ${Math.round(worst.ms)} ms, bound ${MAX_FAILURE_RUN_MS} ms)`);
  expect(worst.ms, `client ${worst.client} saw ${worst.failed} failed requests in a row for ${Math.round(worst.ms)} ms`).toBeLessThan(MAX_FAILURE_RUN_MS);
}

/** Asserts (c) and (d): the history, final reads included, is linearizable — so every acknowledged write not overwritten was read back. */
function expectLinearizable(load: ElasticLoad): void {
  expect(load.linearizabilityFailure()).toBeNull();
}

/** Runs `velo remove-node` as a user would; resolves with its exit code and output. */
function removeNode(id: string, clusterUrl: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [MAIN, 'remove-node', id, '--cluster', clusterUrl], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 90_000);
    proc.once('error', reject);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('elastic scale under load', () => {
  test('adding a 4th and a 5th node under write and strong-read load', async ({ onTestFailed }) => {
    dumpOnFailure(onTestFailed, 'join');
    const c = (cluster = await ProcessCluster.start(['n1', 'n2', 'n3'], bootFlags()));
    await c.allReady();
    const load = new ElasticLoad(c, { clients: 4, keys: 40, seed: 0x9e1a, requestTimeoutMs: CLIENT_TIMEOUT_MS });
    load.serve('n1', 'n2', 'n3');
    await load.preload('n1');
    load.start();
    try {
      const preloaded = load.mark();
      await c.until('the load running', async () => load.mark() >= preloaded + 200);
      for (const [id, total] of [['n4', 4], ['n5', 5]] as const) {
        const before = load.mark();
        const started = Date.now();
        await c.join(id, c.url('n1', ''), nodeFlags());
        await ready(c, id);
        load.serve(id);
        await settle(`${id} holds replicas and the cluster is balanced`, async () => {
          const v = await clusterView(c, 'n2');
          const m = v.members.find((x) => x.id === id);
          if (v.members.filter((x) => x.status === 'active').length !== total) return `${total} active members expected: ${JSON.stringify(v.members)}`;
          if (!m || m.replicas === 0) return `${id} holds no replica yet`;
          return unbalanced(v, REPLICAS);
        }, 90_000);
        console.log(`${id} joined and the cluster rebalanced in ${Date.now() - started} ms, ${load.mark() - before} ops meanwhile`);
        // The load ran through the rebalance, not only before or after it.
        expect(load.answeredSince(before)).toBe(true);
      }
    } finally {
      await load.stop();
    }
    await load.finalReads(['n1', 'n5']);

    expectNoLongOutage(load, 'adding n4 and n5');
    // (b), asked of a member that was there from the start and of the last one in.
    for (const asked of ['n3', 'n5']) {
      const v = await clusterView(c, asked);
      const active = v.members.filter((m) => m.status === 'active');
      expect(active.map((m) => m.id).sort()).toEqual(['n1', 'n2', 'n3', 'n4', 'n5']);
      const avgReplicas = (PARTITIONS * REPLICAS) / active.length;
      const avgLeaders = PARTITIONS / active.length;
      for (const m of active) {
        expect(Math.abs(m.replicas - avgReplicas), `${m.id} holds ${m.replicas} replicas`).toBeLessThanOrEqual(1);
        expect(Math.abs(m.leaders - avgLeaders), `${m.id} leads ${m.leaders} partitions`).toBeLessThanOrEqual(1);
        // members[].leaders counts the partitions' current leaders.
        expect(m.leaders).toBe(v.partitions.filter((p) => p.leader === m.id).length);
      }
      for (const p of v.partitions) {
        expect(p.replicas).toHaveLength(REPLICAS);
        expect(p.voters.map(nodeOf).sort(), `partition ${p.id} voters`).toEqual([...p.replicas].sort());
        expect(p.learners).toEqual([]);
      }
      expect(v.rebalance).toMatchObject({ balanced: true, movesInFlight: 0, movesPending: 0 });
    }
    expectLinearizable(load);
  }, 180_000);

  test('removing a node under load, then kill -9 of an original', async ({ onTestFailed }) => {
    dumpOnFailure(onTestFailed, 'remove');
    const c = (cluster = await ProcessCluster.start(['n1', 'n2', 'n3', 'n4'], bootFlags()));
    await c.allReady();
    const load = new ElasticLoad(c, { clients: 4, keys: 40, seed: 0x2e40, requestTimeoutMs: CLIENT_TIMEOUT_MS });
    load.serve('n1', 'n2', 'n3', 'n4');
    await load.preload('n1');
    load.start();
    try {
      const preloaded = load.mark();
      await c.until('the load running', async () => load.mark() >= preloaded + 200);
      const beforeRemoval = load.mark();
      const started = Date.now();
      const removal = await removeNode('n2', c.url('n3', ''));
      expect(removal, removal.stderr).toMatchObject({ code: 0 });
      expect(removal.stdout).toMatch(/n2 removed/);
      console.log(`remove-node n2 took ${Date.now() - started} ms, ${load.mark() - beforeRemoval} ops meanwhile`);
      expect(load.answeredSince(beforeRemoval)).toBe(true);

      // n2 holds nothing any more: no target, voter or learner names it.
      const drained = await clusterView(c, 'n3');
      expect(drained.members.find((m) => m.id === 'n2')).toMatchObject({ status: 'removed', replicas: 0, leaders: 0 });
      for (const p of drained.partitions) {
        expect(p.replicas, `partition ${p.id} target`).not.toContain('n2');
        expect([...p.voters, ...p.learners].map(nodeOf), `partition ${p.id} configuration`).not.toContain('n2');
      }
      load.withdraw('n2');
      await c.terminate('n2');

      // 3 active members and replication factor 3: removing one more is refused, and nothing moves.
      const refused = await fetch(c.url('n1', '/v1/cluster/members/n3'), { method: 'DELETE' });
      expect(refused.status).toBe(409);
      const body = (await refused.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('conflict');
      expect(body.error.message).toMatch(/replication factor 3/);
      // Observed for 1 s, five rounds of the metadata leader's move planning (every 200 ms).
      const watchUntil = Date.now() + 1000;
      do {
        const v = await clusterView(c, 'n4');
        expect(v.members.filter((m) => m.status === 'active').map((m) => m.id).sort()).toEqual(['n1', 'n3', 'n4']);
        expect(v.partitions.map((p) => p.replicas)).toEqual(drained.partitions.map((p) => p.replicas));
        expect(v.rebalance).toMatchObject({ balanced: true, movesInFlight: 0, movesPending: 0 });
        await new Promise((r) => setTimeout(r, 100));
      } while (Date.now() < watchUntil);

      // kill -9 of an original: the partitions it leads elect new leaders on the two survivors.
      // Checked just before the kill, not taken from the view after the drain: n1 leads some partition
      // now, and every raft group (the metadata group too, which follows a removal on its own) keeps a
      // live quorum without n1, n2 being stopped.
      let led: number[] = [];
      await beforeFault('n1 leading a partition, every group keeping a live quorum without it', async () => {
        const v = await clusterView(c, 'n3');
        const lost = quorumLostWithout(v, 'n1');
        if (lost) return lost;
        led = v.partitions.filter((p) => p.leader === 'n1').map((p) => p.id);
        return led.length > 0 ? null : `n1 leads no partition: leaders ${v.partitions.map((p) => `${p.id}:${p.leader}`).join(' ')}`;
      }, 30_000);
      const beforeKill = load.mark();
      const killedAt = Date.now();
      load.withdraw('n1');
      await c.kill('n1');
      await settle('a leader on a survivor for every partition', async () => {
        const v = await clusterView(c, 'n3');
        const orphan = v.partitions.find((p) => p.leader === null || p.leader === 'n1');
        return orphan ? `partition ${orphan.id} leader ${orphan.leader}` : null;
      }, 30_000);
      console.log(`kill -9 of n1 (leader of partitions ${led.join(', ')}): every partition led by a survivor after ${Date.now() - killedAt} ms`);
      // The load goes on past the recovery, so the whole outage lies inside the measured history.
      const recovered = load.mark();
      await c.until('every client answered again after the kill', async () => load.answeredSince(beforeKill) && load.mark() - recovered >= 300, 60_000);
    } finally {
      await load.stop();
    }
    // The survivors answer every key, each through its own pass of strong reads.
    await load.finalReads(['n3', 'n4']);
    expectNoLongOutage(load, 'removing n2, then kill -9 of n1');
    expectLinearizable(load);
  }, 180_000);

  test('kill -9 of the joining node halfway through its catch-up, and of the leader of a moving partition', async ({ onTestFailed }) => {
    dumpOnFailure(onTestFailed, 'crash');
    // Snapshots sent at 256 KiB/s at most: a partition's ~600 KiB catch-up takes over 2 s, long enough to kill in the middle of it.
    const throttled = ['--move-bytes-per-sec', '262144'];
    // A snapshot every 64 KiB of log, so that n4 can only catch up by one. (At the default 64 MiB no log
    // was ever compacted: n4 caught up from the logs before the check below saw it in the middle, and a
    // clean-clone run failed on it.)
    const c = (cluster = await ProcessCluster.start(['n1', 'n2', 'n3'], bootFlags([...throttled, '--snapshot-bytes', '65536'])));
    await c.allReady();
    const bulk = await preloadBulk(c, ['n1', 'n2', 'n3'], 300, 16 << 10);
    await beforeFault('every replica of every partition compacted its log (a snapshot taken on n1, n2 and n3)', async () => {
      for (const id of ['n1', 'n2', 'n3']) {
        const taken = await snapshotsTaken(c, id);
        const missing = [...Array(PARTITIONS).keys()].filter((p) => !(taken.get(p)! > 0));
        if (missing.length > 0) return `${id} has taken no snapshot of partition(s) ${missing.join(', ')}`;
      }
      return null;
    }, 60_000);
    const load = new ElasticLoad(c, { clients: 2, keys: 20, seed: 0x3c0d, requestTimeoutMs: CLIENT_TIMEOUT_MS });
    load.serve('n1', 'n2', 'n3');
    await load.preload('n1');
    load.start();
    // Member ids of killed incarnations: a memory node comes back under a new one, and the old must leave every configuration.
    const dead = new Set<string>();
    const started = Date.now();
    try {
      await c.join('n4', c.url('n1', ''), nodeFlags(throttled));
      let learning = '';
      await settle('an n4 replica in the middle of its snapshot', async () => {
        const v = await clusterView(c, 'n1');
        const applied = await appliedIndexes(c, 'n4');
        // A learner whose replica exists on n4 but has applied nothing: the snapshot is on its way.
        const p = v.partitions.find((x) => x.learners.some((m) => nodeOf(m) === 'n4') && applied.get(x.id) === 0);
        if (!p) return `no n4 learner mid-snapshot: learners ${v.partitions.map((x) => `${x.id}:${x.learners.join(',')}`).join(' ')}, applied on n4 ${JSON.stringify([...applied])}`;
        for (const m of incarnationsOf(v, 'n4')) dead.add(m);
        learning = `partition ${p.id} (learners ${p.learners.join(',')})`;
        return null;
      }, 60_000);
      await c.kill('n4');
      console.log(`killed n4 while it caught up on ${learning}`);
      await c.startNode('n4');

      // In memory mode a killed node's replicas are gone for good, so the second kill must leave every
      // group a live majority of its voters: no dead incarnation is left anywhere, and each group
      // (the metadata group too) the victim votes in keeps a quorum without it. (Checked, not assumed: the first n4 may
      // have been promoted, and its replacement still be a learner, leaving a partition two voters.)
      // With no dead voter, the configuration only moves through changes that keep that quorum
      // (add a learner, promote it, then remove one of four), so it still holds when the kill lands.
      let victim = '';
      let moving = '';
      await settle('a moving partition whose leader can die with every partition keeping a live quorum', async () => {
        const v = await clusterView(c, 'n2');
        const stale = deadMemberLeft(v, dead);
        if (stale) return stale;
        const p = v.partitions.find((x) => x.moving && x.leader !== null && x.leader !== 'n4');
        if (!p) return 'no partition moving';
        const candidate = p.leader!;
        const weak = quorumLostWithout(v, candidate, dead);
        if (weak) return weak;
        victim = candidate;
        for (const m of incarnationsOf(v, victim)) dead.add(m);
        moving = `partition ${p.id} (target ${p.replicas.join(',')}, voters ${p.voters.join(',')}, learners ${p.learners.join(',')})`;
        return null;
      }, 60_000);
      load.withdraw(victim);
      await c.kill(victim);
      console.log(`killed ${victim}, the leader of moving ${moving}`);
      await c.startNode(victim);
      load.serve(victim);

      await settle('balanced, with every partition on its target voters', async () => unbalanced(await clusterView(c, 'n3'), REPLICAS, dead), 150_000);
      console.log(`converged ${Date.now() - started} ms after n4 was started`);
    } finally {
      await load.stop();
    }
    await load.finalReads(['n2', 'n4']);
    const ops = load.operations();
    console.log(`kill -9 of a joiner and of a moving partition's leader: ${ops.length} ops, ${ops.filter((op) => op.complete === null).length} without a definite answer, longest failure run ${Math.round(Math.max(...load.failureRuns().map((r) => r.ms)))} ms`);
    expectLinearizable(load);
    let i = 0;
    for (const [key, value] of bulk) {
      const r = await fetch(c.url(['n1', 'n2', 'n3', 'n4'][i++ % 4]!, `/v1/caches/default/items/${key}`));
      expect({ key, status: r.status }).toEqual({ key, status: 200 });
      expect((await r.text()) === value, `${key} reads back intact`).toBe(true);
    }
  }, 240_000);
});

/** Applied index of each partition replica `id` holds, from its /metrics. */
async function appliedIndexes(c: ProcessCluster, id: string): Promise<Map<number, number>> {
  const text = await (await fetch(c.url(id, '/metrics'), { signal: AbortSignal.timeout(3000) })).text();
  return new Map([...text.matchAll(/^velo_raft_applied_index\{partition="(\d+)"\} (\d+)$/gm)].map((m) => [Number(m[1]), Number(m[2])]));
}

/** Snapshots each partition replica on `id` has taken, from its /metrics. */
async function snapshotsTaken(c: ProcessCluster, id: string): Promise<Map<number, number>> {
  const text = await (await fetch(c.url(id, '/metrics'), { signal: AbortSignal.timeout(3000) })).text();
  return new Map([...text.matchAll(/^velo_snapshots_total\{partition="(\d+)"\} (\d+)$/gm)].map((m) => [Number(m[1]), Number(m[2])]));
}

/** Writes `count` values of `bytes` each (seeded) through `via`, several at a time; every write must succeed. */
async function preloadBulk(c: ProcessCluster, via: string[], count: number, bytes: number): Promise<Map<string, string>> {
  const random = seededRandom(0xb01c);
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const values = new Map<string, string>();
  for (let i = 0; i < count; i++) values.set(`bulk${i}`, Array.from({ length: bytes }, () => alphabet[Math.floor(random() * alphabet.length)]).join(''));
  const keys = [...values.keys()];
  await Promise.all(
    Array.from({ length: 8 }, async (_, w) => {
      for (let i = w; i < keys.length; i += 8) {
        const r = await fetch(c.url(via[i % via.length]!, `/v1/caches/default/items/${keys[i]}`), { method: 'PUT', body: values.get(keys[i]!)! });
        if (r.status !== 201) throw new Error(`preloading ${keys[i]}: ${r.status} ${await r.text()}`);
      }
    }),
  );
  return values;
}
