// The typed client users call: values in and out through a Serializer, the
// near cache in front of reads, and a Backend behind (HTTP to each
// partition's leader, or a node in this process). A backend decides what is
// safe to retry (backend.ts); this layer validates arguments, so that bad
// input fails here with a clear BadRequestError before anything is sent.
//
// The near cache (off by default) serves reads whose consistency is 'local'.
// A miss is filled from a strong (linearizable) read: a stale replica's
// answer could be older than an event the near cache already processed. A
// write through this client drops the key before it is sent and again once it
// is answered, so a read that raced with it cannot leave the old value behind.
// A region clear is not dropped here: its `clear` event does that.

import { HttpBackend, DEFAULT_TIMEOUT_MS } from './http-backend.js';
import { NearCache } from './near-cache.js';
import type { NearCacheOptions } from './near-cache.js';
import { defaultSerializer } from './serializer.js';
import type { Serializer } from './serializer.js';
import { BadRequestError } from './errors.js';
import type { Backend, CacheSettings, CacheStats, ClusterView, Consistency, EventEnvelope, ItemAddress, StoredItem } from './backend.js';

export interface VeloClientOptions {
  /** HTTP addresses of any members ("127.0.0.1:7001" or "http://127.0.0.1:7001"); the rest is learnt from /v1/cluster. */
  nodes?: string[];
  /** Instead of nodes: a ready Backend (embedded mode passes a LocalBackend). */
  backend?: Backend;
  /** Default: defaultSerializer (JSON; Buffers as they are). */
  serializer?: Serializer;
  /** Off by default; true: the near cache's defaults. */
  nearCache?: boolean | NearCacheOptions;
  /** Reads' default, 'strong'. */
  consistency?: Consistency;
  /**
   * Per operation, retries included; default 10_000. It bounds the HTTP
   * backend built from `nodes`; a given `backend` keeps its own deadlines.
   */
  timeoutMs?: number;
  /** The token sent to a cluster that demands one (`Authorization: Bearer`); with `nodes` only. */
  token?: string;
  /** PEM of the CA that signed the nodes' HTTPS certificates (`velo certs` makes one); https:// nodes are verified against it. */
  ca?: string | Buffer;
}

export interface Item<T> {
  value: T;
  version: string;
  contentType: string;
  /** Epoch ms; null: no expiry. */
  expiresAt: number | null;
  tags: string[];
}

export interface WriteOptions {
  /** Positive ms; absent: the cache's default TTL. */
  ttlMs?: number;
  /** Region items only. */
  tags?: string[];
  /** Needed to write an item this handle has locked (the lock is kept). */
  lockHandle?: string;
}

/** getMany's requests in flight at most. */
const GET_MANY_CONCURRENCY = 32;
const MAX_NAME_BYTES = 250;

function bad(message: string): BadRequestError {
  return new BadRequestError('bad_request', message, null);
}

/** Names (cache, region, key, tag) are 1–250 bytes of UTF-8 (API.md). */
function checkName(what: string, name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) throw bad(`${what} must be a non-empty string, got ${JSON.stringify(name)}`);
  // A lone surrogate has no UTF-8 form: it cannot travel in a URL.
  if (/\p{Cs}/u.test(name)) throw bad(`${what} is not well-formed Unicode (it has a lone surrogate)`);
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_NAME_BYTES) throw bad(`${what} is ${bytes} bytes of UTF-8; the limit is ${MAX_NAME_BYTES}`);
  return name;
}

function checkPositiveInt(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw bad(`${what} must be a positive integer (ms), got ${String(v)}`);
  return v;
}

