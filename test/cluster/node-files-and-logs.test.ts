// What a node leaves on the machine, as a real `velo start` process: its
// data directory readable by its user only (0700, files 0600) even when
// started under a permissive umask, and logs that name routes, never the
// keys (often session ids) or values a client sent.
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ProcessCluster } from './process-cluster.js';

let cluster: ProcessCluster;
let parent: string;
let dataDir: string;

// Distinctive enough that any occurrence in the log is a leak.
const KEY = 'sess-7Hq2ZkQ9xW4pLr8m';
const REGION_KEY = 'sess-Vb3nT6yJc1dF0gKe';
const MISSING_KEY = 'sess-Zr5uP8wA2sX9qLm3';
const VALUE = 'value-Mx4eR7tY1uI0oPa6';
const CACHE = 'cache-Nq8wE3rT6yU1iOp4';

beforeAll(async () => {
  parent = await mkdtemp(join(tmpdir(), 'velo-files-'));
  dataDir = join(parent, 'not-yet', 'data');
  // The node must not rely on the umask it is started with: start it under the loosest.
  const umask = process.umask(0);
  try {
    cluster = await ProcessCluster.start(['n1'], ['--partitions', '2', '--replicas', '1', '--log-level', 'info'], { nodeArgs: () => ['--data-dir', dataDir] });
  } finally {
    process.umask(umask);
  }
  await cluster.allReady();
});

afterAll(async () => {
  await cluster?.stop();
  await rm(parent, { recursive: true, force: true });
});

const url = (path: string) => cluster.url('n1', path);

describe('a node under umask 0', () => {
  test('creates --data-dir 0700 and every file in it 0600, including those written after start', async () => {
    for (let i = 0; i < 50; i++) {
      expect((await fetch(url(`/v1/caches/default/items/k${i}`), { method: 'PUT', body: 'x'.repeat(1000) })).status).toBe(201);
    }
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
    const files = await readdir(dataDir, { withFileTypes: true });
    expect(files.filter((f) => f.isFile()).length).toBeGreaterThan(2);
    for (const f of files) {
      expect(f.isFile(), f.name).toBe(true);
      expect({ file: f.name, mode: ((await stat(join(dataDir, f.name))).mode & 0o777).toString(8) }).toEqual({ file: f.name, mode: '600' });
    }
  });
});

describe('logs at info', () => {
  test('name each request’s route, and never a key, a value or a cache name the client sent', async () => {
    const item = (key: string, cache = 'default') => url(`/v1/caches/${cache}/items/${key}`);
    const n1 = cluster.node('n1');
    const completed = () => n1.output.join('').split('"msg":"request completed"').length - 1;
    const before = completed();
    expect((await fetch(url(`/v1/caches/${CACHE}`), { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(201);
    expect((await fetch(item(KEY, CACHE), { method: 'PUT', body: VALUE })).status).toBe(201);
    expect(await (await fetch(item(KEY, CACHE))).text()).toBe(VALUE);
    expect((await fetch(url(`/v1/caches/default/regions/r/items/${REGION_KEY}?tags=t`), { method: 'PUT', body: VALUE })).status).toBe(201);
    expect((await fetch(item(MISSING_KEY))).status).toBe(404);
    expect((await fetch(`${item(MISSING_KEY)}?ttlMs=${VALUE}`, { method: 'PUT', body: VALUE })).status).toBe(400);
    expect((await fetch(`${item(MISSING_KEY)}/lock?timeoutMs=1000`, { method: 'POST' })).status).toBe(404);
    expect((await fetch(url(`/v1/no/such/${KEY}`))).status).toBe(404);
    // Each of the 8 requests above logs its completion: once all are out, so is everything they logged.
    await cluster.until('the 8 requests to be logged', async () => completed() >= before + 8);
    const log = n1.output.join('');
    for (const secret of [KEY, REGION_KEY, MISSING_KEY, VALUE, CACHE]) expect(log, `the log holds ${secret}`).not.toContain(secret);
    expect(log).toContain('"route":"/v1/caches/:cache/items/:key"');
  });
});
