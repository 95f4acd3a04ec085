/**
 * Linearizability checker for key-value register histories.
 *
 * Keys are independent registers, and linearizability is compositional
 * (Herlihy & Wing's locality property), so each key's sub-history is checked on
 * its own. Per key we run the Wing–Gong search as improved by Lowe ("Testing for
 * linearizability", 2017), the algorithm behind the porcupine and knossos
 * checkers:
 *
 * - Call and return events live in one doubly linked list ordered by time. The
 *   ops that may be linearized next are exactly those whose call event precedes
 *   the first return event still in the list.
 * - Linearizing an op unlinks ("lifts") both its events; backtracking relinks
 *   them in O(1), dancing-links style, so no list is ever copied.
 * - A stack records the linearization order so far and the register state
 *   before each op, for backtracking.
 * - Lowe's memoisation: a configuration (set of linearized ops, register
 *   state) that was visited once cannot lead anywhere new, so it is pruned.
 *   The set is a Uint32Array bitset with an incrementally maintained Zobrist
 *   hash, so a cache probe costs O(1) plus one bitset compare on a hash hit.
 *
 * Real-time order convention: op A precedes op B iff `A.complete < B.invoke`
 * (strict). An op completing at time t is concurrent with an op invoked at t;
 * in the event list, calls therefore sort before returns at equal times.
 *
 * Indeterminate ops (`complete === null`) have no return event: they may
 * take effect at any point after their invocation, or never. The search
 * succeeds once every *completed* op is linearized, so an indeterminate op is
 * linearized only where it helps explain the history: only where some
 * completed op that could come next does not fit the register without it
 * (candidatesHere says why that loses nothing). An indeterminate read has no
 * effect and no observed result, so it is dropped up front.
 *
 * An indeterminate op stays a candidate for the rest of the search, so many of
 * them on one busy key multiply the configurations to explore. Two sound
 * reductions keep that in check (both verified against a brute-force checker
 * in the tests):
 *  - Values that no read returned and no cas expected are indistinguishable to
 *    the model, so they share one state (see ValueTable).
 *  - An indeterminate op is not linearized where it leaves the register
 *    unchanged (a failing cas, deleting an absent key, or, by the previous
 *    point, writing an unobserved value over another): removing a no-op from
 *    a valid linearization leaves it valid, so skipping it loses nothing.
 * Even so, proving a violation on one hot key with many indeterminate ops can
 * exhaust the step budget; a valid history is usually accepted quickly because
 * the search tries completed ops in invocation order, close to how they really
 * happened, and an indeterminate op only where a completed one needs it.
 */

import type { Operation } from './history.js';

export interface CheckOptions {
  /** Search steps allowed per key before giving up with `budget_exceeded`. */
  maxSteps?: number;
}

export interface CheckSuccess {
  ok: true;
  /** Number of operations in the checked history. */
  ops: number;
}

export type FailureReason = 'not_linearizable' | 'budget_exceeded';

export interface CheckFailure {
  ok: false;
  key: string;
  reason: FailureReason;
  /** All operations on `key`, in history order. */
  ops: Operation[];
  /** Human-readable account of how far the search got and what blocked it. */
  explanation: string;
}

export type CheckResult = CheckSuccess | CheckFailure;

export const DEFAULT_MAX_STEPS = 2_000_000;

/**
 * Checks that `history` is linearizable with respect to a register per key
 * (initially null). A definite `not_linearizable` on any key is reported in
 * preference to a `budget_exceeded` on another. Throws on a malformed history.
 */
export function checkLinearizable(history: readonly Operation[], opts: CheckOptions = {}): CheckResult {
  const maxSteps = opts.maxSteps ?? DEFAULT_MAX_STEPS;
  if (!(maxSteps > 0)) throw new Error(`maxSteps must be positive, got ${maxSteps}`);
  validateHistory(history);

  let budgetFailure: CheckFailure | null = null;
  for (const [key, keyOps] of partitionByKey(history)) {
    const verdict = checkKey(keyOps, maxSteps);
    if (verdict.kind === 'linearizable') continue;
    const failure: CheckFailure = {
      ok: false,
      key,
      reason: verdict.kind,
      ops: keyOps,
      explanation: explainFailure(key, keyOps, verdict, maxSteps),
    };
    if (verdict.kind === 'not_linearizable') return failure;
    budgetFailure ??= failure;
  }
  return budgetFailure ?? { ok: true, ops: history.length };
}

