// Log compaction and InstallSnapshot (Raft thesis §5.1, §5.3), as etcd's
// raft_snap_test.go: a follower behind the leader's compacted log receives
// the snapshot in chunks, installs it, then catches up by appends.
import { describe, expect, test } from 'vitest';
import { ConfChangeType, MessageType, Role } from '../../raft/index.js';
import type { Message } from '../../raft/index.js';
import { MemoryStorage } from '../../storage/memory-storage.js';
import { TestNetwork, dec, enc, logTerms } from './harness.js';

const ids = ['a', 'b', 'c'];
const chunkBytes = 16;
const snapData = Uint8Array.from({ length: 100 }, (_, i) => i); // 7 chunks of at most 16 bytes
const isChunkTo = (to: string) => (m: Message) => m.type === MessageType.Snapshot && m.to === to;

/** c misses 10 entries; the leader applies them and compacts its log through them. */
function behindCompactedLog() {
  const net = new TestNetwork(ids, { maxSnapshotChunkBytes: chunkBytes });
  net.campaign('a');
  net.tickAll(1);
  net.isolate('c');
  for (let i = 0; i < 10; i++) net.node('a').raft.propose(enc(`e${i}`));
  net.settle();
  const a = net.node('a');
  const applied = a.raft.status().applied;
  expect(applied).toBe(11);
  a.storage.createSnapshot(applied, a.raft.appliedConfState(), snapData);
  expect(a.storage.firstIndex()).toBe(12);
  return net;
}

