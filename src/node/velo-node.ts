// A Velo node: hosts a replica of each partition placed on it, runs them
// all from one drive loop, talks to the other nodes over one transport, and
// answers the cache operations of API.md — locally when it leads the
// partition, otherwise by forwarding the request to the leader over the peer
// connection.

import { randomUUID } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { CacheStateMachine, CommandError, DEFAULT_CACHE, DEFAULT_SETTINGS, encodeCommand, encodePartitionExport, itemKey } from '../cache/index.js';
import type { Applied, CacheSettings, Command, ItemRecord, ItemVersionRef, ItemView as CacheItem } from '../cache/index.js';
import { MessageType, RaftNode, applyConfChange, decodeConfChange } from '../../raft/index.js';
import type { ConfState, HardState, Message, NodeId } from '../../raft/index.js';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { MemoryStorage } from '../../storage/memory-storage.js';
import { Transport } from '../transport/index.js';
import type { PeerTls } from '../transport/index.js';
import { joinProofRefusal, makeJoinProof, type JoinClaim, type JoinProof } from './join-proof.js';
import { fetchTrusting, untrustedMessage } from '../https/index.js';
import { DriveLoop } from './drive-loop.js';
import { VeloError } from './errors.js';
import { Group, NodeRemoved, NotApplied } from './group.js';
import type { GroupObserver, GroupStateMachine, GroupStorage } from './group.js';
import { LevelStore } from '../../storage/level-store.js';
import { Counter, Histogram, renderGauge } from './metrics.js';
import { DEFAULT_EVENT_LOG_CAPACITY, EventLog, decodeEventId, encodeEventId } from './event-log.js';
import type { Position, StoredEvent } from './event-log.js';
import { partitionOf } from './partition-map.js';
import { ClusterMeta, META_GROUP, encodeMetaCommand, initialMeta, sameList } from './cluster-meta.js';
import type { MemberRecord, MetaResult } from './cluster-meta.js';
import { metaVoters, rebalance } from './rebalance.js';
import { nodeOfMember } from './reconcile.js';
import { Membership, groupName } from './membership.js';
import { peerAddresses, sameAddresses } from './peer-addresses.js';
import { SnapshotThrottle } from './snapshot-throttle.js';
import { NodeMemory, defaultMaxMemoryBytes } from './memory-cap.js';
import { WireError } from './wire.js';
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse, errorResponse, responseError } from './requests.js';
import type { NodeRequest, NodeResponse, Ref } from './requests.js';
import type { CacheService, CacheStats, ClusterView, Consistency, ItemRef, ItemView, PutRequest } from './service.js';
import { AccessControl } from './access.js';
import type { AccessMode } from './access.js';
import { readOrCreateAdminSecret } from './admin-token-file.js';
import { generateSecret, hashSecret } from './tokens.js';
import type { Principal, Role } from './tokens.js';

export interface VeloNodeOptions {
  id: NodeId;
  /**
   * Where this node's HTTP API is reached, as reported in /cluster:
   * host:port over plain HTTP, https://host:port over TLS ('' when it serves none).
   */
  http: string;
  /** host:port of this node's raft transport (where it listens). */
  raft: string;
  /** host:port the other members are told to reach the raft transport at; default `raft`. */
  advertiseRaft?: string;
  /** PEM of the CA this node trusts when it calls another member's HTTPS API (joining); absent: the system's roots. */
  ca?: string;
  /**
   * Every bootstrap member's raft address, this node's included (a joining
   * node: only its own). Members that joined later are reached at the
   * address they registered; these entries override it (a proxy, say).
   */
  peers: Map<NodeId, string>;
  /** HTTP base URL of a running member: join its cluster instead of bootstrapping one. */
  join?: string;
  /** Partitions whose replicas move at once, cluster-wide (the metadata leader's setting applies). */
  maxConcurrentMoves?: number;
  /** The most snapshot bytes per second this node sends to replicas catching up. */
  moveBytesPerSecond?: number;
  /** A member unreachable this long is drained automatically and its replicas re-created elsewhere; 0: never. */
  replaceAfterMs?: number;
  clusterId?: string;
  partitions?: number;
  replicas?: number;
  tickMs?: number;
  electionTicks?: number;
  heartbeatTicks?: number;
  requestTimeoutMs?: number;
  snapshotEveryEntries?: number;
  /** A partition also snapshots once the entries applied since its last snapshot hold this many bytes. */
  snapshotEveryBytes?: number;
  /**
   * With a data directory, every group's hard state, log and snapshots live in
   * one LevelDB there (group commit: one sync per drive-loop pass), and the
   * node restarts under its old identity. Without it, memory only.
   */
  dataDir?: string;
  /** Called when the node cannot go on (its disk failed under it). */
  onFatal?: (err: unknown) => void;
  /**
   * Called once when this node learns it is no longer a member (drained and
   * removed, or refused by the cluster); `why` says which. From then on it
   * answers every client request with 503 node_removed and reports not ready.
   * `velo start` exits here unless --on-removed wait.
   */
  onRemoved?: (why: string) => void;
  /** Change events kept per partition for resuming streams. */
  eventLogCapacity?: number;
  /** The node-wide memory cap on accounted item bytes (--max-memory); default: memory-cap.ts defaultMaxMemoryBytes. */
  maxMemoryBytes?: number;
  /** Structured logs (pino, as Fastify's); silent if absent. */
  logger?: Logger;
  /**
   * The file holding the secret of the cluster's first admin token (created,
   * 0600, when missing): this node demands tokens, proposes that one into the
   * metadata once, and sends it when it joins through --join.
   */
  adminTokenFile?: string;
  /**
   * Strong reads at a partition's leader served from its lease (thesis
   * §6.4.1) instead of a heartbeat round each batch; default true. The lease
   * is three quarters of the election timeout, counted on the monotonic clock,
   * and never used while the node's timer is overdue (DriveLoop.clockTrusted).
   */
  leaseReads?: boolean;
  /**
   * TEST ONLY, UNSAFE: strong reads are served from the receiving node's
   * replica, as a broken implementation would. The fault harness must catch
   * the stale reads this allows (test/fault).
   */
  unsafeStaleStrongReads?: boolean;
  /** Mutual TLS 1.3 on the raft port, this node's id the one its certificate names (PEM contents); absent: plain TCP. */
  peerTls?: PeerTls;
}

const DEFAULTS = {
  clusterId: 'velo',
  partitions: 16,
  replicas: 3,
  tickMs: 50,
  electionTicks: 20,
  heartbeatTicks: 2,
  requestTimeoutMs: 5000,
  snapshotEveryEntries: 10_000,
  snapshotEveryBytes: 64 << 20,
  eventLogCapacity: DEFAULT_EVENT_LOG_CAPACITY,
  unsafeStaleStrongReads: false,
  leaseReads: true,
  join: '',
  maxConcurrentMoves: 2,
  moveBytesPerSecond: 16 << 20,
  replaceAfterMs: 0,
  maxMemoryBytes: defaultMaxMemoryBytes(),
};

const EMPTY_CONF: ConfState = { voters: [], learners: [] };

/** The partitions of `n`: 0 … n−1. */
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

export { nodeOfMember };

/** A partition replica's cache state, and the change events its applies produced. */
class CacheGroupState implements GroupStateMachine {
  readonly events: EventLog;
  constructor(public sm: CacheStateMachine, eventLogCapacity: number) {
    this.events = new EventLog(eventLogCapacity);
  }
  apply(index: number, data: Uint8Array): Applied {
    const applied = this.sm.applyEncoded(index, data);
    this.events.append(index, applied.events);
    return applied;
  }
  snapshot(): Uint8Array {
    return this.sm.snapshot();
  }
  restore(data: Uint8Array, index: number): void {
    this.sm = CacheStateMachine.restore(data);
    this.events.reset(index);
  }
}

const ROLE_NAMES = ['follower', 'pre_candidate', 'candidate', 'leader'];

function toView(item: CacheItem): ItemView {
  return { value: item.value, contentType: item.contentType, version: String(item.version), expiresAt: item.expiresAt, tags: [...item.tags] };
}

/** A backup's export travels in chunks of this size: far below the transport's frame limit. */
const EXPORT_CHUNK_BYTES = 4 * 1024 * 1024;
/** How long an export is held after its last chunk was asked for. */
const EXPORT_HOLD_MS = 60_000;
/**
 * A bulk load goes to each partition's leader in slices of at most this many
 * items, value bytes, and bytes of item metadata (names, content type, tags:
 * the forwarded request's JSON header, which the wire caps at 64 KiB; one
 * item's metadata is at most ~18 KiB)...
 */
const LOAD_SLICE_ITEMS = 1000;
const LOAD_SLICE_BYTES = 4 * 1024 * 1024;
const LOAD_SLICE_META_BYTES = 32 * 1024;
/** ...with this many slices in flight: enough to keep every leader's log busy, few enough to bound memory. */
const LOAD_CONCURRENCY = 8;

type LoadFailure = { index: number; code: string; message: string; retry: 'safe' | 'indeterminate' | 'no' };

/**
 * A command built from a request that breaks a limit of the state machine
 * (validate.ts) was never proposed: the client's mistake, answered 400. The
 * edge checks these limits first; this keeps a missed one from becoming a 500.
 */
function encodeOrRefuse(c: Command): Uint8Array {
  try {
    return encodeCommand(c);
  } catch (e) {
    if (e instanceof CommandError) throw new VeloError('bad_request', e.message);
    throw e;
  }
}

/** How a failed write is reported in a bulk load: whether retrying it is safe, or its outcome unknown. */
function loadFailure(e: unknown): Omit<LoadFailure, 'index'> {
  const err = e instanceof VeloError ? e : new VeloError('internal', String(e));
  return { code: err.code, message: err.message, retry: err instanceof NotApplied ? 'safe' : err.code === 'unavailable' || err.code === 'timeout' ? 'indeterminate' : 'no' };
}

