// The snapshot bandwidth throttle, on a fake clock: the long-run rate holds
// to the limit, a re-sent chunk replaces its held copy, no chunk is ever
// stuck, held chunks go first come first served, and nothing stays held.
// Transfers are driven the way raft drives them: a stream offers its next
// chunk only once the previous one has gone out and been acknowledged.
import fc from 'fast-check';
import { describe, expect, test, vi } from 'vitest';
import { SnapshotThrottle } from '../../src/node/snapshot-throttle.js';

const MiB = 1 << 20;

class FakeClock {
  ms = 0;
  readonly now = (): number => this.ms;
}

type Stream = { group: number; to: string; chunks: number[]; startTick?: number };
type Sent = { atMs: number; stream: number; chunk: number; bytes: number };

/**
 * Runs raft-like transfers to the end: each stream offers its first chunk on
 * its start tick (default 0), and its next one on the tick after the previous
 * one went out (the acknowledgement). Ticks are `tickMs` apart; every tick calls release().
 */
function transfer(throttle: SnapshotThrottle, clock: FakeClock, streams: Stream[], tickMs: number, maxTicks: number): Sent[] {
  const sent: Sent[] = [];
  const state = streams.map(() => ({ next: 0, phase: 'offer' as 'offer' | 'held' | 'acking' | 'done' }));
  for (let tick = 0; ; tick++) {
    streams.forEach((s, i) => {
      const st = state[i]!;
      if (st.phase === 'acking') {
        st.next++;
        st.phase = st.next < s.chunks.length ? 'offer' : 'done';
      }
      if (st.phase !== 'offer' || tick < (s.startTick ?? 0)) return;
      const chunk = st.next;
      const bytes = s.chunks[chunk]!;
      st.phase = 'held';
      throttle.offer(s.group, s.to, bytes, () => {
        sent.push({ atMs: clock.ms, stream: i, chunk, bytes });
        st.phase = 'acking';
      });
    });
    if (state.every((st) => st.phase === 'done')) return sent;
    if (tick >= maxTicks) throw new Error(`transfers not done after ${maxTicks} ticks: ${JSON.stringify(state)}`);
    clock.ms += tickMs;
    throttle.release();
  }
}

