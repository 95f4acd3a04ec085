// The leader's view of one follower's log (Raft thesis §3.5 nextIndex /
// matchIndex), and the window of appends in flight to it (flow control).

export const enum ProgressState {
  /** Not sure where the follower's log ends: one append at a time until one is accepted. */
  Probe = 0,
  /** The follower is known to match: appends are pipelined, up to the in-flight window. */
  Replicate = 1,
  /** The follower needs a snapshot; appends wait until it is installed. */
  Snapshot = 2,
}

/** A bounded window of appends sent and not yet acknowledged, by their last index. */
export class Inflights {
  private readonly lastIndexes: number[] = [];
  private bytes = 0;
  private readonly sizes: number[] = [];

  constructor(readonly maxCount: number, readonly maxBytes: number) {}

  add(lastIndex: number, bytes: number): void {
    this.lastIndexes.push(lastIndex);
    this.sizes.push(bytes);
    this.bytes += bytes;
  }

  /** Frees every append whose last index is ≤ `index` (acknowledged together). */
  freeTo(index: number): void {
    let n = 0;
    while (n < this.lastIndexes.length && this.lastIndexes[n]! <= index) {
      this.bytes -= this.sizes[n]!;
      n++;
    }
    if (n > 0) {
      this.lastIndexes.splice(0, n);
      this.sizes.splice(0, n);
    }
  }

  /** Frees the oldest append, so that a lost one cannot stall the window for good. */
  freeFirstOne(): void {
    if (this.lastIndexes.length === 0) return;
    this.freeTo(this.lastIndexes[0]!);
  }

  full(): boolean {
    return this.lastIndexes.length >= this.maxCount || (this.maxBytes > 0 && this.bytes >= this.maxBytes);
  }

  count(): number {
    return this.lastIndexes.length;
  }

  reset(): void {
    this.lastIndexes.length = 0;
    this.sizes.length = 0;
    this.bytes = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state = ProgressState.Probe;
  /** In Probe: an append was sent and no answer has come yet; wait for it (or a heartbeat round). */
  probeSent = false;
  /** Heard from since the last check-quorum round (thesis §6.2). */
  recentActive = false;
  /** In Snapshot state: the snapshot being sent, and how many of its bytes the follower acknowledged. */
  pendingSnapshotIndex = 0;
  snapshotOffset = 0;
  /** Ticks since the last snapshot chunk was sent, to resend a lost one. */
  snapshotIdleTicks = 0;
  readonly inflights: Inflights;

  constructor(next: number, maxInflight: number, maxInflightBytes: number, readonly isLearner: boolean) {
    this.next = next;
    this.inflights = new Inflights(maxInflight, maxInflightBytes);
  }

  becomeProbe(): void {
    // After a snapshot, the follower's log starts past it.
    const next = this.state === ProgressState.Snapshot ? Math.max(this.match + 1, this.pendingSnapshotIndex + 1) : this.match + 1;
    this.state = ProgressState.Probe;
    this.next = next;
    this.probeSent = false;
    this.pendingSnapshotIndex = 0;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = ProgressState.Replicate;
    this.next = this.match + 1;
    this.probeSent = false;
    this.pendingSnapshotIndex = 0;
    this.inflights.reset();
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.state = ProgressState.Snapshot;
    this.pendingSnapshotIndex = snapshotIndex;
    this.snapshotOffset = 0;
    this.snapshotIdleTicks = 0;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** Records an acknowledgement up to `index`; returns whether it was news. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * A rejected append: move `next` back. `rejected` is the index the append
   * was anchored at; `hint` the follower's suggestion (thesis §5.3 fast back-off).
   * Returns false when the rejection is stale (an old, out-of-order answer).
   */
  maybeDecrTo(rejected: number, hint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = Math.max(this.match + 1, Math.min(rejected, hint + 1));
      return true;
    }
    // In Probe only the answer to the append just sent counts.
    if (this.next - 1 !== rejected) return false;
    const next = Math.max(this.match + 1, Math.min(rejected, hint + 1));
    // Refused at the very same place (a follower awaiting a snapshot): try
    // again on the next heartbeat answer, not at once.
    if (next === this.next) return false;
    this.next = next;
    this.probeSent = false;
    return true;
  }

  /** Whether the leader should hold appends to this follower for now. */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      case ProgressState.Snapshot:
        return true;
    }
  }
}