interface HeldExport {
  bytes: Uint8Array;
  index: number;
  expiresAt: number;
}

function failure(r: { code: string; message: string }): VeloError {
  return new VeloError(r.code as never, r.message);
}

export class VeloNode implements CacheService {
  readonly id: NodeId;
  private readonly o: Required<Omit<VeloNodeOptions, 'logger' | 'adminTokenFile' | 'peerTls' | 'ca' | 'advertiseRaft'>> & Pick<VeloNodeOptions, 'ca'>;
  /** Mutual TLS on the raft port; with it, a joining node must prove its identity with its certificate. */
  private readonly peerTls: PeerTls | null;
  private readonly log: Logger;
  /** The cluster's membership and target placement, as this node's replica of the metadata group has it. */
  private readonly meta: ClusterMeta;
  private readonly throttle: SnapshotThrottle;
  private readonly memory: NodeMemory;
  private readonly membership: Membership;
  private readonly access: AccessControl;
  /** Leaders learned from other nodes' answers, for partitions this node holds no replica of. */
  private readonly leaderHints = new Map<number, NodeId>();
  /**
   * Memory mode: the votes of replicas this node deleted, kept so a replica
   * re-created later never votes twice in a term. (A memory node that
   * restarts comes back under a new member id that never voted; with a data
   * directory the store keeps these votes on disk.)
   */
  private readonly tombstones = new Map<number, HardState>();
  private gcCountdown = 0;
  /** Set once the groups exist: metadata changes before that are taken up by createGroups itself. */
  private started = false;
  /** The transport's peers as last set (bootstrap: --peers). */
  private peerAddrs: Map<NodeId, string>;
  private readonly transport: Transport;
  private readonly loop: DriveLoop;
  /** This process's incarnation: it grows with every start (wall-clock ms). */
  private readonly incarnation = Date.now();
  /** This node's raft member id in every group: plain for a bootstrap, id@incarnation after a restart. */
  private memberId: string;
  private readonly states = new Map<number, CacheGroupState>();
  /** The first incarnation seen taking part in raft for each peer: a later one means the peer lost its memory. */
  private readonly firstIncarnation = new Map<NodeId, number>();
  private readonly httpOf = new Map<NodeId, string>();
  /** Resolved on the next tick: how a request waits for an election without a timer of its own. */
  private tickWaiters: (() => void)[] = [];
  private reconcileCountdown = 0;
  /** Partitions with an evict command in flight: one at a time, so the same items are not chosen twice. */
  private readonly evicting = new Set<number>();
  /** Partition exports this node read as leader, held for their chunks (see the 'export' request). */
  private readonly exports = new Map<string, HeldExport>();
  private closed = false;
  /** Why this node is no longer a member of the cluster; null while it is one. */
  private removal: string | null = null;
  private readonly onRemoved: (why: string) => void;
  private readonly counters = { requests: 0, forwarded: 0, proposals: 0, reads: 0, errors: 0 };
  private readonly httpRequests = new Counter('velo_http_requests_total', 'HTTP requests answered, by route and status.');
  private readonly proposalSeconds = new Histogram('velo_proposal_seconds', 'From proposing a command to its apply on the leader.');
  private readonly applySeconds = new Histogram('velo_apply_batch_seconds', 'Time to apply one Ready batch of committed entries.');
  private readonly leaderChanges = new Counter('velo_leader_changes_total', 'Leader changes seen by this node’s replicas.');
  private readonly snapshots = new Counter('velo_snapshots_total', 'Snapshots taken by this node’s replicas (each deletes the log before it).');
  private readonly observer: GroupObserver = {
    proposalCommitted: (s) => this.proposalSeconds.observe(s),
    applied: (s) => this.applySeconds.observe(s),
    snapshotTaken: (partition) => this.snapshots.inc({ partition }),
    roleChanged: (partition, soft) => {
      this.leaderChanges.inc({ partition });
      this.log.info({ partition, term: soft.term, leader: soft.leader ? nodeOfMember(soft.leader) : null, role: ROLE_NAMES[soft.role] }, `${groupName(partition)}: ${soft.leader ? `leader ${soft.leader}` : 'no leader'} in term ${soft.term}`);
    },
  };

  private constructor(opts: VeloNodeOptions, memberId: string, transport: Transport, private readonly store: LevelStore | null, private readonly adminSecret: string | null) {
    this.id = opts.id;
    const { logger, ...rest } = opts;
    this.o = { ...DEFAULTS, ...rest } as VeloNode['o'];
    this.peerTls = opts.peerTls ?? null;
    this.log = logger ?? pino({ level: 'silent' });
    this.memberId = memberId;
    this.onRemoved = opts.onRemoved ?? (() => {});
    this.meta = new ClusterMeta(null);
    // Not inside the apply: creating groups is no business of a drive-loop pass.
    this.meta.onChange = () => queueMicrotask(() => this.onMetaChange());
    this.memory = new NodeMemory(this.id, this.o.maxMemoryBytes, () => this.accountedBytes());
    this.throttle = new SnapshotThrottle({ bytesPerSecond: this.o.moveBytesPerSecond, now: () => performance.now() });
    this.membership = new Membership({
      id: this.id,
      memberId: () => this.memberId,
      meta: this.meta,
      log: this.log,
      settings: this.o,
      groups: () => this.loop.all(),
      connected: (node) => node === this.id || this.transport.peerStatus().get(node)?.connected === true,
      refused: (why) => this.leaveCluster(why),
      route: (req) => this.route(req),
      dropGroup: (p) => this.dropGroup(p),
      schedule: () => this.loop.schedule(),
    });
    this.access = new AccessControl({ meta: this.meta, log: this.log, adminSecret, command: (c) => this.membership.command(c) });
    this.transport = transport;
    this.httpOf.set(this.id, opts.http);
    this.peerAddrs = new Map([...opts.peers].filter(([id]) => id !== opts.id));
    this.loop = new DriveLoop({
      tickMs: this.o.tickMs,
      now: () => Date.now(),
      send: (group, m) => this.sendRaft(group, m),
      flush: () => this.transport.flush(),
      onTick: (now) => this.onTick(now),
      ...(store
        ? {
            commit: () => store.commit(),
            onFatal: (err: unknown) => {
              this.log.fatal({ err }, 'writing the raft log failed: stopping this node');
              (opts.onFatal ?? (() => process.exit(1)))(err);
            },
          }
        : {}),
    });
  }

  /** Starts the transport, decides this node's identity, creates its groups and starts the drive loop. */
  static async start(opts: VeloNodeOptions): Promise<VeloNode> {
    if (!opts.peers.has(opts.id)) throw new Error(`--peers must list this node (${opts.id}) too`);
    if (opts.join && opts.peers.size !== 1) throw new Error('a joining node learns its peers from the cluster: give --join without --peers');
    for (const id of opts.peers.keys()) if (id.includes('@') || id.length === 0) throw new Error(`bad node id "${id}": ids are non-empty and have no "@"`);
    const [host, port] = splitHostPort(opts.raft);
    const admin = opts.adminTokenFile ? await readOrCreateAdminSecret(opts.adminTokenFile) : null;
    // The path, never the secret: logs are read by more people than the file.
    if (admin?.created) opts.logger?.info({ file: opts.adminTokenFile }, `generated an admin token into ${opts.adminTokenFile} (readable by its owner only)`);
    const store = opts.dataDir ? await LevelStore.open(opts.dataDir, { clusterId: opts.clusterId ?? DEFAULTS.clusterId, nodeId: opts.id }) : null;
    const transport = new Transport({
      clusterId: opts.clusterId ?? DEFAULTS.clusterId,
      nodeId: opts.id,
      incarnation: Date.now(),
      listenHost: host,
      listenPort: port,
      peers: new Map([...opts.peers].filter(([id]) => id !== opts.id)),
      log: (line) => (opts.logger ?? pino({ level: 'silent' })).info({ component: 'transport' }, line),
      warn: (line) => (opts.logger ?? pino({ level: 'silent' })).warn({ component: 'transport' }, line),
      tls: opts.peerTls ?? null,
    });
    // From here on `raft` is what the others are told (registration, /cluster); the transport listens where it was asked.
    const node = new VeloNode(opts.advertiseRaft ? { ...opts, raft: opts.advertiseRaft } : opts, opts.id, transport, store, admin?.secret ?? null);
    transport.onRaftMessages((from, batch) => node.onRaftMessages(from, batch));
    transport.onRequest((from, payload) => node.onPeerRequest(from, payload));
    try {
      await transport.start();
    } catch (e) {
      await store?.close();
      throw e;
    }
    node.loop.start();
    const recovered = node.recoveredMemberId();
    try {
      if (recovered !== null) {
        // Its log and vote survived: it is the same member as before the restart.
        node.memberId = recovered;
        node.log.info({ member: recovered, dataDir: opts.dataDir }, `recovering ${store!.groupIds().length} group(s) from ${opts.dataDir}`);
      } else if (opts.join) {
        // A new member id for every incarnation that starts empty: it never voted under it.
        node.memberId = `${opts.id}@${node.incarnation}`;
      } else {
        await node.decideIdentity();
      }
      node.createGroups(recovered !== null);
      if (opts.join && node.meta.state === null) await node.joinCluster(opts.join);
    } catch (e) {
      await node.close();
      throw e;
    }
    return node;
  }

