// A member that stays down: replaced on the others after --replace-after-ms
// when that is set (the replication factor comes back, nothing is lost), and
// left in place when it is not (the default: a restart may be on its way).
import { afterEach, describe, expect, test } from 'vitest';
import { ProcessCluster } from './process-cluster.js';
import type { ClusterView } from '../../src/node/service.js';
import { beforeFault, quorumLostWithout, settle } from './preconditions.js';

let cluster: ProcessCluster | null = null;

afterEach(async () => {
  await cluster?.stop();
  cluster = null;
});

const view = async (c: ProcessCluster, id: string): Promise<ClusterView> => (await (await fetch(c.url(id, '/v1/cluster'))).json()) as ClusterView;
const nodeOf = (member: string) => member.split('@')[0]!;

async function writeKeys(c: ProcessCluster, via: string, n: number): Promise<Map<string, string>> {
  const acked = new Map<string, string>();
  for (let i = 0; i < n; i++) {
    const r = await fetch(c.url(via, `/v1/caches/default/items/ar${i}`), { method: 'PUT', body: `v${i}` });
    expect(r.status).toBe(201);
    acked.set(`ar${i}`, `v${i}`);
  }
  return acked;
}

describe('a member that stays down', () => {
  test('with --replace-after-ms it is drained and removed, every partition has 3 live voters again, and nothing is lost', async () => {
    const c = (cluster = await ProcessCluster.start(['n1', 'n2', 'n3', 'n4'], ['--partitions', '8', '--replace-after-ms', '2000']));
    await c.allReady();
    const acked = await writeKeys(c, 'n1', 60);
    // Checked, not assumed: n4 holds replicas to replace, and every raft group keeps a live quorum without it.
    await beforeFault('n4 holding replicas, every group keeping a live quorum without it', async () => {
      const v = await view(c, 'n1');
      if (!v.partitions.some((p) => p.replicas.includes('n4') && p.voters.some((m) => nodeOf(m) === 'n4'))) return 'n4 votes in no partition';
      return quorumLostWithout(v, 'n4');
    }, 30_000);
    const killedAt = Date.now();
    await c.kill('n4');
    await settle('n4 removed and every partition on 3 live voters', async () => {
      const v = await view(c, 'n1');
      const status = v.members.find((m) => m.id === 'n4')?.status;
      if (status !== 'removed') return `n4 is ${status}; rebalance ${JSON.stringify(v.rebalance)}`;
      if (!v.rebalance.balanced) return `rebalance not done: ${JSON.stringify(v.rebalance)}`;
      const p = v.partitions.find((p) => p.voters.length !== 3 || p.learners.length > 0 || p.voters.some((m) => nodeOf(m) === 'n4') || p.replicas.includes('n4'));
      return p ? `partition ${p.id}: target ${p.replicas.join(',')}, voters ${p.voters.join(',')}, learners ${p.learners.join(',')}` : null;
    }, 60_000);
    const v = await view(c, 'n2');
    console.log(`n4 replaced ${Date.now() - killedAt} ms after kill -9 (replace-after 2000 ms); replicas per member: ${v.members.map((m) => `${m.id}=${m.replicas}`).join(' ')}`);
    // The survivors share n4's replicas evenly: 8 partitions × 3 replicas over 3 members.
    for (const m of v.members.filter((m) => m.status === 'active')) expect(m.replicas).toBe(8);
    for (const [k, want] of acked) expect(await (await fetch(c.url('n2', `/v1/caches/default/items/${k}`))).text()).toBe(want);
  }, 120_000);

  test('without it (the default) the member keeps its place: no partition moves while it is down', async () => {
    const c = (cluster = await ProcessCluster.start(['n1', 'n2', 'n3', 'n4'], ['--partitions', '8']));
    await c.allReady();
    const acked = await writeKeys(c, 'n1', 20);
    // The placement compared against below is a settled one (no move under way that would change it anyway),
    // and every raft group keeps a live quorum without n4.
    let before: ClusterView | null = null;
    await beforeFault('a balanced placement, every group keeping a live quorum without n4', async () => {
      const v = await view(c, 'n1');
      const wrong = (v.rebalance.balanced ? null : `rebalance not done: ${JSON.stringify(v.rebalance)}`) ?? quorumLostWithout(v, 'n4');
      if (wrong) return wrong;
      before = v;
      return null;
    }, 30_000);
    await c.kill('n4');
    await c.until('n4 seen down', async () => (await view(c, 'n1')).members.find((m) => m.id === 'n4')?.state === 'down', 10_000);
    // Writes keep going on two of three replicas; the placement stays (polled over 4 s, twice any replace-after used above).
    const deadline = Date.now() + 4000;
    for (let i = 0; Date.now() < deadline; i++) {
      const w = await fetch(c.url('n1', `/v1/caches/default/items/down${i}`), { method: 'PUT', body: `d${i}` });
      expect(w.status, `a write while n4 is down: ${await w.clone().text()}`).toBe(201);
      acked.set(`down${i}`, `d${i}`);
      const v = await view(c, 'n1');
      expect(v.members.find((m) => m.id === 'n4')?.status).toBe('active');
      expect(v.partitions.map((p) => p.replicas)).toEqual(before!.partitions.map((p) => p.replicas));
      expect(v.rebalance.movesInFlight).toBe(0);
      await new Promise((r) => setTimeout(r, 250));
    }
    for (const [k, want] of acked) expect(await (await fetch(c.url('n1', `/v1/caches/default/items/${k}`))).text()).toBe(want);
  }, 60_000);
});
