// The cluster's metadata, replicated by its own raft group (META_GROUP) on
// every member: who the members are (and how to reach them), and where each
// partition's replicas should be. Partition leaders move their raft
// configurations toward these targets; the metadata group's leader plans the
// targets (rebalance.ts). Commands are JSON: they are few and small.

import type { NodeId } from '../../raft/index.js';
import type { GroupStateMachine } from './group.js';
import { placePartitions } from './partition-map.js';
import { BOOTSTRAP_TOKEN_NAME, MAX_TOKENS } from './tokens.js';
import type { Role, TokenRecord } from './tokens.js';

/** The metadata group's raft group id: above any partition id (at most 4096 partitions). */
export const META_GROUP = 1 << 20;

export type MemberStatus = 'active' | 'draining' | 'removed';

export interface MemberRecord {
  id: NodeId;
  /** host:port of its raft transport, as it registered it. */
  raft: string;
  /** host:port of its HTTP API ('' while unknown, or when it serves none). */
  http: string;
  /** Its raft member id in every group: the node id, or id@incarnation after a memory-losing restart. */
  member: string;
  status: MemberStatus;
}

export interface PartitionTarget {
  /** Node ids, preferred leader first. */
  replicas: NodeId[];
  /** Set when the target changed; cleared when the partition's leader reports its configuration matches. */
  moving: boolean;
}

export interface MetaState {
  partitions: number;
  replicas: number;
  /** Sorted by id. */
  members: MemberRecord[];
  targets: PartitionTarget[];
  /** Access tokens, sorted by name (absent in metadata written before tokens existed: none). */
  tokens?: TokenRecord[];
  /**
   * Set by the first token ever added, never cleared: from then on every
   * member demands tokens, even once the last one is revoked (revoking every
   * token must not open the cluster).
   */
  tokensRequired?: boolean;
  /** Set once the bootstrap admin token went in: it is never proposed again, so a revoked one stays revoked. */
  adminBootstrapped?: boolean;
}

export type MetaCommand =
  /** A node joining, or telling its current addresses and member id. A removed id cannot come back. */
  | { type: 'register'; id: NodeId; raft: string; http: string; member: string }
  /** draining: its replicas move elsewhere (active → draining); removed: it holds none (draining → removed). */
  | { type: 'setStatus'; id: NodeId; status: 'draining' | 'removed'; force?: boolean }
  /** A new target for a partition, if its current one is still `from` (plans are made from applied state). */
  | { type: 'setTarget'; partition: number; from: NodeId[]; replicas: NodeId[] }
  /** The partition's configuration now matches `replicas`. */
  | { type: 'moveDone'; partition: number; replicas: NodeId[] }
  /** A new access token (conflict if the name is taken). */
  | { type: 'addToken'; name: string; role: Role; caches: string[] | null; hash: string; createdAt: number }
  /** The cluster's first admin token, from --admin-token-file: applied once per cluster, whoever proposes it. */
  | { type: 'bootstrapAdmin'; hash: string; createdAt: number }
  | { type: 'revokeToken'; name: string };

export type MetaResult = { code: 'ok'; changed: boolean } | { code: 'conflict' | 'not_found' | 'bad_request'; message: string };

/** The state every bootstrap member starts from, identical on each: derived from the bootstrap flags only. */
export function initialMeta(peers: readonly NodeId[], partitions: number, replicas: number): MetaState {
  const ids = [...new Set(peers)].sort();
  return {
    partitions,
    replicas,
    members: ids.map((id) => ({ id, raft: '', http: '', member: id, status: 'active' as const })),
    targets: placePartitions(ids, partitions, replicas).map((p) => ({ replicas: p.replicas, moving: false })),
  };
}

export function encodeMetaCommand(c: MetaCommand): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(c));
}

/** The same ids in the same order. */
export const sameList = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

export class ClusterMeta implements GroupStateMachine {
  /** null until this replica has the metadata: a joining node learns it from the leader's snapshot. */
  state: MetaState | null;
  appliedIndex = 0;
  /** Called after every apply that changed something (membership or targets). */
  onChange: (() => void) | null = null;

  constructor(initial: MetaState | null) {
    this.state = initial === null ? null : structuredClone(initial);
  }

  member(id: NodeId): MemberRecord | undefined {
    return this.state?.members.find((m) => m.id === id);
  }

  apply(index: number, data: Uint8Array): MetaResult {
    this.appliedIndex = index;
    if (data.length === 0) return { code: 'ok', changed: false }; // a new leader's empty entry
    let c: MetaCommand;
    try {
      c = JSON.parse(new TextDecoder().decode(data)) as MetaCommand;
    } catch {
      return { code: 'bad_request', message: 'undecodable metadata command' };
    }
    const s = this.state;
    if (s === null) throw new Error(`metadata entry ${index} applied before the metadata snapshot`);
    const r = applyCommand(s, c);
    if (r.code === 'ok' && r.changed) this.onChange?.();
    return r;
  }

