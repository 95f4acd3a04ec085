// The Velocity feature set on a 3-node cluster of real processes: a lock
// held across a leader's kill -9, lock expiry, a compare-and-set race,
// LRU eviction, and an event stream resumed across a leader change.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { partitionOf } from '../../src/node/partition-map.js';
import { ProcessCluster } from './process-cluster.js';
import { openSse } from '../support/sse.js';

const PARTITIONS = 4;
let cluster: ProcessCluster;
const nodes = ['n1', 'n2', 'n3'];

beforeAll(async () => {
  cluster = await ProcessCluster.start(nodes, ['--partitions', String(PARTITIONS)]);
  await cluster.allReady();
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

type ClusterView = { partitions: { id: number; leader: string | null; voters: string[]; learners: string[] }[] };
const view = async (via: string) => (await (await fetch(cluster.url(via, '/v1/cluster'))).json()) as ClusterView;
const item = (node: string, key: string, cache = 'default') => cluster.url(node, `/v1/caches/${cache}/items/${key}`);
const alive = () => nodes.filter((n) => cluster.node(n).proc !== null);

/** The leader of every partition as every node in `among` sees it; null where they disagree or know none. */
async function agreedLeaders(among: string[]): Promise<(string | null)[]> {
  const views = await Promise.all(among.map(view));
  return views[0]!.partitions.map((p, i) => (p.leader !== null && views.every((v) => v.partitions[i]!.leader === p.leader) ? p.leader : null));
}

/**
 * kill -9 the leader of `partition`; wait until every partition has a leader among the nodes left, as
 * each of them sees it; run `thenWhileDown`; restart the victim and wait until it is a voter of every
 * partition again. Each step checks the state the next relies on rather than assume it. Returns the victim.
 */
async function killLeaderOf(partition: number, thenWhileDown: (victim: string) => Promise<void>): Promise<string> {
  let victim = '';
  await cluster.until(`every node agrees on the leader of partition ${partition}`, async () => {
    const l = (await agreedLeaders(nodes))[partition];
    victim = l ?? '';
    return l !== null && l !== undefined;
  });
  await cluster.kill(victim);
  const survivors = alive();
  await cluster.until(`every partition led by a survivor of ${victim}, as every survivor sees it`, async () => {
    const leaders = await agreedLeaders(survivors);
    return leaders.every((l) => l !== null && survivors.includes(l));
  });
  await thenWhileDown(victim);
  await cluster.startNode(victim);
  await cluster.allReady();
  await cluster.until(`${victim} a voter again everywhere, as every node sees it`, async () => {
    for (const n of nodes) {
      const v = await view(n);
      if (!v.partitions.every((p) => p.voters.some((m) => m.split('@')[0] === victim) && p.voters.length === 3 && p.learners.length === 0)) return false;
    }
    return true;
  }, 60_000);
  return victim;
}

/** A key of cache `cache` in partition `p`. */
function keyIn(cache: string, p: number, prefix: string): string {
  for (let i = 0; ; i++) if (partitionOf(PARTITIONS, cache, null, `${prefix}${i}`) === p) return `${prefix}${i}`;
}

describe('the feature set on three nodes', () => {
  test('a lock survives the leader’s kill -9: others still get 423, the handle still writes and unlocks', async () => {
    const key = 'locked-doc';
    expect((await fetch(item('n1', key), { method: 'PUT', body: 'v1' })).status).toBe(201);
    const l = await fetch(`${item('n2', key)}/lock?timeoutMs=120000`, { method: 'POST' });
    expect(l.status).toBe(200);
    const handle = l.headers.get('x-velo-lock-handle')!;
    await killLeaderOf(partitionOf(PARTITIONS, 'default', null, key), async () => {
      const via = alive()[0]!;
      expect((await fetch(item(via, key), { method: 'PUT', body: 'intruder' })).status).toBe(423);
      expect((await fetch(`${item(via, key)}?unlock=true`, { method: 'PUT', body: 'v2', headers: { 'x-velo-lock-handle': handle } })).status).toBe(200);
      expect((await fetch(item(via, key), { method: 'PUT', body: 'v3' })).status).toBe(200);
    });
  }, 120_000);

  test('a lock expires by itself', async () => {
    await fetch(item('n1', 'brief'), { method: 'PUT', body: 'x' });
    const l = await fetch(`${item('n3', 'brief')}/lock?timeoutMs=400`, { method: 'POST' });
    const expiresAt = Number(l.headers.get('x-velo-lock-expires-at'));
    expect((await fetch(item('n2', 'brief'), { method: 'PUT', body: 'early' })).status).toBe(423);
    await cluster.until('the lock to lapse', async () => (await fetch(item('n2', 'brief'), { method: 'PUT', body: 'late' })).status === 200);
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
  }, 30_000);

  test('two clients racing with the same If-Match: exactly one wins', async () => {
    for (let round = 0; round < 10; round++) {
      const key = `race${round}`;
      const v = ((await (await fetch(item('n1', key), { method: 'PUT', body: 'base' })).json()) as { version: string }).version;
      const [a, b] = await Promise.all(
        ['n2', 'n3'].map((n) => fetch(item(n, key), { method: 'PUT', body: `from-${n}`, headers: { 'if-match': `"${v}"` } })),
      );
      expect([a!.status, b!.status].sort()).toEqual([200, 412]);
      const winner = a!.status === 200 ? 'from-n2' : 'from-n3';
      expect(await (await fetch(item('n1', key))).text()).toBe(winner);
    }
  }, 60_000);

  test('LRU eviction under maxBytes keeps the recently read items', async () => {
    const put = await fetch(cluster.url('n1', '/v1/caches/lru'), { method: 'PUT', body: JSON.stringify({ maxBytes: 60000, eviction: 'lru' }), headers: { 'content-type': 'application/json' } });
    expect(put.status).toBe(201);
    await fetch(item('n1', 'hot', 'lru'), { method: 'PUT', body: 'h'.repeat(1000) });
    for (let i = 0; i < 100; i++) {
      await fetch(item(nodes[i % 3]!, `cold${i}`, 'lru'), { method: 'PUT', body: 'c'.repeat(1000) });
      expect((await fetch(item(nodes[(i + 1) % 3]!, 'hot', 'lru'))).status).toBe(200);
    }
    await cluster.until('the cache under maxBytes', async () => {
      const s = (await (await fetch(cluster.url('n2', '/v1/caches/lru/stats'))).json()) as { bytes: number; evictions: number };
      return s.bytes <= 60000 && s.evictions > 0;
    });
    expect((await fetch(item('n3', 'hot', 'lru'))).status).toBe(200);
    expect((await fetch(item('n3', 'cold0', 'lru'))).status).toBe(404);
  }, 60_000);

  test('an event stream cut and resumed across a leader change loses and repeats nothing', async () => {
    await fetch(cluster.url('n1', '/v1/caches/ev'), { method: 'PUT', body: '{}', headers: { 'content-type': 'application/json' } });
    const written: string[] = [];
    const write = async (i: number) => {
      const r = await fetch(item(alive()[i % alive().length]!, `e${i}`, 'ev'), { method: 'PUT', body: 'x' });
      expect(r.status).toBe(201);
      written.push(`e${i}`);
    };
    const first = await openSse(cluster.url('n2', '/v1/caches/ev/events'));
    expect(first.res.status).toBe(200);
    for (let i = 0; i < 20; i++) await write(i);
    await first.next(20);
    first.close();
    const cut = first.got[9]!; // resume after the 10th event
    const victim = await killLeaderOf(partitionOf(PARTITIONS, 'ev', null, 'e0'), async () => {
      for (let i = 20; i < 40; i++) await write(i);
    });
    // Resume through another node than the first stream's, and one that kept its history: the victim
    // restarted with an empty memory and may have caught up from a snapshot, which holds no events.
    const resumeVia = nodes.find((n) => n !== victim && n !== 'n2') ?? nodes.find((n) => n !== victim)!;
    const second = await openSse(cluster.url(resumeVia, '/v1/caches/ev/events'), cut.id);
    expect(second.res.status).toBe(200);
    // Then one marker per partition, written after everything else: the stream is read until every
    // marker has come, so that an event delivered twice before them is seen, not cut off by a count.
    const markers = Array.from({ length: PARTITIONS }, (_, p) => keyIn('ev', p, 'marker-'));
    for (const m of markers) {
      expect((await fetch(item(alive()[0]!, m, 'ev'), { method: 'PUT', body: 'x' })).status).toBe(201);
      written.push(m);
    }
    const has = () => markers.every((m) => second.got.some((e) => e.data.key === m));
    for (let n = second.got.length + 1; !has(); n = second.got.length + 1) await second.next(n);
    second.close();
    // Commit order holds within a partition: per partition, exactly what was written there, in the
    // order written (the writes were one after another), none lost and none repeated.
    const seen = [...first.got.slice(0, 10), ...second.got].map((e) => e.data.key as string);
    for (let p = 0; p < PARTITIONS; p++) {
      const inP = (k: string) => partitionOf(PARTITIONS, 'ev', null, k) === p;
      expect({ partition: p, keys: seen.filter(inP) }).toEqual({ partition: p, keys: written.filter(inP) });
    }
    expect(seen.length).toBe(written.length);
  }, 180_000);

  test('bad input for each new parameter is refused with 400 and changes nothing', async () => {
    const cases: [string, RequestInit][] = [
      [`${item('n1', 'x')}/lock?timeoutMs=0`, { method: 'POST' }],
      [`${item('n1', 'x')}/lock?timeoutMs=soon`, { method: 'POST' }],
      [`${item('n1', 'x')}/unlock`, { method: 'POST' }],
      [`${cluster.url('n1', '/v1/caches/default/regions/r/items/k')}?tags=a,,b`, { method: 'PUT', body: 'x' }],
      [`${cluster.url('n1', '/v1/caches/default/regions/r/items/k')}?tags=${'t'.repeat(251)}`, { method: 'PUT', body: 'x' }],
      [`${cluster.url('n1', '/v1/caches/default/regions/r/items')}?tag=a&match=some`, { method: 'GET' }],
      [cluster.url('n1', '/v1/caches/c2'), { method: 'PUT', body: '{"eviction":"random"}', headers: { 'content-type': 'application/json' } }],
      [cluster.url('n1', '/v1/caches/c2'), { method: 'PUT', body: '{"maxBytes":-1}', headers: { 'content-type': 'application/json' } }],
      [cluster.url('n1', '/v1/caches/default/events'), { method: 'GET', headers: { 'last-event-id': 'not-an-id' } }],
    ];
    for (const [url, init] of cases) {
      const r = await fetch(url, init);
      expect({ url, status: r.status }).toEqual({ url, status: 400 });
    }
    expect((await fetch(cluster.url('n1', '/v1/caches/default/regions/r/items/k'))).status).toBe(404);
    const caches = (await (await fetch(cluster.url('n1', '/v1/caches'))).json()) as { caches: { name: string }[] };
    expect(caches.caches.map((c) => c.name)).not.toContain('c2');
  }, 30_000);
});
