// The replicated state machine of the simulation: a small key-value map.
// Commands carry the client id and request id; the state machine remembers,
// per client, the latest request it applied and its result, so a retried
// command (same ids, proposed again because its fate was unknown) takes effect
// at most once and answers with the first application's result (thesis §6.3).

export type KvCommand =
  | { client: number; request: number; op: 'put'; key: string; value: string }
  | { client: number; request: number; op: 'delete'; key: string }
  | { client: number; request: number; op: 'cas'; key: string; expected: string | null; value: string | null };

export type KvResult =
  | { kind: 'write' }
  | { kind: 'cas'; ok: boolean }
  /** An older request of a client that has moved on: ignored, nobody waits for it. */
  | { kind: 'stale' };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(cmd: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(cmd));
}

export function decodeCommand(data: Uint8Array): KvCommand {
  const v = JSON.parse(decoder.decode(data)) as Partial<KvCommand> & Record<string, unknown>;
  if (typeof v.client !== 'number' || typeof v.request !== 'number' || typeof v.key !== 'string') {
    throw new Error('malformed kv command');
  }
  switch (v.op) {
    case 'put':
      if (typeof v.value !== 'string') throw new Error('malformed kv put');
      return { client: v.client, request: v.request, op: 'put', key: v.key, value: v.value };
    case 'delete':
      return { client: v.client, request: v.request, op: 'delete', key: v.key };
    case 'cas': {
      const expected = v.expected === null || typeof v.expected === 'string' ? v.expected : undefined;
      const value = v.value === null || typeof v.value === 'string' ? v.value : undefined;
      if (expected === undefined || value === undefined) throw new Error('malformed kv cas');
      return { client: v.client, request: v.request, op: 'cas', key: v.key, expected, value };
    }
    default:
      throw new Error(`malformed kv command op ${String(v.op)}`);
  }
}

interface Session {
  request: number;
  result: KvResult;
}

interface KvSnapshotShape {
  data: [string, string][];
  sessions: [number, Session][];
}

export class KvStore {
  private readonly data = new Map<string, string>();
  private readonly sessions = new Map<number, Session>();

  /** Applies one command; pure and deterministic in (state, command). */
  apply(cmd: KvCommand): KvResult {
    const s = this.sessions.get(cmd.client);
    if (s && cmd.request < s.request) return { kind: 'stale' };
    if (s && cmd.request === s.request) return s.result; // a retry: at most once
    let result: KvResult;
    switch (cmd.op) {
      case 'put':
        this.data.set(cmd.key, cmd.value);
        result = { kind: 'write' };
        break;
      case 'delete':
        this.data.delete(cmd.key);
        result = { kind: 'write' };
        break;
      case 'cas': {
        const ok = (this.data.get(cmd.key) ?? null) === cmd.expected;
        if (ok) {
          if (cmd.value === null) this.data.delete(cmd.key);
          else this.data.set(cmd.key, cmd.value);
        }
        result = { kind: 'cas', ok };
        break;
      }
    }
    this.sessions.set(cmd.client, { request: cmd.request, result });
    return result;
  }

  get(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  /** Canonical bytes: the same state always gives the same bytes (keys sorted). */
  snapshot(): Uint8Array {
    return encoder.encode(this.canonical());
  }

  /** The canonical text of the state; equal states have equal text. */
  canonical(): string {
    const shape: KvSnapshotShape = {
      data: [...this.data.entries()].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)),
      sessions: [...this.sessions.entries()].sort((x, y) => x[0] - y[0]),
    };
    return JSON.stringify(shape);
  }

  /** The state in a snapshot's bytes; empty bytes are the empty state (a group's bootstrap snapshot). */
  static restore(bytes: Uint8Array): KvStore {
    const kv = new KvStore();
    if (bytes.length === 0) return kv;
    const shape = JSON.parse(decoder.decode(bytes)) as KvSnapshotShape;
    for (const [k, v] of shape.data) kv.data.set(k, v);
    for (const [c, s] of shape.sessions) kv.sessions.set(c, s);
    return kv;
  }
}
