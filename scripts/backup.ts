// `velo backup`: every partition's content, each read by its leader at a
// committed index (GET /v1/admin/partitions/{p}/export), streamed into one
// backup file (backup-file.ts). The cluster keeps serving and taking writes:
// an export holds every write committed before it was requested, so the
// backup holds every write acknowledged before it began.
//
// Also the HTTP helpers that restore.ts shares: retries of what is safe to
// retry, and one clear line for what is not.

import { performance } from 'node:perf_hooks';
import { decodePartitionExport, RecordsError } from '../src/cache/index.js';
import type { CacheRecord, PartitionExport } from '../src/cache/index.js';
import { BackupWriter, mergeCaches } from './backup-file.js';
import type { ClusterShape } from './backup-file.js';
import { untrustedMessage } from '../src/https/index.js';
import type { Fetch } from '../src/https/index.js';

export const EXPORT_CONTENT_TYPE = 'application/x-velo-export';

/** Where a backup or restore stands, for a progress bar or a summary line. */
export interface ProgressState {
  phase: 'export' | 'verify' | 'load';
  partitionsDone: number;
  partitionsTotal: number;
  bytesDone: number;
  /** null while unknown (a backup learns its size as exports arrive). */
  bytesTotal: number | null;
}

export type ProgressSink = (p: ProgressState) => void;

export interface BackupOptions {
  /** The backup file to write; replaced atomically once the backup is complete. */
  to: string;
  /** Any member's base URL. */
  cluster: string;
  /** Exports in flight at once: each is served by its partition's leader, so two spread the work over the leaders. */
  concurrency?: number;
  signal?: AbortSignal;
  /** How to reach the cluster: a fetch that trusts its CA over HTTPS (default: the global fetch). */
  fetch?: Fetch;
  onProgress?: ProgressSink;
  /** Sent as `Authorization: Bearer` where the cluster demands tokens (an export needs the admin role). */
  token?: string | null;
}

export interface BackupSummary {
  file: string;
  partitions: number;
  items: number;
  caches: number;
  /** The backup file's size. */
  bytes: number;
  seconds: number;
}

// ------------------------------------------------------------ HTTP

/** The cluster answered with an error, or could not be reached. */
export class ClusterRequestError extends Error {
  constructor(
    message: string,
    /** Worth another try: unavailable, timed out, connection broken. */
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'ClusterRequestError';
  }
}

export interface RequestOptions {
  /** Tries in all; retryable failures back off between them. */
  attempts?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** A bearer token for every try. */
  token?: string | null;
  /** Default: the global fetch; over HTTPS, one that trusts the cluster's CA. */
  fetch?: Fetch;
}

/** What the helpers below pass on to each request: its abort signal, its token and its fetch. */
export type RequestContext = Pick<RequestOptions, 'signal' | 'token' | 'fetch'>;

/** `init` with the token's Authorization header added, when there is one. */
export function withToken(init: RequestInit, token: string | null | undefined): RequestInit {
  if (token === null || token === undefined) return init;
  return { ...init, headers: { ...(init.headers as Record<string, string> | undefined), authorization: `Bearer ${token}` } };
}

const RETRY_BASE_MS = 200;
const RETRY_MAX_MS = 5_000;

export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Exponential back-off with jitter, or the server's Retry-After when it is longer. */
export function backoffMs(attempt: number, retryAfter?: string | null): number {
  const exp = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** attempt);
  const jittered = exp / 2 + Math.random() * (exp / 2);
  const asked = retryAfter && /^[0-9]{1,4}$/.test(retryAfter) ? Number(retryAfter) * 1000 : 0;
  return Math.min(RETRY_MAX_MS * 2, Math.max(jittered, asked));
}

/** The API's JSON error as "code: message", or the HTTP status when the body is not one. */
async function describeError(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  try {
    const e = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error;
    if (typeof e?.code === 'string') return `${e.code}: ${String(e.message).replace(/\s+/g, ' ')} (HTTP ${res.status})`;
  } catch {
    // not the API's JSON error
  }
  return `HTTP ${res.status} ${res.statusText}`;
}

function networkError(base: string, e: unknown, timeoutMs: number): ClusterRequestError {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err.name === 'TimeoutError') return new ClusterRequestError(`no answer from ${base} within ${timeoutMs / 1000} s`, true);
  const untrusted = untrustedMessage(e);
  // A certificate that is not trusted now will not be on the next try.
  if (untrusted !== null) return new ClusterRequestError(`cannot reach ${base}: ${untrusted}`, false);
  const code = err.cause?.code;
  if (code === 'ECONNREFUSED') return new ClusterRequestError(`cannot reach ${base}: connection refused (is a node running there? see velo start)`, true);
  return new ClusterRequestError(`cannot reach ${base}: ${code ?? err.cause?.message ?? err.message}`, true);
}

/**
 * One request, retried while it fails in a way that is safe to retry: 503 and
 * 504 (the API's unavailable and timed out), and broken connections. Every
 * request made here is a read or an idempotent upsert, so an indeterminate
 * outcome is retried too. `read` consumes the body inside the retry loop, so
 * that a body cut short is retried like a broken connection.
 */
