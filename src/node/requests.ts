// The operations a node runs for a client, in a form that can be forwarded
// to the partition's leader: what the client asked, not yet a command. The
// leader turns a request into a command, fixing what depends on its clock or
// on chance (expiry instants, lock handles), so that replicas agree.

import type { CacheSettings } from '../cache/index.js';
import type { NodeId } from '../../raft/index.js';
import type { MetaCommand } from './cluster-meta.js';
import { VeloError } from './errors.js';
import type { ErrorCode } from './errors.js';
import { WireError, decodeEnvelope, encodeEnvelope } from './wire.js';
import { checkRequestHeader, checkResponseHeader } from './request-shapes.js';
import { isErrorCode } from './errors.js';

/** An upsert in a bulk load: its value travels in the request's body. */
export interface LoadItem {
  ref: Ref;
  contentType: string;
  expiresAt: number | null;
  tags: string[];
}

export interface Ref {
  cache: string;
  region: string | null;
  key: string;
}

export type NodeRequest =
  /** `expiresAt`, when present, is the item's absolute expiry (a restore keeps instants) and overrides `ttlMs`. */
  | { op: 'put'; partition: number; ref: Ref; contentType: string; ttlMs: number | null; expiresAt?: number | null; tags: string[]; ifMatch: number | null; ifNoneMatch: boolean; lockHandle: string | null; unlock: boolean; value: Uint8Array }
  | { op: 'get'; partition: number; ref: Ref; consistency: 'strong' | 'local' }
  | { op: 'delete'; partition: number; ref: Ref; ifMatch: number | null; lockHandle: string | null }
  | { op: 'touch'; partition: number; ref: Ref; ttlMs: number }
  | { op: 'lock'; partition: number; ref: Ref; timeoutMs: number }
  | { op: 'unlock'; partition: number; ref: Ref; handle: string }
  | { op: 'listRegion'; partition: number; cache: string; region: string; tags: string[]; match: 'any' | 'all' }
  | { op: 'clearRegion'; partition: number; cache: string; region: string }
  | { op: 'putCache'; partition: number; name: string; settings: CacheSettings }
  | { op: 'dropCache'; partition: number; name: string }
  | { op: 'catalog'; partition: number }
  /** Change events after `after` from any replica (null: just tell the head). */
  | { op: 'events'; partition: number; after: { index: number; seq: number } | null; limit: number }
  | { op: 'stats'; partition: number; cache: string }
  /**
   * Upserts of one partition's items in one request (bulk load): `sizes`
   * cuts `value` into the items' values, in order. The answer lists the
   * items that failed, by position.
   */
  | { op: 'putMany'; partition: number; items: LoadItem[]; sizes: number[]; value: Uint8Array }
  /**
   * A partition's content for a backup, in chunks: the leader reads it at a
   * confirmed committed index (exportId null) and holds it for the chunks
   * that follow, which go to that node whether or not it still leads.
   */
  | { op: 'export'; partition: number; exportId: string | null; offset: number }
  /** A command for the metadata group (partition META_GROUP), proposed by its leader. */
  | { op: 'meta'; partition: number; command: MetaCommand }
  /** Is `member` in the group's configuration as its leader applied it? (deleting a replica that moved away) */
  | { op: 'memberOf'; partition: number; member: string }
  /** The raft status of every group the receiving node holds (for /v1/cluster). */
  | { op: 'groups'; partition: -1 }
  /** Startup: has the asking node been seen under another incarnation? */
  | { op: 'probe'; partition: -1; http: string }
  /** The sender's standing against its memory cap; the answer is the receiver's (memory-cap.ts). */
  | { op: 'memory'; partition: -1; bytes: number; capBytes: number };

/** How a failed request may be retried. */
export type Retry =
  /** It did not run: retry at once (at `leader` if given). */
  | 'safe'
  /** It may or may not have run. */
  | 'indeterminate'
  /** A definite answer. */
  | 'no';

export type NodeResponse =
  | { ok: true; result: Record<string, unknown>; value: Uint8Array | null }
  | { ok: false; code: ErrorCode; message: string; retry: Retry; leader: NodeId | null };

export function encodeRequest(r: NodeRequest): Uint8Array {
  if (r.op === 'put' || r.op === 'putMany') {
    const { value, ...header } = r;
    return encodeEnvelope(header, value);
  }
  return encodeEnvelope(r);
}

export function decodeRequest(bytes: Uint8Array): NodeRequest {
  const { header, body } = decodeEnvelope(bytes);
  // Every field checked (request-shapes.ts): the types below hold from here on.
  checkRequestHeader(header, body.length);
  const op = header.op;
  if (op === 'put' || op === 'putMany') return { ...header, value: body } as unknown as NodeRequest;
  if (body.length > 0) throw new WireError(`${String(op)} carries no value, got ${body.length} bytes`);
  return header as unknown as NodeRequest;
}

export function encodeResponse(r: NodeResponse): Uint8Array {
  if (r.ok) return encodeEnvelope({ ok: true, result: r.result, hasValue: r.value !== null }, r.value ?? undefined);
  return encodeEnvelope(r);
}

export function decodeResponse(bytes: Uint8Array): NodeResponse {
  const { header, body } = decodeEnvelope(bytes);
  checkResponseHeader(header, isErrorCode);
  if (header.ok === true) return { ok: true, result: header.result as Record<string, unknown>, value: header.hasValue === true ? body : null };
  return header as unknown as NodeResponse;
}

/** The error a failed response stands for. */
export function responseError(r: Extract<NodeResponse, { ok: false }>): VeloError {
  return new VeloError(r.code, r.message, r.code === 'unavailable' || r.code === 'timeout' ? 1 : undefined);
}

export function errorResponse(err: unknown, retry: Retry, leader: NodeId | null = null): NodeResponse {
  if (err instanceof VeloError) return { ok: false, code: err.code, message: err.message, retry, leader };
  return { ok: false, code: 'internal', message: err instanceof Error ? err.message : String(err), retry: 'no', leader };
}