function validateHistory(history: readonly Operation[]): void {
  const ids = new Set<number>();
  for (const op of history) {
    const where = `op #${op.id}`;
    if (ids.has(op.id)) throw new Error(`malformed history: duplicate id ${op.id}`);
    ids.add(op.id);
    if (!Number.isFinite(op.invoke)) throw new Error(`malformed history: ${where} has invoke time ${op.invoke}`);
    if ((op.complete === null) !== (op.output === null)) {
      throw new Error(`malformed history: ${where} must have both complete and output, or neither`);
    }
    if (op.complete !== null) {
      if (!Number.isFinite(op.complete) || op.complete < op.invoke) {
        throw new Error(`malformed history: ${where} completes at ${op.complete}, invoked at ${op.invoke}`);
      }
    }
    if (op.output !== null && op.output.kind !== op.input.kind) {
      throw new Error(`malformed history: ${where} has ${op.output.kind} output for ${op.input.kind} input`);
    }
  }
}

/** Keys in order of first appearance, so reports are deterministic. */
function partitionByKey(history: readonly Operation[]): Map<string, Operation[]> {
  const byKey = new Map<string, Operation[]>();
  for (const op of history) {
    const keyOps = byKey.get(op.key);
    if (keyOps === undefined) byKey.set(op.key, [op]);
    else keyOps.push(op);
  }
  return byKey;
}

// ---------------------------------------------------------------------------
// Register model, compiled to integer states.
//
// Values become small integer ids, so the register state is a number: cheap to
// compare, store and hash. The model only ever compares the register against
// values that reads returned and that cas ops expected ("observed" values), so
// all other values are interchangeable, and they share one id. Besides shrinking
// the state space, this makes an indeterminate write of a value nobody observed
// a no-op whenever the register already holds such a value, which the search
// then skips (see the header comment).

/** Returned by a transition when the op's recorded output is impossible in the state. */
const REJECT = -1;
/** The id shared by all values no op observes. */
const UNOBSERVED = 0;

type Transition = (state: number) => number;

class ValueTable {
  private readonly ids = new Map<string | null, number>();

  constructor(ops: readonly Operation[]) {
    for (const { input, output } of ops) {
      if (output?.kind === 'read') this.intern(output.value);
      if (input.kind === 'cas') this.intern(input.expected);
    }
  }

  id(value: string | null): number {
    return this.ids.get(value) ?? UNOBSERVED;
  }

  private intern(value: string | null): void {
    if (!this.ids.has(value)) this.ids.set(value, this.ids.size + 1);
  }
}

function compileTransition(op: Operation, values: ValueTable): Transition {
  const { input, output } = op;
  switch (input.kind) {
    case 'read': {
      if (output?.kind !== 'read') throw new Error(`op #${op.id}: indeterminate reads must be dropped before compiling`);
      const seen = values.id(output.value);
      return (state) => (state === seen ? state : REJECT);
    }
    case 'write': {
      const written = values.id(input.value);
      return () => written;
    }
    case 'cas': {
      const expected = values.id(input.expected);
      const written = values.id(input.value);
      if (output?.kind !== 'cas') {
        // Outcome unknown: the model is deterministic, so if it took effect it
        // succeeded exactly when the register held `expected`; a failed cas is
        // indistinguishable from one that never happened.
        return (state) => (state === expected ? written : state);
      }
      return output.ok
        ? (state) => (state === expected ? written : REJECT)
        : (state) => (state !== expected ? state : REJECT);
    }
  }
}

// ---------------------------------------------------------------------------
// Per-key search.

interface EventNode {
  /** Index into the key's search ops. */
  readonly op: number;
  readonly isCall: boolean;
  /** For a call: its return event. */
  match: EventNode | null;
  prev: EventNode | null;
  next: EventNode | null;
}

