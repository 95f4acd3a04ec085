// One drive loop for every group on the node (DESIGN.md): a single timer
// ticks all groups; inputs (messages, proposals, reads) only mark work to
// do, and one pass — scheduled once per event-loop turn — handles every
// group's Ready, then flushes the transport once. No timer per group or per
// request. Snapshots are taken between passes (snapshot-scheduler.ts).
//
// With a disk, a round stages every group's writes, sends the leaders'
// messages at once (Ready.sendBeforePersist: appends are written by the
// leader and its followers in parallel), syncs once, and only then sends the
// rest, applies and answers. Rounds run one after another, so a commit index
// counted with a leader's own unsynced entries leaves in a later round, after
// the sync.

import type { Message, Ready } from '../../raft/index.js';
import type { Group } from './group.js';
import { SnapshotScheduler } from './snapshot-scheduler.js';

export interface DriveLoopOptions {
  tickMs: number;
  /** Sends one raft message of `group` (queued; the loop flushes after each pass). */
  send(group: number, m: Message): void;
  flush(): void;
  /** Called every tick after the groups ticked, with the wall clock (deadlines, leader duties). */
  onTick?(nowMs: number): void;
  now(): number;
  /**
   * Makes everything the groups staged in this pass durable with one sync
   * (LevelDB); absent for memory storage, where staging is all there is.
   */
  commit?: () => Promise<void>;
  /** A failed commit: memory is ahead of the disk, and the node must stop. */
  onFatal?: (err: unknown) => void;
  /** Runs `fn` on a later turn of the event loop; setImmediate unless a test steps the turns itself. */
  defer?: (fn: () => void) => void;
  /** A monotonic clock in ms (performance.now unless a test drives it): ticks follow it, not the timer's count. */
  monotonicNow?: () => number;
}

/**
 * The most ticks one timer callback catches up after a stall: enough to run
 * out any lease and election timer (2·electionTicks at the defaults), few
 * enough that a long stall costs no noticeable work.
 */
const MAX_CATCH_UP_TICKS = 64;

export class DriveLoop {
  private timer: NodeJS.Timeout | null = null;
  private scheduled = false;
  private running = false;
  private stopped = false;
  private readonly groups = new Map<number, Group>();
  private readonly defer: (fn: () => void) => void;
  private readonly snapshots: SnapshotScheduler<Group>;
  private readonly monotonicNow: () => number;
  /** Monotonic time the ticks count from, and how many have been given. */
  private clockStart = 0;
  private ticksGiven = 0;
  /** Monotonic time of the last timer callback; -Infinity before start(). */
  private lastTickAt = -Infinity;

  constructor(private readonly opts: DriveLoopOptions) {
    this.defer = opts.defer ?? setImmediate;
    this.monotonicNow = opts.monotonicNow ?? (() => performance.now());
    this.snapshots = new SnapshotScheduler<Group>({
      groups: () => this.groups.values(),
      busy: () => this.running || this.stopped,
      take: (g) => this.takeSnapshot(g),
      resumePass: () => this.schedule(),
      defer: this.defer,
    });
  }

  add(group: Group): void {
    this.groups.set(group.partition, group);
    group.wake = () => this.schedule();
    group.clockTrusted = () => this.clockTrusted();
    this.schedule();
  }

  /** Stops driving a group; a pass syncing its writes right now does not finish its Ready. */
  remove(partition: number): void {
    this.groups.delete(partition);
  }

  get(partition: number): Group | undefined {
    return this.groups.get(partition);
  }

  all(): IterableIterator<Group> {
    return this.groups.values();
  }

  start(): void {
    this.stopped = false;
    if (this.timer) return;
    this.clockStart = this.monotonicNow();
    this.ticksGiven = 0;
    this.lastTickAt = this.clockStart;
    this.timer = setInterval(() => this.tick(), this.opts.tickMs);
    this.timer.unref?.();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.lastTickAt = -Infinity;
  }

  /**
   * Whether the groups' logical clocks can be trusted right now, for leader
   * leases: the timer has run within the last two ticks. After a stall (a
   * long GC, SIGSTOP, an overloaded machine) the event loop may serve a read
   * before the overdue timer runs, while the raft cores still believe it is
   * the moment the stall began; such a read must confirm leadership with a
   * heartbeat round instead (RaftNode.readIndex's `lease: false`).
   */
  clockTrusted(): boolean {
    return this.monotonicNow() - this.lastTickAt < 2 * this.opts.tickMs;
  }

