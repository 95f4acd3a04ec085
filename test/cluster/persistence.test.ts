// With --data-dir: kill -9 of every node in the middle of a write load, then
// a restart, loses no acknowledged write; a data directory of another node
// is refused.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ProcessCluster, freePort } from './process-cluster.js';

const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'velo-persist-'));
const dir = (id: string) => join(root, id);
let cluster: ProcessCluster;

beforeAll(async () => {
  // Small snapshots, so that the load below snapshots and truncates the logs many times.
  cluster = await ProcessCluster.start(['n1', 'n2', 'n3'], ['--partitions', '4', '--log-level', 'warn', '--snapshot-entries', '40'], { nodeArgs: (id) => ['--data-dir', dir(id)] });
  await cluster.allReady();
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('a persistent cluster', () => {
  test('kill -9 of every node in the middle of a write load (with snapshots and log truncation) loses no acknowledged write', async () => {
    const acked = new Map<string, string>();
    let stop = false;
    const writers = ['n1', 'n2', 'n3'].map(async (node, w) => {
      for (let i = 0; !stop; i++) {
        const key = `w${w}-${i}`;
        const value = `value-${w}-${i}-${'x'.repeat(i % 50)}`;
        try {
          const r = await fetch(cluster.url(node, `/v1/caches/default/items/${key}`), { method: 'PUT', body: value });
          if (r.status === 201) acked.set(key, value);
        } catch {
          return; // the node died under the request: indeterminate, not acknowledged
        }
      }
    });
    // Past several snapshots per partition (40 entries each), so restart goes through snapshot + log.
    await cluster.until('some writes acknowledged', async () => acked.size >= 600);
    const metrics = await (await fetch(cluster.url('n1', '/metrics'))).text();
    const snapshots = [...metrics.matchAll(/^velo_snapshots_total\{partition="\d+"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
    expect(snapshots).toBeGreaterThanOrEqual(4);
    await Promise.all(['n1', 'n2', 'n3'].map((id) => cluster.kill(id)));
    stop = true;
    await Promise.all(writers);
    expect(acked.size).toBeGreaterThanOrEqual(600);

    await Promise.all(['n1', 'n2', 'n3'].map((id) => cluster.startNode(id)));
    await cluster.allReady();
    for (const id of ['n1', 'n2', 'n3']) expect(cluster.node(id).output.join('')).not.toMatch(/rejoining as/);
    let checked = 0;
    for (const [key, value] of acked) {
      const r = await fetch(cluster.url(['n1', 'n2', 'n3'][checked++ % 3]!, `/v1/caches/default/items/${key}`));
      expect({ key, status: r.status }).toEqual({ key, status: 200 });
      expect(await r.text()).toBe(value);
    }
  }, 120_000);

  test('a node refuses another node’s data directory with one clear line and exit code 1', async () => {
    const r = spawnSync(process.execPath, [MAIN, 'start', '--id', 'n9', '--http', `127.0.0.1:${await freePort()}`, '--raft', `127.0.0.1:${await freePort()}`, '--data-dir', dir('n1'), '--log-level', 'silent'], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/n1/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  }, 30_000);
});
