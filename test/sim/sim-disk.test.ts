// The simulated disk (sim-disk.ts) against what LevelDB and the real group
// storage do: what a crash keeps, how a torn or corrupted record is found
// and dropped, and — the storage's known gap — what bit rot in synced data
// does to a cluster.

import { describe, expect, test } from 'vitest';
import type { ConfState, Entry, HardState } from '../../raft/types.js';
import { LevelGroupStorage } from '../../storage/level-storage.js';
import { Prng } from './prng.js';
import { runWith } from './replay.js';
import { DEFAULT_PROFILE, scheduleForSeed } from './schedule.js';
import type { ScheduleProfile } from './schedule.js';
import { LOG_BLOCK_BYTES, SimDisk } from './sim-disk.js';

const conf: ConfState = { voters: ['n1', 'n2', 'n3'], learners: [] };

function ents(from: number, to: number, term: number, bytes = 40): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push({ index: i, term, type: 0, data: new Uint8Array(bytes).fill(i % 251) });
  return out;
}

/** A disk with a bootstrapped group, as every simulated node starts. */
function fresh(seed = 1): { disk: SimDisk; g: LevelGroupStorage } {
  const disk = new SimDisk(new Prng(seed));
  const g = new LevelGroupStorage(0, disk);
  g.bootstrap(conf);
  disk.commit();
  return { disk, g };
}

/** One Ready's batch, committed as a node does. */
function write(disk: SimDisk, g: LevelGroupStorage, hardState: HardState | null, entries: Entry[], sync = true): void {
  g.stage({ hardState, entries, snapshot: null, sync });
  disk.commit();
}

function recovered(disk: SimDisk): LevelGroupStorage {
  return new LevelGroupStorage(0, disk, disk.recover().get(0) ?? null);
}

function terms(g: LevelGroupStorage): number[] {
  const out: number[] = [];
  for (let i = g.firstIndex(); i <= g.lastIndex(); i++) out.push(g.term(i));
  return out;
}