  /**
   * Gives every group the ticks the monotonic clock says are due, not one per
   * timer callback: callbacks come late under load, and a lease counted in
   * ticks that lag real time would outlast the followers' election timeouts.
   */
  tick(): void {
    const now = this.monotonicNow();
    this.lastTickAt = now;
    const due = Math.floor((now - this.clockStart) / this.opts.tickMs);
    const ticks = Math.min(due - this.ticksGiven, MAX_CATCH_UP_TICKS);
    this.ticksGiven = due;
    for (let i = 0; i < ticks; i++) this.tickGroups();
    const wall = this.opts.now();
    for (const g of this.groups.values()) g.expire(wall);
    this.opts.onTick?.(wall);
    this.schedule();
  }

  private tickGroups(): void {
    for (const g of this.groups.values()) g.raft.tick();
  }

  /** Asks for a pass at the end of this event-loop turn; many inputs share it (batching). */
  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.defer(() => {
      this.scheduled = false;
      this.pass();
    });
  }

  /** Handles every group's Ready: persist all (one sync; leaders' messages meanwhile), then send, apply and advance. */
  pass(): void {
    if (this.running) return;
    if (this.snapshots.holdPass()) return;
    this.running = true;
    const commit = this.opts.commit;
    if (!commit) {
      try {
        for (let round = 0; round < 8 && this.round() !== null; round++);
        this.opts.flush();
      } finally {
        this.running = false;
      }
      this.snapshots.passDone();
      this.rescheduleIfReady();
      return;
    }
    void (async () => {
      try {
        for (let round = 0; round < 8; round++) {
          const batch = this.round();
          if (batch === null) break;
          // A leader's appends and heartbeats go out while its disk writes the
          // same entries (Ready.sendBeforePersist); every other message waits
          // for the sync, as does everything that applies or answers.
          let early = false;
          for (const [g, rd] of batch) {
            if (!rd.sendBeforePersist || rd.messages.length === 0) continue;
            for (const m of rd.messages) this.opts.send(g.partition, m);
            early = true;
          }
          if (early) this.opts.flush();
          await commit();
          // A group removed during the sync (its replica moved away) is finished with: nothing more of it is applied or written.
          for (const [g, rd] of batch) if (this.groups.get(g.partition) === g) g.finish(rd, (m) => this.opts.send(g.partition, m), rd.sendBeforePersist);
        }
        this.opts.flush();
      } catch (err) {
        this.stop();
        this.opts.onFatal?.(err);
        return;
      } finally {
        this.running = false;
      }
      this.snapshots.passDone();
      this.rescheduleIfReady();
    })();
  }

  /**
   * A snapshot turn's work. With LevelDB the snapshot and the deletion of the
   * log before it are one staged batch (a crash keeps the old snapshot and
   * the whole log, or the new one and the rest); it is committed at once, in
   * its own sync, rather than swelling the next pass's.
   */
  private takeSnapshot(g: Group): void {
    try {
      g.takeSnapshot();
    } catch (err) {
      this.fatal(err);
      return;
    }
    this.opts.commit?.().catch((err: unknown) => this.fatal(err));
  }

  private fatal(err: unknown): void {
    this.stop();
    if (!this.opts.onFatal) throw err;
    this.opts.onFatal(err);
  }

  /**
   * Takes every group's Ready and stages its writes; without a commit step
   * it finishes them at once. Returns null when no group had anything.
   */
  private round(): [Group, Ready][] | null {
    const batch: [Group, Ready][] = [];
    for (const g of this.groups.values()) if (g.raft.hasReady()) batch.push([g, g.raft.ready()]);
    if (batch.length === 0) return null;
    for (const [g, rd] of batch) g.persist(rd);
    if (!this.opts.commit) this.finishAll(batch);
    return batch;
  }

  private finishAll(batch: [Group, Ready][]): void {
    for (const [g, rd] of batch) g.finish(rd, (m) => this.opts.send(g.partition, m));
  }

  private rescheduleIfReady(): void {
    for (const g of this.groups.values()) {
      if (g.raft.hasReady()) {
        this.schedule();
        break;
      }
    }
  }
}
