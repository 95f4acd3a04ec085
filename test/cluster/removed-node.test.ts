// A node the cluster no longer counts as a member (issue 15 §3): drained and
// removed while it runs, or drained while it was down and refused when it
// comes back. It must say so on stderr, report not ready with the reason,
// answer every client request at once with 503 node_removed (never a hang,
// never a dropped connection), and exit with code 3 unless --on-removed wait.
import { afterEach, describe, expect, test } from 'vitest';
import { ProcessCluster } from './process-cluster.js';
import type { ClusterNode } from './process-cluster.js';
import { beforeFault, clusterView, quorumLostWithout, settle } from './preconditions.js';

let cluster: ProcessCluster | null = null;

afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail' && cluster) {
    for (const n of cluster.nodes.values()) console.log(`--- ${n.id}\n${n.output.join('').slice(-3000)}`);
  }
  await cluster?.stop();
  cluster = null;
});

const BOOT = ['--partitions', '4', '--replicas', '3', '--request-timeout-ms', '1500'];

/** Resolves with the exit code once the node's process has ended (by itself). */
function exited(n: ClusterNode): Promise<number | null> {
  const proc = n.proc!;
  if (proc.exitCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
}

/** Sends requests to `url` one after another until stopped; counts answers by status, and requests that got none. */
function steadyRequests(url: string): { stop(): Promise<{ statuses: Map<number, number>; unanswered: string[] }> } {
  const statuses = new Map<number, number>();
  const unanswered: string[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      try {
        const r = await fetch(`${url}/v1/caches/default/items/k${i % 5}`, { method: 'PUT', body: `v${i}`, signal: AbortSignal.timeout(5000) });
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        await r.arrayBuffer();
        if (r.status === 503 && r.headers.get('x-velo-retry') !== 'safe') unanswered.push(`503 without X-Velo-Retry: safe`);
      } catch (e) {
        // Once the process has exited its port refuses new connections: that is no dropped request.
        const code = (e as { cause?: { code?: string } }).cause?.code;
        if (code === 'ECONNREFUSED') break;
        unanswered.push(`${(e as Error).name}: ${code ?? (e as Error).message}`);
      }
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { statuses, unanswered };
    },
  };
}

describe('a removed node', () => {
  test('drained while it runs: with --on-removed wait it refuses requests and reports why; by default it answers what it holds and exits with code 3', async () => {
    const c = (cluster = await ProcessCluster.start(['n1', 'n2', 'n3', 'n4', 'n5'], BOOT, { nodeArgs: (id) => (id === 'n5' ? ['--on-removed', 'wait'] : []) }));
    await c.allReady();
    expect((await fetch(c.url('n1', '/v1/caches/default'), { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBeLessThan(300);

    // n5 (told to wait) is removed under a steady load sent to it.
    const toN5 = steadyRequests(c.url('n5', ''));
    expect((await fetch(c.url('n1', '/v1/cluster/members/n5'), { method: 'DELETE' })).status).toBe(202);
    await settle('n5 reports itself removed', async () => {
      const r = await fetch(c.url('n5', '/readyz'));
      const body = (await r.json()) as { error?: { code: string; message: string } };
      return r.status === 503 && body.error?.code === 'node_removed' ? null : `n5 /readyz ${r.status} ${JSON.stringify(body)}`;
    }, 60_000);
    const n5 = await toN5.stop();
    expect(n5.unanswered, 'every request n5 accepted got an answer').toEqual([]);
    expect(n5.statuses.get(503), 'n5 refused requests once removed').toBeGreaterThan(0);
    const started = Date.now();
    const refused = await fetch(c.url('n5', '/v1/caches/default/items/a'), { method: 'PUT', body: 'x' });
    expect({ status: refused.status, retry: refused.headers.get('x-velo-retry'), body: await refused.json() }).toEqual({
      status: 503,
      retry: 'safe',
      body: { error: { code: 'node_removed', message: 'n5 was drained and removed from the cluster; send requests to another member of the cluster' } },
    });
    expect(Date.now() - started, 'refused at once, not after the request timeout').toBeLessThan(1000);
    expect(c.node('n5').proc!.exitCode).toBeNull();
    expect(c.node('n5').output.join('')).toMatch(/n5 was drained and removed from the cluster: this node takes no more client requests/);

    // n4 (the default) is removed under load too: it answers every request it accepted, then exits with code 3.
    const view = await clusterView(c, 'n1');
    expect(quorumLostWithout(view, 'n4')).toBeNull();
    const toN4 = steadyRequests(c.url('n4', ''));
    const n4exit = exited(c.node('n4'));
    expect((await fetch(c.url('n1', '/v1/cluster/members/n4'), { method: 'DELETE' })).status).toBe(202);
    expect(await n4exit).toBe(3);
    const n4 = await toN4.stop();
    expect(n4.unanswered, 'every request n4 accepted got an answer').toEqual([]);
    expect(c.node('n4').output.join('')).toMatch(/velo n4: n4 was drained and removed from the cluster; stopping \(exit code 3/);
  }, 180_000);

  test('drained while it was down: when it comes back the cluster refuses it, and it says so and exits with code 3', async () => {
    const c = (cluster = await ProcessCluster.start(['n1', 'n2', 'n3', 'n4'], BOOT));
    await c.allReady();
    await beforeFault('every group keeps a quorum without n4', async () => quorumLostWithout(await clusterView(c, 'n1'), 'n4'), 60_000);
    await c.kill('n4');
    expect((await fetch(c.url('n1', '/v1/cluster/members/n4'), { method: 'DELETE' })).status).toBe(202);
    await settle('n4 removed', async () => {
      const m = (await clusterView(c, 'n1')).members.find((x) => x.id === 'n4');
      return m?.status === 'removed' ? null : `n4 is ${m?.status}`;
    }, 60_000);
    // In memory it has no metadata: it asks to register again, and the cluster refuses it.
    const back = c.startNode('n4').catch(() => {}); // it may exit before or after it prints that it serves
    const n4exit = await exited(c.node('n4'));
    await back;
    expect(n4exit).toBe(3);
    expect(c.node('n4').output.join('')).toMatch(/velo n4: the cluster refuses n4: n4 was removed from this cluster: start the node under a new id to add it again; stopping \(exit code 3/);
  }, 120_000);
});
