// Simulated clients. Each runs one operation at a time on a small key set —
// reads (ReadIndex on the leader), writes of unique values, deletes and
// compare-and-set — and records it in the linearizability checker's history.
//
// Keeping the history honest:
// - An operation is invoked once, and completes once, with what the client
//   actually observed. Attempts in between (another node, after a refusal, a
//   lost proposal or a timeout) are retries of the same operation.
// - Writes carry (client id, request id); the KV applies a request at most
//   once and answers a retry with the first application's result, so a write
//   whose earlier attempt may still commit can be retried safely.
// - A write's success is learned when the node it was proposed to applies the
//   entry at the (index, term) propose() returned; any attempt's result counts.
// - An operation with no answer by its deadline (fault phase only) is recorded
//   indeterminate; the client moves on with a new request id, and the KV
//   ignores the old request if it turns up later.
// - A request to a paused node waits in its inbox and is handled when it
//   resumes (the client may have timed out by then); a request to a crashed
//   node is refused at once (connection refused).

import { HistoryRecorder } from '../lincheck/index.js';
import type { OpInput, OpOutput } from '../lincheck/index.js';
import { encodeCommand } from './kv.js';
import type { KvCommand } from './kv.js';
import type { Prng } from './prng.js';
import type { ReadOutcome, SimNode, WriteOutcome } from './sim-node.js';

/**
 * History timestamps: strictly increasing in the order things happen in the
 * simulation (step × 1000 + a counter within the step), so that real-time
 * order in the history is exactly the simulated order.
 */
export class HistoryClock {
  private currentStep = 0;
  private n = 0;

  /** The simulation step the clock is at. */
  get step(): number {
    return this.currentStep;
  }

  setStep(step: number): void {
    if (step !== this.currentStep) {
      this.currentStep = step;
      this.n = 0;
    }
  }

  now(): number {
    if (this.n >= 999) throw new Error('more than 999 history events in one step');
    return this.currentStep * 1000 + ++this.n;
  }
}

export interface ClientSettings {
  keys: string[];
  /** Give up on one attempt (try another node) after this many steps without an answer. */
  attemptTimeoutSteps: number;
  /** Fault phase: record the op indeterminate after this many steps. */
  opTimeoutSteps: number;
  /** Pause between operations: 0..thinkMaxSteps. */
  thinkMaxSteps: number;
  /** Steps to wait before retrying after a refusal. */
  retryBackoffSteps: number;
}

export interface ClientStats {
  invoked: number;
  completed: number;
  indeterminate: number;
  attempts: number;
}

interface Attempt {
  no: number;
  node: SimNode;
  startedAt: number;
}

interface CurrentOp {
  historyId: number;
  key: string;
  input: OpInput;
  /** The KV command for writes, deletes and cas; null for reads. */
  command: KvCommand | null;
  invokedAt: number;
  attempt: Attempt | null;
  attempts: number;
  retryAt: number;
}

export class SimClient {
  private op: CurrentOp | null = null;
  private nextOpAt: number;
  private request = 0;
  private valueSeq = 0;
  private leaderHint: string | null = null;
  /** The latest value this client saw per key: what a cas expects. */
  private readonly lastSeen = new Map<string, string | null>();

  constructor(
    readonly id: number,
    private readonly rng: Prng,
    private readonly nodes: readonly SimNode[],
    private readonly history: HistoryRecorder,
    private readonly clock: HistoryClock,
    private readonly settings: ClientSettings,
    private readonly stats: ClientStats,
  ) {
    this.nextOpAt = rng.int(settings.thinkMaxSteps + 1);
  }

  get busy(): boolean {
    return this.op !== null;
  }

  /**
   * Called once per simulation step. `issue`: may start new operations;
   * `giveUp`: may record an overdue one indeterminate (fault phase only).
   */
  step(now: number, issue: boolean, giveUp: boolean): void {
    if (!this.op) {
      if (!issue || now < this.nextOpAt) return;
      this.invoke(now);
    }
    const op = this.op!;
    if (giveUp && now - op.invokedAt >= this.settings.opTimeoutSteps) {
      this.history.indeterminate(op.historyId);
      this.stats.indeterminate++;
      this.finish(now);
      return;
    }
    if (op.attempt && now - op.attempt.startedAt >= this.settings.attemptTimeoutSteps) {
      // No answer: try elsewhere. The abandoned attempt may still succeed, and its answer still counts.
      op.attempt = null;
      this.leaderHint = null;
      op.retryAt = now;
    }
    if (!op.attempt && now >= op.retryAt) this.attempt(now);
  }

