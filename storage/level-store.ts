// A node's durable raft storage: ONE LevelDB database holding every group's
// hard state, log and latest snapshot (layout in level-codec.ts).
//
// One database rather than one per group so that a drive-loop pass costs one
// fsync however many groups it touched (group commit): groups stage their
// writes into one pending batch, and commit() writes it with sync: true —
// or without, when nothing staged asked for it (only commit indexes moved).
//
// Durability contract: a host stages every group's Ready, awaits commit(),
// and only then sends the Readys' messages (except a leader's, which the
// Ready marks sendBeforePersist), applies and answers. A failed commit is fatal: the
// in-memory logs are then ahead of the disk, so the store refuses every
// later write and the node must stop (as etcd does on a failed WAL write).

import { chmod, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Level } from 'level';
import { FORMAT_VERSION, META_KEY, Kind, VOTE_RANGE, decodeEntry, decodeHardState, decodeSnapshot, parseKey, parseVoteKey } from './level-codec.js';
import { LevelGroupStorage } from './level-storage.js';
import type { BatchSink, LevelOp, LoadedGroup } from './level-storage.js';
import type { HardState } from '../raft/types.js';

export interface LevelStoreOptions {
  /** Who owns the directory: open() refuses a directory recorded for another cluster or node. */
  clusterId: string;
  nodeId: string;
}

/** The `meta` record; null ids for a store opened without options (tools, tests). */
export interface StoreIdentity {
  clusterId: string | null;
  nodeId: string | null;
}

type Db = Level<Buffer, Buffer>;
type Waiter = { resolve: () => void; reject: (e: Error) => void };

export class LevelStore {
  private readonly groups = new Map<number, LevelGroupStorage>();
  private pending: { ops: LevelOp[]; sync: boolean; waiters: Waiter[] } = { ops: [], sync: false, waiters: [] };
  /** The last commit in flight: commits run one after another so that LevelDB applies batches in order. */
  private writing: Promise<void> = Promise.resolve();
  private commitScheduled = false;
  private failure: Error | null = null;
  private closed = false;
  private readonly sink: BatchSink = {
    push: (ops, sync) => this.push(ops, sync),
    durable: () => this.durable(),
  };

  private constructor(
    readonly dir: string,
    readonly identity: StoreIdentity,
    private readonly db: Db,
    loaded: Map<number, LoadedGroup>,
    /** The votes destroyed replicas left behind, by group (see LevelGroupStorage.destroy). */
    private readonly keptVotes: Map<number, HardState>,
  ) {
    for (const [id, g] of loaded) this.groups.set(id, new LevelGroupStorage(id, this.sink, g, keptVotes.get(id) ?? null));
  }

  /**
   * Opens (or, if missing or empty, initialises) the data directory `dir`.
   * Refuses, with an Error that says why, a directory of another cluster or
   * node, one that is not a Velo database, or one it cannot read — it never
   * starts empty over existing data. Garbage directories are refused before
   * LevelDB touches them.
   */
  static async open(dir: string, opts?: LevelStoreOptions): Promise<LevelStore> {
    const existing = await inspectDir(dir);
    const db: Db = new Level<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer', createIfMissing: !existing });
    try {
      await db.open();
      await ownerOnly(dir);
    } catch (e) {
      throw new Error(`cannot open data directory ${dir}: ${causes(e)}`, { cause: e });
    }
    try {
      const identity = await readMeta(db, dir, opts);
      return new LevelStore(dir, identity, db, await loadGroups(db, dir), await loadKeptVotes(db, dir));
    } catch (e) {
      await db.close();
      throw e;
    }
  }

  /**
   * The storage of group `id`: its recovered state, or an empty one
   * (bootstrap() it if the group is new) that starts from the vote an
   * earlier replica of the group left here, if any.
   */
  group(id: number): LevelGroupStorage {
    let g = this.groups.get(id);
    if (!g) {
      g = new LevelGroupStorage(id, this.sink, null, this.keptVotes.get(id) ?? null);
      this.groups.set(id, g);
    }
    return g;
  }

  /**
   * Deletes every key of group `id` (a replica that left the group: its
   * partition moved elsewhere) at the next commit(), but its vote, and
   * forgets the group, so that group(id) then returns a new, empty storage
   * that can be bootstrapped or receive a snapshot again — still bound by
   * that vote. The old handle refuses writes. Nothing to do for a group with
   * no state.
   */
  destroyGroup(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new RangeError(`group id ${id} is not a u32`);
    const g = this.groups.get(id);
    if (!g) return;
    const kept = g.destroy();
    if (kept) this.keptVotes.set(id, kept);
    this.groups.delete(id);
  }

