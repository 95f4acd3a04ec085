// Crashes in the middle of membership changes that elastic.test.ts does not
// cover: the node being removed dies during its drain, and the metadata
// group's leader (which plans and releases the moves) dies during a
// rebalance. Either way the change completes and nothing acknowledged is lost.
import { afterEach, describe, expect, test } from 'vitest';
import { ProcessCluster } from './process-cluster.js';
import type { ClusterView } from '../../src/node/service.js';

let cluster: ProcessCluster | null = null;

afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail' && cluster) for (const n of cluster.nodes.values()) console.log(`--- ${n.id}\n${n.output.join('').slice(-4000)}`);
  await cluster?.stop();
  cluster = null;
});

const view = async (c: ProcessCluster, id: string): Promise<ClusterView> => (await (await fetch(c.url(id, '/v1/cluster'))).json()) as ClusterView;
const nodeOf = (member: string) => member.split('@')[0]!;
/** Slow snapshots (256 KiB/s per sender) so that a move lasts long enough to crash something in it. */
const SLOW = ['--move-bytes-per-sec', '262144'];
const VALUE = 'x'.repeat(16 * 1024);

/** 160 items of 16 KiB (2.5 MiB): a partition's snapshot takes about a second at 256 KiB/s. */
async function load(c: ProcessCluster, via: string): Promise<Map<string, string>> {
  const acked = new Map<string, string>();
  await Promise.all(
    Array.from({ length: 8 }, async (_, w) => {
      for (let i = w; i < 160; i += 8) {
        const v = `${i}:${VALUE}`;
        const r = await fetch(c.url(via, `/v1/caches/default/items/mc${i}`), { method: 'PUT', body: v });
        expect(r.status).toBe(201);
        acked.set(`mc${i}`, v);
      }
    }),
  );
  return acked;
}

/** Every partition on its target, 3 voters, no learner, none of them on `gone`; the rebalance done. */
function settled(v: ClusterView, gone: string[] = []): boolean {
  if (!v.rebalance.balanced) return false;
  return v.partitions.every(
    (p) =>
      p.voters.length === 3 &&
      p.learners.length === 0 &&
      p.voters.every((m) => p.replicas.includes(nodeOf(m)) && !gone.includes(nodeOf(m))) &&
      p.leader !== null &&
      !gone.includes(p.leader),
  );
}

async function expectAll(c: ProcessCluster, via: string, acked: Map<string, string>): Promise<void> {
  for (const [k, want] of acked) expect(await (await fetch(c.url(via, `/v1/caches/default/items/${k}`))).text()).toBe(want);
}

describe('crashes in the middle of membership changes', () => {
  test('kill -9 of the node being removed, during its drain: the drain completes from the other replicas', async () => {
    const c = (cluster = await ProcessCluster.start(['n1', 'n2', 'n3', 'n4'], ['--partitions', '8', ...SLOW]));
    await c.allReady();
    const acked = await load(c, 'n1');
    const del = await fetch(c.url('n1', '/v1/cluster/members/n4'), { method: 'DELETE' });
    expect(del.status).toBe(202);
    await c.until('a partition moving off n4, its new replica still a learner', async () => (await view(c, 'n1')).partitions.some((p) => p.moving && p.learners.length > 0), 30_000);
    const before = await view(c, 'n1');
    expect(before.members.find((m) => m.id === 'n4')?.status).toBe('draining');
    await c.kill('n4');
    await c.until('n4 removed, every partition on 3 voters of the others', async () => {
      const v = await view(c, 'n1');
      return v.members.find((m) => m.id === 'n4')?.status === 'removed' && settled(v, ['n4']);
    }, 90_000);
    await expectAll(c, 'n2', acked);
  }, 150_000);

  test('kill -9 of the metadata leader during a rebalance: it restarts, a new leader carries the moves on', async () => {
    const c = (cluster = await ProcessCluster.start(['n1', 'n2', 'n3'], ['--partitions', '8', ...SLOW]));
    await c.allReady();
    const acked = await load(c, 'n1');
    await c.join('n4', `http://${c.node('n1').http}`, SLOW);
    await c.until('a move under way', async () => (await view(c, 'n1')).partitions.some((p) => p.moving), 30_000);
    const v = await view(c, 'n1');
    const victim = v.metadata?.leader;
    expect(victim && ['n1', 'n2', 'n3'].includes(victim)).toBe(true);
    const witness = ['n1', 'n2', 'n3'].find((id) => id !== victim)!;
    await c.kill(victim!);
    await c.until('a new metadata leader', async () => {
      const m = (await view(c, witness)).metadata;
      return m !== null && m.leader !== null && m.leader !== victim;
    }, 15_000);
    // Memory lost: it comes back under a new member id, and the moves go on meanwhile.
    await c.startNode(victim!);
    await c.until('the rebalance done with n4 holding its share, every partition on its target', async () => {
      const w = await view(c, witness);
      return settled(w) && (w.members.find((m) => m.id === 'n4')?.replicas ?? 0) === 6;
    }, 120_000);
    await expectAll(c, 'n4', acked);
    await expectAll(c, victim!, acked);
  }, 180_000);
});
