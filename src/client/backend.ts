// The seam between the typed client (client.ts: serialisation, near cache,
// the API users call) and how requests reach the cluster: over HTTP to each
// partition's leader (http-backend.ts), or to a node in the same process
// (local-backend.ts, embedded mode). Values here are bytes; versions are the
// API's opaque strings. Every failure is a class of errors.ts, and a
// backend decides what is safe to retry: it retries reads and unconditional
// writes across leader changes itself, and raises IndeterminateError for a
// conditional write or lock whose outcome it cannot know.

export type Consistency = 'strong' | 'local';

export interface ItemAddress {
  cache: string;
  /** null: the cache's default space. */
  region: string | null;
  key: string;
}

export interface StoredItem {
  value: Uint8Array;
  contentType: string;
  /** Opaque, strictly increasing per key (API.md). */
  version: string;
  /** Epoch ms; null: no expiry. */
  expiresAt: number | null;
  tags: string[];
}

export interface PutCommand extends ItemAddress {
  value: Uint8Array;
  contentType: string;
  /** null: the cache's default TTL. */
  ttlMs: number | null;
  tags: string[];
  /** Compare-and-set: replace only if the current version is this. */
  ifMatch: string | null;
  /** Add: create only. */
  ifNoneMatch: boolean;
  lockHandle: string | null;
  /** With lockHandle: write and release (PutAndUnlock). */
  unlock: boolean;
}

export interface CacheSettings {
  defaultTtlMs: number;
  maxBytes: number | null;
  eviction: 'lru' | 'none';
}

export interface CacheStats {
  items: number;
  bytes: number;
  hits: number;
  misses: number;
  evictions: number;
  expirations: number;
}

export interface ChangeEvent {
  type: 'put' | 'delete' | 'expire' | 'evict' | 'clear';
  cache: string;
  region: string | null;
  key: string | null;
  version: string;
}

export interface EventFilter {
  cache: string;
  region: string | null;
  key: string | null;
  /** Resume exactly after this event id; null: from now. */
  lastEventId: string | null;
}

/** One event and its id (pass the id as lastEventId to resume after it). */
export interface EventEnvelope {
  id: string;
  event: ChangeEvent;
}

export interface ClusterView {
  node: string;
  members: { id: string; http: string; raft: string; state: 'up' | 'down' }[];
  partitions: { id: number; replicas: string[]; leader: string | null; term: number; commitIndex: number }[];
}

export interface Backend {
  /** null when missing or expired. `stale`: for local reads, whether the replica knew itself behind (null: unknown). */
  get(ref: ItemAddress, consistency: Consistency): Promise<{ item: StoredItem | null; stale: boolean | null }>;
  put(cmd: PutCommand): Promise<{ version: string; created: boolean }>;
  /** false when the key was missing. */
  delete(ref: ItemAddress, ifMatch: string | null, lockHandle: string | null): Promise<boolean>;
  touch(ref: ItemAddress, ttlMs: number): Promise<{ version: string; expiresAt: number | null }>;
  lock(ref: ItemAddress, timeoutMs: number): Promise<{ item: StoredItem; handle: string; lockExpiresAt: number | null }>;
  unlock(ref: ItemAddress, handle: string): Promise<void>;
  listRegion(cache: string, region: string, tags: string[], match: 'any' | 'all'): Promise<(StoredItem & { key: string })[]>;
  clearRegion(cache: string, region: string): Promise<{ removed: number }>;
  /**
   * The change events matching `filter`, in commit order within a partition,
   * until `signal` aborts. Ends by throwing HistoryLostError when it cannot go
   * on without a gap; a backend reconnects by itself (resuming after the last
   * event it yielded) when a connection breaks.
   *
   * `onOpen` runs each time the stream's position is fixed — when it starts
   * and after each reconnect — so that every event committed after that
   * moment will be yielded: a near cache trusts reads that begin after it.
   */
  events(filter: EventFilter, signal: AbortSignal, onOpen?: () => void): AsyncIterable<EventEnvelope>;
  listCaches(): Promise<{ name: string; settings: CacheSettings }[]>;
  putCache(name: string, settings: Partial<CacheSettings>): Promise<{ created: boolean; settings: CacheSettings }>;
  dropCache(name: string): Promise<void>;
  stats(cache: string): Promise<CacheStats>;
  cluster(): Promise<ClusterView>;
  close(): Promise<void>;
}