/** Snapshot of the deepest point the search reached, for explanations. */
interface SearchProgress {
  /** The longest linearizable prefix found, as indices into `searchOps`. */
  prefixOps: number[];
  /** Ops that could have come next after the prefix. */
  candidates: number[];
  /** The earliest-completing op not in the prefix: it bounds what may come next. */
  deadline: number | null;
}

type KeyVerdict =
  | { kind: 'linearizable' }
  | {
      kind: FailureReason;
      steps: number;
      /** The ops the search ran over: the key's ops minus indeterminate reads. */
      searchOps: Operation[];
      progress: SearchProgress;
    };

function checkKey(keyOps: Operation[], maxSteps: number): KeyVerdict {
  const searchOps = keyOps.filter((op) => !(op.complete === null && op.input.kind === 'read'));
  const values = new ValueTable(searchOps);
  const transitions = searchOps.map((op) => compileTransition(op, values));
  const completed = searchOps.map((op) => op.complete !== null);
  const completedCount = completed.filter(Boolean).length;
  let unlinearizedCompleted = completedCount;
  if (unlinearizedCompleted === 0) return { kind: 'linearizable' };

  // Completed ops live in the event list; indeterminate ones, which have no
  // return event, in their own list by invocation time.
  const head = buildEventList(searchOps.map((op, index) => ({ op, index })).filter(({ index }) => completed[index]));
  const indeterminate = searchOps
    .map((op, index) => ({ invoke: op.invoke, index }))
    .filter(({ index }) => !completed[index])
    .sort((a, b) => a.invoke - b.invoke || a.index - b.index);
  const zobrist = zobristKeys(searchOps.length);
  const linearized = new Uint32Array(Math.ceil(searchOps.length / 32));
  const isLinearized = (op: number): boolean => (linearized[op >>> 5]! & (1 << (op & 31))) !== 0;
  let linearizedHash = 0;
  const visited = new VisitedConfigurations();
  let state = values.id(null);

  const isCas = searchOps.map((op) => op.input.kind === 'cas');
  // Completed ops that act alike on the register (two blind writes of values
  // nobody observed, two deletes, two reads of one value): of those that could
  // come next, only the one completing first need be tried. Swapping it to
  // the front of any continuation that starts with another leaves every state
  // the same, and moves the other later only among ops invoked before the
  // first one completed, so before the other completed too.
  const actsAs = searchOps.map((op) => {
    const { input, output } = op;
    if (input.kind === 'read') return `r${output?.kind === 'read' ? values.id(output.value) : ''}`;
    if (input.kind === 'write') return `w${values.id(input.value)}`;
    return `c${output?.kind === 'cas' ? output.ok : ''}:${values.id(input.expected)}:${values.id(input.value)}`;
  });

  /**
   * What may come next from the current configuration, in the order to try.
   * Completed ops: those whose call precedes the first return still in the
   * list and that fit the register. Indeterminate ops invoked by then, only
   * where some completed candidate (a misfit) does not fit the register. In
   * any linearization, a run of indeterminate ops that changes the register
   * can be moved later up to the first completed op that fits neither before
   * nor after it (one that fits both lets it pass; a blind write erases it),
   * and shortened until each op in it changes the register and each but the
   * last is taken up by the next, an indeterminate cas that succeeds on what
   * it wrote. So an indeterminate op is tried if it makes a misfit fit, or if
   * another indeterminate cas would succeed after it; the first kind before
   * the completed candidates, the second after them.
   */
  const candidatesHere = (): { ops: number[]; deadline: number | null } => {
    const fitting: number[] = [];
    const misfits: number[] = [];
    const earliest = new Map<string, number>();
    let node = head.next;
    while (node !== null && node.isCall) {
      const op = node.op;
      node = node.next;
      if (transitions[op]!(state) === REJECT) {
        misfits.push(op);
        continue;
      }
      const alike = earliest.get(actsAs[op]!);
      if (alike === undefined) {
        earliest.set(actsAs[op]!, fitting.length);
        fitting.push(op);
      } else if (searchOps[op]!.complete! < searchOps[fitting[alike]!]!.complete!) fitting[alike] = op;
    }
    const deadline = node === null ? null : node.op;
    if (misfits.length === 0) return { ops: fitting, deadline };
    const bound = deadline === null ? Infinity : searchOps[deadline]!.complete!;
    const eligible: number[] = [];
    for (const p of indeterminate) {
      if (p.invoke > bound) break;
      if (!isLinearized(p.index)) eligible.push(p.index);
    }
    const enabling: number[] = [];
    const chainHeads: number[] = [];
    for (const i of eligible) {
      const after = transitions[i]!(state);
      if (after === state) continue; // a no-op: see the header comment
      if (misfits.some((m) => transitions[m]!(after) !== REJECT)) enabling.push(i);
      else if (eligible.some((j) => j !== i && isCas[j] && transitions[j]!(after) !== after)) chainHeads.push(i);
    }
    return { ops: [...enabling, ...fitting, ...chainHeads], deadline };
  };

  /** One level of the search: the op that led to it (-1 at the root), the register before that op, the candidates and how many were tried. */
  interface Frame {
    via: number;
    stateBefore: number;
    candidates: number[];
    tried: number;
  }
  const frames: Frame[] = [{ via: -1, stateBefore: state, candidates: candidatesHere().ops, tried: 0 }];
  const calls = new Map<number, EventNode>();
  for (let node = head.next; node !== null; node = node.next) if (node.isCall) calls.set(node.op, node);

  // Progress is measured in completed ops linearized, so the reported prefix
  // ends with a completed op rather than with indeterminate ops tacked on. It
  // is kept incrementally: frames below `unchangedDepth` are the same as when
  // it was last recorded, so only those above are copied, keeping the
  // bookkeeping amortised O(1) per push.
  const progress: SearchProgress = { prefixOps: [], candidates: [], deadline: null };
  let bestCompleted = 0;
  let unchangedDepth = 1;
  const recordProgress = (): void => {
    progress.prefixOps.length = unchangedDepth - 1;
    for (let i = unchangedDepth; i < frames.length; i++) progress.prefixOps.push(frames[i]!.via);
    unchangedDepth = frames.length;
    const next = candidatesHere();
    // Misfits are listed too: the explanation says why each one does not fit.
    progress.candidates = [];
    for (let node = head.next; node !== null && node.isCall; node = node.next) progress.candidates.push(node.op);
    for (const op of next.ops) if (!completed[op]) progress.candidates.push(op);
    progress.deadline = next.deadline;
  };
  recordProgress();

  let steps = 0;
  for (;;) {
    if (++steps > maxSteps) {
      return { kind: 'budget_exceeded', steps: maxSteps, searchOps, progress };
    }
    const frame = frames[frames.length - 1]!;
    if (frame.tried === frame.candidates.length) {
      // Nothing here leads to a linearization: undo the op that led here.
      frames.pop();
      if (frame.via === -1) return { kind: 'not_linearizable', steps, searchOps, progress };
      const op = frame.via;
      state = frame.stateBefore;
      linearized[op >>> 5] &= ~(1 << (op & 31));
      linearizedHash ^= zobrist[op]!;
      if (completed[op]) {
        unlinearizedCompleted++;
        unlift(calls.get(op)!);
      }
      unchangedDepth = Math.min(unchangedDepth, frames.length);
      continue;
    }
    const op = frame.candidates[frame.tried++]!;
    const nextState = transitions[op]!(state);
    if (nextState === REJECT) continue;
    linearized[op >>> 5] |= 1 << (op & 31);
    linearizedHash ^= zobrist[op]!;
    if (!visited.add(linearizedHash, linearized, nextState)) {
      // Explored from this configuration before.
      linearized[op >>> 5] &= ~(1 << (op & 31));
      linearizedHash ^= zobrist[op]!;
      continue;
    }
    const stateBefore = state;
    state = nextState;
    if (completed[op]) {
      lift(calls.get(op)!);
      if (--unlinearizedCompleted === 0) return { kind: 'linearizable' };
    }
    frames.push({ via: op, stateBefore, candidates: candidatesHere().ops, tried: 0 });
    if (completed[op] && completedCount - unlinearizedCompleted > bestCompleted) {
      bestCompleted = completedCount - unlinearizedCompleted;
      recordProgress();
    }
  }
}

