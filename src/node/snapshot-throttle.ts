// Bounds the bandwidth a node spends sending raft snapshots (--move-bytes-per-sec),
// so that moving partitions to a new node cannot starve the traffic that
// serves requests. Raft sends a snapshot one chunk at a time, the next when
// the previous one is acknowledged (raft/raft.ts sendSnapshotChunk), so
// delaying a chunk slows its whole transfer and nothing else.
//
// A token bucket in bytes: it refills at bytesPerSecond up to its capacity,
// and a chunk may go whenever the bucket is not in debt, taking it into debt
// by the chunk's size. Over any window of w seconds a node therefore sends at
// most capacity + bytesPerSecond·w + one chunk. Letting a chunk go into debt,
// rather than waiting for its full size, means a chunk larger than the
// capacity is never stuck.
//
// A chunk that cannot go yet is held, one per (group, destination): raft
// re-sends an unacknowledged chunk after 2·heartbeatTicks of silence, and the
// re-send replaces the held copy rather than queueing a second, so the held
// set is bounded by the transfers in progress. Held chunks go in the order
// they were first offered, so every transfer gets its turn.

export interface SnapshotThrottleOptions {
  /** The long-run limit, in bytes of chunk data per second (> 0). */
  bytesPerSecond: number;
  /** A monotonic clock in milliseconds. */
  now: () => number;
  /** What an idle node may send at once; default one second's worth. Raised to the largest chunk offered. */
  burstBytes?: number;
}

type Held = { bytes: number; send: () => void };

export class SnapshotThrottle {
  private readonly bytesPerMs: number;
  private capacityBytes: number;
  /**
   * Starts empty: a node that has just started sends at the configured rate
   * from its first second (its first chunk goes at once), not a burst on top.
   */
  private tokens = 0;
  private lastRefillMs: number;
  private sentBytes = 0;
  /** Insertion-ordered: re-setting a key keeps its place, which is "FIFO by first offer". */
  private readonly held = new Map<string, Held>();

  constructor(private readonly opts: SnapshotThrottleOptions) {
    const { bytesPerSecond, burstBytes } = opts;
    if (!(Number.isFinite(bytesPerSecond) && bytesPerSecond > 0)) {
      throw new RangeError(`snapshot throttle: bytesPerSecond must be a positive number, got ${bytesPerSecond}`);
    }
    if (burstBytes !== undefined && !(Number.isFinite(burstBytes) && burstBytes > 0)) {
      throw new RangeError(`snapshot throttle: burstBytes must be a positive number, got ${burstBytes}`);
    }
    this.bytesPerMs = bytesPerSecond / 1000;
    this.capacityBytes = burstBytes ?? bytesPerSecond;
    this.lastRefillMs = opts.now();
  }

  /**
   * Sends a chunk of `bytes` to `to` for raft group `group` now (returns true)
   * or holds it until release() (false). A chunk already held for the same
   * (group, to) is replaced by this one, keeping its place in line.
   */
  offer(group: number, to: string, bytes: number, send: () => void): boolean {
    if (!(Number.isFinite(bytes) && bytes >= 0)) throw new RangeError(`snapshot throttle: a chunk's size must be a non-negative number of bytes, got ${bytes}`);
    if (!(Number.isInteger(group) && group >= 0)) throw new RangeError(`snapshot throttle: group must be a non-negative integer, got ${group}`);
    if (bytes > this.capacityBytes) this.capacityBytes = bytes;
    // Every chunk joins the line, so none overtakes those already waiting;
    // re-setting a held key replaces that chunk in its place (a re-send never
    // goes twice, even when the old copy's turn comes in this very call).
    const key = `${group} ${to}`; // a group id holds no space, so the first one separates
    const chunk: Held = { bytes, send };
    this.held.set(key, chunk);
    this.release();
    return this.held.get(key) !== chunk;
  }

  /** Sends held chunks whose turn has come, oldest first (call it on every tick). */
  release(): void {
    this.refill();
    while (this.tokens >= 0) {
      const next = this.held.entries().next();
      if (next.done) return;
      const [key, chunk] = next.value;
      // Off the books before send(): a send that throws (or offers again) leaves a consistent state.
      this.held.delete(key);
      this.spend(chunk.bytes);
      chunk.send();
    }
  }

  /** Bytes sent through the throttle (for metrics), and the chunks held right now. */
  stats(): { sentBytes: number; held: number } {
    return { sentBytes: this.sentBytes, held: this.held.size };
  }

  private refill(): void {
    const nowMs = this.opts.now();
    const elapsedMs = nowMs - this.lastRefillMs;
    this.lastRefillMs = nowMs;
    if (elapsedMs > 0) this.tokens = Math.min(this.capacityBytes, this.tokens + elapsedMs * this.bytesPerMs);
  }

  private spend(bytes: number): void {
    this.tokens -= bytes;
    this.sentBytes += bytes;
  }
}
