// Embedded mode's side of the Backend seam: requests go straight to a node
// in the same process (its CacheService), with no HTTP in between. It keeps
// the HTTP API's promises so that code cannot tell the two apart: the same
// input checks, the same error classes and statuses, the same retry rules,
// and values that are the application's own — the node's stored bytes are
// never handed out, nor the application's bytes taken in, without a copy.

import { checkName } from '../../api/names.js';
import { DEFAULT_MAX_VALUE_BYTES } from '../../api/server.js';
import { CommandError, MAX_CONTENT_TYPE_BYTES, MAX_LOCK_HANDLE_BYTES, MAX_TAGS_PER_ITEM } from '../cache/index.js';
import { VeloError } from '../node/errors.js';
import { NotApplied } from '../node/group.js';
import type { CacheService, ItemRef, ItemView } from '../node/service.js';
import type {
  Backend,
  CacheSettings,
  CacheStats,
  ChangeEvent,
  ClusterView,
  Consistency,
  EventEnvelope,
  EventFilter,
  ItemAddress,
  PutCommand,
  StoredItem,
} from './backend.js';
import { IndeterminateError, NotFoundError, VeloClientError, errorFor } from './errors.js';

export interface LocalBackendOptions {
  /** Per operation, retries included: the client's `timeoutMs` (default 10 000). */
  timeoutMs?: number;
  /** Values larger than this are refused, as the node's HTTP API refuses them (`--max-value-bytes`; default 1 MiB). */
  maxValueBytes?: number;
}

/**
 * How an operation may be retried when the node could not answer in time:
 * - read: it changes nothing, so always;
 * - upsert: writing the same thing again is harmless (an unconditional put,
 *   a cache's settings), so always — but if an attempt may have been applied
 *   and none succeeded, the outcome is unknown;
 * - conditional: a second attempt could answer for the first one's effect
 *   (412 after its own success, 423 after its own lock), so only when the
 *   node says the attempt certainly did not run (NotApplied).
 */
type RetryRule = 'read' | 'upsert' | 'conditional';

const DEFAULT_TIMEOUT_MS = 10_000;
/** Between attempts: the node has already retried for its own request deadline, so this only paces. */
const FIRST_PAUSE_MS = 50;
const MAX_PAUSE_MS = 1000;

const SETTING_NAMES = ['defaultTtlMs', 'maxBytes', 'eviction'];

/** The client error for whatever the node threw, with the status its HTTP API would answer. */
export function clientErrorOf(e: unknown): VeloClientError {
  if (e instanceof VeloClientError) return e;
  // The API answers a time-out as 503 unavailable (API.md "Conventions").
  if (e instanceof VeloError) return errorFor(e.code === 'timeout' ? 'unavailable' : e.code, e.message, e.status);
  if (e instanceof CommandError) return errorFor('bad_request', e.message, 400);
  return errorFor('internal', e instanceof Error ? e.message : String(e), 500);
}

function badRequest(message: string): VeloClientError {
  return errorFor('bad_request', message, 400);
}

function isTransient(e: unknown): e is VeloError {
  return e instanceof VeloError && (e.code === 'unavailable' || e.code === 'timeout');
}

/** A cache, region, key or tag: the HTTP API's rule (1–250 bytes of UTF-8), plus what a URL cannot carry. */
function name(what: string, value: unknown): string {
  if (typeof value !== 'string') throw badRequest(`${what} must be a string, got ${typeof value}`);
  // HTTP decodes a lone surrogate to U+FFFD before the node sees it; the codec would refuse it outright.
  if (/\p{Cs}/u.test(value)) throw badRequest(`${what} is not well-formed Unicode (lone surrogate)`);
  try {
    return checkName(what, value);
  } catch (e) {
    throw clientErrorOf(e);
  }
}

function positiveInt(what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw badRequest(`${what} must be a positive integer, got ${JSON.stringify(value) ?? String(value)}`);
  return value;
}

function lockHandle(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw badRequest('a lock handle must be a non-empty string');
  if (Buffer.byteLength(value, 'utf8') > MAX_LOCK_HANDLE_BYTES) throw badRequest(`a lock handle is at most ${MAX_LOCK_HANDLE_BYTES} bytes`);
  return value;
}

function refOf(a: ItemAddress): ItemRef {
  if (typeof a !== 'object' || a === null) throw badRequest('an item address must be an object');
  return { cache: name('cache', a.cache), region: a.region === null ? null : name('region', a.region), key: name('key', a.key) };
}

