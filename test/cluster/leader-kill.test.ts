// kill -9 of a partition's leader: a new leader within 3 s, nothing acknowledged lost.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ProcessCluster } from './process-cluster.js';
import { beforeFault, clusterView, quorumLostWithout } from './preconditions.js';
import { untilNoComplaint } from '../../scripts/poll.js';

let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await ProcessCluster.start(['n1', 'n2', 'n3'], ['--partitions', '4']);
  await cluster.allReady();
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

describe('kill -9 of a leader', () => {
  test('a new leader is elected within 3 s and every acknowledged write is still readable', async () => {
    const acked = new Map<string, string>();
    for (let i = 0; i < 40; i++) {
      const r = await fetch(cluster.url('n2', `/v1/caches/default/items/lk${i}`), { method: 'PUT', body: `v${i}` });
      expect(r.status).toBe(201);
      acked.set(`lk${i}`, `v${i}`);
    }
    // Checked, not assumed: partition 0 has a leader right now, and killing it leaves every raft group a live quorum.
    let victim = '';
    await beforeFault('a leader of partition 0 that can die with every group keeping a quorum', async () => {
      const v = await clusterView(cluster, 'n2');
      const leader = v.partitions[0]!.leader;
      if (leader === null) return 'partition 0 has no leader';
      const lost = quorumLostWithout(v, leader);
      if (lost) return lost;
      victim = leader;
      return null;
    }, 30_000);
    const witness = ['n1', 'n2', 'n3'].find((n) => n !== victim)!;
    const killedAt = Date.now();
    await cluster.kill(victim);
    let electedAt = 0;
    // Polled every 50 ms: this poll measures the election.
    await untilNoComplaint(async () => {
      const leader = (await clusterView(cluster, witness)).partitions[0]!.leader;
      if (leader === null || leader === victim) return `${witness} sees leader ${leader}`;
      electedAt = Date.now();
      return null;
    }, 10_000, (last) => new Error(`no new leader of partition 0 within 10 s of killing ${victim}; last seen: ${last}`), 50);
    const electionMs = electedAt - killedAt;
    console.log(`election after kill -9 of ${victim}: ${electionMs} ms`);
    expect(electionMs).toBeLessThan(3000);
    for (const [k, v] of acked) expect(await (await fetch(cluster.url(witness, `/v1/caches/default/items/${k}`))).text()).toBe(v);
  }, 60_000);
});
