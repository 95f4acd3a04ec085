// What the HTTP layer asks of a node: the cache operations of API.md in
// plain terms. api/ depends on this interface only; src/node implements it.

export interface ItemRef {
  cache: string;
  /** null for the cache's default space. */
  region: string | null;
  key: string;
}

export interface ItemView {
  value: Uint8Array;
  contentType: string;
  /** Opaque, strictly increasing per key (a log index). */
  version: string;
  expiresAt: number | null;
  tags: string[];
}

export interface PutRequest extends ItemRef {
  value: Uint8Array;
  contentType: string;
  /** null: the cache's default TTL. */
  ttlMs: number | null;
  tags: string[];
  ifMatch: string | null;
  ifNoneMatch: boolean;
  lockHandle: string | null;
  unlock: boolean;
}

import type { JoinClaim, JoinProof } from './join-proof.js';
import type { AccessMode } from './access.js';
import type { Principal, Role } from './tokens.js';
export type { AccessMode, Principal, Role };

// The settings and statistics of a cache are the state machine's own types.
import type { CacheSettings, CacheStats, ItemRecord } from '../cache/index.js';
export type { CacheSettings, CacheStats };

export interface ClusterView {
  node: string;
  /** `replicas`: partitions whose target includes the member; `leaders`: partitions it leads now. */
  members: { id: string; http: string; raft: string; state: 'up' | 'down'; status: 'active' | 'draining' | 'removed'; replicas: number; leaders: number }[];
  /** `replicas` is the target placement (preferred leader first); `voters`/`learners` the raft configuration as last seen. */
  partitions: { id: number; replicas: string[]; leader: string | null; term: number; commitIndex: number; voters: string[]; learners: string[]; moving: boolean }[];
  /** The metadata group (membership and targets) as this node's replica of it sees it: null before it has one. */
  metadata: { leader: string | null; term: number; voters: string[]; learners: string[] } | null;
  /** balanced: no move under way (movesInFlight) and none waiting to start (movesPending). */
  rebalance: { balanced: boolean; movesInFlight: number; movesPending: number; maxConcurrentMoves: number; moveBytesPerSecond: number };
}

export type Consistency = 'strong' | 'local';

export interface CacheService {
  /** This node's id (as in /v1/cluster). */
  readonly id: string;
  /**
   * The leader of the partition that holds this item (for a region: the
   * region's partition, whatever the key) as this node knows it; null when
   * unknown. The HTTP layer tells clients when they asked the wrong node.
   */
  leaderOf(cache: string, region: string | null, key: string): string | null;
  put(req: PutRequest): Promise<{ version: string; created: boolean }>;
  get(ref: ItemRef, consistency: Consistency): Promise<{ item: ItemView | null; stale: boolean | null }>;
  delete(ref: ItemRef, ifMatch: string | null, lockHandle: string | null): Promise<void>;
  touch(ref: ItemRef, ttlMs: number): Promise<{ version: string; expiresAt: number | null }>;
  /** GetAndLock: the item, and the handle that holds its lock until `lockExpiresAt`. */
  lock(ref: ItemRef, timeoutMs: number): Promise<{ item: ItemView; handle: string; lockExpiresAt: number }>;
  unlock(ref: ItemRef, handle: string): Promise<void>;
  /** A region's items (all, or by tags), consistent with every write before the call. */
  listRegion(cache: string, region: string, tags: string[], match: 'any' | 'all'): Promise<(ItemView & { key: string })[]>;
  clearRegion(cache: string, region: string): Promise<{ removed: number }>;
  /** Streams change events to `sink` until the returned function is called; rejects on a bad Last-Event-ID. */
  openEvents(
    filter: { cache: string; region: string | null; key: string | null; lastEventId: string | null },
    /** `ready() === false`: the reader is behind; no event is passed until it is ready again (backpressure). */
    sink: { event(id: string, data: object): void; error(code: string, message: string): void; ready?(): boolean },
  ): Promise<() => void>;
  listCaches(): Promise<{ name: string; settings: CacheSettings }[]>;
  putCache(name: string, settings: Partial<CacheSettings>): Promise<{ created: boolean; settings: CacheSettings }>;
  dropCache(name: string): Promise<void>;
  stats(cache: string): Promise<CacheStats>;
  /** A partition's content for a backup, read by its leader at a confirmed committed index (records.ts export bytes, in chunks). */
  exportPartition(partition: number): Promise<{ index: number; bytes: number; chunks: AsyncIterable<Uint8Array> }>;
  /** Upserts items through the write path keeping their expiry instants; reports each failure by its index. */
  load(items: readonly ItemRecord[]): Promise<{ written: number; failed: { index: number; code: string; message: string; retry: 'safe' | 'indeterminate' | 'no' }[] }>;
  /** This node's replica of a partition: applied index and a digest of its state (null: no replica here). */
  partitionDigest(partition: number): { node: string; partition: number; applied: number; digest: string } | null;
  cluster(): Promise<ClusterView>;
  /** Adds a member (or updates its addresses); answers with the membership, partition count and replication factor. */
  addMember(m: { id: string; raft: string; http: string; member: string }): Promise<Record<string, unknown>>;
  /** Drains a member: its replicas move elsewhere, then it is removed. Refused below the replication factor unless forced. */
  removeMember(id: string, force: boolean): Promise<{ id: string; status: string }>;
  /** Null when ready (a member, and every replica here has a known leader); else why not, with the error code /readyz answers. */
  notReady(): { code: 'unavailable' | 'node_removed'; message: string } | null;
  /** Prometheus text exposition. */
  metrics(): string;
  /** Counts an answered HTTP request (route is the route pattern, not the URL). */
  observeRequest(method: string, route: string, status: number): void;
  /**
   * With peer TLS, why a joining node's registration is not proven by its
   * certificate (join-proof.ts), or null when it is; undefined without peer
   * TLS, where only a token decides.
   */
  joinProofRefusal(claim: JoinClaim, proof: JoinProof | undefined): string | null | undefined;
  /** Whether requests need a token here, and whether this node can verify one yet. */
  accessMode(): AccessMode;
  /** The token whose secret this is, or null. */
  authenticate(secret: string): Principal | null;
  /** Makes a token, replicated to every member; answers its secret, which is stored nowhere. */
  createToken(t: { name: string; role: Role; caches: string[] | null }): Promise<{ name: string; token: string }>;
  /** Every token (never a secret), by name. */
  listTokens(): { name: string; role: Role; caches: string[] | null; createdAt: number }[];
  /** Revokes a token on every member (404 not_found when there is none of that name). */
  revokeToken(name: string): Promise<void>;
}