  snapshot(): Uint8Array {
    if (this.state === null) throw new Error('no metadata to snapshot yet');
    return new TextEncoder().encode(JSON.stringify(this.state));
  }

  restore(data: Uint8Array, index: number): void {
    const s = JSON.parse(new TextDecoder().decode(data)) as MetaState;
    if (!Number.isInteger(s.partitions) || !Array.isArray(s.members) || !Array.isArray(s.targets) || s.targets.length !== s.partitions) {
      throw new Error(`metadata snapshot at index ${index} is malformed`);
    }
    this.state = s;
    this.appliedIndex = index;
    this.onChange?.();
  }
}

/** Applies one command to `s` in place. Deterministic: every replica reaches the same state. */
export function applyCommand(s: MetaState, c: MetaCommand): MetaResult {
  switch (c.type) {
    case 'register': {
      const m = s.members.find((x) => x.id === c.id);
      if (m === undefined) {
        s.members.push({ id: c.id, raft: c.raft, http: c.http, member: c.member, status: 'active' });
        s.members.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        return { code: 'ok', changed: true };
      }
      if (m.status === 'removed') return { code: 'conflict', message: `${c.id} was removed from this cluster: start the node under a new id to add it again` };
      const changed = m.raft !== c.raft || m.http !== c.http || m.member !== c.member;
      m.raft = c.raft;
      m.http = c.http;
      m.member = c.member;
      return { code: 'ok', changed };
    }
    case 'setStatus': {
      const m = s.members.find((x) => x.id === c.id);
      if (m === undefined) return { code: 'not_found', message: `no member ${c.id}` };
      if (m.status === c.status) return { code: 'ok', changed: false };
      if (c.status === 'draining') {
        if (m.status !== 'active') return { code: 'conflict', message: `${c.id} is ${m.status}` };
        const left = s.members.filter((x) => x.status === 'active').length - 1;
        if (left < 1) return { code: 'conflict', message: `${c.id} is the last active member: a cluster cannot remove all of its members` };
        if (left < s.replicas && c.force !== true) {
          return { code: 'conflict', message: `removing ${c.id} would leave ${left} member${left === 1 ? '' : 's'}, fewer than the replication factor ${s.replicas}: add a node first, or force it (velo remove-node --force)` };
        }
      }
      if (c.status === 'removed' && s.targets.some((t) => t.replicas.includes(c.id))) return { code: 'conflict', message: `${c.id} still holds replicas` };
      m.status = c.status;
      return { code: 'ok', changed: true };
    }
    case 'setTarget': {
      const t = s.targets[c.partition];
      if (t === undefined) return { code: 'bad_request', message: `no partition ${c.partition}` };
      if (!sameList(t.replicas, c.from)) return { code: 'conflict', message: `partition ${c.partition}'s target changed since it was planned` };
      if (sameList(t.replicas, c.replicas)) return { code: 'ok', changed: false };
      t.replicas = [...c.replicas];
      t.moving = true;
      return { code: 'ok', changed: true };
    }
    case 'moveDone': {
      const t = s.targets[c.partition];
      if (t === undefined || !t.moving || !sameList(t.replicas, c.replicas)) return { code: 'ok', changed: false };
      t.moving = false;
      return { code: 'ok', changed: true };
    }
    case 'addToken':
      return addToken(s, { name: c.name, role: c.role, caches: c.caches, hash: c.hash, createdAt: c.createdAt });
    case 'bootstrapAdmin': {
      // Every bootstrap member may propose it (all given the same file): the first one applied wins.
      if (s.adminBootstrapped === true) return { code: 'ok', changed: false };
      s.adminBootstrapped = true;
      const r = addToken(s, { name: BOOTSTRAP_TOKEN_NAME, role: 'admin', caches: null, hash: c.hash, createdAt: c.createdAt });
      return r.code === 'ok' ? r : { code: 'ok', changed: true };
    }
    case 'revokeToken': {
      const tokens = s.tokens ?? [];
      const i = tokens.findIndex((t) => t.name === c.name);
      if (i < 0) return { code: 'not_found', message: `no token named "${c.name}"` };
      tokens.splice(i, 1);
      return { code: 'ok', changed: true };
    }
  }
}

function addToken(s: MetaState, t: TokenRecord): MetaResult {
  const tokens = (s.tokens ??= []);
  if (tokens.some((x) => x.name === t.name)) return { code: 'conflict', message: `a token named "${t.name}" exists: revoke it first, or choose another name` };
  if (tokens.length >= MAX_TOKENS) return { code: 'conflict', message: `the cluster holds ${MAX_TOKENS} tokens, the most it keeps: revoke some first` };
  tokens.push({ ...t, caches: t.caches === null ? null : [...t.caches] });
  tokens.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  s.tokensRequired = true;
  return { code: 'ok', changed: true };
}