describe('snapshots', () => {
  test('a follower behind the compacted log receives the snapshot in chunks and installs it', () => {
    const net = behindCompactedLog();
    const mark = net.sent.length;
    net.heal();
    net.tickAll(2);
    const chunks = net.sentSince(mark, isChunkTo('c'));
    expect(chunks.map((m) => m.snapshot!.offset)).toEqual([0, 16, 32, 48, 64, 80, 96]);
    expect(chunks.every((m) => m.snapshot!.data.length <= chunkBytes)).toBe(true);
    expect(chunks.map((m) => m.snapshot!.done)).toEqual([false, false, false, false, false, false, true]);

    const c = net.node('c');
    expect(c.snapshots).toHaveLength(1);
    expect(c.snapshots[0]!.metadata).toMatchObject({ index: 11, term: 1, confState: { voters: ids, learners: [] } });
    expect(Array.from(c.snapshots[0]!.data)).toEqual(Array.from(snapData));
    expect(c.storage.firstIndex()).toBe(12);
    expect(c.raft.status()).toMatchObject({ commit: 11, applied: 11 });
    // The snapshot replaces the entries: none of 2..11 is applied one by one.
    expect(c.applied.map((e) => e.index)).toEqual([1]);
  });

  test('after installing the snapshot the follower catches up by appends', () => {
    const net = behindCompactedLog();
    net.heal();
    net.tickAll(2);
    const mark = net.sent.length;
    for (let i = 0; i < 3; i++) net.node('a').raft.propose(enc(`after${i}`));
    net.settle();
    net.tickAll(1);
    const c = net.node('c');
    expect(logTerms(c)).toEqual(logTerms(net.node('a')));
    expect(c.applied.filter((e) => e.index > 11).map((e) => dec(e.data))).toEqual(['after0', 'after1', 'after2']);
    const appends = net.sentSince(mark, (m) => m.type === MessageType.Append && m.to === 'c' && m.entries.length > 0);
    expect(appends.length).toBeGreaterThan(0);
    expect(net.sentSince(mark, isChunkTo('c'))).toEqual([]);
  });

  test('a lost chunk is resent from where the follower acknowledged, not from the start', () => {
    const net = behindCompactedLog();
    let dropped = 0;
    net.intercept((m) => {
      if (isChunkTo('c')(m) && m.snapshot!.offset === 32 && dropped === 0) {
        dropped++;
        return null;
      }
      return m;
    });
    const mark = net.sent.length;
    net.heal();
    net.tickAll(1);
    expect(net.node('c').snapshots).toEqual([]); // stalled on the lost chunk
    net.tickAll(5);
    expect(dropped).toBe(1);
    const offsets = net.sentSince(mark, isChunkTo('c')).map((m) => m.snapshot!.offset);
    expect(offsets.filter((o) => o === 32)).toHaveLength(2);
    expect(offsets.filter((o) => o === 0)).toHaveLength(1);
    expect(net.node('c').snapshots).toHaveLength(1);
    expect(Array.from(net.node('c').snapshots[0]!.data)).toEqual(Array.from(snapData));
  });

  test('the configuration recorded in the snapshot is in force on the follower that installs it', () => {
    const net = new TestNetwork([...ids, 'd'], { maxSnapshotChunkBytes: chunkBytes }, ids);
    net.campaign('a');
    net.tickAll(1);
    net.isolate('c');
    const a = net.node('a');
    expect(a.raft.proposeConfChange({ type: ConfChangeType.AddLearner, node: 'd' }).ok).toBe(true);
    net.settle();
    a.storage.createSnapshot(a.raft.status().applied, a.raft.appliedConfState(), snapData);
    net.heal();
    net.tickAll(2);
    const c = net.node('c');
    expect(c.snapshots).toHaveLength(1);
    expect(c.raft.status().confState).toEqual({ voters: ids, learners: ['d'] });
  });

  test('a new learner with an empty log and configuration is brought up by snapshot, then by appends', () => {
    const net = new TestNetwork(ids, { maxSnapshotChunkBytes: chunkBytes });
    net.campaign('a');
    for (let i = 0; i < 5; i++) net.node('a').raft.propose(enc(`e${i}`));
    net.settle();
    net.tickAll(1);
    const a = net.node('a');
    // The joining node knows nothing: an empty configuration and log (DESIGN.md: it catches up by snapshot).
    const d = net.add('d', new MemoryStorage({ voters: [], learners: [] }), 99, { maxSnapshotChunkBytes: chunkBytes });
    net.isolate('d'); // d comes up only once the leader has compacted its log
    expect(a.raft.proposeConfChange({ type: ConfChangeType.AddLearner, node: 'd' }).ok).toBe(true);
    net.settle();
    a.storage.createSnapshot(a.raft.status().applied, a.raft.appliedConfState(), snapData);
    a.raft.propose(enc('after'));
    net.settle();
    net.heal();
    net.tickAll(3);
    expect(d.snapshots).toHaveLength(1);
    expect(d.raft.status().confState).toEqual({ voters: ids, learners: ['d'] });
    expect(logTerms(d)).toEqual(logTerms(a));
    expect(d.applied.map((e) => dec(e.data))).toEqual(['after']);
  });

  test('a lost final acknowledgement makes the leader resend the last chunk; the follower answers from its commit index', () => {
    const net = behindCompactedLog();
    let dropped = 0;
    net.intercept((m) => {
      // The answer c sends once it has installed the snapshot.
      if (m.from === 'c' && m.type === MessageType.AppendResp && !m.reject && m.index === 11 && dropped === 0) {
        dropped++;
        return null;
      }
      return m;
    });
    const mark = net.sent.length;
    net.heal();
    net.tickAll(1);
    expect(dropped).toBe(1);
    expect(net.node('c').snapshots).toHaveLength(1);
    net.tickAll(5);
    const last = net.sentSince(mark, isChunkTo('c')).filter((m) => m.snapshot!.done);
    expect(last).toHaveLength(2);
    net.node('a').raft.propose(enc('after'));
    net.settle();
    net.tickAll(1);
    expect(net.node('c').snapshots).toHaveLength(1); // installed once
    expect(logTerms(net.node('c'))).toEqual(logTerms(net.node('a')));
  });

  test('a follower whose log conflicts with the snapshot discards its log for it', () => {
    const net = new TestNetwork(ids, { maxSnapshotChunkBytes: chunkBytes });
    net.campaign('a');
    net.tickAll(1);
    // a, cut off, appends entries of term 1 that will never commit.
    net.isolate('a');
    for (let i = 0; i < 5; i++) net.node('a').raft.propose(enc(`a-only-${i}`));
    net.settle();
    for (let i = 0; i < 100 && !net.agreedLeader(['b', 'c']); i++) {
      net.tick('b');
      net.tick('c');
      net.settle();
    }
    const l = net.agreedLeader(['b', 'c'])!;
    for (let i = 0; i < 8; i++) l.raft.propose(enc(`e${i}`));
    net.settle();
    l.storage.createSnapshot(l.raft.status().applied, l.raft.appliedConfState(), snapData);
    net.heal();
    net.tickAll(3);
    const a = net.node('a');
    expect(a.raft.status()).toMatchObject({ role: Role.Follower, leader: l.id });
    expect(a.snapshots).toHaveLength(1);
    expect(logTerms(a)).toEqual(logTerms(l));
    expect(a.applied.filter((e) => e.data.length > 0)).toEqual([]); // none of its own entries was applied
  });
});
