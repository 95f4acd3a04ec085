// Bit rot in LevelDB's write-ahead log, against real LevelDB files: what the
// simulated disk (test/sim/sim-disk.ts) models, and the gap it shows. LevelDB
// checks every log record's checksum on recovery, but with paranoid_checks
// off — its default, which classic-level cannot change — it drops a bad record
// and the rest of its 32 KiB block, logs "(ignoring error) … dropping N bytes"
// in the directory's LOG file, and opens. Velo's records carry no checksum of
// their own, so LevelStore.open() then serves an older state as if it were
// current: here a vote and a term the node had made durable are gone
// (test/sim/FINDINGS.md, "bit rot").

import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import type { Entry } from '../../raft/index.js';
import { LevelGroupStorage } from '../../storage/level-storage.js';
import { Prng } from '../sim/prng.js';
import { SimDisk } from '../sim/sim-disk.js';
import { conf, levelFixtures } from './level-fixtures.js';

const { tempDir, openStore } = levelFixtures('velo-rot-');

const marker = (i: number) => `entry-${i}-`.padEnd(60, 'x');
const entries = (from: number, to: number, term: number): Entry[] =>
  Array.from({ length: to - from + 1 }, (_, k) => ({ index: from + k, term, type: 0, data: new TextEncoder().encode(marker(from + k)) }));

/** Three synced batches, as a node writes them: a vote and entries, a newer term and vote with more entries, a third vote. */
async function writeBatches(g: LevelGroupStorage, commit: () => Promise<void> | void): Promise<void> {
  g.bootstrap(conf);
  await commit();
  g.stage({ hardState: { term: 1, vote: 'n2', commit: 0 }, entries: entries(1, 3, 1), snapshot: null });
  await commit();
  g.stage({ hardState: { term: 2, vote: 'n3', commit: 3 }, entries: entries(4, 6, 2), snapshot: null });
  await commit();
  g.stage({ hardState: { term: 3, vote: 'n1', commit: 6 }, entries: [], snapshot: null });
  await commit();
}

describe('bit rot in the write-ahead log', () => {
  test('a bit flipped in a synced batch: LevelDB drops it and the rest of its block without an error, and the simulated disk recovers the same state', async () => {
    const dir = await tempDir();
    const store = await openStore(dir);
    await writeBatches(store.group(0), () => store.commit());
    await store.close();

    // Flip one bit inside the second batch's record (in entry 5's data).
    const wal = (await readdir(dir)).filter((f) => f.endsWith('.log')).sort().pop()!;
    const bytes = await readFile(path.join(dir, wal));
    const at = bytes.indexOf(Buffer.from(marker(5)));
    expect(at).toBeGreaterThan(0);
    bytes[at + 10]! ^= 0x04;
    await writeFile(path.join(dir, wal), bytes);

    const reopened = await openStore(dir);
    const g = reopened.group(0);
    // Opened without a word: the second and third batches are gone, the first one's vote is back.
    expect(g.initialState().hardState).toEqual({ term: 1, vote: 'n2', commit: 0 });
    expect(g.lastIndex()).toBe(3);
    const info = await readFile(path.join(dir, 'LOG'), 'utf8');
    expect(info).toMatch(/\(ignoring error\) .*dropping \d+ bytes; Corruption: checksum mismatch/);

    // The simulated disk, given the same batches and the same flip, recovers the same state.
    const disk = new SimDisk(new Prng(1));
    const sim = new LevelGroupStorage(0, disk);
    await writeBatches(sim, () => disk.commit());
    const second = disk.logRecords()[2]!; // [0] bootstrap, [1] first batch
    disk.flipBit(second.start + 60);
    const back = new LevelGroupStorage(0, disk, disk.recover().get(0) ?? null);
    expect(back.initialState().hardState).toEqual(g.initialState().hardState);
    expect(back.lastIndex()).toBe(g.lastIndex());
    expect(disk.stats.syncedBatchesLost).toBe(2);
  });
});