  /** The groups that have state (recovered from disk, or staged since). */
  groupIds(): number[] {
    return [...this.groups.values()].filter((g) => g.exists()).map((g) => g.id);
  }

  /**
   * Writes everything staged by every group as ONE LevelDB batch, synced if
   * any of it asked to be, after any commit still in flight. Resolves when it is
   * durable; rejects (for good: see above) if the write failed.
   */
  commit(): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`data directory ${this.dir} is closed`));
    const run = this.writing.then(() => this.writePending());
    this.writing = run.catch(() => {});
    return run;
  }

  /** Commits what is staged, then closes the database. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.commit();
    } finally {
      this.closed = true;
      await this.db.close();
    }
  }

  private async writePending(): Promise<void> {
    if (this.failure) throw this.failure;
    const { ops, sync, waiters } = this.pending;
    this.pending = { ops: [], sync: false, waiters: [] };
    try {
      if (ops.length > 0) await this.db.batch(ops, { sync });
    } catch (e) {
      this.failure = new Error(`writing to data directory ${this.dir} failed, so this node must stop: ${causes(e)}`, { cause: e });
      for (const w of waiters) w.reject(this.failure);
      throw this.failure;
    }
    for (const w of waiters) w.resolve();
  }

  private push(ops: LevelOp[], sync: boolean): void {
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error(`data directory ${this.dir} is closed`);
    for (const op of ops) this.pending.ops.push(op); // not push(...ops): a snapshot can delete thousands of keys
    if (sync) this.pending.sync = true;
  }

  /**
   * For save(): resolves once what is staged now is durable. If the host
   * does not commit, a commit runs on the next turn of the event loop, so
   * that every save() issued in one turn still shares one sync.
   */
  private durable(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const done = new Promise<void>((resolve, reject) => this.pending.waiters.push({ resolve, reject }));
    if (!this.commitScheduled) {
      this.commitScheduled = true;
      setImmediate(() => {
        this.commitScheduled = false;
        if (!this.closed) this.commit().catch(() => {}); // the waiters get the error
      });
    }
    return done;
  }
}

/**
 * Checks the directory before LevelDB opens it (opening writes LOCK/LOG
 * files, and would create a database inside any non-empty directory).
 * Returns true for an existing LevelDB, false for a new (missing or empty)
 * directory, which it creates.
 */
async function inspectDir(dir: string): Promise<boolean> {
  let isDir: boolean;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw refusal(dir, e);
    await mkdir(dir, { recursive: true, mode: DIR_MODE });
    return false;
  }
  if (!isDir) throw new Error(`data directory ${dir} is not a directory`);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    throw refusal(dir, e);
  }
  if (names.length === 0) return false;
  if (!names.includes('CURRENT')) {
    throw new Error(`data directory ${dir} is not empty but holds no LevelDB database; refusing to use it (empty it or choose another directory)`);
  }
  let current: string;
  try {
    current = await readFile(path.join(dir, 'CURRENT'), 'utf8');
  } catch (e) {
    throw refusal(dir, e);
  }
  const manifest = /^(MANIFEST-\d+)\n$/.exec(current)?.[1];
  if (!manifest || !names.includes(manifest)) {
    throw new Error(`data directory ${dir} is corrupt or not a LevelDB database: its CURRENT file names no manifest present`);
  }
  return true;
}

/** Checks (or, in a new database, records) the identity and format of the data directory. */
async function readMeta(db: Db, dir: string, opts: LevelStoreOptions | undefined): Promise<StoreIdentity> {
  const raw = await db.get(META_KEY);
  if (raw === undefined) {
    const any = await db.keys({ limit: 1 }).all();
    if (any.length > 0) throw new Error(`data directory ${dir} holds a LevelDB database that is not Velo's (it has no meta record)`);
    const identity: StoreIdentity = { clusterId: opts?.clusterId ?? null, nodeId: opts?.nodeId ?? null };
    await db.put(META_KEY, Buffer.from(JSON.stringify({ ...identity, formatVersion: FORMAT_VERSION })), { sync: true });
    return identity;
  }
  let meta: StoreIdentity & { formatVersion: number };
  try {
    meta = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new Error(`data directory ${dir} is corrupt: its meta record is not readable`);
  }
  if (meta.formatVersion !== FORMAT_VERSION) {
    throw new Error(`data directory ${dir} has storage format version ${meta.formatVersion}; this Velo reads version ${FORMAT_VERSION}`);
  }
  if (opts && (meta.clusterId !== opts.clusterId || meta.nodeId !== opts.nodeId)) {
    throw new Error(`data directory ${dir} belongs to node ${meta.nodeId} of cluster ${meta.clusterId}, not node ${opts.nodeId} of cluster ${opts.clusterId}`);
  }
  return { clusterId: meta.clusterId, nodeId: meta.nodeId };
}