describe('snapshot throttle', () => {
  test('long-run rate is the limit: 100 chunks of 1 MiB at 10 MiB/s take 10 s of fake time, within one chunk', () => {
    const clock = new FakeClock();
    const throttle = new SnapshotThrottle({ bytesPerSecond: 10 * MiB, now: clock.now });
    const sent = transfer(throttle, clock, [{ group: 0, to: 'n4', chunks: new Array(100).fill(MiB) }], 10, 10_000);
    expect(sent.map((s) => s.chunk)).toEqual([...Array(100).keys()]);
    const chunkMs = 100; // 1 MiB at 10 MiB/s
    expect(Math.abs(sent.at(-1)!.atMs - 10_000)).toBeLessThanOrEqual(chunkMs);
    // At no moment is more than rate·t plus one chunk out.
    let total = 0;
    for (const s of sent) {
      total += s.bytes;
      expect(total).toBeLessThanOrEqual((10 * MiB * s.atMs) / 1000 + MiB);
    }
    expect(throttle.stats()).toEqual({ sentBytes: 100 * MiB, held: 0 });
  });

  test('two transfers share the limit evenly: together they take as long as one of twice the size, and end within a chunk of each other', () => {
    const clock = new FakeClock();
    const throttle = new SnapshotThrottle({ bytesPerSecond: 10 * MiB, now: clock.now });
    const streams: Stream[] = [
      { group: 3, to: 'n4', chunks: new Array(50).fill(MiB) },
      { group: 5, to: 'n4', chunks: new Array(50).fill(MiB) },
    ];
    const sent = transfer(throttle, clock, streams, 10, 10_000);
    const endOf = (i: number) => sent.filter((s) => s.stream === i).at(-1)!.atMs;
    expect(Math.abs(Math.max(endOf(0), endOf(1)) - 10_000)).toBeLessThanOrEqual(100);
    expect(Math.abs(endOf(0) - endOf(1))).toBeLessThanOrEqual(100);
  });

  test('over any window, what is sent is at most capacity + rate·window + one chunk, and every chunk goes once, in order', () => {
    // Late starters leave the throttle idle for a while first: savings must stay capped.
    const stream = fc.record({ chunks: fc.array(fc.integer({ min: 0, max: 30_000 }), { minLength: 1, maxLength: 12 }), startTick: fc.integer({ min: 0, max: 60 }) });
    fc.assert(
      fc.property(
        fc.array(stream, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1_000, max: 100_000 }),
        fc.option(fc.integer({ min: 1, max: 50_000 }), { nil: undefined }),
        fc.integer({ min: 1, max: 300 }),
        (specs, bytesPerSecond, burstBytes, tickMs) => {
          const clock = new FakeClock();
          const throttle = new SnapshotThrottle({ bytesPerSecond, now: clock.now, ...(burstBytes === undefined ? {} : { burstBytes }) });
          const streams = specs.map((s, i) => ({ group: i, to: `n${i % 2}`, chunks: s.chunks, startTick: s.startTick }));
          const all = streams.flatMap((s) => s.chunks);
          const total = all.reduce((a, b) => a + b, 0);
          const maxChunk = Math.max(...all);
          const capacity = Math.max(burstBytes ?? bytesPerSecond, maxChunk);
          const maxTicks = 60 + Math.ceil(((total + maxChunk) / bytesPerSecond) * 1000 / tickMs) + 2 * all.length + 10;
          const sent = transfer(throttle, clock, streams, tickMs, maxTicks);

          streams.forEach((s, i) => expect(sent.filter((x) => x.stream === i).map((x) => x.chunk)).toEqual([...s.chunks.keys()]));
          let worstExcess = -Infinity; // the largest amount by which a window exceeds the bound
          for (let i = 0; i < sent.length; i++) {
            let bytes = 0;
            for (let j = i; j < sent.length; j++) {
              bytes += sent[j]!.bytes;
              const windowMs = sent[j]!.atMs - sent[i]!.atMs;
              worstExcess = Math.max(worstExcess, bytes - (capacity + (bytesPerSecond * windowMs) / 1000 + maxChunk));
            }
          }
          expect(worstExcess).toBeLessThanOrEqual(1e-6 * total);
          expect(throttle.stats()).toEqual({ sentBytes: total, held: 0 });
        },
      ),
      { seed: 0x7b0771e, numRuns: 300 },
    );
  });

  test('a re-sent chunk replaces the held one: only the newer copy goes, and only once', () => {
    const clock = new FakeClock();
    const throttle = new SnapshotThrottle({ bytesPerSecond: 1000, now: clock.now });
    expect(throttle.offer(1, 'n2', 1000, () => {})).toBe(true); // the bucket is now 1 s in debt
    const first = vi.fn();
    const resent = vi.fn();
    expect(throttle.offer(1, 'n3', 400, first)).toBe(false);
    expect(throttle.offer(1, 'n3', 500, resent)).toBe(false);
    expect(throttle.stats()).toEqual({ sentBytes: 1000, held: 1 });
    clock.ms = 1000;
    throttle.release();
    throttle.release();
    expect(first).not.toHaveBeenCalled();
    expect(resent).toHaveBeenCalledTimes(1);
    expect(throttle.stats()).toEqual({ sentBytes: 1500, held: 0 });
  });

  test('a re-send offered just as the held copy’s turn comes goes instead of it, not after it', () => {
    const clock = new FakeClock();
    const throttle = new SnapshotThrottle({ bytesPerSecond: 1000, now: clock.now });
    throttle.offer(1, 'n2', 1000, () => {});
    const old = vi.fn();
    const resent = vi.fn();
    throttle.offer(1, 'n3', 100, old);
    clock.ms = 1000; // the held copy's turn, but no release() has run yet
    expect(throttle.offer(1, 'n3', 100, resent)).toBe(true);
    clock.ms = 10_000;
    throttle.release();
    expect(old).not.toHaveBeenCalled();
    expect(resent).toHaveBeenCalledTimes(1);
    expect(throttle.stats().sentBytes).toBe(1100);
  });

  test('a chunk larger than the burst still goes, at once on a bucket not in debt, and otherwise once the debt is paid', () => {
    const clock = new FakeClock();
    const throttle = new SnapshotThrottle({ bytesPerSecond: 1000, now: clock.now, burstBytes: 500 });
    expect(throttle.offer(0, 'n2', 5000, () => {})).toBe(true);
    const big = vi.fn();
    expect(throttle.offer(0, 'n3', 8000, big)).toBe(false);
    clock.ms = 4999;
    throttle.release();
    expect(big).not.toHaveBeenCalled();
    clock.ms = 5000;
    throttle.release();
    expect(big).toHaveBeenCalledTimes(1);
    expect(throttle.stats()).toEqual({ sentBytes: 13_000, held: 0 });
  });

  test('after an idle spell the bucket holds at least the largest chunk offered, not just the burst', () => {
    const clock = new FakeClock();
    const throttle = new SnapshotThrottle({ bytesPerSecond: 1000, now: clock.now, burstBytes: 500 });
    throttle.offer(0, 'n2', 3000, () => {});
    clock.ms = 100_000;
    expect(throttle.offer(0, 'n2', 3000, () => {})).toBe(true); // from savings of 3000 bytes
    expect(throttle.offer(0, 'n2', 3000, () => {})).toBe(true); // the bucket was at 0, not in debt
    expect(throttle.offer(0, 'n2', 1, () => {})).toBe(false);
  });

  test('held chunks go in the order they were first offered, one per turn of the budget; a re-send keeps its place', () => {
    const clock = new FakeClock();
    const throttle = new SnapshotThrottle({ bytesPerSecond: 1000, now: clock.now });
    const order: string[] = [];
    const offer = (group: number, to: string, tag: string) => throttle.offer(group, to, 1000, () => order.push(tag));
    expect(offer(1, 'a', 'a')).toBe(true);
    expect(offer(2, 'b', 'b')).toBe(false);
    expect(offer(3, 'c', 'c')).toBe(false);
    expect(offer(4, 'd', 'd')).toBe(false);
    expect(offer(2, 'b', 'b2')).toBe(false); // re-sent: still ahead of c and d
    clock.ms = 1000;
    expect(offer(5, 'e', 'e')).toBe(false); // b2's turn comes first; e joins the back of the line
    expect(order).toEqual(['a', 'b2']);
    for (let s = 2; s <= 6; s++) {
      clock.ms = s * 1000;
      throttle.release();
    }
    expect(order).toEqual(['a', 'b2', 'c', 'd', 'e']);
  });

  test('nothing is held when idle, and an idle throttle sends nothing on release', () => {
    const clock = new FakeClock();
    const throttle = new SnapshotThrottle({ bytesPerSecond: 4096, now: clock.now });
    expect(throttle.stats()).toEqual({ sentBytes: 0, held: 0 });
    const sends = vi.fn();
    for (let g = 0; g < 8; g++) throttle.offer(g, 'n9', 2048, sends);
    expect(throttle.stats().held).toBe(7);
    for (let t = 1; t <= 40; t++) {
      clock.ms = t * 100;
      throttle.release();
    }
    expect(sends).toHaveBeenCalledTimes(8);
    expect(throttle.stats()).toEqual({ sentBytes: 8 * 2048, held: 0 });
  });

  test('bad options and bad chunks are refused with a clear error', () => {
    const now = () => 0;
    expect(() => new SnapshotThrottle({ bytesPerSecond: 0, now })).toThrow(/bytesPerSecond must be a positive number, got 0/);
    expect(() => new SnapshotThrottle({ bytesPerSecond: Number.NaN, now })).toThrow(/bytesPerSecond must be a positive number/);
    expect(() => new SnapshotThrottle({ bytesPerSecond: 1000, now, burstBytes: -1 })).toThrow(/burstBytes must be a positive number, got -1/);
    const throttle = new SnapshotThrottle({ bytesPerSecond: 1000, now });
    expect(() => throttle.offer(0, 'n2', -5, () => {})).toThrow(/chunk's size must be a non-negative number of bytes, got -5/);
    expect(() => throttle.offer(-1, 'n2', 5, () => {})).toThrow(/group must be a non-negative integer, got -1/);
    expect(throttle.stats()).toEqual({ sentBytes: 0, held: 0 });
  });
});
