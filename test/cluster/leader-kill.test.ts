// kill -9 of a partition's leader: a new leader within 3 s, nothing acknowledged lost.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ProcessCluster } from './process-cluster.js';

let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await ProcessCluster.start(['n1', 'n2', 'n3'], ['--partitions', '4']);
  await cluster.allReady();
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

type Cluster = { partitions: { id: number; leader: string | null }[] };

describe('kill -9 of a leader', () => {
  test('a new leader is elected within 3 s and every acknowledged write is still readable', async () => {
    const acked = new Map<string, string>();
    for (let i = 0; i < 40; i++) {
      const r = await fetch(cluster.url('n2', `/v1/caches/default/items/lk${i}`), { method: 'PUT', body: `v${i}` });
      expect(r.status).toBe(201);
      acked.set(`lk${i}`, `v${i}`);
    }
    const before = (await (await fetch(cluster.url('n2', '/v1/cluster'))).json()) as Cluster;
    const victim = before.partitions[0]!.leader!;
    const witness = ['n1', 'n2', 'n3'].find((n) => n !== victim)!;
    const killedAt = Date.now();
    await cluster.kill(victim);
    let electedAt = 0;
    await cluster.until('a new leader of partition 0', async () => {
      const c = (await (await fetch(cluster.url(witness, '/v1/cluster'))).json()) as Cluster;
      const leader = c.partitions[0]!.leader;
      if (leader === null || leader === victim) return false;
      electedAt = Date.now();
      return true;
    }, 10_000);
    const electionMs = electedAt - killedAt;
    console.log(`election after kill -9 of ${victim}: ${electionMs} ms`);
    expect(electionMs).toBeLessThan(3000);
    for (const [k, v] of acked) expect(await (await fetch(cluster.url(witness, `/v1/caches/default/items/${k}`))).text()).toBe(v);
  }, 60_000);
});