function tagsOf(tags: unknown, region: string | null): string[] {
  if (!Array.isArray(tags)) throw badRequest('tags must be an array of names');
  if (tags.length > MAX_TAGS_PER_ITEM) throw badRequest(`${tags.length} tags; the limit is ${MAX_TAGS_PER_ITEM} per item`);
  if (tags.length > 0 && region === null) throw badRequest('tags are for region items only');
  return tags.map((t) => name('tag', t));
}

function settingsOf(s: unknown): Partial<CacheSettings> {
  if (typeof s !== 'object' || s === null || Array.isArray(s)) throw badRequest('settings must be an object');
  const out: Partial<CacheSettings> = {};
  for (const [k, v] of Object.entries(s)) {
    if (v === undefined) continue;
    if (!SETTING_NAMES.includes(k)) throw badRequest(`unknown cache setting "${k}" (there are ${SETTING_NAMES.join(', ')})`);
    if (k === 'defaultTtlMs') {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw badRequest(`defaultTtlMs must be a non-negative integer (0: no expiry), got ${JSON.stringify(v)}`);
      out.defaultTtlMs = v;
    } else if (k === 'maxBytes') {
      if (v !== null && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)) throw badRequest(`maxBytes must be a positive integer or null, got ${JSON.stringify(v)}`);
      out.maxBytes = v;
    } else {
      if (v !== 'lru' && v !== 'none') throw badRequest(`eviction must be "lru" or "none", got ${JSON.stringify(v)}`);
      out.eviction = v;
    }
  }
  return out;
}

/** The application's copy of a stored item: the node's bytes stay the node's. */
function copyItem(v: ItemView): StoredItem {
  return { value: Buffer.from(v.value), contentType: v.contentType, version: v.version, expiresAt: v.expiresAt, tags: [...v.tags] };
}