/** Builds the time-ordered event list of completed ops (by their index in the search) and returns its sentinel head. */
function buildEventList(ops: readonly { op: Operation; index: number }[]): EventNode {
  const events: { time: number; node: EventNode }[] = [];
  for (const { op, index } of ops) {
    const ret: EventNode = { op: index, isCall: false, match: null, prev: null, next: null };
    const call: EventNode = { op: index, isCall: true, match: ret, prev: null, next: null };
    events.push({ time: op.invoke, node: call }, { time: op.complete!, node: ret });
  }
  // Calls before returns at equal times: see the real-time convention above.
  events.sort((a, b) => {
    if (a.time !== b.time) return a.time < b.time ? -1 : 1;
    if (a.node.isCall !== b.node.isCall) return a.node.isCall ? -1 : 1;
    return a.node.op - b.node.op;
  });
  const head: EventNode = { op: -1, isCall: false, match: null, prev: null, next: null };
  let last = head;
  for (const { node } of events) {
    node.prev = last;
    last.next = node;
    last = node;
  }
  return head;
}

/** Unlinks a call and its return. The head sentinel means `prev` is never null. */
function lift(call: EventNode): void {
  call.prev!.next = call.next;
  if (call.next !== null) call.next.prev = call.prev;
  const ret = call.match!;
  ret.prev!.next = ret.next;
  if (ret.next !== null) ret.next.prev = ret.prev;
}