export async function requestWithRetry<T>(base: string, path: string, init: RequestInit, read: (res: Response) => Promise<T>, opts: RequestOptions = {}): Promise<T> {
  const attempts = opts.attempts ?? 6;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  let last: ClusterRequestError | undefined;
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (attempt > 0) await pause(backoffMs(attempt - 1, last instanceof RetryAfter ? last.retryAfter : null), opts.signal);
    const signal = opts.signal ? AbortSignal.any([opts.signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs);
    try {
      const res = await (opts.fetch ?? fetch)(`${base}${path}`, { ...withToken(init, opts.token), signal });
      if (res.ok) return await read(res);
      const why = await describeError(res);
      if (res.status === 503 || res.status === 504) {
        last = new RetryAfter(`${init.method ?? 'GET'} ${path}: ${why}`, res.headers.get('retry-after'));
        continue;
      }
      throw new ClusterRequestError(`${init.method ?? 'GET'} ${path}: ${why}`, false);
    } catch (e) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      if (e instanceof ClusterRequestError) {
        if (!e.retryable) throw e;
        last = e;
        continue;
      }
      if (e instanceof RecordsError) throw e;
      last = networkError(base, e, timeoutMs);
      if (!last.retryable) throw last;
    }
  }
  throw new ClusterRequestError(`${last!.message} (gave up after ${attempts} tries)`, false);
}

class RetryAfter extends ClusterRequestError {
  constructor(
    message: string,
    readonly retryAfter: string | null,
  ) {
    super(message, true);
  }
}

/** A base URL without trailing slashes, or a clear error. */
export function baseUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`the cluster URL must be like http://127.0.0.1:7070, got "${url}"`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error(`the cluster URL must start with http:// or https://, got "${url}"`);
  return url.replace(/\/+$/, '');
}

interface ClusterView {
  members: { id: string; http: string; state?: string }[];
  partitions: { id: number; replicas: string[]; leader: string | null }[];
}

export async function clusterView(base: string, ctx: RequestContext = {}): Promise<ClusterView> {
  const v = await requestWithRetry(base, '/v1/cluster', {}, (r) => r.json() as Promise<ClusterView>, { attempts: 3, timeoutMs: 10_000, ...ctx });
  if (!Array.isArray(v?.partitions) || !Array.isArray(v.members) || v.partitions.length === 0) throw new Error(`${base}/v1/cluster did not describe a cluster`);
  return v;
}

// ------------------------------------------------------------ backup

async function fetchExport(base: string, partition: number, ctx: RequestContext): Promise<{ bytes: Uint8Array; decoded: PartitionExport }> {
  const path = `/v1/admin/partitions/${partition}/export`;
  return requestWithRetry(
    base,
    path,
    {},
    async (res) => {
      const type = res.headers.get('content-type');
      if (type !== EXPORT_CONTENT_TYPE) throw new ClusterRequestError(`GET ${path} answered ${type ?? 'no content type'}, not ${EXPORT_CONTENT_TYPE} (does the node support backups?)`, false);
      const bytes = new Uint8Array(await res.arrayBuffer());
      const declared = res.headers.get('content-length');
      // The node announces the length, then streams: a cut-short body is a failed read, not a small partition.
      if (declared !== null && Number(declared) !== bytes.length) throw new ClusterRequestError(`GET ${path}: the export arrived with ${bytes.length} of ${declared} bytes`, true);
      let decoded: PartitionExport;
      try {
        decoded = decodePartitionExport(bytes);
      } catch (e) {
        if (e instanceof RecordsError) throw new ClusterRequestError(`GET ${path}: the export does not decode: ${e.message}`, false);
        throw e;
      }
      if (decoded.partition !== partition) throw new ClusterRequestError(`GET ${path} answered with partition ${decoded.partition}`, false);
      const index = res.headers.get('x-velo-index');
      if (index !== null && Number(index) !== decoded.index) throw new ClusterRequestError(`GET ${path}: X-Velo-Index ${index} disagrees with the export's index ${decoded.index}`, false);
      return { bytes, decoded };
    },
    // A big partition takes a while to encode and send; a dead leader is still noticed by the retry of a 503.
    { timeoutMs: 10 * 60_000, ...ctx },
  );
}

/** Runs `work` over `items` with at most `limit` at a time; the first failure stops the rest from starting. */
export async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const rejected = results.find((r) => r.status === 'rejected');
  if (rejected) throw (rejected as PromiseRejectedResult).reason;
}

export async function backup(opts: BackupOptions): Promise<BackupSummary> {
  const base = baseUrl(opts.cluster);
  const started = performance.now();
  // Taken before any export is requested: each export holds every write committed before its request.
  const createdAt = new Date().toISOString();
  const ctx: RequestContext = { signal: opts.signal, token: opts.token ?? null, ...(opts.fetch ? { fetch: opts.fetch } : {}) };
  const view = await clusterView(base, ctx);
  const partitions = view.partitions.map((p) => p.id);
  const shape: ClusterShape = {
    partitions: partitions.length,
    replicas: Math.max(...view.partitions.map((p) => p.replicas?.length ?? 0)),
    members: view.members.map((m) => ({ id: m.id, http: m.http })),
  };
  const writer = await BackupWriter.create(opts.to);
  const catalogs: { caches: CacheRecord[] }[] = [];
  let items = 0;
  let bytesDone = 0;
  const report = () => opts.onProgress?.({ phase: 'export', partitionsDone: catalogs.length, partitionsTotal: partitions.length, bytesDone, bytesTotal: null });
  try {
    report();
    await eachLimited(partitions, opts.concurrency ?? 2, async (p) => {
      const { bytes, decoded } = await fetchExport(base, p, ctx);
      await writer.addPartition(bytes, decoded);
      // Only the catalog is kept: the items are on disk now.
      catalogs.push({ caches: decoded.caches });
      items += decoded.items.length;
      bytesDone += bytes.length;
      report();
    });
    const caches = mergeCaches(catalogs);
    const fileBytes = await writer.finish({ createdAt, completedAt: new Date().toISOString(), source: base, cluster: shape, caches });
    return { file: opts.to, partitions: partitions.length, items, caches: caches.length, bytes: fileBytes, seconds: (performance.now() - started) / 1000 };
  } catch (e) {
    await writer.abort();
    throw e;
  }
}
