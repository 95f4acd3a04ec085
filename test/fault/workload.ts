// Concurrent clients over real HTTP against a real cluster, recording every
// operation's invocation and completion for the linearizability checker:
// strong reads, writes, compare-and-set (If-Match / If-None-Match) and
// deletes on a small set of keys, each sent to a node chosen at random.
//
// API.md: a write answered 503 or 504, or whose connection broke, is
// indeterminate; every other answer is definite. A read that fails has no
// observed result and is recorded as indeterminate (the checker drops it).

import diagnostics from 'node:diagnostics_channel';
import { HistoryRecorder } from '../lincheck/index.js';
import type { OpInput, OpOutput, Operation } from '../lincheck/index.js';

export interface Mix {
  read: number;
  write: number;
  cas: number;
  delete: number;
}

export interface WorkloadOptions {
  /** Base URLs of the nodes a client may ask. */
  nodes: () => string[];
  clients: number;
  keys: number;
  mix: Mix;
  /** A client gives up on a request after this long: the operation is then indeterminate. */
  requestTimeoutMs: number;
  /** Seeded choice (0 ≤ x < 1), so that a schedule's client mix replays. */
  random: () => number;
}

export interface WorkloadStats {
  ops: number;
  ok: number;
  indeterminate: number;
  unavailable: number;
}

/** A write (PUT or DELETE) a client has sent to one node, from its invocation until it is answered or given up. */
export interface WriteInFlight {
  /** Its operation id in the history. */
  op: number;
  /** The node's origin (http://host:port). */
  node: string;
  method: 'PUT' | 'DELETE';
  path: string;
  /** Its request went out in full (undici's request:bodySent): the node has it, or has it on the way. */
  sent: boolean;
  /** null while outstanding; then whether an answer came back (false: the connection broke or the client gave up). */
  answered: boolean | null;
}

interface WriteTrigger {
  node: string;
  inFlight: number;
  fire: (writes: WriteInFlight[]) => void;
}

/** Published by undici (Node's fetch) once a request's headers and body are written to its socket. */
const BODY_SENT = 'undici:request:bodySent';

/** A harness bug or an answer the contract does not allow: the run fails with it. */
export class UnexpectedAnswer extends Error {}

const CACHE = 'faults';

export function keyName(i: number): string {
  return `k${i}`;
}

export function itemPath(key: string): string {
  return `/v1/caches/${CACHE}/items/${key}`;
}

