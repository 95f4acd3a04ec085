/**
 * Client-observed histories of a key-value register store, as consumed by the
 * linearizability checker. Each key is an independent register holding
 * `string | null` (null = absent), initially null.
 */

export type OpInput =
  | { kind: 'read' }
  /** `value: null` deletes the key. */
  | { kind: 'write'; value: string | null }
  /**
   * Compare-and-set against the current value. Written values are unique in a
   * history, so a value identifies a version and `expected` pins one.
   */
  | { kind: 'cas'; expected: string | null; value: string | null };

export type OpOutput =
  | { kind: 'read'; value: string | null }
  | { kind: 'write' }
  | { kind: 'cas'; ok: boolean };

export type OpKind = OpInput['kind'];

export interface Operation {
  /** Unique in the history. */
  id: number;
  client: number;
  key: string;
  input: OpInput;
  /** Time of invocation (any monotonic clock). */
  invoke: number;
  /**
   * Time of completion; null = indeterminate (timed out, connection broke):
   * the operation may or may not have taken effect, at any time after `invoke`.
   */
  complete: number | null;
  /** Null iff `complete` is null. */
  output: OpOutput | null;
}

/**
 * Records a history as clients run. Ids are allocated densely from 0 in
 * invocation order.
 *
 * An operation that is neither completed nor marked indeterminate when
 * `operations()` is called is reported as indeterminate: the run ended while it
 * was in flight, so its effect is unknown.
 */
export class HistoryRecorder {
  private readonly recorded: Operation[] = [];
  /** Ids the client gave up on; a late completion for them is a harness bug. */
  private readonly abandoned = new Set<number>();

  invoke(client: number, key: string, input: OpInput, time: number): number {
    const id = this.recorded.length;
    this.recorded.push({ id, client, key, input, invoke: time, complete: null, output: null });
    return id;
  }

  complete(id: number, output: OpOutput, time: number): void {
    const op = this.open(id, 'complete');
    if (output.kind !== op.input.kind) {
      throw new Error(`op #${id}: ${output.kind} output for a ${op.input.kind} operation`);
    }
    if (time < op.invoke) {
      throw new Error(`op #${id}: completes at ${time}, before its invocation at ${op.invoke}`);
    }
    op.complete = time;
    op.output = output;
  }

  /** The client gave up waiting: the op stays open (return event at infinity). */
  indeterminate(id: number): void {
    this.open(id, 'mark indeterminate');
    this.abandoned.add(id);
  }

  /** A snapshot; later recording does not mutate the returned operations. */
  operations(): Operation[] {
    return this.recorded.map((op) => ({ ...op }));
  }

  private open(id: number, action: string): Operation {
    const op = this.recorded[id];
    if (op === undefined) throw new Error(`cannot ${action} op #${id}: never invoked`);
    if (op.complete !== null) throw new Error(`cannot ${action} op #${id}: already completed`);
    if (this.abandoned.has(id)) throw new Error(`cannot ${action} op #${id}: already marked indeterminate`);
    return op;
  }
}