  private invoke(now: number): void {
    const key = this.rng.pick(this.settings.keys);
    const roll = this.rng.int(100);
    let input: OpInput;
    let command: KvCommand | null = null;
    if (roll < 40) {
      input = { kind: 'read' };
    } else {
      const request = ++this.request;
      if (roll < 70) {
        const value = `c${this.id}-${++this.valueSeq}`;
        input = { kind: 'write', value };
        command = { client: this.id, request, op: 'put', key, value };
      } else if (roll < 80) {
        input = { kind: 'write', value: null };
        command = { client: this.id, request, op: 'delete', key };
      } else {
        const expected = this.rng.chance(0.8) ? (this.lastSeen.get(key) ?? null) : null;
        const value = this.rng.chance(0.1) ? null : `c${this.id}-${++this.valueSeq}`;
        input = { kind: 'cas', expected, value };
        command = { client: this.id, request, op: 'cas', key, expected, value };
      }
    }
    const historyId = this.history.invoke(this.id, key, input, this.clock.now());
    this.stats.invoked++;
    this.op = { historyId, key, input, command, invokedAt: now, attempt: null, attempts: 0, retryAt: now };
  }

  private targetNode(): SimNode {
    if (this.leaderHint !== null) {
      const hinted = this.nodes.find((n) => n.id === this.leaderHint);
      if (hinted) return hinted;
    }
    return this.rng.pick(this.nodes);
  }

  private attempt(now: number): void {
    const op = this.op!;
    const node = this.targetNode();
    this.stats.attempts++;
    const no = ++op.attempts;
    if (!node.up) {
      // Connection refused: nothing reached the node.
      this.leaderHint = null;
      op.retryAt = now + this.settings.retryBackoffSteps;
      return;
    }
    op.attempt = { no, node, startedAt: now };
    const request = { opId: op.historyId, no, key: op.key, command: op.command };
    // A paused process reads its socket only when it resumes: the request waits in its inbox.
    if (node.paused) node.inbox.push(() => this.handleRequest(node, request));
    else this.handleRequest(node, request);
  }

  /** The node handles a request (now, or when it resumes; the client may have given up on it by then). */
  private handleRequest(node: SimNode, req: { opId: number; no: number; key: string; command: KvCommand | null }): void {
    const raft = node.raft;
    if (!raft) return; // crashed while the request waited
    const { opId, no } = req;
    if (req.command) {
      const r = raft.propose(encodeCommand(req.command));
      if (r.ok) node.awaitProposal(r.index, r.term, (o) => this.onWrite(opId, no, node, o));
      else this.refused(opId, no, node, r.reason, r.leader);
    } else {
      const context = `c${this.id}:op${opId}:a${no}`;
      const r = raft.readIndex(context);
      if (r.ok) node.awaitRead(context, req.key, (o) => this.onRead(opId, no, node, o));
      else this.refused(opId, no, node, r.reason, r.leader);
    }
  }

  private refused(opId: number, attemptNo: number, node: SimNode, reason: string, leader: string | null): void {
    const op = this.op;
    if (!op || op.historyId !== opId || op.attempt?.no !== attemptNo) return; // nobody waits for this answer
    const now = this.clock.step;
    op.attempt = null;
    if (reason === 'not_leader') {
      this.leaderHint = leader !== null && leader !== node.id ? leader : null;
      op.retryAt = now + (this.leaderHint !== null ? 1 : this.settings.retryBackoffSteps);
    } else {
      // transferring / conf_change_pending / too_many_pending: the same leader, a bit later.
      this.leaderHint = node.id;
      op.retryAt = now + this.settings.retryBackoffSteps;
    }
  }

  private onWrite(opId: number, attemptNo: number, node: SimNode, o: WriteOutcome): void {
    const op = this.op;
    if (!op || op.historyId !== opId) return; // an op already finished or given up on
    if (o.kind === 'applied') {
      let output: OpOutput;
      switch (o.result.kind) {
        case 'write':
          output = { kind: 'write' };
          if (op.input.kind === 'write') this.lastSeen.set(op.key, op.input.value);
          break;
        case 'cas':
          output = { kind: 'cas', ok: o.result.ok };
          if (o.result.ok && op.input.kind === 'cas') this.lastSeen.set(op.key, op.input.value);
          break;
        case 'stale':
          throw new Error(`client ${this.id}: its current request was applied as stale`);
      }
      this.leaderHint = node.id;
      this.complete(output);
      return;
    }
    this.attemptFailed(attemptNo);
  }

  private onRead(opId: number, attemptNo: number, node: SimNode, o: ReadOutcome): void {
    const op = this.op;
    if (!op || op.historyId !== opId) return;
    if (o.kind === 'value') {
      this.lastSeen.set(op.key, o.value);
      this.leaderHint = node.id;
      this.complete({ kind: 'read', value: o.value });
      return;
    }
    this.attemptFailed(attemptNo);
  }

  /** The current attempt is over without an answer: retry (same request id) after a backoff. */
  private attemptFailed(attemptNo: number): void {
    const op = this.op!;
    if (!op.attempt || op.attempt.no !== attemptNo) return; // an old attempt; a newer one is running
    op.attempt = null;
    this.leaderHint = null;
    op.retryAt = this.clock.step + 1 + this.rng.int(this.settings.retryBackoffSteps);
  }

  private complete(output: OpOutput): void {
    const op = this.op!;
    this.history.complete(op.historyId, output, this.clock.now());
    this.stats.completed++;
    this.finish(this.clock.step);
  }

  private finish(now: number): void {
    this.op = null;
    this.nextOpAt = now + this.rng.int(this.settings.thinkMaxSteps + 1);
  }
}
