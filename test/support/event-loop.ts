// Hand-driven stand-ins for the event loop's turns and for a disk's syncs,
// for drive-loop tests that must step every pass deterministically.

/** The event loop's turns, by hand: run() is one turn, and what it queues waits for the next. */
export class Turns {
  private queue: (() => void)[] = [];
  readonly defer = (fn: () => void): void => {
    this.queue.push(fn);
  };
  get queued(): number {
    return this.queue.length;
  }
  run(): void {
    const fns = this.queue;
    this.queue = [];
    for (const fn of fns) fn();
  }
}

/**
 * A disk whose syncs complete when the test says so: a pass stays running
 * until then. It also knows whether anything staged (stage()) is not yet
 * durable, i.e. not covered by a completed sync.
 */
export class ManualDisk {
  private waiting: (() => void)[] = [];
  private staged = 0;
  private durable = 0;
  /** Called for every batch the node stages. */
  stage(): void {
    this.staged++;
  }
  /** Something staged is not durable yet. */
  get dirty(): boolean {
    return this.staged > this.durable;
  }
  readonly commit = (): Promise<void> => {
    const upTo = this.staged;
    return new Promise((resolve) =>
      this.waiting.push(() => {
        this.durable = Math.max(this.durable, upTo);
        resolve();
      }),
    );
  };
  get pending(): number {
    return this.waiting.length;
  }
  /** Completes every sync asked for so far, and lets what awaited them run. */
  async complete(): Promise<void> {
    const w = this.waiting;
    this.waiting = [];
    for (const resolve of w) resolve();
    await new Promise((r) => setImmediate(r)); // the real event loop: only the awaiting passes' continuations run
  }
}
