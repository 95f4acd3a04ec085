// A member that stays down: replaced on the others after --replace-after-ms
// when that is set (the replication factor comes back, nothing is lost), and
// left in place when it is not (the default: a restart may be on its way).
import { afterEach, describe, expect, test } from 'vitest';
import { ProcessCluster } from './process-cluster.js';
import type { ClusterView } from '../../src/node/service.js';

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
    const held = (await view(c, 'n1')).partitions.filter((p) => p.replicas.includes('n4')).length;
    expect(held).toBeGreaterThan(0);
    const killedAt = Date.now();
    await c.kill('n4');
    await c.until('n4 removed and every partition on 3 live voters', async () => {
      const v = await view(c, 'n1');
      if (v.members.find((m) => m.id === 'n4')?.status !== 'removed' || !v.rebalance.balanced) return false;
      return v.partitions.every((p) => p.voters.length === 3 && p.learners.length === 0 && !p.voters.some((m) => nodeOf(m) === 'n4') && !p.replicas.includes('n4'));
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
    const before = await view(c, 'n1');
    await c.kill('n4');
    await c.until('n4 seen down', async () => (await view(c, 'n1')).members.find((m) => m.id === 'n4')?.state === 'down', 10_000);
    // Writes keep going on two of three replicas; the placement stays (polled over 4 s, twice any replace-after used above).
    const deadline = Date.now() + 4000;
    while (Date.now() < deadline) {
      const v = await view(c, 'n1');
      expect(v.members.find((m) => m.id === 'n4')?.status).toBe('active');
      expect(v.partitions.map((p) => p.replicas)).toEqual(before.partitions.map((p) => p.replicas));
      expect(v.rebalance.movesInFlight).toBe(0);
      await new Promise((r) => setTimeout(r, 250));
    }
    for (const [k, want] of acked) expect(await (await fetch(c.url('n1', `/v1/caches/default/items/${k}`))).text()).toBe(want);
  }, 60_000);
});
