// kill -9 of a partition's leader: a new leader is elected, nothing acknowledged lost.
//
// How fast is a figure, printed here, not a pass mark: an election takes one
// to two election timeouts (1-2 s at the defaults) on a quiet machine, but a
// bound in wall-clock time failed a clean-clone CI run on a machine loaded 15
// deep (3.3 s against 3 s). The bound below, ten election timeouts, is the
// liveness claim: a surviving majority elects a leader, however slowly.
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
  test('a surviving majority elects a new leader within 10 election timeouts, and every acknowledged write is still readable', async () => {
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
    // Polled every 50 ms: this poll measures the election; the election timeout is 1 s (20 ticks of 50 ms).
    await untilNoComplaint(async () => {
      const leader = (await clusterView(cluster, witness)).partitions[0]!.leader;
      if (leader === null || leader === victim) return `${witness} sees leader ${leader}`;
      electedAt = Date.now();
      return null;
    }, 10_000, (last) => new Error(`no new leader of partition 0 within 10 election timeouts (10 s) of killing ${victim}; last seen: ${last}`), 50);
    const electionMs = electedAt - killedAt;
    console.log(`election after kill -9 of ${victim}: ${electionMs} ms`);
    for (const [k, v] of acked) expect(await (await fetch(cluster.url(witness, `/v1/caches/default/items/${k}`))).text()).toBe(v);
  }, 60_000);
});