/** What the clients need before they start: their cache. */
export async function prepare(node: string): Promise<void> {
  // Creating a cache is idempotent, so a 503 (a leader still being elected on a loaded machine) is asked again.
  for (let attempt = 1; ; attempt++) {
    const r = await fetch(`${node}/v1/caches/${CACHE}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ defaultTtlMs: 0, maxBytes: null, eviction: 'none' }), signal: AbortSignal.timeout(10_000) });
    if (r.status === 200 || r.status === 201) return;
    const body = await r.text();
    if (r.status !== 503 || attempt >= 20) throw new UnexpectedAnswer(`creating cache ${CACHE}: ${r.status} ${body} (attempt ${attempt})`);
  }
}

export class Workload {
  readonly history = new HistoryRecorder();
  readonly stats: WorkloadStats = { ops: 0, ok: 0, indeterminate: 0, unavailable: 0 };
  /** Every version seen for a value: values are unique, so a value names one write. */
  private readonly versionOf = new Map<string, string>();
  /** Values seen per key, newest last: where compare-and-set picks what it expects. */
  private readonly seen = new Map<string, string[]>();
  private running = false;
  private loops: Promise<void>[] = [];
  private failure: Error | null = null;
  private readonly t0 = performance.now();
  /** Writes not answered yet, oldest first. */
  private readonly writesInFlight = new Set<WriteInFlight>();
  private readonly triggers = new Set<WriteTrigger>();
  private readonly onBodySent = (message: unknown) => this.bodySent(message as { request?: { origin?: unknown; method?: string; path?: string } });

  constructor(private readonly o: WorkloadOptions) {}

  start(): void {
    this.running = true;
    diagnostics.subscribe(BODY_SENT, this.onBodySent);
    this.loops = Array.from({ length: this.o.clients }, (_, c) => this.client(c));
  }

  /** Stops the clients and waits for their requests in flight (each ends by its timeout at the latest). */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    diagnostics.unsubscribe(BODY_SENT, this.onBodySent);
    if (this.failure) throw this.failure;
  }

  /**
   * Calls `fire` synchronously — before any other I/O — the moment a write's
   * request has gone out in full to `node` (a base URL) while at least
   * `inFlight` sent writes to it are unanswered; `fire` gets those writes,
   * which keep being updated (`answered`) afterwards. Returns a cancel.
   */
  onWritesInFlight(node: string, inFlight: number, fire: (writes: WriteInFlight[]) => void): () => void {
    const t: WriteTrigger = { node: new URL(node).origin, inFlight, fire };
    this.triggers.add(t);
    return () => this.triggers.delete(t);
  }

  /** The writes to `node` (a base URL) not answered yet. */
  writesTo(node: string): WriteInFlight[] {
    const origin = new URL(node).origin;
    return [...this.writesInFlight].filter((w) => w.node === origin);
  }

  private bodySent(m: { request?: { origin?: unknown; method?: string; path?: string } }): void {
    const r = m.request;
    if (!r || (r.method !== 'PUT' && r.method !== 'DELETE')) return;
    const origin = String(r.origin);
    // Writes to the same node and key are alike here: mark the oldest not yet marked.
    const w = [...this.writesInFlight].find((x) => !x.sent && x.node === origin && x.method === r.method && x.path === r.path);
    if (!w) return;
    w.sent = true;
    for (const t of this.triggers) {
      if (t.node !== origin) continue;
      const sent = this.writesTo(origin).filter((x) => x.sent);
      if (sent.length < t.inFlight) continue;
      this.triggers.delete(t);
      t.fire(sent);
    }
  }

  operations(): Operation[] {
    return this.history.operations();
  }

  /** A strong read of every key, recorded as client `client`: after healing, what the cluster holds. */
  async finalReads(node: () => string, client: number): Promise<void> {
    for (let k = 0; k < this.o.keys; k++) {
      for (let attempt = 0; ; attempt++) {
        const ok = await this.run(client, node(), keyName(k), { kind: 'read' });
        if (ok) break;
        if (attempt >= 20) throw new UnexpectedAnswer(`the final read of ${keyName(k)} failed 20 times`);
      }
    }
  }

  private now(): number {
    return performance.now() - this.t0;
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.o.random() * xs.length)]!;
  }

  private async client(c: number): Promise<void> {
    let seq = 0;
    try {
      while (this.running) {
        const key = keyName(Math.floor(this.o.random() * this.o.keys));
        const node = this.pick(this.o.nodes());
        await this.run(c, node, key, this.nextInput(key, `${c}.${seq++}`));
      }
    } catch (e) {
      this.failure ??= e as Error;
      this.running = false;
    }
  }

  private nextInput(key: string, value: string): OpInput {
    const { read, write, cas } = this.o.mix;
    const total = read + write + cas + this.o.mix.delete;
    const x = this.o.random() * total;
    if (x < read) return { kind: 'read' };
    if (x < read + write) return { kind: 'write', value };
    if (x < read + write + cas) {
      const known = this.seen.get(key) ?? [];
      // Mostly the newest value seen (a likely success), sometimes an older one or absent (a likely 412).
      const r = this.o.random();
      const expected = known.length === 0 || r < 0.1 ? null : r < 0.7 ? known[known.length - 1]! : this.pick(known);
      return { kind: 'cas', expected, value };
    }
    return { kind: 'write', value: null };
  }

  private learn(key: string, value: string, etag: string | null): void {
    if (etag === null) return;
    const version = etag.replace(/"/g, '');
    if (!this.versionOf.has(value)) {
      const list = this.seen.get(key) ?? [];
      list.push(value);
      if (list.length > 8) list.shift();
      this.seen.set(key, list);
    }
    this.versionOf.set(value, version);
  }

  /** Runs one operation and records it; false if it had no definite outcome. */
  async run(client: number, node: string, key: string, input: OpInput): Promise<boolean> {
    const id = this.history.invoke(client, key, input, this.now());
    this.stats.ops++;
    const write: WriteInFlight | null =
      input.kind === 'read' ? null : { op: id, node: new URL(node).origin, method: input.value === null ? 'DELETE' : 'PUT', path: itemPath(key), sent: false, answered: null };
    if (write) this.writesInFlight.add(write);
    let out: OpOutput | null;
    try {
      out = await this.send(node, key, input);
      if (write) write.answered = true;
    } catch (e) {
      if (write) write.answered = e instanceof UnexpectedAnswer;
      if (e instanceof UnexpectedAnswer) throw e;
      out = null; // timed out or the connection broke
    } finally {
      if (write) this.writesInFlight.delete(write);
    }
    if (out === null) {
      this.history.indeterminate(id);
      this.stats.indeterminate++;
      return false;
    }
    this.history.complete(id, out, this.now());
    this.stats.ok++;
    return true;
  }

  /** The definite outcome of `input`, or null when the answer leaves it open. */
  private async send(node: string, key: string, input: OpInput): Promise<OpOutput | null> {
    const url = `${node}${itemPath(key)}`;
    const signal = AbortSignal.timeout(this.o.requestTimeoutMs);
    if (input.kind === 'read') {
      const r = await fetch(url, { signal });
      const body = await r.text();
      if (r.status === 200) {
        this.learn(key, body, r.headers.get('etag'));
        return { kind: 'read', value: body };
      }
      if (r.status === 404) return { kind: 'read', value: null };
      return this.undecided(r.status, body, 'read');
    }
    if (input.kind === 'write' && input.value === null) {
      const r = await fetch(url, { method: 'DELETE', signal });
      const body = await r.text();
      // 404: there was nothing to delete — a delete that found the key absent, also a definite "now absent".
      if (r.status === 204 || r.status === 404) return { kind: 'write' };
      return this.undecided(r.status, body, 'delete');
    }
    if (input.kind === 'write') {
      const r = await fetch(url, { method: 'PUT', body: input.value!, signal });
      const body = await r.text();
      if (r.status === 200 || r.status === 201) {
        this.learn(key, input.value!, r.headers.get('etag'));
        return { kind: 'write' };
      }
      return this.undecided(r.status, body, 'write');
    }
    if (input.value === null) throw new UnexpectedAnswer('a compare-and-set that deletes is not generated');
    let condition: Record<string, string>;
    if (input.expected === null) condition = { 'if-none-match': '*' };
    else {
      const version = this.versionOf.get(input.expected);
      if (version === undefined) throw new UnexpectedAnswer(`no version known for value ${input.expected}`);
      condition = { 'if-match': `"${version}"` };
    }
    const r = await fetch(url, { method: 'PUT', body: input.value, headers: condition, signal });
    const body = await r.text();
    if (r.status === 200 || r.status === 201) {
      this.learn(key, input.value, r.headers.get('etag'));
      return { kind: 'cas', ok: true };
    }
    if (r.status === 412) return { kind: 'cas', ok: false };
    return this.undecided(r.status, body, 'compare-and-set');
  }

  /** 503 and 504 leave the outcome open (API.md); any other answer is not in the contract for these requests. */
  private undecided(status: number, body: string, what: string): null {
    if (status === 503 || status === 504) {
      this.stats.unavailable++;
      return null;
    }
    throw new UnexpectedAnswer(`${what} answered ${status}: ${body}`);
  }
}