/** Reads every group's hard state, snapshot and log, checking that each log follows its snapshot without a gap. */
async function loadGroups(db: Db, dir: string): Promise<Map<number, LoadedGroup>> {
  const loader = new GroupLoader();
  try {
    for await (const [k, v] of db.iterator({ gte: Buffer.from('g'), lt: Buffer.from('h') })) loader.add(k, v);
    return loader.finish();
  } catch (e) {
    throw new Error(`data directory ${dir} is corrupt: ${causes(e)}`, { cause: e });
  }
}

/**
 * Recovery's reading of the group records, apart from LevelDB so that the
 * simulation's disk (test/sim/sim-disk.ts) recovers through exactly this
 * code: feed it every "g" record in key order, then finish(). Throws on
 * anything malformed — an undecodable value, an entry filed under another
 * index, a gap after the snapshot. It checks structure only: Velo's records
 * carry no checksum of their own (LevelDB's are on its log records and
 * table blocks; see test/sim/FINDINGS.md on what that leaves undetected).
 */
export class GroupLoader {
  private readonly groups = new Map<number, LoadedGroup>();

  add(k: Uint8Array, v: Uint8Array): void {
    const key = parseKey(k);
    if (!key) throw new Error(`unknown key ${Buffer.from(k).toString('hex')}`);
    let g = this.groups.get(key.group);
    if (!g) this.groups.set(key.group, (g = { hardState: null, snapshot: null, entries: [] }));
    if (key.kind === Kind.HardState) g.hardState = decodeHardState(v);
    else if (key.kind === Kind.Snapshot) g.snapshot = decodeSnapshot(v);
    else {
      const e = decodeEntry(v);
      if (e.index !== key.index) throw new Error(`group ${key.group}: entry under key ${key.index} has index ${e.index}`);
      g.entries.push(e); // keys sort by index within a group
    }
  }

  finish(): Map<number, LoadedGroup> {
    for (const [id, g] of this.groups) {
      let expect = (g.snapshot?.metadata.index ?? 0) + 1;
      for (const e of g.entries) {
        if (e.index !== expect++) throw new Error(`group ${id}: log entry ${expect - 1} is missing (found ${e.index})`);
      }
    }
    return this.groups;
  }
}

/** The votes destroyed replicas left behind (LevelGroupStorage.destroy), by group. */
async function loadKeptVotes(db: Db, dir: string): Promise<Map<number, HardState>> {
  const votes = new Map<number, HardState>();
  try {
    for await (const [k, v] of db.iterator(VOTE_RANGE)) votes.set(parseVoteKey(k), decodeHardState(v));
  } catch (e) {
    throw new Error(`data directory ${dir} is corrupt: ${causes(e)}`, { cause: e });
  }
  return votes;
}

/**
 * The data directory holds every cached value: readable by the node's user
 * only. LevelDB creates its files 0644 less the umask, so the directory is
 * what keeps later files private (`velo start` also sets the umask to 077);
 * files an earlier run left looser are tightened here.
 */
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

async function ownerOnly(dir: string): Promise<void> {
  await chmod(dir, DIR_MODE);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isFile()) await chmod(path.join(dir, entry.name), FILE_MODE);
  }
}

function refusal(dir: string, e: unknown): Error {
  return new Error(`cannot read data directory ${dir}: ${causes(e)}`, { cause: e });
}

/** An error's message with its causes' (level's own messages say little: "Database failed to open"). */
function causes(e: unknown): string {
  const parts: string[] = [];
  for (let c: unknown = e; c instanceof Error && parts.length < 4; c = c.cause) parts.push(c.message);
  return parts.length > 0 ? parts.join(': ') : String(e);
}