  /**
   * Registers this node with the cluster at `url` (any member's HTTP API),
   * retrying while the cluster cannot answer; learns the partition count,
   * replication factor and every member's raft address from the answer.
   */
  private async joinCluster(url: string): Promise<void> {
    const base = url.replace(/\/+$/, '');
    const deadline = Date.now() + Math.max(60_000, this.o.requestTimeoutMs);
    let last = '';
    while (!this.closed) {
      try {
        const claim = { id: this.id, raft: this.o.raft, http: this.o.http, member: this.memberId };
        // Signed afresh on each attempt: a proof is only good for a few minutes.
        const body = JSON.stringify(this.peerTls === null ? claim : { ...claim, proof: makeJoinProof(this.peerTls, this.o.clusterId, claim, Date.now()) });
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        // A cluster that demands tokens lets an admin add a member, or (with peer TLS) the node its certificate proves.
        if (this.adminSecret !== null) headers.authorization = `Bearer ${this.adminSecret}`;
        const res = await fetchTrusting(this.o.ca)(`${base}/v1/cluster/members`, { method: 'POST', headers, body, signal: AbortSignal.timeout(this.o.requestTimeoutMs + 1000) });
        const out = (await res.json()) as { error?: { code: string; message: string }; members?: MemberRecord[]; partitions?: number; replicas?: number };
        if (res.ok && out.members && out.partitions && out.replicas) {
          this.o.partitions = out.partitions;
          this.o.replicas = out.replicas;
          this.setPeersFrom(out.members);
          this.log.info({ via: base, members: out.members.length }, `${this.id} joined the cluster as ${this.memberId}`);
          return;
        }
        last = out.error ? `${out.error.code}: ${out.error.message}` : `HTTP ${res.status}`;
        if (res.status >= 400 && res.status < 500) throw new Error(`joining through ${base} was refused: ${last}`);
      } catch (e) {
        if ((e as Error).message.startsWith('joining through')) throw e;
        // A certificate this node does not trust will not become trusted by asking again.
        const untrusted = untrustedMessage(e);
        if (untrusted !== null) throw new Error(`joining through ${base}: ${untrusted}`);
        last = (e as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`could not join the cluster through ${base}: ${last}`);
      this.log.warn({ via: base, err: last }, 'joining: the cluster did not answer yet');
      await this.nextTick();
      await this.nextTick();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.loop.stop();
    for (const g of this.loop.all()) g.close();
    for (const w of this.tickWaiters) w();
    this.tickWaiters = [];
    await this.transport.close();
    await this.store?.close();
  }

  /**
   * With a data directory that holds groups: the member id that the groups'
   * configurations in force (snapshot, then the log's changes) know this node by.
   */
  private recoveredMemberId(): string | null {
    if (!this.store || this.store.groupIds().length === 0) return null;
    for (const id of this.store.groupIds()) {
      const g = this.store.group(id);
      let conf = g.snapshot().metadata.confState;
      const last = g.lastIndex();
      for (let lo = g.firstIndex(); lo <= last; ) {
        const ents = g.entries(lo, last + 1, 8 << 20);
        for (const e of ents) if (e.type === 1) conf = applyConfChange(conf, decodeConfChange(e.data));
        lo += ents.length;
      }
      const mine = [...conf.voters, ...conf.learners].find((m) => nodeOfMember(m) === this.id);
      if (mine) return mine;
    }
    return this.id;
  }

  // ---------------------------------------------------------------- identity

  /**
   * A memory-only node that restarts has lost its log and its vote: it must
   * never vote under its old identity (DESIGN.md "Durability"). It asks every
   * peer whether it saw this node under another incarnation; if any did, it
   * comes back as a new member id and joins its groups as a learner. If none
   * did and all answered, the cluster is new (or never heard from this node):
   * it bootstraps with its plain id.
   */
  private async decideIdentity(): Promise<void> {
    const peers = [...this.o.peers.keys()].filter((id) => id !== this.id);
    const answered = new Set<NodeId>();
    while (!this.closed) {
      for (const peer of peers) {
        if (answered.has(peer)) continue;
        try {
          const res = decodeResponse(await this.transport.request(peer, encodeRequest({ op: 'probe', partition: -1, http: this.o.http }), 1000));
          if (!res.ok) continue;
          answered.add(peer);
          if (typeof res.result.http === 'string') this.httpOf.set(peer, res.result.http);
          if (res.result.seenBefore === true) {
            this.memberId = `${this.id}@${this.incarnation}`;
            this.log.warn({ member: this.memberId }, `${this.id} restarted without its memory: rejoining as ${this.memberId}`);
            return;
          }
        } catch {
          // Not reachable yet; ask again on a later round.
        }
      }
      if (answered.size === peers.length) return;
      await this.nextTick();
    }
  }

  /**
   * Creates the metadata group and this node's partition replicas. A fresh
   * bootstrap member starts every group it is placed in from the bootstrap
   * configuration; a recovered node resumes the groups on its disk; a joining
   * or rejoining node starts the metadata group empty. Partitions the targets
   * give this node later start empty too (ensureGroups): each learns its
   * group from the leader's snapshot, as a learner, before it takes part.
   */
  private createGroups(recovered: boolean): void {
    const peers = [...this.o.peers.keys()].sort();
    const bootstrap = !recovered && !this.o.join && this.memberId === this.id;
    // The state at log index 0, identical on every bootstrap member; others learn it from a snapshot.
    if (bootstrap || (recovered && !this.o.join)) this.meta.state = initialMeta(peers, this.o.partitions, this.o.replicas);
    const voters = metaVoters([], peers, this.o.replicas);
    this.addGroup(META_GROUP, bootstrap ? { voters, learners: peers.filter((id) => !voters.includes(id)) } : EMPTY_CONF);
    const s = this.meta.state;
    if (s !== null) {
      this.o.partitions = s.partitions;
      this.o.replicas = s.replicas;
    }
    if (recovered) {
      for (const id of this.store!.groupIds()) if (id !== META_GROUP) this.addGroup(id, EMPTY_CONF);
    } else if (bootstrap) {
      s!.targets.forEach((t, p) => {
        if (t.replicas.includes(this.id)) this.addGroup(p, { voters: t.replicas, learners: [] });
      });
    }
    this.started = true;
    this.onMetaChange();
  }

  /** Creates a replica of group `p` (META_GROUP: the metadata) from its storage, bootstrapped with `conf` if new. */
  private addGroup(p: number, conf: ConfState): void {
    const storage = this.groupStorage(p, conf);
    // A replica this node deleted earlier comes back with its vote, so it never votes twice in a term.
    const tomb = this.tombstones.get(p);
    if (tomb && storage.initialState().hardState.term < tomb.term) storage.stage({ hardState: tomb, entries: [], snapshot: null });
    const snap = storage.snapshot();
    const raft = new RaftNode({
      id: this.memberId,
      storage,
      applied: snap.metadata.index,
      rng: { int: (n) => Math.floor(Math.random() * n) },
      electionTicks: this.o.electionTicks,
      heartbeatTicks: this.o.heartbeatTicks,
      maxBytesPerAppend: 4 << 20,
      maxSnapshotChunkBytes: 4 << 20,
      // The margin covers a tick of lag on each side and clock rate drift.
      ...(this.o.leaseReads ? { leaseReads: { maxClockDriftTicks: Math.ceil(this.o.electionTicks / 4) } } : {}),
    });
    let state: GroupStateMachine;
    if (p === META_GROUP) {
      state = this.meta;
    } else {
      const cs = new CacheGroupState(new CacheStateMachine(this.o.partitions), this.o.eventLogCapacity);
      this.states.set(p, cs);
      state = cs;
    }
    // A recovered group resumes from its snapshot; the log after it is applied again as committed entries.
    if (snap.metadata.index > 0 && snap.data.length > 0) state.restore(snap.data, snap.metadata.index);
    this.loop.add(new Group(p, raft, storage, state, { everyEntries: this.o.snapshotEveryEntries, everyBytes: this.o.snapshotEveryBytes }, this.observer));
  }

  /** Creates the replicas the targets give this node and it does not have yet. */
  private ensureGroups(): void {
    const s = this.meta.state;
    if (s === null || this.closed) return;
    s.targets.forEach((t, p) => {
      if (t.replicas.includes(this.id) && !this.loop.get(p)) {
        this.log.info({ partition: p }, `partition ${p}: creating a replica here, to be filled from the leader's snapshot`);
        this.addGroup(p, EMPTY_CONF);
      }
    });
  }

  /**
   * Deletes this node's replica of partition `p`, once it is certainly out of
   * the group: its log and state go, its vote is kept (tombstones).
   */
  private dropGroup(p: number): void {
    const g = this.loop.get(p);
    if (!g) return;
    this.loop.remove(p);
    g.close();
    this.states.delete(p);
    if (this.store) {
      this.store.destroyGroup(p); // keeps the replica's vote on disk
    } else {
      const st = g.raft.status();
      this.tombstones.set(p, { term: st.term, vote: st.vote, commit: 0 });
    }
    this.loop.schedule();
    this.log.info({ partition: p }, `partition ${p}: replica deleted here (it moved to ${this.meta.state?.targets[p]?.replicas.join(', ')})`);
  }

  /** Snapshot chunks go out within the node's bandwidth limit for moves; everything else at once. */
  private sendRaft(group: number, m: Message): void {
    const to = nodeOfMember(m.to);
    if (m.type === MessageType.Snapshot && m.snapshot) {
      this.throttle.offer(group, m.to, m.snapshot.data.length, () => this.transport.send(to, group, m));
      return;
    }
    this.transport.send(to, group, m);
  }

  private onMetaChange(): void {
    if (!this.started || this.closed || this.meta.state === null) return;
    if (this.meta.state.members.find((m) => m.id === this.id)?.status === 'removed') {
      this.leaveCluster(`${this.id} was drained and removed from the cluster`);
      return;
    }
    this.setPeersFrom(this.meta.state.members);
    this.ensureGroups();
  }

  /**
   * This node is no longer a member (removed, or refused when it came back):
   * it says so once, on the log and to its host, and from now on answers
   * every client request with node_removed and reports not ready, instead of
   * serving from metadata that no longer holds or letting requests hang.
   */
  private leaveCluster(why: string): void {
    if (this.removal !== null || this.closed) return;
    this.removal = why;
    this.log.error({ reason: why }, `${why}: this node takes no more client requests (send them to another member)`);
    this.onRemoved(why);
  }

  private removedError(): NodeRemoved {
    return new NodeRemoved(`${this.removal}; send requests to another member of the cluster`);
  }

  /**
   * The transport's peers (see peer-addresses.ts). Removed members stay
   * peers: a removed node learns of its removal from the metadata group over
   * these connections (dropped at once, the commit that removes it could be
   * the last message lost), and gets the answers to requests it forwarded; it
   * then stops by itself.
   */
  private setPeersFrom(members: readonly MemberRecord[]): void {
    const peers = peerAddresses(this.id, this.peerAddrs, members, this.o.peers);
    if (sameAddresses(peers, this.peerAddrs)) return;
    this.peerAddrs = peers;
    this.transport.setPeers(peers);
  }

  /** A group's log storage: in this node's LevelDB when it has a data directory, else in memory. */
  private groupStorage(partition: number, conf: ConfState): GroupStorage {
    if (!this.store) return new MemoryStorage(conf);
    const g = this.store.group(partition);
    // A rejoining member's group stays empty: it learns the group from a snapshot.
    if (!g.exists() && conf.voters.length > 0) g.bootstrap(conf);
    return g;
  }

  // ---------------------------------------------------------------- transport input

  private onRaftMessages(from: NodeId, batch: { group: number; message: Message }[]): void {
    if (!this.firstIncarnation.has(from)) {
      const inc = this.transport.peerStatus().get(from)?.incarnation;
      if (inc !== null && inc !== undefined) this.firstIncarnation.set(from, inc);
    }
    for (const { group, message } of batch) {
      const g = this.loop.get(group);
      // Messages for an earlier incarnation of this node are not ours to answer.
      if (!g || message.to !== this.memberId) continue;
      g.raft.step(message);
    }
    this.loop.schedule();
  }

  private async onPeerRequest(from: NodeId, payload: Uint8Array): Promise<Uint8Array> {
    let req: NodeRequest;
    try {
      req = decodeRequest(payload);
    } catch (e) {
      // Not run, whatever it asked: a peer runs other code, or is broken.
      this.log.warn({ peer: from }, `refused a forwarded request from ${from}: ${(e as Error).message}`);
      return encodeResponse(errorResponse(new VeloError('bad_request', (e as Error).message), 'no'));
    }
    if (req.op === 'probe') {
      const first = this.firstIncarnation.get(from);
      const now = this.transport.peerStatus().get(from)?.incarnation;
      this.httpOf.set(from, req.http);
      const seenBefore = first !== undefined && now !== null && now !== undefined && now !== first;
      return encodeResponse({ ok: true, result: { seenBefore, http: this.o.http }, value: null });
    }
    if (req.op === 'groups') return encodeResponse({ ok: true, result: { groups: this.groupStatuses() }, value: null });
    if (req.op === 'memory') {
      this.memory.record(from, { bytes: req.bytes, capBytes: req.capBytes });
      return encodeResponse({ ok: true, result: { ...this.memory.report() }, value: null });
    }
    return encodeResponse(await this.runAsLeader(req));
  }

  // ---------------------------------------------------------------- routing

  /** Runs a request at the partition's leader, forwarding and retrying until the request deadline. */
  private async route(req: NodeRequest, firstTarget: NodeId | null = null): Promise<{ result: Record<string, unknown>; value: Uint8Array | null }> {
    this.counters.requests++;
    const deadline = Date.now() + this.o.requestTimeoutMs;
    let hint: NodeId | null = firstTarget;
    let attempt = 0;
    let hops = 0;
    for (;;) {
      // Checked on every attempt: a request that waits here when the node learns it was removed ends at once.
      if (this.removal !== null) throw this.removedError();
      const target: NodeId = hint ?? this.leaderNodeOf(req.partition, attempt++);
      let res: NodeResponse;
      if (target === this.id) {
        res = await this.runAsLeader(req);
        // Asked itself as a non-replica: ask the others before waiting a tick.
        if (!res.ok && res.leader === this.id) res = { ...res, leader: null };
      } else {
        this.counters.forwarded++;
        try {
          res = decodeResponse(await this.transport.request(target, encodeRequest(req), Math.max(1, deadline - Date.now())));
        } catch (e) {
          // Did it go out? The transport says 'unavailable'/'queue_full'/'unknown_peer' when it did not.
          const code = (e as { code?: string }).code;
          if (e instanceof WireError) this.log.warn({ peer: target }, `dropped the answer of ${target}: ${e.message}`);
          const safe = code === 'unavailable' || code === 'queue_full' || code === 'unknown_peer' || code === 'too_large';
          res = { ok: false, code: 'unavailable', message: `forwarding to ${target} failed: ${(e as Error).message}`, retry: safe || isRead(req) ? 'safe' : 'indeterminate', leader: null };
        }
      }
      if (res.ok) return res;
      const retryable = res.retry === 'safe' || (res.retry === 'indeterminate' && isRead(req));
      if (!retryable || Date.now() >= deadline || this.closed) {
        this.counters.errors++;
        const message = `partition ${req.partition} did not answer in time: ${res.message}`;
        // Every attempt of a write is retried only while it certainly was not applied: then neither was the request (clients may retry it).
        if (retryable) throw res.retry === 'safe' ? new NotApplied(message) : new VeloError('unavailable', message, 1);
        throw responseError(res);
      }
      hint = res.leader !== null && res.leader !== target ? res.leader : null;
      if (hint !== null && !this.loop.get(req.partition)) this.leaderHints.set(req.partition, hint);
      else if (hint === null) this.leaderHints.delete(req.partition);
      // Hints that lead in circles (nobody knows the leader yet) wait a tick too.
      if (hint === null || ++hops % 4 === 0) await this.nextTick();
    }
  }

  /**
   * Where to send a partition's request: its leader as this node's replica
   * knows it; else, in turn, each replica (a non-leader answers with a hint).
   */
  private leaderNodeOf(partition: number, attempt: number): NodeId {
    const leader = this.loop.get(partition)?.leader();
    if (leader) return nodeOfMember(leader);
    const hint = this.leaderHints.get(partition);
    if (hint !== undefined && attempt % 2 === 0) return hint;
    const candidates = this.replicasOf(partition);
    return candidates[attempt % candidates.length]!;
  }

  /** Where a partition's replicas are, as far as this node knows: its target, else every member. */
  private replicasOf(partition: number): NodeId[] {
    const s = this.meta.state;
    if (partition === META_GROUP) {
      const voters = this.loop.get(META_GROUP)?.raft.status().confState.voters.map(nodeOfMember) ?? [];
      if (voters.length > 0) return voters;
    } else {
      const t = s?.targets[partition]?.replicas;
      if (t && t.length > 0) return t;
    }
    const all = new Set<NodeId>([this.id, ...this.peerAddrs.keys()]);
    for (const m of s?.members ?? []) if (m.status !== 'removed') all.add(m.id);
    return [...all].sort();
  }

  /** Runs a request here; refuses with a hint when this replica does not lead the partition. */
  private async runAsLeader(req: NodeRequest): Promise<NodeResponse> {
    const g = this.loop.get(req.partition);
    if (!g) {
      const hint = this.leaderHints.get(req.partition) ?? this.replicasOf(req.partition).find((id) => id !== this.id) ?? null;
      return { ok: false, code: 'unavailable', message: `${this.id} holds no replica of partition ${req.partition}`, retry: 'safe', leader: hint };
    }
    if (req.op === 'get' && req.consistency === 'local') return this.localRead(g, req.ref);
    if (req.op === 'events') return this.localEvents(g.partition, req.after, req.limit);
    if (req.op === 'export' && req.exportId !== null) return this.exportChunk(req.exportId, req.offset);
    if (!g.isLeader()) {
      const leader = g.leader();
      return { ok: false, code: 'unavailable', message: `${this.id} does not lead partition ${req.partition}`, retry: 'safe', leader: leader === null ? null : nodeOfMember(leader) };
    }
    const deadline = Date.now() + this.o.requestTimeoutMs;
    try {
      const out = await this.execute(g, req, deadline);
      return { ok: true, ...out };
    } catch (e) {
      // A request that certainly did not take effect may be retried; a proposal in flight may not.
      const err = e instanceof VeloError ? e : new VeloError('internal', String(e));
      const retry = err instanceof NotApplied ? 'safe' : err.code === 'unavailable' || err.code === 'timeout' ? 'indeterminate' : 'no';
      return errorResponse(err, retry);
    }
  }

  private state(g: Group): CacheStateMachine {
    return this.states.get(g.partition)!.sm;
  }

  private localRead(g: Group, ref: Ref): NodeResponse {
    const sm = this.state(g);
    if (!sm.hasCache(ref.cache)) return { ok: false, code: 'cache_not_found', message: `no cache "${ref.cache}"`, retry: 'no', leader: null };
    const item = sm.get(ref.cache, ref.region, ref.key, Date.now());
    const stale = !g.isLeader();
    if (!item) return { ok: true, result: { found: false, stale }, value: null };
    const v = toView(item);
    return { ok: true, result: { found: true, stale, contentType: v.contentType, version: v.version, expiresAt: v.expiresAt, tags: v.tags }, value: v.value };
  }

  /** Leader side: turn the request into a command (fixing time and chance here) or a read. */
  private async execute(g: Group, req: NodeRequest, deadline: number): Promise<{ result: Record<string, unknown>; value: Uint8Array | null }> {
    const now = Date.now();
    const propose = async (c: Command): Promise<Applied> => {
      this.counters.proposals++;
      return (await g.propose(encodeOrRefuse(c), deadline)) as Applied;
    };
    switch (req.op) {
      case 'put': {
        const sm = this.state(g);
        const settings = sm.cacheSettings(req.ref.cache);
        if (!settings) throw new VeloError('cache_not_found', `no cache "${req.ref.cache}"`);
        const ttl = req.ttlMs ?? (settings.defaultTtlMs > 0 ? settings.defaultTtlMs : null);
        const expiresAt = req.expiresAt !== undefined ? req.expiresAt : ttl === null ? null : now + ttl;
        if (expiresAt !== null && expiresAt <= now) throw new VeloError('bad_request', `expiresAt ${expiresAt} is not in the future (the leader's clock reads ${now})`);
        const condition = req.ifNoneMatch ? { kind: 'ifNoneMatch' as const } : req.ifMatch !== null ? { kind: 'ifMatch' as const, version: req.ifMatch } : { kind: 'none' as const };
        const admitted = this.admitPut(g, sm, req.ref, settings.eviction, sm.putGrowth(req.ref.cache, req.ref.region, req.ref.key, { value: req.value, contentType: req.contentType, tags: req.tags }));
        // Proposed first, so that every replica frees the room before it applies the write.
        if (admitted.evict.length > 0) g.propose(encodeCommand({ type: 'evict', items: admitted.evict }), deadline).catch(() => {});
        const { result } = await propose({
          type: 'put', ...req.ref, value: req.value, contentType: req.contentType, expiresAt,
          tags: req.tags, condition, lockHandle: req.lockHandle, unlock: req.unlock, now,
        }).finally(admitted.settle);
        if (result.code !== 'ok') throw failure(result);
        const r = result as { version: number; created: boolean };
        return { result: { version: String(r.version), created: r.created }, value: null };
      }
      case 'delete': {
        const { result } = await propose({ type: 'delete', ...req.ref, ifMatch: req.ifMatch, lockHandle: req.lockHandle, now });
        if (result.code !== 'ok') throw failure(result);
        return { result: {}, value: null };
      }
      case 'touch': {
        const { result } = await propose({ type: 'touch', ...req.ref, expiresAt: now + req.ttlMs, now });
        if (result.code !== 'ok') throw failure(result);
        const r = result as { version: number; expiresAt: number | null };
        return { result: { version: String(r.version), expiresAt: r.expiresAt }, value: null };
      }
      case 'lock': {
        const { result } = await propose({ type: 'lock', ...req.ref, handle: randomUUID(), lockExpiresAt: now + req.timeoutMs, now });
        if (result.code !== 'ok') throw failure(result);
        const r = result as { item: CacheItem; handle: string; lockExpiresAt: number };
        const v = toView(r.item);
        return { result: { handle: r.handle, lockExpiresAt: r.lockExpiresAt, contentType: v.contentType, version: v.version, expiresAt: v.expiresAt, tags: v.tags }, value: v.value };
      }
      case 'unlock': {
        const { result } = await propose({ type: 'unlock', ...req.ref, handle: req.handle, now });
        if (result.code !== 'ok') throw failure(result);
        return { result: {}, value: null };
      }
      case 'clearRegion': {
        const { result } = await propose({ type: 'clearRegion', cache: req.cache, region: req.region, now });
        if (result.code !== 'ok') throw failure(result);
        return { result: { removed: (result as { removed: number }).removed }, value: null };
      }
      case 'listRegion': {
        const items = await g.read(() => {
          const sm = this.state(g);
          if (!sm.hasCache(req.cache)) throw new VeloError('cache_not_found', `no cache "${req.cache}"`);
          return sm.listRegion(req.cache, req.region, { tags: req.tags, match: req.match }, Date.now());
        }, deadline);
        // Values travel as one body after the header, each at its offset: never JSON-encoded.
        const sizes = items.map((i) => i.value.length);
        const body = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
        let at = 0;
        for (const i of items) {
          body.set(i.value, at);
          at += i.value.length;
        }
        const meta = items.map((i) => ({ key: i.key, contentType: i.contentType, version: String(i.version), expiresAt: i.expiresAt, tags: [...i.tags] }));
        return { result: { items: meta, sizes }, value: body };
      }
      case 'get': {
        this.counters.reads++;
        const res = await g.read(() => this.localRead(g, req.ref), deadline);
        if (!res.ok) throw responseError(res);
        const sm = this.state(g);
        sm.recordRead(req.ref.cache, res.result.found === true);
        if (res.result.found === true) sm.touchRecency(req.ref.cache, req.ref.region, req.ref.key);
        return { result: { ...res.result, stale: false }, value: res.value };
      }
      case 'putCache': {
        const { result } = await propose({ type: 'putCache', name: req.name, settings: req.settings });
        if (result.code !== 'ok') throw failure(result);
        const r = result as { created: boolean; settings: CacheSettings };
        return { result: { created: r.created, settings: r.settings }, value: null };
      }
      case 'dropCache': {
        const { result } = await propose({ type: 'dropCache', name: req.name });
        if (result.code !== 'ok') throw failure(result);
        return { result: {}, value: null };
      }
      case 'catalog': {
        const caches = await g.read(() => this.state(g).listCaches(), deadline);
        return { result: { caches }, value: null };
      }
      case 'stats': {
        const stats = await g.read(() => this.state(g).stats(req.cache), deadline);
        if (!stats) throw new VeloError('cache_not_found', `no cache "${req.cache}"`);
        return { result: { ...stats }, value: null };
      }
      case 'export': {
        // Read once the ReadIndex is applied: the content holds every write committed before the request.
        const held = await g.read(() => {
          const sm = this.state(g);
          const index = sm.appliedIndex;
          return { index, bytes: encodePartitionExport({ partition: g.partition, index, ...sm.exportContent(Date.now()) }), expiresAt: 0 };
        }, deadline);
        const exportId = randomUUID();
        this.exports.set(exportId, held);
        const out = unwrap(this.exportChunk(exportId, 0));
        return { result: { ...out.result, exportId }, value: out.value };
      }
      case 'putMany': {
        // Every item through the single-put path (its checks, its clock); the drive loop batches their entries.
        const failed: LoadFailure[] = [];
        let at = 0;
        const puts = req.items.map((it, i) => {
          const value = req.value.subarray(at, at + req.sizes[i]!);
          at += req.sizes[i]!;
          const put: NodeRequest = { op: 'put', partition: req.partition, ref: it.ref, contentType: it.contentType, ttlMs: null, expiresAt: it.expiresAt, tags: it.tags, ifMatch: null, ifNoneMatch: false, lockHandle: null, unlock: false, value };
          return this.execute(g, put, deadline).catch((e: unknown) => {
            failed.push({ index: i, ...loadFailure(e) });
          });
        });
        await Promise.all(puts);
        return { result: { failed }, value: null };
      }
      case 'meta': {
        const r = (await g.propose(encodeMetaCommand(req.command), deadline)) as MetaResult;
        if (r.code !== 'ok') throw new VeloError(r.code, r.message);
        if (req.command.type === 'register') return { result: this.joinAnswer(), value: null };
        return { result: { changed: r.changed }, value: null };
      }
      case 'memberOf': {
        const conf = g.raft.appliedConfState();
        return { result: { member: conf.voters.includes(req.member) || conf.learners.includes(req.member) }, value: null };
      }
      case 'groups':
        throw new VeloError('bad_request', 'groups are answered by the transport handler');
      case 'probe':
        throw new VeloError('bad_request', 'probe is answered by the transport handler');
      case 'memory':
        throw new VeloError('bad_request', 'memory reports are answered by the transport handler');
      case 'events':
        throw new VeloError('bad_request', 'events are answered by any replica, before leadership is checked');
    }
  }

  // ---------------------------------------------------------------- leader duties

  private onTick(now: number): void {
    const waiters = this.tickWaiters;
    this.tickWaiters = [];
    for (const w of waiters) w();
    // Snapshot chunks held back by the bandwidth limit go out as their turn comes.
    if (this.throttle.stats().held > 0) {
      this.throttle.release();
      this.transport.flush();
    }
    for (const [id, e] of this.exports) if (e.expiresAt !== 0 && e.expiresAt <= now) this.exports.delete(id);
    this.exchangeMemory();
    if (this.started && !this.closed) this.access.tick(now);
    if (--this.reconcileCountdown > 0) return;
    this.reconcileCountdown = Math.max(1, Math.round(200 / this.o.tickMs));
    const s = this.meta.state;
    this.membership.registerSelf(s, this.loop.get(META_GROUP)?.leader() != null);
    if (s === null) return; // nothing to reconcile toward until the metadata arrives
    for (const g of this.loop.all()) {
      if (!g.isLeader()) continue;
      if (g.partition === META_GROUP) {
        this.membership.reconcile(g, s);
        this.membership.plan(g, s, now);
      } else {
        this.proposeExpirations(g, now);
        this.proposeEvictions(g, now);
        this.membership.reconcile(g, s);
      }
    }
    if (--this.gcCountdown <= 0) {
      this.gcCountdown = 5;
      this.membership.collect(s);
    }
  }
  /** Expired items are invisible at once; the leader removes them with an expire command (DESIGN.md). */
  private proposeExpirations(g: Group, now: number): void {
    const items = this.state(g).expiredItems(now);
    if (items.length === 0) return;
    g.propose(encodeCommand({ type: 'expire', items, now }), now + this.o.requestTimeoutMs).catch(() => {});
  }

  /**
   * With eviction 'lru' and maxBytes, the leader evicts the least recently
   * used items (reads count) to bring each cache under its share; the choice
   * travels in the command, so replicas agree.
   */
  private proposeEvictions(g: Group, now: number): void {
    if (this.evicting.has(g.partition)) return;
    const sm = this.state(g);
    for (const { name } of sm.listCaches()) {
      const excess = sm.bytesToFree(name);
      if (excess <= 0) continue;
      const items = sm.lruCandidates(name, excess);
      if (items.length === 0) continue;
      this.evicting.add(g.partition);
      g.propose(encodeCommand({ type: 'evict', items }), now + this.o.requestTimeoutMs)
        .catch(() => {})
        .finally(() => this.evicting.delete(g.partition));
      return;
    }
  }

  /** The node-wide memory cap's say on a put (memory-cap.ts): room on every replica's node, or LRU items to evict first. */
  private admitPut(g: Group, sm: CacheStateMachine, ref: Ref, eviction: 'lru' | 'none', growthBytes: number): { evict: ItemVersionRef[]; settle: () => void } {
    const conf = g.raft.appliedConfState();
    return this.memory.admitPut({
      partition: g.partition,
      replicas: [...new Set([...conf.voters, ...conf.learners].map(nodeOfMember))],
      growthBytes,
      cache: ref.cache,
      eviction,
      written: itemKey(ref.cache, ref.region, ref.key),
      choose: (bytes, skip) => sm.evictionFor(ref.cache, bytes, skip),
      itemKey: (r) => itemKey(r.cache, r.region, r.key),
    });
  }

  /** The item bytes all of this node's replicas account for (the measure of --max-memory). */
  private accountedBytes(): number {
    let n = 0;
    for (const s of this.states.values()) n += s.sm.accountedBytes();
    return n;
  }

  /** Sends this node's memory standing to every peer and takes theirs from the answers (one exchange per peer at a time). */
  private exchangeMemory(): void {
    this.memory.retain(new Set(this.peerAddrs.keys()));
    for (const peer of this.peerAddrs.keys()) {
      if (this.transport.peerStatus().get(peer)?.connected !== true || !this.memory.beginExchange(peer)) continue;
      this.transport
        .request(peer, encodeRequest({ op: 'memory', partition: -1, ...this.memory.report() }), 1000)
        .then((bytes) => {
          const res = decodeResponse(bytes);
          if (res.ok) this.memory.record(peer, res.result);
        })
        .catch(() => {})
        .finally(() => this.memory.endExchange(peer));
    }
  }

  private nextTick(): Promise<void> {
    return new Promise((resolve) => this.tickWaiters.push(resolve));
  }

  // ---------------------------------------------------------------- the service (API.md)

  private partitionOf(ref: ItemRef): number {
    return partitionOf(this.o.partitions, ref.cache, ref.region, ref.key);
  }

  leaderOf(cache: string, region: string | null, key: string): NodeId | null {
    const p = partitionOf(this.o.partitions, cache, region, key);
    const leader = this.loop.get(p)?.leader();
    // Without a replica here, the leader another node named last (a hint: the client checks it).
    return leader ? nodeOfMember(leader) : (this.leaderHints.get(p) ?? null);
  }

  async put(req: PutRequest): Promise<{ version: string; created: boolean }> {
    const ref = { cache: req.cache, region: req.region, key: req.key };
    const out = await this.route({
      op: 'put', partition: this.partitionOf(ref), ref, contentType: req.contentType, ttlMs: req.ttlMs, tags: req.tags,
      ifMatch: parseVersion(req.ifMatch), ifNoneMatch: req.ifNoneMatch, lockHandle: req.lockHandle, unlock: req.unlock, value: req.value,
    });
    return { version: out.result.version as string, created: out.result.created as boolean };
  }

  async get(ref: ItemRef, consistency: Consistency): Promise<{ item: ItemView | null; stale: boolean | null }> {
    const partition = this.partitionOf(ref);
    const local = consistency === 'local' || this.o.unsafeStaleStrongReads ? this.loop.get(partition) : undefined;
    const out = local ? unwrap(this.localRead(local, ref)) : await this.route({ op: 'get', partition, ref, consistency });
    const r = out.result;
    const stale = consistency === 'local' ? (r.stale as boolean) : null;
    if (r.found !== true) return { item: null, stale };
    return {
      item: itemOf(out),
      stale,
    };
  }

  async delete(ref: ItemRef, ifMatch: string | null, lockHandle: string | null): Promise<void> {
    await this.route({ op: 'delete', partition: this.partitionOf(ref), ref, ifMatch: parseVersion(ifMatch), lockHandle });
  }

  async touch(ref: ItemRef, ttlMs: number): Promise<{ version: string; expiresAt: number | null }> {
    const out = await this.route({ op: 'touch', partition: this.partitionOf(ref), ref, ttlMs });
    return { version: out.result.version as string, expiresAt: out.result.expiresAt as number | null };
  }

  async lock(ref: ItemRef, timeoutMs: number): Promise<{ item: ItemView; handle: string; lockExpiresAt: number }> {
    const out = await this.route({ op: 'lock', partition: this.partitionOf(ref), ref, timeoutMs });
    const r = out.result;
    return {
      item: itemOf(out),
      handle: r.handle as string,
      lockExpiresAt: r.lockExpiresAt as number,
    };
  }

  async unlock(ref: ItemRef, handle: string): Promise<void> {
    await this.route({ op: 'unlock', partition: this.partitionOf(ref), ref, handle });
  }

  async listRegion(cache: string, region: string, tags: string[], match: 'any' | 'all'): Promise<(ItemView & { key: string })[]> {
    const out = await this.route({ op: 'listRegion', partition: partitionOf(this.o.partitions, cache, region, ''), cache, region, tags, match });
    const meta = out.result.items as { key: string; contentType: string; version: string; expiresAt: number | null; tags: string[] }[];
    const sizes = out.result.sizes as number[];
    const body = out.value ?? new Uint8Array(0);
    let at = 0;
    return meta.map((m, i) => {
      const value = body.subarray(at, at + sizes[i]!);
      at += sizes[i]!;
      return { ...m, value };
    });
  }

  async clearRegion(cache: string, region: string): Promise<{ removed: number }> {
    const out = await this.route({ op: 'clearRegion', partition: partitionOf(this.o.partitions, cache, region, ''), cache, region });
    return { removed: out.result.removed as number };
  }

  /**
   * This node's replica of a partition, summarised so replicas can be
   * compared (fault tests): its applied index and the CRC-32 of its state.
   * Replicas that applied the same log have byte-identical snapshots, so
   * equal digests at equal indexes mean equal states. null: no replica here.
   */
  partitionDigest(partition: number): { node: NodeId; partition: number; applied: number; digest: string } | null {
    const st = this.states.get(partition);
    if (!st) return null;
    const bytes = st.sm.snapshot();
    return { node: this.id, partition, applied: st.sm.appliedIndex, digest: crc32(bytes).toString(16).padStart(8, '0') };
  }

  /** A chunk of an export this node holds; an unknown id means it expired or this node restarted since. */
  private exportChunk(exportId: string, offset: number): NodeResponse {
    const now = Date.now();
    // Expired exports are dropped every tick (onTick).
    const held = this.exports.get(exportId);
    if (!held) return { ok: false, code: 'unavailable', message: `export ${exportId} is no longer held by ${this.id} (expired, or the node restarted): export the partition again`, retry: 'no', leader: null };
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > held.bytes.length) {
      return { ok: false, code: 'bad_request', message: `offset ${offset} is outside the export's ${held.bytes.length} bytes`, retry: 'no', leader: null };
    }
    const end = Math.min(held.bytes.length, offset + EXPORT_CHUNK_BYTES);
    if (end === held.bytes.length) this.exports.delete(exportId);
    else held.expiresAt = now + EXPORT_HOLD_MS;
    return { ok: true, result: { index: held.index, total: held.bytes.length, holder: this.id }, value: held.bytes.subarray(offset, end) };
  }

  /**
   * A partition's live content and cache settings for a backup (API.md
   * extension "Backup and bulk load"), read by its leader at a confirmed
   * committed index: it holds every write acknowledged before the call.
   * The bytes (records.ts, a partition export) come in chunks.
   */
  async exportPartition(partition: number): Promise<{ index: number; bytes: number; chunks: AsyncIterable<Uint8Array> }> {
    if (!Number.isSafeInteger(partition) || partition < 0 || partition >= this.o.partitions) {
      throw new VeloError('bad_request', `partition must be 0–${this.o.partitions - 1}, got ${partition}`);
    }
    const first = await this.route({ op: 'export', partition, exportId: null, offset: 0 });
    const { index, total, holder, exportId } = first.result as { index: number; total: number; holder: NodeId; exportId: string };
    const head = first.value ?? new Uint8Array(0);
    const more = async function* (this: VeloNode): AsyncGenerator<Uint8Array> {
      yield head;
      for (let offset = head.length; offset < total; ) {
        const out = await this.route({ op: 'export', partition, exportId, offset }, holder);
        const chunk = out.value ?? new Uint8Array(0);
        if (chunk.length === 0) throw new VeloError('internal', `export of partition ${partition} stalled at byte ${offset} of ${total}`);
        offset += chunk.length;
        yield chunk;
      }
    };
    return { index, bytes: total, chunks: more.call(this) };
  }

  /**
   * Upserts items through the normal write path (one command each, proposed
   * by their partitions' leaders), keeping absolute expiry instants: the bulk
   * half of restore. Each item's outcome is reported; nothing is retried here.
   */
  async load(items: readonly ItemRecord[]): Promise<{ written: number; failed: LoadFailure[] }> {
    // One request per partition's share (in slices), so a forwarded item costs no round trip of its own.
    const byPartition = new Map<number, number[]>();
    items.forEach((it, i) => {
      const p = this.partitionOf({ cache: it.cache, region: it.region, key: it.key });
      const list = byPartition.get(p) ?? [];
      list.push(i);
      byPartition.set(p, list);
    });
    const slices: { partition: number; indexes: number[] }[] = [];
    for (const [partition, indexes] of byPartition) {
      let slice: number[] = [];
      let bytes = 0;
      let meta = 0;
      for (const i of indexes) {
        const it = items[i]!;
        // An over-estimate of the item's share of the JSON header (UTF-16 length ≥ UTF-8 bytes / 3, so ×3).
        const itemMeta = 120 + 3 * (it.cache.length + (it.region?.length ?? 0) + it.key.length + it.contentType.length + it.tags.reduce((n, t) => n + t.length + 3, 0));
        if (slice.length >= LOAD_SLICE_ITEMS || bytes + it.value.length > LOAD_SLICE_BYTES || meta + itemMeta > LOAD_SLICE_META_BYTES) {
          if (slice.length > 0) slices.push({ partition, indexes: slice });
          slice = [];
          bytes = 0;
          meta = 0;
        }
        slice.push(i);
        bytes += it.value.length;
        meta += itemMeta;
      }
      if (slice.length > 0) slices.push({ partition, indexes: slice });
    }
    const failed: LoadFailure[] = [];
    let next = 0;
    const worker = async () => {
      while (next < slices.length) {
        const { partition, indexes } = slices[next++]!;
        const batch = indexes.map((i) => items[i]!);
        const value = new Uint8Array(batch.reduce((n, it) => n + it.value.length, 0));
        let at = 0;
        for (const it of batch) {
          value.set(it.value, at);
          at += it.value.length;
        }
        try {
          const out = await this.route({
            op: 'putMany',
            partition,
            items: batch.map((it) => ({ ref: { cache: it.cache, region: it.region, key: it.key }, contentType: it.contentType, expiresAt: it.expiresAt, tags: it.tags })),
            sizes: batch.map((it) => it.value.length),
            value,
          });
          for (const f of out.result.failed as LoadFailure[]) failed.push({ ...f, index: indexes[f.index]! });
        } catch (e) {
          const f = loadFailure(e);
          for (const i of indexes) failed.push({ ...f, index: i });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(LOAD_CONCURRENCY, slices.length) }, worker));
    failed.sort((a, b) => a.index - b.index);
    return { written: items.length - failed.length, failed };
  }

  /** Change events of this replica of `partition` after `after` (null: only its head). */
  private localEvents(partition: number, after: Position | null, limit: number): NodeResponse {
    const log = this.states.get(partition)!.events;
    if (after === null) return { ok: true, result: { head: log.head(), events: [], lost: false }, value: null };
    const r = log.since(after, Math.min(limit, 1000));
    if (r.lost) return { ok: true, result: { lost: true, events: [], head: log.head() }, value: null };
    return { ok: true, result: { lost: false, events: r.events, head: log.head() }, value: null };
  }

  private async eventsOf(partition: number, after: Position | null): Promise<{ lost: boolean; events: StoredEvent[]; head: Position }> {
    const local = this.states.has(partition) ? this.localEvents(partition, after, 500) : null;
    const out = local ? unwrap(local) : await this.route({ op: 'events', partition, after, limit: 500 });
    return out.result as unknown as { lost: boolean; events: StoredEvent[]; head: Position };
  }

  /**
   * Streams a cache's change events (API.md "Change events"), in commit order
   * within each partition, resuming after `lastEventId` when given. Local
   * replicas are read directly, others through a replica over the peer
   * connection, once per tick. Returns a function that stops the stream.
   */
  async openEvents(
    filter: { cache: string; region: string | null; key: string | null; lastEventId: string | null },
    sink: { event(id: string, data: object): void; error(code: string, message: string): void; ready?(): boolean },
  ): Promise<() => void> {
    const partitions =
      filter.region !== null ? [partitionOf(this.o.partitions, filter.cache, filter.region, '')] : filter.key !== null ? [partitionOf(this.o.partitions, filter.cache, null, filter.key)] : range(this.o.partitions);
    let cursor: Map<number, Position>;
    if (filter.lastEventId !== null) {
      try {
        cursor = decodeEventId(filter.lastEventId);
      } catch (e) {
        throw new VeloError('bad_request', (e as Error).message);
      }
      for (const p of partitions) if (!cursor.has(p)) throw new VeloError('bad_request', `Last-Event-ID has no position for partition ${p}: it is from another stream`);
    } else {
      cursor = new Map();
      for (const p of partitions) cursor.set(p, (await this.eventsOf(p, null)).head);
    }
    const ours = new Map(partitions.map((p) => [p, cursor.get(p)!]));
    let closed = false;
    const busy = new Set<number>();
    const pump = async (p: number) => {
      busy.add(p);
      try {
        const r = await this.eventsOf(p, ours.get(p)!);
        if (closed) return;
        if (r.lost) {
          closed = true;
          sink.error('history_lost', `partition ${p} no longer holds the events after the given Last-Event-ID; reconnect without it to start from now`);
          return;
        }
        for (const e of r.events) {
          // A reader that is behind: the rest waits in the event log, read again from here once it drains.
          if (sink.ready?.() === false || closed) return;
          ours.set(p, { index: e.index, seq: e.seq });
          const ev = e.event;
          if (ev.cache !== filter.cache) continue;
          if (filter.region !== null && ev.region !== filter.region) continue;
          if (filter.key !== null && ev.key !== filter.key && ev.type !== 'clear') continue;
          sink.event(encodeEventId(p, e, ours), { type: ev.type, cache: ev.cache, region: ev.region, key: ev.key, version: String(ev.version) });
        }
      } catch {
        // Unreachable for now: try again on a later tick.
      } finally {
        busy.delete(p);
      }
    };
    const loop = async () => {
      while (!closed && !this.closed) {
        for (const p of partitions) if (!busy.has(p) && sink.ready?.() !== false) void pump(p);
        await this.nextTick();
      }
    };
    void loop();
    return () => {
      closed = true;
    };
  }

  async listCaches(): Promise<{ name: string; settings: CacheSettings }[]> {
    // Every partition holds the catalog; partition 0 answers for all.
    const out = await this.route({ op: 'catalog', partition: 0 });
    return out.result.caches as { name: string; settings: CacheSettings }[];
  }

  async putCache(name: string, settings: Partial<CacheSettings>): Promise<{ created: boolean; settings: CacheSettings }> {
    const caches = await this.listCaches();
    const current = caches.find((c) => c.name === name)?.settings ?? DEFAULT_SETTINGS;
    const full: CacheSettings = { ...current, ...settings };
    // The catalog lives in every partition; each applies the change at its own log position.
    const results = await this.everyPartition((partition) => ({ op: 'putCache', partition, name, settings: full }));
    return { created: results[0]!.result.created as boolean, settings: results[0]!.result.settings as CacheSettings };
  }

  async dropCache(name: string): Promise<void> {
    // The state machine refuses it too, but only after the command went through every partition's log.
    if (name === DEFAULT_CACHE) throw new VeloError('bad_request', 'the default cache cannot be dropped');
    await this.everyPartition((partition) => ({ op: 'dropCache', partition, name }));
  }

  /**
   * A catalog change, one request per partition. Its failure says "not
   * applied" (NotApplied: a client may retry it) only when no partition may
   * have applied its share; once some did, the change is indeterminate.
   */
  private async everyPartition(request: (partition: number) => NodeRequest): Promise<{ result: Record<string, unknown>; value: Uint8Array | null }[]> {
    const settled = await Promise.allSettled(range(this.o.partitions).map((p) => this.route(request(p))));
    const errors = settled.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    if (errors.length === 0) return settled.map((r) => (r as PromiseFulfilledResult<{ result: Record<string, unknown>; value: Uint8Array | null }>).value);
    const other = errors.find((e) => !(e instanceof NotApplied));
    if (other !== undefined) throw other;
    if (errors.length < settled.length) throw new VeloError('unavailable', `${settled.length - errors.length} of ${settled.length} partitions applied the change; the others did not answer in time (${(errors[0] as Error).message})`, 1);
    throw errors[0];
  }

  async stats(cache: string): Promise<CacheStats> {
    const all = await Promise.all(range(this.o.partitions).map((p) => this.route({ op: 'stats', partition: p, cache })));
    const sum: CacheStats = { items: 0, bytes: 0, hits: 0, misses: 0, evictions: 0, expirations: 0 };
    for (const r of all) for (const k of Object.keys(sum) as (keyof CacheStats)[]) sum[k] += (r.result[k] as number) ?? 0;
    return sum;
  }

  /** The membership and the numbers a joining node needs (the answer to its registration). */
  private joinAnswer(): Record<string, unknown> {
    const s = this.meta.state!;
    return { members: s.members, partitions: s.partitions, replicas: s.replicas };
  }

  /** The raft status of every partition replica on this node. */
  private groupStatuses(): GroupStatus[] {
    const out: GroupStatus[] = [];
    for (const g of this.loop.all()) {
      if (g.partition === META_GROUP) continue;
      const st = g.raft.status();
      // The configuration this replica applied (committed), not one merely proposed.
      const conf = g.raft.appliedConfState();
      out.push({ partition: g.partition, leader: st.leader ? nodeOfMember(st.leader) : null, term: st.term, commit: st.commit, voters: conf.voters, learners: conf.learners });
    }
    return out;
  }

  async addMember(m: { id: NodeId; raft: string; http: string; member: string }): Promise<Record<string, unknown>> {
    const out = await this.membership.command({ type: 'register', ...m });
    return out.result;
  }

  async removeMember(id: NodeId, force: boolean): Promise<{ id: NodeId; status: string }> {
    try {
      await this.membership.command({ type: 'setStatus', id, status: 'draining', force });
      return { id, status: 'draining' };
    } catch (e) {
      // Already draining or removed: the request is done (idempotent); other refusals stand.
      const m = this.meta.state?.members.find((x) => x.id === id);
      if (e instanceof VeloError && e.code === 'conflict' && m && m.status !== 'active') return { id, status: m.status };
      throw e;
    }
  }

  /**
   * The cluster as this node sees it: membership and targets from its
   * metadata replica; each partition's leader and configuration from the
   * replica with the newest term among this node's and the other members'.
   */
  async cluster(): Promise<ClusterView> {
    const seen = new Map<number, GroupStatus>();
    const others = [...this.transport.peerStatus()].filter(([, st]) => st.connected).map(([id]) => id);
    await Promise.all(
      others.map(async (id) => {
        try {
          const res = decodeResponse(await this.transport.request(id, encodeRequest({ op: 'groups', partition: -1 }), 1000));
          if (res.ok) for (const g of res.result.groups as GroupStatus[]) takeNewest(seen, g);
        } catch {
          // That member's view is missing: its partitions show what the others know.
        }
      }),
    );
    return this.localCluster(seen);
  }

  /** The cluster as this node alone sees it (leaders of partitions it holds no replica of are null), plus `remote`'s statuses. */
  localCluster(remote: Map<number, GroupStatus> = new Map()): ClusterView {
    const s = this.meta.state;
    const status = this.transport.peerStatus();
    const seen = new Map(remote);
    for (const g of this.groupStatuses()) takeNewest(seen, g);
    const targets = s?.targets ?? [];
    const partitions = range(this.o.partitions).map((p) => {
      const st = seen.get(p);
      return {
        id: p,
        replicas: targets[p]?.replicas ?? [],
        leader: st?.leader ?? null,
        term: st?.term ?? 0,
        commitIndex: st?.commit ?? 0,
        // Beyond API.md: the raft configuration (member ids), and whether the replicas are moving.
        voters: st?.voters ?? [],
        learners: st?.learners ?? [],
        moving: targets[p]?.moving ?? false,
      };
    });
    const records = s?.members ?? [...this.o.peers].map(([id, raft]) => ({ id, raft, http: '', member: id, status: 'active' as const }));
    const members = records.map((m) => ({
      id: m.id,
      http: m.http || this.httpOf.get(m.id) || '',
      raft: this.o.peers.get(m.id) ?? m.raft,
      state: (m.id === this.id || status.get(m.id)?.connected ? 'up' : 'down') as 'up' | 'down',
      status: m.status,
      replicas: targets.filter((t) => t.replicas.includes(m.id)).length,
      leaders: partitions.filter((p) => p.leader === m.id).length,
    }));
    const active = records.filter((m) => m.status === 'active').map((m) => m.id);
    const ideal = s && active.length > 0 ? rebalance(targets.map((t) => t.replicas), active, s.replicas) : targets.map((t) => t.replicas);
    const movesInFlight = targets.filter((t) => t.moving).length;
    const movesPending = targets.filter((t, p) => !t.moving && !sameList(t.replicas, ideal[p]!)).length;
    const metaGroup = this.loop.get(META_GROUP);
    const meta = metaGroup?.raft.status();
    const metaConf = metaGroup?.raft.appliedConfState();
    return {
      node: this.id,
      members,
      partitions,
      metadata: meta && metaConf ? { leader: meta.leader ? nodeOfMember(meta.leader) : null, term: meta.term, voters: metaConf.voters, learners: metaConf.learners } : null,
      rebalance: { balanced: s !== null && movesInFlight === 0 && movesPending === 0, movesInFlight, movesPending, maxConcurrentMoves: this.o.maxConcurrentMoves, moveBytesPerSecond: this.o.moveBytesPerSecond },
    };
  }

  // ---------------------------------------------------------------- access tokens

  joinProofRefusal(claim: JoinClaim, proof: JoinProof | undefined): string | null | undefined {
    if (this.peerTls === null) return undefined;
    return joinProofRefusal(this.peerTls.ca, this.o.clusterId, claim, proof, Date.now());
  }

  accessMode(): AccessMode {
    return this.access.mode();
  }

  authenticate(secret: string): Principal | null {
    return this.access.authenticate(secret);
  }

  /** A new token: its secret is made here, only its hash is proposed; the secret is answered once and kept nowhere. */
  async createToken(t: { name: string; role: Role; caches: string[] | null }): Promise<{ name: string; token: string }> {
    const token = generateSecret();
    await this.membership.command({ type: 'addToken', name: t.name, role: t.role, caches: t.caches, hash: hashSecret(token), createdAt: Date.now() });
    return { name: t.name, token };
  }

  listTokens(): { name: string; role: Role; caches: string[] | null; createdAt: number }[] {
    return this.access.tokens().map((t) => ({ name: t.name, role: t.role, caches: t.caches, createdAt: t.createdAt }));
  }

  async revokeToken(name: string): Promise<void> {
    await this.membership.command({ type: 'revokeToken', name });
  }

  notReady(): { code: 'unavailable' | 'node_removed'; message: string } | null {
    if (this.removal !== null) return { code: 'node_removed', message: `${this.removal}; it holds no replicas and takes no requests` };
    const leaderless = [...this.loop.all()].filter((g) => g.leader() === null).map((g) => groupName(g.partition));
    if (leaderless.length > 0) return { code: 'unavailable', message: `no known leader yet for ${leaderless.join(', ')}` };
    // It would answer every authenticated request 503: not ready for a load balancer either.
    const access = this.access.mode();
    if (access.mode === 'pending') return { code: 'unavailable', message: `cannot verify tokens yet: ${access.why}` };
    return null;
  }

  observeRequest(method: string, route: string, status: number): void {
    this.httpRequests.inc({ method, route, status });
  }

  metrics(): string {
    const out: string[] = [];
    const counter = (name: string, help: string, v: number) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${v}`);
    counter('velo_requests_total', 'Client operations received by this node.', this.counters.requests);
    counter('velo_forwarded_total', 'Operations forwarded to another node.', this.counters.forwarded);
    counter('velo_proposals_total', 'Commands proposed by this node as leader.', this.counters.proposals);
    counter('velo_strong_reads_total', 'Linearizable reads served by this node as leader.', this.counters.reads);
    counter('velo_request_errors_total', 'Operations that ended in an error.', this.counters.errors);
    this.httpRequests.render(out);
    this.proposalSeconds.render(out);
    this.applySeconds.render(out);
    this.leaderChanges.render(out);
    this.snapshots.render(out);
    const groups = [...this.loop.all()].map((g) => [{ partition: g.partition }, g.raft.status()] as const);
    const mem = this.memory.report();
    renderGauge(out, 'velo_memory_accounted_bytes', 'Item bytes this node’s replicas account for, writes admitted here and not yet applied included (--max-memory).', [[{}, mem.bytes]]);
    renderGauge(out, 'velo_memory_max_bytes', 'This node’s memory cap (--max-memory): writes past it answer 507 node_full.', [[{}, mem.capBytes]]);
    renderGauge(out, 'velo_raft_role', 'Role of this node’s replica: 0 follower, 1 pre-candidate, 2 candidate, 3 leader.', groups.map(([l, s]) => [l, s.role]));
    renderGauge(out, 'velo_raft_term', 'Current raft term per partition replica.', groups.map(([l, s]) => [l, s.term]));
    renderGauge(out, 'velo_raft_commit_index', 'Commit index per partition replica.', groups.map(([l, s]) => [l, s.commit]));
    renderGauge(out, 'velo_raft_applied_index', 'Applied index per partition replica.', groups.map(([l, s]) => [l, s.applied]));
    const t = this.transport.stats();
    counter('velo_transport_raft_messages_sent_total', 'Raft messages queued to peers.', t.raftMessagesSent);
    counter('velo_transport_raft_messages_dropped_total', 'Raft messages dropped (no connection or full queue).', t.raftMessagesDropped);
    counter('velo_transport_frames_sent_total', 'Frames written to peers.', t.framesSent);
    return out.join('\n') + '\n';
  }

  /** The port the transport listens on (useful with port 0). */
  get raftPort(): number {
    return this.transport.port;
  }

}

/** The item a response carries: its fields in the header, its value as the body. */
function itemOf(out: { result: Record<string, unknown>; value: Uint8Array | null }): ItemView {
  const r = out.result;
  return { value: out.value ?? new Uint8Array(0), contentType: r.contentType as string, version: r.version as string, expiresAt: (r.expiresAt as number | null) ?? null, tags: (r.tags as string[]) ?? [] };
}

/** Keeps the status with the newest term for each partition (a known leader wins a tie). */
function takeNewest(seen: Map<number, GroupStatus>, g: GroupStatus): void {
  const cur = seen.get(g.partition);
  // A replica that is behind may still list an older configuration: the newest term, then the longest commit, wins.
  if (!cur || g.term > cur.term || (g.term === cur.term && (g.commit > cur.commit || (g.commit === cur.commit && cur.leader === null && g.leader !== null)))) seen.set(g.partition, g);
}

export interface GroupStatus {
  partition: number;
  leader: NodeId | null;
  term: number;
  commit: number;
  voters: string[];
  learners: string[];
}

function isRead(req: NodeRequest): boolean {
  return req.op === 'export' || req.op === 'get' || req.op === 'events' || req.op === 'catalog' || req.op === 'stats' || req.op === 'listRegion' || req.op === 'memberOf';
}

function unwrap(res: NodeResponse): { result: Record<string, unknown>; value: Uint8Array | null } {
  if (!res.ok) throw responseError(res);
  return res;
}

function parseVersion(v: string | null): number | null {
  if (v === null) return null;
  if (!/^[0-9]{1,15}$/.test(v)) throw new VeloError('precondition_failed', `no item has version "${v}"`);
  return Number(v);
}

export function splitHostPort(addr: string): [string, number] {
  const m = /^(\[[^\]]+\]|[^:]+):([0-9]{1,5})$/.exec(addr);
  if (!m) throw new Error(`"${addr}" is not host:port`);
  const port = Number(m[2]);
  if (port > 65535) throw new Error(`port ${port} in "${addr}" is out of range`);
  return [m[1]!.replace(/^\[|\]$/g, ''), port];
}
