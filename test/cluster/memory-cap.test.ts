// The node-wide memory cap across replicas, on real processes: n3 has a small
// cap, n1 and n2 a large one. A write to a partition led by n1 or n2 must
// still be refused once it would take n3 — a follower there — past its cap,
// and reads and deletes keep working.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ProcessCluster } from './process-cluster.js';
import { partitionOf } from '../../src/node/partition-map.js';

const PARTITIONS = 4;
const SMALL_CAP = 1 << 20;
const VALUE = new Uint8Array(16 * 1024).fill(3);
/** What the leaders may admit toward n3 between two of its reports (one tick's writes), and a value's rounding. */
const SLACK_BYTES = 256 * 1024;

let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await ProcessCluster.start(['n1', 'n2', 'n3'], ['--partitions', String(PARTITIONS)], { nodeArgs: (id) => ['--max-memory', id === 'n3' ? '1mb' : '1gb'] });
  await cluster.allReady();
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

async function leaders(): Promise<(string | null)[]> {
  const c = (await (await fetch(cluster.url('n1', '/v1/cluster'))).json()) as { partitions: { id: number; leader: string | null }[] };
  const out: (string | null)[] = [];
  for (const p of c.partitions) out[p.id] = p.leader;
  return out;
}

async function gauge(node: string, name: string): Promise<number> {
  const m = new RegExp(`^${name} ([0-9]+)$`, 'm').exec(await (await fetch(cluster.url(node, '/metrics'))).text());
  if (!m) throw new Error(`no ${name} on ${node}`);
  return Number(m[1]);
}

describe('memory cap on every replica', () => {
  test('a follower node at its cap makes the leader refuse with 507 node_full; reads and deletes go on', async () => {
    const r = await fetch(cluster.url('n1', '/v1/caches/fixed'), { method: 'PUT', body: JSON.stringify({ eviction: 'none' }), headers: { 'content-type': 'application/json' } });
    expect(r.status).toBeLessThan(300);
    expect(await gauge('n3', 'velo_memory_max_bytes')).toBe(SMALL_CAP);
    const written: string[] = [];
    let refusedByFollower: { key: string; leader: string; message: string } | null = null;
    for (let i = 0; i < 400 && refusedByFollower === null; i++) {
      const key = `k${i}`;
      const before = (await leaders())[partitionOf(PARTITIONS, 'fixed', null, key)];
      // Only partitions that n3 follows in: their leaders have room of their own.
      if (before === null || before === undefined || before === 'n3') continue;
      const w = await fetch(cluster.url('n1', `/v1/caches/fixed/items/${key}`), { method: 'PUT', body: VALUE });
      if (w.status === 201) {
        written.push(key);
        continue;
      }
      expect(w.status).toBe(507);
      const body = (await w.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('node_full');
      const after = (await leaders())[partitionOf(PARTITIONS, 'fixed', null, key)];
      if (after === before) refusedByFollower = { key, leader: before, message: body.error.message };
    }
    expect(refusedByFollower, 'no write was refused by a leader other than n3').not.toBeNull();
    expect(refusedByFollower!.message).toContain('node n3');
    expect(written.length).toBeGreaterThan(10);
    // n3 stayed at its cap, within what one exchange of reports can let through.
    expect(await gauge('n3', 'velo_memory_accounted_bytes')).toBeLessThanOrEqual(SMALL_CAP + SLACK_BYTES);
    // The refused key is absent; every admitted one reads back, from n3's own replica too.
    expect((await fetch(cluster.url('n2', `/v1/caches/fixed/items/${refusedByFollower!.key}`))).status).toBe(404);
    for (const k of written) expect((await fetch(cluster.url('n3', `/v1/caches/fixed/items/${k}`))).status).toBe(200);
    // Deletes go through at the cap, and once n3 reports the room, writes are admitted again.
    for (const k of written.slice(0, 8)) expect((await fetch(cluster.url('n2', `/v1/caches/fixed/items/${k}`), { method: 'DELETE' })).status).toBe(204);
    await cluster.until('a write admitted after the deletes', async () => (await fetch(cluster.url('n1', `/v1/caches/fixed/items/${refusedByFollower!.key}`), { method: 'PUT', body: VALUE })).status === 201);
  }, 120_000);
});
