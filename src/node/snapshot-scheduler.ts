// Background snapshots (issue 5): a group's snapshot is taken between
// drive-loop passes, never inside one, and at most one partition per turn of
// the event loop. Encoding a partition's state can take tens of milliseconds;
// doing it while applying would hold back that pass's messages and replies,
// and doing every due partition at once would stall the node for all of
// them together.
//
// Under a steady load the next pass is always ready by the time a snapshot
// turn comes round, and a LevelDB pass stays "running" while it awaits its
// sync, so a turn that merely skipped busy moments could starve for good.
// Hence the hand-off: a pass that ends with a group due owes a snapshot turn,
// and the next pass waits for that turn to run, then resumes.

/** What the scheduler needs of a group (see Group). */
export interface SnapshotCandidate {
  readonly partition: number;
  /** ≥ 1 when a snapshot is due; larger is further behind. */
  snapshotUrgency(): number;
}

export interface SnapshotHost<G extends SnapshotCandidate> {
  groups(): Iterable<G>;
  /** True while a pass is running (or the loop has stopped): no snapshot then. */
  busy(): boolean;
  /** Snapshots `group` (and makes it durable in the background). */
  take(group: G): void;
  /** Starts the pass that held back for a snapshot turn. */
  resumePass(): void;
  /** Runs `fn` on a later turn of the event loop (setImmediate). */
  defer(fn: () => void): void;
}

export class SnapshotScheduler<G extends SnapshotCandidate> {
  /** A turn is queued with host.defer. */
  private queued = false;
  /** A pass ended with a group due, and no snapshot turn has run since. */
  private owed = false;
  /** A pass held back for the owed turn. */
  private passHeld = false;

  constructor(private readonly host: SnapshotHost<G>) {}

  /** After every pass, once it has flushed: if a group is due, a snapshot turn comes before the next pass. */
  passDone(): void {
    if (this.mostDue() === null) return;
    this.owed = true;
    this.request();
  }

  /** As a pass is about to start: true if it must wait for the owed snapshot turn (host.resumePass restarts it). */
  holdPass(): boolean {
    if (!this.owed) return false;
    this.passHeld = true;
    return true;
  }

  /** The due group furthest behind, or null; ties go to the first in the host's order. */
  mostDue(): G | null {
    let best: G | null = null;
    let bestUrgency = 1;
    for (const g of this.host.groups()) {
      const u = g.snapshotUrgency();
      if (u >= bestUrgency && (best === null || u > bestUrgency)) {
        best = g;
        bestUrgency = u;
      }
    }
    return best;
  }

  private request(): void {
    if (this.queued) return;
    this.queued = true;
    this.host.defer(() => {
      this.queued = false;
      this.turn();
    });
  }

  /** One turn: at most one snapshot; any other due group gets a turn of its own. */
  private turn(): void {
    // A pass cannot be running while one is held, so this only skips turns
    // queued before a pass began; that pass's end asks again.
    if (this.host.busy()) return;
    this.owed = false;
    const g = this.mostDue();
    if (g !== null) {
      this.host.take(g);
      if (this.mostDue() !== null) this.request();
    }
    if (this.passHeld) {
      this.passHeld = false;
      this.host.resumePass();
    }
  }
}
