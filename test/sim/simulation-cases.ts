// The body of the simulation test files: a block of seeds for one cluster
// size, all of which must pass, and which must between them have exercised
// every kind of fault — the disk's included, each counted where it really
// took effect (sim-disk.ts). Split across files so that vitest runs them in parallel.

import { expect, test } from 'vitest';
import { failureMessage, runSeedRange } from './sim-helpers.js';

export function simulationBlock(nodes: 3 | 5, firstSeed: number, count: number): void {
  test(
    `Raft stays safe, live and linearizable under ${count} random fault schedules on ${nodes} nodes (seeds ${firstSeed}..${firstSeed + count - 1})`,
    () => {
      const report = runSeedRange(firstSeed, count, nodes);
      if (report.failures.length > 0) expect.fail(failureMessage(report.failures));
      const t = report.totals;
      console.log(
        `[sim ${nodes} nodes, seeds ${firstSeed}..${firstSeed + count - 1}] ${report.schedules} schedules, ${t.ticks} ticks, ${t.messages} messages, ` +
          `${t.elections} elections, ${t.crashes} crashes, ${t.partitions} partitions, ${t.pauses} pauses, ${t.transfers} transfers, ` +
          `${t.confChanges} conf changes, ${t.snapshotsInstalled} snapshots installed; ${t.ops} ops, ${t.opsChecked} checked linearizable; ` +
          `disk: ${t.disk.batches} batches (${t.disk.syncedBatches} synced), ${t.disk.powerLosses} power losses, ${t.disk.tornWrites} crashes mid-write, ` +
          `${t.disk.tornBatches} torn batches, ${t.disk.lostUnsyncedBatches} unsynced batches lost, ${t.disk.corruptionsInjected} corrupted (${t.disk.corruptionsDetected} refused by recovery)`,
      );
      // The schedules must actually have exercised what they are meant to.
      expect(t.crashes).toBeGreaterThan(0);
      expect(t.partitions).toBeGreaterThan(0);
      expect(t.pauses).toBeGreaterThan(0);
      expect(t.transfers).toBeGreaterThan(0);
      expect(t.confChanges).toBeGreaterThan(0);
      expect(t.snapshotsInstalled).toBeGreaterThan(0);
      expect(t.elections).toBeGreaterThan(report.schedules);
      // The disk's faults happened: batches torn by a crash mid-write, unsynced
      // batches lost to a power loss, records that reached the disk corrupted.
      expect(t.disk.tornBatches).toBeGreaterThan(0);
      expect(t.disk.lostUnsyncedBatches).toBeGreaterThan(0);
      expect(t.disk.corruptionsInjected).toBeGreaterThan(0);
      // Recovery refused every corrupted record (LevelDB's log checksums), and
      // gave back every synced batch; no node had to refuse its data directory.
      expect(t.disk.corruptionsDetected).toBe(t.disk.corruptionsInjected);
      expect(t.disk.corruptAccepted).toBe(0);
      expect(t.disk.syncedBatchesLost).toBe(0);
      expect(t.disk.refusals).toBe(0);
      // Every history was verified, not given up on.
      expect(t.unverifiedHistories).toBe(0);
      expect(t.opsChecked).toBe(t.ops);
    },
    600_000,
  );
}