/** Exact inverse of `lift`, valid because undo happens in LIFO order. */
function unlift(call: EventNode): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next !== null) ret.next.prev = ret;
  call.prev!.next = call;
  if (call.next !== null) call.next.prev = call;
}

/**
 * Random 32-bit keys per op; the XOR of the keys of the linearized ops hashes
 * the bitset and updates in O(1). Seeded, so runs are reproducible.
 */
function zobristKeys(count: number): Int32Array {
  const keys = new Int32Array(count);
  let seed = 0x2545f491;
  for (let i = 0; i < count; i++) {
    // splitmix32
    seed = (seed + 0x9e3779b9) | 0;
    let z = seed;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    keys[i] = z ^ (z >>> 15);
  }
  return keys;
}

/** Lowe's memo table of visited (linearized set, register state) configurations. */
class VisitedConfigurations {
  /** Keyed by a hash of both parts; colliding configurations share a bucket. */
  private readonly buckets = new Map<number, { linearized: Uint32Array; state: number }[]>();

  /** Records the configuration; returns false if it had been visited already. */
  add(linearizedHash: number, linearized: Uint32Array, state: number): boolean {
    const key = linearizedHash ^ Math.imul(state + 1, 0x9e3779b1);
    const bucket = this.buckets.get(key);
    if (bucket === undefined) {
      this.buckets.set(key, [{ linearized: linearized.slice(), state }]);
      return true;
    }
    for (const seen of bucket) {
      if (seen.state === state && sameBits(seen.linearized, linearized)) return false;
    }
    bucket.push({ linearized: linearized.slice(), state });
    return true;
  }
}

function sameBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------
// Reporting.

/** Keeps explanations of long histories readable. */
const MAX_PREFIX_LINES = 20;

/** One line per op, e.g. `#7 c2 cas("a" → "b") → ok  [12, 15]`. */
export function formatOperation(op: Operation): string {
  const { input, output } = op;
  let call: string;
  let result: string;
  switch (input.kind) {
    case 'read':
      call = 'read';
      result = output?.kind === 'read' ? formatValue(output.value) : '?';
      break;
    case 'write':
      call = input.value === null ? 'delete' : `write(${formatValue(input.value)})`;
      result = output === null ? '?' : 'done';
      break;
    case 'cas':
      call = `cas(${formatValue(input.expected)} → ${formatValue(input.value)})`;
      result = output?.kind === 'cas' ? (output.ok ? 'ok' : 'failed') : '?';
      break;
  }
  const interval = op.complete === null ? `[${op.invoke}, ∞)` : `[${op.invoke}, ${op.complete}]`;
  return `#${op.id} c${op.client} ${call} → ${result}  ${interval}`;
}

