/**
 * Helpers for the checker's own tests: a terse history builder, a seeded
 * generator of realistic concurrent histories, and a brute-force reference
 * checker to compare the real one against.
 */

import type { Operation, OpInput, OpOutput } from './history.js';
import { seededRandom } from '../support/random.js';

/** `[invoke, complete]`; `complete: null` makes the op indeterminate. */
export type Interval = readonly [invoke: number, complete: number | null];

interface Placement {
  client?: number;
  key?: string;
}

/** Builds hand-written histories; ids are assigned in call order. */
export class HistoryBuilder {
  readonly ops: Operation[] = [];

  read(value: string | null, at: Interval, where: Placement = {}): this {
    return this.add({ kind: 'read' }, { kind: 'read', value }, at, where);
  }

  write(value: string, at: Interval, where: Placement = {}): this {
    return this.add({ kind: 'write', value }, { kind: 'write' }, at, where);
  }

  delete(at: Interval, where: Placement = {}): this {
    return this.add({ kind: 'write', value: null }, { kind: 'write' }, at, where);
  }

  /** `ok` is ignored for an indeterminate cas. */
  cas(expected: string | null, value: string | null, ok: boolean, at: Interval, where: Placement = {}): this {
    return this.add({ kind: 'cas', expected, value }, { kind: 'cas', ok }, at, where);
  }

  private add(input: OpInput, output: OpOutput, [invoke, complete]: Interval, where: Placement): this {
    this.ops.push({
      id: this.ops.length,
      client: where.client ?? this.ops.length,
      key: where.key ?? 'k',
      input,
      invoke,
      complete,
      output: complete === null ? null : output,
    });
    return this;
  }
}

export function history(): HistoryBuilder {
  return new HistoryBuilder();
}


export interface ConcurrentHistoryOptions {
  seed: number;
  clients: number;
  keys: number;
  totalOps: number;
  /** Fraction of ops whose client gives up waiting (indeterminate). */
  indeterminateRate?: number;
  /** Longest op duration; longer means more overlap between clients. */
  maxDuration?: number;
}

/**
 * A linearizable history from closed-loop clients: each client invokes its
 * next op when the previous one completes or times out. Every op that takes
 * effect gets a linearization point inside its interval, and outputs are
 * computed by running those ops through the register model in point order.
 * Half of the indeterminate ops take effect (possibly after the client gave
 * up), half never do.
 */
export function randomConcurrentHistory(options: ConcurrentHistoryOptions): Operation[] {
  const random = seededRandom(options.seed);
  const indeterminateRate = options.indeterminateRate ?? 0.02;
  const maxDuration = options.maxDuration ?? 10;
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

  interface Planned {
    op: Operation;
    /** Linearization point, or null if the op never takes effect. */
    point: number | null;
  }
  const planned: Planned[] = [];
  const clock = Array.from({ length: options.clients }, () => random() * maxDuration);
  for (let n = 0; n < options.totalOps; n++) {
    const client = n % options.clients;
    const invoke = clock[client]!;
    const duration = random() * maxDuration;
    const indeterminate = random() < indeterminateRate;
    const takesEffect = !indeterminate || random() < 0.5;
    // An indeterminate op can take effect long after its client timed out.
    const point = takesEffect ? invoke + random() * duration * (indeterminate ? 3 : 1) : null;
    const roll = random();
    const kind = roll < 0.45 ? 'read' : roll < 0.8 ? 'write' : 'cas';
    const op: Operation = {
      id: n,
      client,
      key: `key${Math.floor(random() * options.keys)}`,
      // Writes and cas inputs are finalised below, once the register's value
      // at the linearization point is known.
      input: { kind: 'read' },
      invoke,
      complete: indeterminate ? null : invoke + duration,
      output: null,
    };
    if (kind !== 'read') op.input = { kind: 'write', value: `c${client}-${n}` };
    if (kind === 'cas') op.input = { kind: 'cas', expected: null, value: `c${client}-${n}` };
    planned.push({ op, point });
    clock[client] = invoke + duration + random() * maxDuration * 0.2;
  }

  const registers = new Map<string, string | null>();
  const writtenSoFar = new Map<string, (string | null)[]>();
  const effective = planned.filter((p) => p.point !== null).sort((a, b) => a.point! - b.point!);
  for (const { op } of effective) {
    const current = registers.get(op.key) ?? null;
    const keyValues = writtenSoFar.get(op.key) ?? [null];
    writtenSoFar.set(op.key, keyValues);
    const { input } = op;
    let output: OpOutput;
    if (input.kind === 'read') {
      output = { kind: 'read', value: current };
    } else if (input.kind === 'write') {
      // A few writes become deletes, to exercise absent values.
      if (random() < 0.1) input.value = null;
      registers.set(op.key, input.value);
      keyValues.push(input.value);
      output = { kind: 'write' };
    } else {
      // Mostly expect the current value (realistic read-modify-write); else a stale one.
      input.expected = random() < 0.6 ? current : pick(keyValues);
      const ok = input.expected === current;
      if (ok) {
        registers.set(op.key, input.value);
        keyValues.push(input.value);
      }
      output = { kind: 'cas', ok };
    }
    if (op.complete !== null) op.output = output;
  }
  for (const { op, point } of planned) {
    if (point === null && op.input.kind === 'cas') op.input.expected = pick(writtenSoFar.get(op.key) ?? [null]);
  }
  return planned.map((p) => p.op);
}

/**
 * Reference checker: tries every order consistent with real time, with no
 * pruning. Exponential; only for tiny histories. Written independently of the
 * real checker (string states, its own model) so the two can be compared.
 */
export function bruteForceLinearizable(ops: readonly Operation[]): boolean {
  const keys = new Set(ops.map((op) => op.key));
  return [...keys].every((key) =>
    bruteForceKey(ops.filter((op) => op.key === key && !(op.complete === null && op.input.kind === 'read'))),
  );
}

const IMPOSSIBLE = Symbol('impossible');

function applyModel(op: Operation, current: string | null): string | null | typeof IMPOSSIBLE {
  const { input, output } = op;
  switch (input.kind) {
    case 'read':
      return output?.kind === 'read' && output.value === current ? current : IMPOSSIBLE;
    case 'write':
      return input.value;
    case 'cas': {
      const succeeds = current === input.expected;
      if (output?.kind === 'cas' && output.ok !== succeeds) return IMPOSSIBLE;
      return succeeds ? input.value : current;
    }
  }
}

function bruteForceKey(ops: readonly Operation[]): boolean {
  const done = ops.map(() => false);
  const search = (current: string | null): boolean => {
    if (ops.every((op, i) => done[i] || op.complete === null)) return true;
    for (let i = 0; i < ops.length; i++) {
      if (done[i]) continue;
      const candidate = ops[i]!;
      const mustWait = ops.some(
        (other, j) => !done[j] && j !== i && other.complete !== null && other.complete < candidate.invoke,
      );
      if (mustWait) continue;
      const next = applyModel(candidate, current);
      if (next === IMPOSSIBLE) continue;
      done[i] = true;
      if (search(next)) return true;
      done[i] = false;
    }
    return false;
  };
  return search(null);
}