function copyEvent(data: object): ChangeEvent {
  const d = data as ChangeEvent;
  return { type: d.type, cache: d.cache, region: d.region, key: d.key, version: d.version };
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class LocalBackend implements Backend {
  private readonly timeoutMs: number;
  private readonly maxValueBytes: number;
  private closed = false;
  /** Halts every open event stream (close()). */
  private readonly streams = new Set<() => void>();

  constructor(
    private readonly node: CacheService,
    opts: LocalBackendOptions = {},
  ) {
    if (typeof node !== 'object' || node === null || typeof node.put !== 'function') throw new TypeError('LocalBackend needs the node to serve (a CacheService)');
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxValueBytes = opts.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    if (!Number.isSafeInteger(this.timeoutMs) || this.timeoutMs < 1) throw new TypeError(`timeoutMs must be a positive integer, got ${String(opts.timeoutMs)}`);
    if (!Number.isSafeInteger(this.maxValueBytes) || this.maxValueBytes < 1) throw new TypeError(`maxValueBytes must be a positive integer, got ${String(opts.maxValueBytes)}`);
  }

  /** Runs `op` against the node under the operation's deadline and retry rule, and types its failure. */
  private async run<T>(what: string, rule: RetryRule, op: () => Promise<T>): Promise<T> {
    if (this.closed) throw errorFor('unavailable', 'the embedded client is closed', null);
    const deadline = Date.now() + this.timeoutMs;
    let mayHaveApplied = false;
    for (let attempt = 0; ; attempt++) {
      try {
        return await op();
      } catch (e) {
        if (!isTransient(e)) throw clientErrorOf(e);
        const notApplied = e instanceof NotApplied;
        if (rule === 'conditional' && !notApplied) {
          throw new IndeterminateError(`${what}: the node could not confirm the outcome (${e.message}); it may or may not have been applied — read the item to find out`, clientErrorOf(e));
        }
        if (rule === 'upsert' && !notApplied) mayHaveApplied = true;
        const wait = Math.min(MAX_PAUSE_MS, FIRST_PAUSE_MS * 2 ** attempt);
        if (this.closed || Date.now() + wait >= deadline) {
          if (mayHaveApplied) {
            throw new IndeterminateError(`${what}: no attempt was confirmed within ${this.timeoutMs} ms and one may have been applied (${e.message})`, clientErrorOf(e));
          }
          throw clientErrorOf(e);
        }
        await pause(wait);
      }
    }
  }

  async get(ref: ItemAddress, consistency: Consistency): Promise<{ item: StoredItem | null; stale: boolean | null }> {
    const r = refOf(ref);
    if (consistency !== 'strong' && consistency !== 'local') throw badRequest(`consistency must be strong or local, got "${String(consistency)}"`);
    const out = await this.run('get', 'read', () => this.node.get(r, consistency));
    return { item: out.item === null ? null : copyItem(out.item), stale: out.stale };
  }

  async put(cmd: PutCommand): Promise<{ version: string; created: boolean }> {
    const r = refOf(cmd);
    if (!(cmd.value instanceof Uint8Array)) throw badRequest('a value must be bytes (a Uint8Array)');
    if (cmd.value.byteLength > this.maxValueBytes) {
      throw errorFor('value_too_large', `the value is ${cmd.value.byteLength} bytes; this node accepts at most ${this.maxValueBytes} (--max-value-bytes)`, 413);
    }
    if (typeof cmd.contentType !== 'string' || cmd.contentType.length === 0 || Buffer.byteLength(cmd.contentType, 'utf8') > MAX_CONTENT_TYPE_BYTES) {
      throw badRequest(`a content type must be 1–${MAX_CONTENT_TYPE_BYTES} bytes`);
    }
    const tags = tagsOf(cmd.tags, r.region);
    const ttlMs = cmd.ttlMs === null ? null : positiveInt('ttlMs', cmd.ttlMs);
    if (cmd.ifMatch !== null && typeof cmd.ifMatch !== 'string') throw badRequest('ifMatch must be a version string');
    if (typeof cmd.ifNoneMatch !== 'boolean' || typeof cmd.unlock !== 'boolean') throw badRequest('ifNoneMatch and unlock must be booleans');
    if (cmd.ifNoneMatch && cmd.ifMatch !== null) throw badRequest('a put is either create-only (ifNoneMatch) or compare-and-set (ifMatch), not both');
    const handle = cmd.lockHandle === null ? null : lockHandle(cmd.lockHandle);
    // Taken now: the application may reuse its buffer as soon as put() returns its promise.
    const value = new Uint8Array(cmd.value);
    const req = { ...r, value, contentType: cmd.contentType, ttlMs, tags, ifMatch: cmd.ifMatch, ifNoneMatch: cmd.ifNoneMatch, lockHandle: handle, unlock: cmd.unlock };
    // A write under a lock depends on the lock's state as much as a compare-and-set on the version.
    const rule: RetryRule = req.ifMatch === null && !req.ifNoneMatch && handle === null ? 'upsert' : 'conditional';
    const what = req.ifNoneMatch ? 'add' : req.ifMatch !== null ? 'compare-and-set' : req.unlock ? 'put-and-unlock' : handle !== null ? 'put under a lock' : 'put';
    return this.run(what, rule, () => this.node.put(req));
  }

  async delete(ref: ItemAddress, ifMatch: string | null, handle: string | null): Promise<boolean> {
    const r = refOf(ref);
    if (ifMatch !== null && typeof ifMatch !== 'string') throw badRequest('ifMatch must be a version string');
    const h = handle === null ? null : lockHandle(handle);
    try {
      await this.run('delete', 'conditional', () => this.node.delete(r, ifMatch, h));
      return true;
    } catch (e) {
      // The API's 404 for a missing key; a missing cache stays an error.
      if (e instanceof NotFoundError && e.code === 'not_found') return false;
      throw e;
    }
  }

  async touch(ref: ItemAddress, ttlMs: number): Promise<{ version: string; expiresAt: number | null }> {
    const r = refOf(ref);
    const ttl = positiveInt('ttlMs', ttlMs);
    return this.run('touch', 'conditional', () => this.node.touch(r, ttl));
  }

  async lock(ref: ItemAddress, timeoutMs: number): Promise<{ item: StoredItem; handle: string; lockExpiresAt: number | null }> {
    const r = refOf(ref);
    const timeout = positiveInt('timeoutMs', timeoutMs);
    const out = await this.run('lock', 'conditional', () => this.node.lock(r, timeout));
    return { item: copyItem(out.item), handle: out.handle, lockExpiresAt: out.lockExpiresAt };
  }

  async unlock(ref: ItemAddress, handle: string): Promise<void> {
    const r = refOf(ref);
    const h = lockHandle(handle);
    await this.run('unlock', 'conditional', () => this.node.unlock(r, h));
  }

  async listRegion(cache: string, region: string, tags: string[], match: 'any' | 'all'): Promise<(StoredItem & { key: string })[]> {
    const c = name('cache', cache);
    const rg = name('region', region);
    if (!Array.isArray(tags)) throw badRequest('tags must be an array of names');
    const ts = tags.map((t) => name('tag', t));
    if (match !== 'any' && match !== 'all') throw badRequest(`match must be any or all, got "${String(match)}"`);
    const items = await this.run('list region', 'read', () => this.node.listRegion(c, rg, ts, match));
    return items.map((i) => ({ key: i.key, ...copyItem(i) }));
  }

  async clearRegion(cache: string, region: string): Promise<{ removed: number }> {
    const c = name('cache', cache);
    const rg = name('region', region);
    return this.run('clear region', 'conditional', () => this.node.clearRegion(c, rg));
  }

  /**
   * The node pushes events into a sink as its replicas apply them; they wait
   * here, in order, until the application pulls them. In-process there is
   * no connection to lose: the stream ends only by `signal`, by close(), or
   * by the node saying the history asked for is gone.
   */
  async *events(filter: EventFilter, signal: AbortSignal, onOpen?: () => void): AsyncIterable<EventEnvelope> {
    const f = {
      cache: name('cache', filter.cache),
      region: filter.region === null ? null : name('region', filter.region),
      key: filter.key === null ? null : name('key', filter.key),
      lastEventId: filter.lastEventId,
    };
    if (f.lastEventId !== null && typeof f.lastEventId !== 'string') throw badRequest('lastEventId must be an event id string');
    if (signal.aborted) return;
    let queue: EventEnvelope[] = [];
    // Objects, not variables: the sink and the abort listener change them from outside this function's control flow.
    const state: { failure: VeloClientError | null; halted: boolean; wake: (() => void) | null } = { failure: null, halted: false, wake: null };
    const poke = () => {
      const w = state.wake;
      state.wake = null;
      w?.();
    };
    const stop = await this.run('open change events', 'read', () =>
      this.node.openEvents(f, {
        event(id, data) {
          if (state.halted) return;
          queue.push({ id, event: copyEvent(data) });
          poke();
        },
        error(code, message) {
          state.failure = errorFor(code, message, null);
          poke();
        },
      }),
    );
    // The node's side stops at once, even while the consumer holds the
    // generator suspended at a yield (where no code of it can run).
    const halt = () => {
      if (!state.halted) {
        state.halted = true;
        queue = [];
        stop();
      }
      poke();
    };
    this.streams.add(halt);
    signal.addEventListener('abort', halt);
    try {
      if (signal.aborted || this.closed) return;
      // Every event applied from here on is in the queue: what a near cache needs to trust later reads.
      onOpen?.();
      for (;;) {
        if (queue.length > 0) {
          const batch = queue;
          queue = [];
          for (const e of batch) {
            if (state.halted) return;
            yield e;
          }
          continue;
        }
        if (state.failure !== null) throw state.failure;
        if (state.halted) return;
        await new Promise<void>((resolve) => (state.wake = () => resolve()));
      }
    } finally {
      halt();
      this.streams.delete(halt);
      signal.removeEventListener('abort', halt);
    }
  }

  async listCaches(): Promise<{ name: string; settings: CacheSettings }[]> {
    const caches = await this.run('list caches', 'read', () => this.node.listCaches());
    return caches.map((c) => ({ name: c.name, settings: { ...c.settings } }));
  }

  async putCache(cacheName: string, settings: Partial<CacheSettings>): Promise<{ created: boolean; settings: CacheSettings }> {
    const n = name('cache', cacheName);
    const s = settingsOf(settings);
    const out = await this.run('create or change a cache', 'upsert', () => this.node.putCache(n, s));
    return { created: out.created, settings: { ...out.settings } };
  }

  async dropCache(cacheName: string): Promise<void> {
    const n = name('cache', cacheName);
    await this.run('drop a cache', 'conditional', () => this.node.dropCache(n));
  }

  async stats(cache: string): Promise<CacheStats> {
    const c = name('cache', cache);
    return { ...(await this.run('cache statistics', 'read', () => this.node.stats(c))) };
  }

  async cluster(): Promise<ClusterView> {
    if (this.closed) throw errorFor('unavailable', 'the embedded client is closed', null);
    return structuredClone(await this.node.cluster());
  }

  /** Ends the event streams and refuses further requests; the node itself keeps running (its owner stops it). */
  async close(): Promise<void> {
    this.closed = true;
    for (const halt of [...this.streams]) halt();
  }
}
