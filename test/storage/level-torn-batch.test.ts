// A torn final batch: the process dies while LevelDB's write-ahead log holds
// a batch only in part. Reopening recovers to the last complete batch — the
// last one the host could have acted on — and nothing after it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { LevelStore } from '../../storage/level-store.js';

const root = mkdtempSync(join(tmpdir(), 'velo-torn-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

// Runs in a child process (compiled code: npm test builds dist/ first) that dies by SIGKILL, as a crash would.
const WRITER = `
import { LevelStore } from ${JSON.stringify(new URL('../../dist/storage/level-store.js', import.meta.url).href)};
const store = await LevelStore.open(process.argv[2], { clusterId: 'c', nodeId: 'n1' });
const g = store.group(0);
g.bootstrap({ voters: ['n1'], learners: [] });
const ents = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => ({ index: from + i, term: 1, type: 0, data: new TextEncoder().encode('v'.repeat(100) + (from + i)) }));
g.stage({ hardState: { term: 1, vote: 'n1', commit: 5 }, entries: ents(1, 5), snapshot: null });
await store.commit();
g.stage({ hardState: { term: 2, vote: null, commit: 10 }, entries: ents(6, 10), snapshot: null });
await store.commit();
process.kill(process.pid, 'SIGKILL');
`;

describe('LevelDB storage after a crash', () => {
  test('a torn final batch is dropped whole: the store recovers to the last complete batch', async () => {
    const script = join(root, 'writer.mjs');
    writeFileSync(script, WRITER);
    const dir = join(root, 'db');
    const r = spawnSync(process.execPath, [script, dir], { encoding: 'utf8', timeout: 20_000 });
    expect(r.signal).toBe('SIGKILL');
    // Cut into the last record of the write-ahead log: the second batch is now torn.
    const wal = readdirSync(dir).filter((f) => f.endsWith('.log')).sort().pop()!;
    truncateSync(join(dir, wal), statSync(join(dir, wal)).size - 40);

    const store = await LevelStore.open(dir, { clusterId: 'c', nodeId: 'n1' });
    try {
      const g = store.group(0);
      expect(g.lastIndex()).toBe(5);
      expect(g.initialState().hardState).toEqual({ term: 1, vote: 'n1', commit: 5 });
      expect(g.entries(1, 6, Infinity).map((e) => new TextDecoder().decode(e.data))).toEqual([1, 2, 3, 4, 5].map((i) => 'v'.repeat(100) + i));
    } finally {
      await store.close();
    }
  });
});