describe('simulated disk', () => {
  test('a process crash keeps every batch written, synced or not, and the real recovery gives the group back as it was', () => {
    const { disk, g } = fresh();
    write(disk, g, { term: 1, vote: 'n2', commit: 0 }, ents(1, 5, 1));
    write(disk, g, { term: 1, vote: 'n2', commit: 3 }, [], false);
    write(disk, g, { term: 2, vote: null, commit: 3 }, ents(4, 6, 2)); // overwrites 4..5, appends 6
    g.createSnapshot(3, conf, new Uint8Array([1, 2, 3]));
    disk.commit();
    write(disk, g, { term: 2, vote: null, commit: 5 }, [], false);
    disk.crash('process');
    const r = recovered(disk);
    expect(r.initialState().hardState).toEqual({ term: 2, vote: null, commit: 5 });
    expect(r.snapshot().metadata.index).toBe(3);
    expect([r.firstIndex(), r.lastIndex()]).toEqual([4, 6]);
    expect(terms(r)).toEqual([2, 2, 2]);
    expect(disk.stats).toMatchObject({ batches: 6, syncedBatches: 4, tornBatches: 0, lostUnsyncedBatches: 0, corruptionsInjected: 0 });
  });

  test('a power loss keeps every synced batch, and of the unsynced ones after it keeps a prefix or loses, tears or garbles them', () => {
    const seen = { commit: new Set<number>(), torn: 0, lost: 0, corrupted: 0 };
    for (let seed = 1; seed <= 300; seed++) {
      const { disk, g } = fresh(seed);
      write(disk, g, { term: 1, vote: 'n1', commit: 0 }, ents(1, 8, 1));
      // Commit indexes only: written without sync, as the node does.
      for (let c = 1; c <= 8; c++) write(disk, g, { term: 1, vote: 'n1', commit: c }, [], false);
      disk.crash('power');
      const r = recovered(disk);
      expect(r.initialState().hardState.term).toBe(1);
      expect(r.initialState().hardState.vote).toBe('n1');
      expect(r.lastIndex()).toBe(8);
      seen.commit.add(r.initialState().hardState.commit);
      expect(disk.stats.syncedBatchesLost).toBe(0);
      expect(disk.stats.corruptAccepted).toBe(0);
      expect(disk.stats.corruptionsDetected).toBe(disk.stats.corruptionsInjected);
      seen.torn += disk.stats.tornBatches;
      seen.lost += disk.stats.lostUnsyncedBatches;
      seen.corrupted += disk.stats.corruptionsInjected;
    }
    // Every commit index from the synced one (0) to the last written (8) came back in some run.
    expect([...seen.commit].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(seen.torn).toBeGreaterThan(0);
    expect(seen.lost).toBeGreaterThan(0);
    expect(seen.corrupted).toBeGreaterThan(0);
  });

  test('a batch torn by a crash mid-write is dropped whole, and every batch before it is kept', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const { disk, g } = fresh(seed);
      write(disk, g, { term: 1, vote: 'n1', commit: 0 }, ents(1, 4, 1));
      write(disk, g, { term: 1, vote: 'n1', commit: 2 }, [], false);
      g.stage({ hardState: { term: 2, vote: 'n3', commit: 2 }, entries: ents(3, 9, 2), snapshot: null, sync: true });
      disk.commitTorn();
      disk.crash(seed % 2 === 0 ? 'process' : 'power');
      const r = recovered(disk);
      expect(r.initialState().hardState.term).toBe(1);
      expect(terms(r)).toEqual([1, 1, 1, 1]);
      // The process crash kept the unsynced commit index before the torn batch; a power loss may not have.
      if (seed % 2 === 0) expect(r.initialState().hardState.commit).toBe(2);
      expect(disk.stats.tornWrites).toBe(1);
      expect(disk.stats.corruptAccepted).toBe(0);
    }
  });

  test("a flipped bit fails its record's checksum: recovery drops the record with the rest of its 32 KiB block, silently, and reads on from the next block", () => {
    const { disk, g } = fresh();
    for (let i = 1; i <= 400; i++) write(disk, g, { term: 1, vote: 'n1', commit: i - 1 }, ents(i, i, 1, 200));
    const records = disk.logRecords();
    const block1 = records.findIndex((r) => r.start >= LOG_BLOCK_BYTES);
    const victim = 20; // entry 20's batch (record 0 is the bootstrap), in block 0
    expect(records[victim]!.end).toBeLessThan(LOG_BLOCK_BYTES);
    disk.flipBit(records[victim]!.start + 30);
    expect(() => recovered(disk)).toThrow(/log entry 20 is missing/);
    // LevelDB reported nothing, but lost every batch from entry 20 to the end of the block; Velo's loader saw the gap.
    expect(disk.stats.syncedBatchesLost).toBe(block1 - victim);
    // Reported only to LevelDB's info log: the bad checksum, and the orphaned last fragment of a record cut at the block's end.
    const spans = records[block1 - 1]!.end > LOG_BLOCK_BYTES;
    expect(disk.stats.badRecordsReported).toBe(spans ? 2 : 1);
  });

  test('a batch larger than a block is written in fragments and read back whole; torn in its last fragment, it is dropped', () => {
    const { disk, g } = fresh();
    write(disk, g, { term: 1, vote: 'n1', commit: 0 }, ents(1, 3, 1, 30_000)); // ~90 KB: first, middle, last fragments
    write(disk, g, { term: 1, vote: 'n1', commit: 3 }, [], false);
    disk.crash('process');
    const r = recovered(disk);
    expect(r.lastIndex()).toBe(3);
    expect(r.entries(1, 4, Infinity).map((e) => e.data.length)).toEqual([30_000, 30_000, 30_000]);
    expect(r.initialState().hardState.commit).toBe(3);

    let torn = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const f = fresh(seed);
      write(f.disk, f.g, { term: 1, vote: 'n1', commit: 0 }, ents(1, 1, 1));
      f.g.stage({ hardState: null, entries: ents(2, 4, 1, 30_000), snapshot: null, sync: true });
      f.disk.commitTorn();
      f.disk.crash('process');
      expect(recovered(f.disk).lastIndex()).toBe(1);
      torn += f.disk.stats.tornBatches;
    }
    expect(torn).toBe(20);
  });
});

describe('bit rot in synced data (the storage cannot detect it, so the main runs never inject it)', () => {
  const profile: ScheduleProfile = {
    ...DEFAULT_PROFILE,
    minEvents: 10,
    maxEvents: 30,
    weights: { bitRot: 3, crash: 3, crashAfterVote: 2, partition: 2 },
    membershipChance: 0,
  };

  test('a batch LevelDB drops for a bad checksum after it was synced is a safety violation the simulation catches', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const result = runWith(seed, 3, undefined, scheduleForSeed(seed, 3, profile));
      if (result.ok) continue;
      expect(result.stats.disk.bitRots).toBeGreaterThan(0);
      expect(result.stats.disk.syncedBatchesLost).toBeGreaterThan(0);
      expect(['durable state', 'election safety', 'committed entry lost']).toContain(result.violation!.invariant);
      return;
    }
    expect.fail('bit rot in synced log records never led to a violation in seeds 1..20');
  });
});