function formatValue(value: string | null): string {
  return value === null ? 'null' : JSON.stringify(value);
}

/** The register after `op` takes effect on `current`, given that it can. */
function registerAfter(op: Operation, current: string | null): string | null {
  const { input } = op;
  if (input.kind === 'write') return input.value;
  if (input.kind === 'cas' && current === input.expected) return input.value;
  return current;
}

/** Why the model rejects `op` in register state `current`, or null if it accepts it. */
function rejectionReason(op: Operation, current: string | null): string | null {
  const { input, output } = op;
  if (input.kind === 'read' && output?.kind === 'read' && output.value !== current) {
    return `read ${formatValue(output.value)} but the register holds ${formatValue(current)}`;
  }
  if (input.kind === 'cas' && output?.kind === 'cas') {
    if (output.ok && current !== input.expected) {
      return `succeeded but the register holds ${formatValue(current)}, not ${formatValue(input.expected)}`;
    }
    if (!output.ok && current === input.expected) {
      return `failed but the register holds the expected ${formatValue(current)}`;
    }
  }
  return null;
}

function explainFailure(
  key: string,
  keyOps: readonly Operation[],
  verdict: Exclude<KeyVerdict, { kind: 'linearizable' }>,
  maxSteps: number,
): string {
  const { searchOps, progress } = verdict;
  const required = searchOps.filter((op) => op.complete !== null).length;
  const lines: string[] = [];
  if (verdict.kind === 'budget_exceeded') {
    lines.push(
      `Key ${formatValue(key)}: search budget of ${maxSteps} steps exhausted on ${keyOps.length} ops; ` +
        `linearizability is undecided. Raise maxSteps or check a shorter / less concurrent history.`,
    );
  } else {
    lines.push(
      `Key ${formatValue(key)}: not linearizable (${keyOps.length} ops, ${required} completed; ` +
        `every order ruled out in ${verdict.steps} search steps).`,
    );
  }

  const prefixLength = progress.prefixOps.length;
  lines.push(`Longest linearizable prefix found: ${prefixLength} op${prefixLength === 1 ? '' : 's'}.`);
  const shownFrom = Math.max(0, prefixLength - MAX_PREFIX_LINES);
  if (shownFrom > 0) lines.push(`  … ${shownFrom} earlier ops omitted`);
  // The search tracks only value ids; replaying the prefix recovers the values.
  let current: string | null = null;
  for (let i = 0; i < prefixLength; i++) {
    const op = searchOps[progress.prefixOps[i]!]!;
    current = registerAfter(op, current);
    if (i >= shownFrom) lines.push(`  ${String(i + 1).padStart(4)}. ${formatOperation(op)}   ⇒ register ${formatValue(current)}`);
  }

  lines.push(`After it the register holds ${formatValue(current)}; the ops that could come next:`);
  // Indeterminate ops stay candidates for the rest of the history; listing
  // them all would bury the ops that actually conflict.
  let indeterminateCandidates = 0;
  for (const index of progress.candidates) {
    const op = searchOps[index]!;
    if (op.complete === null) {
      indeterminateCandidates++;
      continue;
    }
    const reason = rejectionReason(op, current) ?? 'fits here, but no linearization continuing with it was found';
    lines.push(`  ${formatOperation(op)}: ${reason}`);
  }
  if (indeterminateCandidates > 0) {
    lines.push(`  and ${indeterminateCandidates} indeterminate op(s), none of whose effects helps here`);
  }
  if (progress.deadline !== null) {
    const deadline = searchOps[progress.deadline]!;
    lines.push(
      `Every other remaining op was invoked after #${deadline.id} completed (at ${deadline.complete}), ` +
        `so none of them can go first.`,
    );
  }
  return lines.join('\n');
}