function checkToken(what: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0) throw bad(`${what} must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

function checkConsistency(v: unknown): Consistency {
  if (v !== 'strong' && v !== 'local') throw bad(`consistency must be 'strong' or 'local', got ${JSON.stringify(v)}`);
  return v;
}

export class VeloClient {
  /** @internal the transport; CacheClient's way in. */
  readonly backend: Backend;
  /** @internal */
  readonly serializer: Serializer;
  /** @internal null when off. */
  readonly near: NearCache | null;
  /** @internal */
  readonly consistency: Consistency;
  /** Event streams opened through this client, aborted by close(). */
  private readonly streams = new Set<AbortController>();
  private closed: Promise<void> | null = null;

  constructor(opts: VeloClientOptions) {
    if (!opts || typeof opts !== 'object') throw new TypeError('VeloClient needs options: { nodes: [...] } or { backend }');
    if ((opts.nodes === undefined) === (opts.backend === undefined)) throw new TypeError('VeloClient needs exactly one of nodes (HTTP addresses of members) and backend');
    if (opts.timeoutMs !== undefined && (!Number.isSafeInteger(opts.timeoutMs) || opts.timeoutMs <= 0)) throw new TypeError(`timeoutMs must be a positive integer (ms), got ${opts.timeoutMs}`);
    if (opts.consistency !== undefined && opts.consistency !== 'strong' && opts.consistency !== 'local') throw new TypeError(`consistency must be 'strong' or 'local', got ${JSON.stringify(opts.consistency)}`);
    const s = opts.serializer;
    if (s !== undefined && (typeof s?.serialize !== 'function' || typeof s?.deserialize !== 'function')) throw new TypeError('serializer must have serialize(value) and deserialize(bytes, contentType)');
    const nc = opts.nearCache;
    if (nc !== undefined && typeof nc !== 'boolean' && (typeof nc !== 'object' || nc === null)) throw new TypeError('nearCache must be true, false or { maxItems, maxBytes }');
    if (opts.nodes !== undefined && !Array.isArray(opts.nodes)) throw new TypeError('nodes must be an array of HTTP addresses');
    if (opts.token !== undefined && opts.backend !== undefined) throw new TypeError('token goes with nodes: a given backend brings its own credentials');
    if (opts.ca !== undefined && opts.backend !== undefined) throw new TypeError('ca applies to nodes reached over HTTPS: give it with nodes, not with backend');
    this.backend = opts.backend ?? new HttpBackend({ nodes: opts.nodes!, timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, ...(opts.token !== undefined ? { token: opts.token } : {}), ...(opts.ca !== undefined ? { ca: opts.ca } : {}) });
    this.serializer = s ?? defaultSerializer;
    this.consistency = opts.consistency ?? 'strong';
    this.near = nc === undefined || nc === false ? null : new NearCache(this.backend, nc === true ? {} : nc);
  }

  /** The client of a cache ('default' unless named). */
  cache(name = 'default'): CacheClient {
    return new CacheClient(this, checkName('cache', name), null);
  }

  listCaches(): Promise<{ name: string; settings: CacheSettings }[]> {
    return this.backend.listCaches();
  }

  /** Creates the cache, or changes its settings (PUT /caches/{name}); idempotent. */
  async createCache(name: string, settings: Partial<CacheSettings> = {}): Promise<{ created: boolean; settings: CacheSettings }> {
    if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) throw bad('cache settings must be an object');
    return this.backend.putCache(checkName('cache', name), settings);
  }

  async dropCache(name: string): Promise<void> {
    return this.backend.dropCache(checkName('cache', name));
  }

  cluster(): Promise<ClusterView> {
    return this.backend.cluster();
  }

  /** The near cache's counters; null when it is off. */
  nearCacheStats(): NearCache['stats'] | null {
    return this.near ? { ...this.near.stats } : null;
  }

  /** Ends event streams, the near cache and the backend's connections. Idempotent. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      for (const c of this.streams) c.abort();
      this.streams.clear();
      await this.near?.close();
      await this.backend.close();
    })();
    return this.closed;
  }

  /** @internal */
  openStream(): { signal: AbortSignal; done(): void } {
    const ctrl = new AbortController();
    if (this.closed) ctrl.abort();
    else this.streams.add(ctrl);
    return {
      signal: ctrl.signal,
      done: () => {
        ctrl.abort();
        this.streams.delete(ctrl);
      },
    };
  }
}

export class CacheClient {
  constructor(
    private readonly client: VeloClient,
    readonly name: string,
    readonly regionName: string | null,
  ) {}

  /** The same cache's region `name`: its items live together in one partition, listable by tags and cleared at once. */
  region(name: string): CacheClient {
    if (this.regionName !== null) throw bad(`this is already the client of region "${this.regionName}"; regions do not nest`);
    return new CacheClient(this.client, this.name, checkName('region', name));
  }

  private ref(key: string): ItemAddress {
    return { cache: this.name, region: this.regionName, key: checkName('key', key) };
  }

  private toItem<T>(s: StoredItem): Item<T> {
    return { value: this.client.serializer.deserialize(s.value, s.contentType) as T, version: s.version, contentType: s.contentType, expiresAt: s.expiresAt, tags: [...s.tags] };
  }

  /** The stored item for a read: through the near cache when it is on and the read may be 'local'. */
  private async read(ref: ItemAddress, consistency: Consistency | undefined): Promise<StoredItem | null> {
    const c = consistency === undefined ? this.client.consistency : checkConsistency(consistency);
    const near = this.client.near;
    if (c === 'strong' || near === null) return (await this.client.backend.get(ref, c)).item;
    const hit = near.lookup(ref, Date.now());
    if (hit !== undefined) return hit;
    const token = near.beginFill(ref);
    const { item } = await this.client.backend.get(ref, 'strong');
    near.completeFill(token, item);
    return item;
  }

  /** A change to `ref` through this client: the near cache drops it before the request and again after the answer. */
  private async write<R>(ref: ItemAddress, send: () => Promise<R>): Promise<R> {
    const near = this.client.near;
    if (near === null) return send();
    near.invalidate(ref);
    try {
      return await send();
    } finally {
      near.invalidate(ref);
    }
  }

  private tagsOf(opts: WriteOptions | undefined): string[] {
    const tags = opts?.tags ?? [];
    if (!Array.isArray(tags)) throw bad('tags must be an array of names');
    if (tags.length > 0 && this.regionName === null) throw bad('tags are for region items only: use cache(...).region(name)');
    for (const t of tags) if (checkName('tag', t).includes(',')) throw bad(`tag "${t}" contains a comma`);
    return tags;
  }

  private putCommand(key: string, value: unknown, opts: WriteOptions | undefined) {
    const ref = this.ref(key);
    let serialized: { bytes: Uint8Array; contentType: string };
    try {
      serialized = this.client.serializer.serialize(value);
    } catch (e) {
      throw Object.assign(bad(`cannot store the value of "${key}": ${(e as Error).message}`), { cause: e });
    }
    const { bytes, contentType } = serialized;
    if (!(bytes instanceof Uint8Array) || typeof contentType !== 'string' || contentType === '') throw bad('the serializer must return { bytes: Uint8Array, contentType: string }');
    return {
      ref,
      cmd: {
        ...ref,
        value: bytes,
        contentType,
        ttlMs: opts?.ttlMs === undefined ? null : checkPositiveInt('ttlMs', opts.ttlMs),
        tags: this.tagsOf(opts),
        ifMatch: null as string | null,
        ifNoneMatch: false,
        lockHandle: opts?.lockHandle === undefined ? null : checkToken('lockHandle', opts.lockHandle),
        unlock: false,
      },
    };
  }

  /** The value, or undefined when missing or expired. */
  async get<T = unknown>(key: string, opts?: { consistency?: Consistency }): Promise<T | undefined> {
    const item = await this.read(this.ref(key), opts?.consistency);
    return item === null ? undefined : (this.client.serializer.deserialize(item.value, item.contentType) as T);
  }

  /** The item with its version, content type, expiry and tags; null when missing or expired. */
  async getItem<T = unknown>(key: string, opts?: { consistency?: Consistency }): Promise<Item<T> | null> {
    const item = await this.read(this.ref(key), opts?.consistency);
    return item === null ? null : this.toItem<T>(item);
  }

  /** The values of many keys (missing ones absent), read concurrently, each from its partition's leader. */
  async getMany<T = unknown>(keys: string[], opts?: { consistency?: Consistency }): Promise<Map<string, T>> {
    if (!Array.isArray(keys)) throw bad('getMany needs an array of keys');
    const unique = [...new Set(keys)];
    const refs = unique.map((k) => this.ref(k));
    if (opts?.consistency !== undefined) checkConsistency(opts.consistency);
    const found = new Array<StoredItem | null>(refs.length).fill(null);
    let next = 0;
    const worker = async () => {
      while (next < refs.length) {
        const i = next++;
        found[i] = await this.read(refs[i]!, opts?.consistency);
      }
    };
    await Promise.all(Array.from({ length: Math.min(GET_MANY_CONCURRENCY, refs.length) }, worker));
    const out = new Map<string, T>();
    unique.forEach((k, i) => {
      const item = found[i];
      if (item) out.set(k, this.client.serializer.deserialize(item.value, item.contentType) as T);
    });
    return out;
  }

  /** Upsert (Velocity's Put). */
  async put(key: string, value: unknown, opts?: WriteOptions): Promise<{ version: string; created: boolean }> {
    const { ref, cmd } = this.putCommand(key, value, opts);
    return this.write(ref, () => this.client.backend.put(cmd));
  }

  /** Create only: PreconditionFailedError if the key exists. */
  async add(key: string, value: unknown, opts?: WriteOptions): Promise<{ version: string }> {
    const { ref, cmd } = this.putCommand(key, value, opts);
    const r = await this.write(ref, () => this.client.backend.put({ ...cmd, ifNoneMatch: true }));
    return { version: r.version };
  }

  /**
   * Replaces the item only if its version is still `expectedVersion`:
   * PreconditionFailedError otherwise; IndeterminateError when the outcome
   * could not be learnt (read the item to find out).
   */
  async compareAndSet(key: string, value: unknown, expectedVersion: string, opts?: WriteOptions): Promise<{ version: string }> {
    const { ref, cmd } = this.putCommand(key, value, opts);
    const ifMatch = checkToken('expectedVersion', expectedVersion);
    if (ifMatch.includes('"')) throw bad(`expectedVersion ${JSON.stringify(ifMatch)} is not a version`);
    const r = await this.write(ref, () => this.client.backend.put({ ...cmd, ifMatch }));
    return { version: r.version };
  }

  /** true when it removed the item, false when it was missing. */
  async delete(key: string, opts?: { ifMatch?: string; lockHandle?: string }): Promise<boolean> {
    const ref = this.ref(key);
    const ifMatch = opts?.ifMatch === undefined ? null : checkToken('ifMatch', opts.ifMatch);
    const handle = opts?.lockHandle === undefined ? null : checkToken('lockHandle', opts.lockHandle);
    return this.write(ref, () => this.client.backend.delete(ref, ifMatch, handle));
  }

  /** Resets the item's expiry to `ttlMs` from now (ResetObjectTimeout). */
  async touch(key: string, ttlMs: number): Promise<{ version: string; expiresAt: number | null }> {
    const ref = this.ref(key);
    const ttl = checkPositiveInt('ttlMs', ttlMs);
    return this.write(ref, () => this.client.backend.touch(ref, ttl));
  }

  /** Reads and locks the item for `timeoutMs` (GetAndLock): LockedError if another handle holds it, NotFoundError if missing. */
  async lock<T = unknown>(key: string, timeoutMs: number): Promise<{ item: Item<T>; handle: string }> {
    const ref = this.ref(key);
    const ms = checkPositiveInt('timeoutMs', timeoutMs);
    const r = await this.write(ref, () => this.client.backend.lock(ref, ms));
    return { item: this.toItem<T>(r.item), handle: r.handle };
  }

  /** Releases the lock without writing: LockNotHeldError if `handle` does not hold it. */
  async unlock(key: string, handle: string): Promise<void> {
    const ref = this.ref(key);
    const h = checkToken('handle', handle);
    await this.write(ref, () => this.client.backend.unlock(ref, h));
  }

  /** Writes the item and releases the lock `handle` holds (PutAndUnlock). */
  async putAndUnlock(key: string, value: unknown, handle: string, opts?: Omit<WriteOptions, 'lockHandle'>): Promise<{ version: string; created: boolean }> {
    const { ref, cmd } = this.putCommand(key, value, { ...opts, lockHandle: checkToken('handle', handle) });
    return this.write(ref, () => this.client.backend.put({ ...cmd, unlock: true }));
  }

  private regionOnly(what: string): string {
    if (this.regionName === null) throw bad(`${what} is for regions: use cache(...).region(name)`);
    return this.regionName;
  }

  /** The region's items, all or those with any (default) or all of `tags`. */
  async list<T = unknown>(opts?: { tags?: string[]; match?: 'any' | 'all' }): Promise<(Item<T> & { key: string })[]> {
    const region = this.regionOnly('list');
    const tags = opts?.tags ?? [];
    if (!Array.isArray(tags)) throw bad('tags must be an array of names');
    tags.forEach((t) => checkName('tag', t));
    const match = opts?.match ?? 'any';
    if (match !== 'any' && match !== 'all') throw bad(`match must be 'any' or 'all', got ${JSON.stringify(match)}`);
    const items = await this.client.backend.listRegion(this.name, region, tags, match);
    return items.map((i) => ({ key: i.key, ...this.toItem<T>(i) }));
  }

  /** Removes every item of the region at once. */
  async clear(): Promise<{ removed: number }> {
    return this.client.backend.clearRegion(this.name, this.regionOnly('clear'));
  }

  /**
   * The cache's (or region's, or one key's) change events, in commit order
   * within a partition, until close(). With `lastEventId` it resumes exactly
   * after that event; it ends with HistoryLostError when it cannot go on
   * without a gap.
   */
  events(opts?: { key?: string; lastEventId?: string }): AsyncIterable<EventEnvelope> & { close(): void } {
    const key = opts?.key === undefined ? null : checkName('key', opts.key);
    const lastEventId = opts?.lastEventId === undefined ? null : checkToken('lastEventId', opts.lastEventId);
    const stream = this.client.openStream();
    const source = this.client.backend.events({ cache: this.name, region: this.regionName, key, lastEventId }, stream.signal);
    async function* run(): AsyncGenerator<EventEnvelope> {
      try {
        yield* source;
      } finally {
        stream.done();
      }
    }
    return Object.assign(run(), { close: stream.done });
  }

  stats(): Promise<CacheStats> {
    return this.client.backend.stats(this.name);
  }
}
