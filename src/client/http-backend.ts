// The Backend over HTTP (API.md): each item request goes straight to its
// partition's leader, over kept-alive connections (one undici Pool per node).
//
// Routing. The client learns the partition map from `GET /v1/cluster` and
// hashes keys exactly as the nodes do (partition-map.ts). When it does not
// know a partition's leader, or cannot reach it, any live node will do: nodes
// forward. It refreshes the map (one fetch at a time, at most every 50 ms)
// when a connection fails, on a 503, and when a node answers with
// `X-Velo-Leader` (it is not that partition's leader). A view only replaces
// a partition's leader when its term is not older than the one we hold, so a
// lagging node cannot send the client back to a deposed leader.
//
// Retries, within the operation's deadline (API.md "Conventions": a write
// answered 503/504, or whose connection broke, is indeterminate):
//   - reads are retried after any failure;
//   - an unconditional put is retried too (writing the same value again is
//     what the caller asked for), but if the deadline passes after an attempt
//     that may have been applied, it fails with IndeterminateError;
//   - everything else that writes (If-Match, If-None-Match, delete, touch,
//     lock, unlock, put with a lock handle, region clear, cache drop) is sent
//     again only when the cluster certainly did not apply it: the connection
//     was refused, or a 503 carried `X-Velo-Retry: safe`. Any other failure
//     after the request may have left is an IndeterminateError at once.
// Delete in particular is never retried blindly: if a first attempt's outcome
// is unknown and a retry answers 404, the key is gone but whether *this*
// client removed it (true) or it was already missing (false) cannot be known
// — and a late retry could remove a newer write. The caller gets
// IndeterminateError and can read the key to see where things stand.

import { Client, Pool } from 'undici';
import { checkCa, connectTrusting, untrustedCode, untrustedMessage } from '../https/index.js';
import type { CaPem } from '../https/index.js';
import { partitionOf } from '../node/partition-map.js';
import type { Backend, CacheSettings, CacheStats, ChangeEvent, ClusterView, Consistency, EventEnvelope, EventFilter, ItemAddress, PutCommand, StoredItem } from './backend.js';
import { BadRequestError, HistoryLostError, IndeterminateError, InternalError, UnavailableError, UntrustedCertificateError, VeloClientError, errorFor } from './errors.js';

export interface HttpBackendOptions {
  /** HTTP addresses of any members: "127.0.0.1:7001" or "http://127.0.0.1:7001". */
  nodes: string[];
  /** Per operation, retries included. Default 10_000. */
  timeoutMs?: number;
  /** Kept-alive connections per node, at most. Default 64. */
  connectionsPerNode?: number;
  /** Sent as `Authorization: Bearer` with every request, where the cluster demands tokens. */
  token?: string;
  /** PEM of the CA that signed the nodes' HTTPS certificates: trusted instead of the system's roots. */
  ca?: CaPem;
}

export const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_CONNECTIONS_PER_NODE = 64;
/** The map is fetched at most this often, however many requests ask for it. */
const MIN_REFRESH_INTERVAL_MS = 50;
/** A node whose connection failed is passed over for this long when any node will do. */
const NODE_DOWN_MS = 1000;
/** Backoff between attempts: 10 ms, doubling, at most this. */
const BACKOFF_CAP_MS = 250;
/**
 * A read or unconditional put waits at most half its budget (and at least
 * this) for one attempt, so that one frozen node cannot eat the whole budget.
 */
const MIN_ATTEMPT_MS = 1000;
/** Fetching /v1/cluster from one node. */
const MAP_FETCH_TIMEOUT_MS = 2000;
/** Nodes send a comment every 15 s on an idle event stream; this much silence means the connection is dead. */
const STREAM_IDLE_MS = 45_000;
/** Event streams reconnect after at most this pause. */
const STREAM_BACKOFF_CAP_MS = 1000;

/**
 * Connection errors that happen before a request leaves: nothing was sent,
 * so even a conditional write may be sent again.
 */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

/** How an operation may be retried (see the top of this file). */
type RetryRule = 'read' | 'idempotent' | 'once';

interface HttpRequest {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  path: string;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
  /** The item whose partition's leader should answer; null: any node. */
  target: ItemAddress | null;
  retry: RetryRule;
  /** What the request does, for error messages ("put default/k1"). */
  what: string;
}

interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  origin: string;
}

interface PartitionMap {
  /** Per partition: its leader's node id (null: unknown) and the term it leads in. */
  leaders: (string | null)[];
  terms: number[];
  /** Node id → HTTP origin. */
  http: Map<string, string>;
}

/** "127.0.0.1:7001" or "http://127.0.0.1:7001" → "http://127.0.0.1:7001". */
export function originOf(address: string): string {
  if (typeof address !== 'string' || address.trim() === '') throw new TypeError(`a node address must be a non-empty string, got ${JSON.stringify(address)}`);
  const s = address.trim();
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(s) ? s : `http://${s}`);
  } catch {
    throw new TypeError(`"${address}" is not a node address (host:port or http://host:port)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`"${address}": only http and https are supported`);
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '') throw new TypeError(`"${address}" is not a node address: give host:port only, without a path`);
  return url.origin;
}

function header(headers: HttpAnswer['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function enc(name: string): string {
  return encodeURIComponent(name);
}

function itemPath(ref: ItemAddress): string {
  return `/v1/caches/${enc(ref.cache)}${ref.region === null ? '' : `/regions/${enc(ref.region)}`}/items/${enc(ref.key)}`;
}

function describeRef(ref: ItemAddress): string {
  return `${ref.cache}/${ref.region === null ? '' : `${ref.region}/`}${ref.key}`;
}

function errorCode(e: unknown): string | undefined {
  for (let c: unknown = e, depth = 0; c && depth < 4; c = (c as { cause?: unknown }).cause, depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string' && NOT_SENT_CODES.has(code)) return code;
  }
  return (e as { code?: string } | null)?.code;
}

function certainlyNotSent(e: unknown): boolean {
  const code = errorCode(e);
  return code !== undefined && NOT_SENT_CODES.has(code);
}

function describe(e: unknown): string {
  const untrusted = untrustedMessage(e, 'give the client option `ca`');
  if (untrusted !== null) return untrusted;
  const code = errorCode(e);
  const message = e instanceof Error ? e.message : String(e);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

/** The typed error an API error answer stands for (API.md: `{"error":{"code","message"}}`). */
function answerError(a: HttpAnswer): VeloClientError {
  try {
    const body = JSON.parse(a.body.toString('utf8')) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code === 'string') {
      return errorFor(body.error.code, typeof body.error.message === 'string' ? body.error.message : `HTTP ${a.status}`, a.status);
    }
  } catch {
    // not JSON: a proxy, or not a Velo node
  }
  return new InternalError('internal', `${a.origin} answered HTTP ${a.status} without a Velo error: ${a.body.toString('utf8').slice(0, 200)}`, a.status);
}

function versionOf(a: HttpAnswer): string {
  const etag = header(a.headers, 'etag');
  const m = etag === undefined ? null : /^(?:W\/)?"([^"]+)"$/.exec(etag.trim());
  if (!m) throw new InternalError('internal', `${a.origin} answered an item without a valid ETag (${JSON.stringify(etag)})`, a.status);
  return m[1]!;
}

/** A read's answer (GET or lock): the value is the body, the rest is in headers (API.md "GET"). */
function itemOf(a: HttpAnswer): StoredItem {
  const expires = header(a.headers, 'x-velo-expires-at');
  const tags = header(a.headers, 'x-velo-tags');
  return {
    value: a.body,
    contentType: header(a.headers, 'content-type') ?? 'application/octet-stream',
    version: versionOf(a),
    expiresAt: expires === undefined ? null : Number(expires),
    tags: tags === undefined || tags === '' ? [] : tags.split(','),
  };
}

function json<T>(a: HttpAnswer): T {
  try {
    return JSON.parse(a.body.toString('utf8')) as T;
  } catch {
    throw new InternalError('internal', `${a.origin} answered HTTP ${a.status} with a body that is not JSON`, a.status);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class HttpBackend implements Backend {
  private readonly timeoutMs: number;
  private readonly connectionsPerNode: number;
  private readonly seeds: string[];
  /** The Authorization header every request carries (none without a token). */
  private readonly auth: Record<string, string>;
  /** undici's connect options: the CA to verify nodes against, when given. */
  private readonly connect: { ca: string } | undefined;
  private readonly pools = new Map<string, Pool>();
  /** Each event stream has a connection of its own (it lasts). */
  private readonly streams = new Set<Client>();
  private map: PartitionMap | null = null;
  private refreshing: Promise<void> | null = null;
  private lastRefreshAt = 0;
  private readonly downUntil = new Map<string, number>();
  private readonly inFlightBy = new Map<string, number>();
  private cursor = 0;
  private closed = false;

  constructor(opts: HttpBackendOptions) {
    if (!opts || !Array.isArray(opts.nodes) || opts.nodes.length === 0) throw new TypeError('HttpBackend needs nodes: the HTTP address of at least one member');
    this.seeds = [...new Set(opts.nodes.map(originOf))];
    // Printable and without spaces: a token is never allowed to smuggle a second header in.
    if (opts.token !== undefined && (typeof opts.token !== 'string' || !/^[\x21-\x7e]{1,256}$/.test(opts.token))) throw new TypeError('token must be a string of 1–256 printable characters without spaces');
    this.auth = opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` };
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isSafeInteger(this.timeoutMs) || this.timeoutMs <= 0) throw new TypeError(`timeoutMs must be a positive integer (ms), got ${opts.timeoutMs}`);
    this.connectionsPerNode = opts.connectionsPerNode ?? DEFAULT_CONNECTIONS_PER_NODE;
    if (!Number.isSafeInteger(this.connectionsPerNode) || this.connectionsPerNode <= 0) throw new TypeError(`connectionsPerNode must be a positive integer, got ${opts.connectionsPerNode}`);
    this.connect = connectTrusting(opts.ca === undefined ? undefined : checkCa(opts.ca, 'ca'));
  }

  // ------------------------------------------------------------ the operations

  async get(ref: ItemAddress, consistency: Consistency): Promise<{ item: StoredItem | null; stale: boolean | null }> {
    const a = await this.call({ method: 'GET', path: itemPath(ref) + (consistency === 'local' ? '?consistency=local' : ''), target: ref, retry: 'read', what: `get ${describeRef(ref)}` });
    const staleHeader = header(a.headers, 'x-velo-stale');
    const stale = staleHeader === 'true' ? true : staleHeader === 'false' ? false : null;
    if (a.status === 200) return { item: itemOf(a), stale };
    const err = answerError(a);
    if (err.code === 'not_found') return { item: null, stale };
    throw err;
  }

  async put(cmd: PutCommand): Promise<{ version: string; created: boolean }> {
    const ref = { cache: cmd.cache, region: cmd.region, key: cmd.key };
    const query: string[] = [];
    if (cmd.ttlMs !== null) query.push(`ttlMs=${cmd.ttlMs}`);
    if (cmd.tags.length > 0) {
      const comma = cmd.tags.find((t) => t.includes(','));
      if (comma !== undefined) throw new BadRequestError('bad_request', `tag "${comma}" contains a comma: tags travel comma-separated`, null);
      query.push(`tags=${cmd.tags.map(enc).join(',')}`);
    }
    if (cmd.unlock) query.push('unlock=true');
    const headers: Record<string, string> = { 'content-type': cmd.contentType };
    if (cmd.ifMatch !== null) headers['if-match'] = `"${cmd.ifMatch}"`;
    if (cmd.ifNoneMatch) headers['if-none-match'] = '*';
    if (cmd.lockHandle !== null) headers['x-velo-lock-handle'] = cmd.lockHandle;
    const unconditional = cmd.ifMatch === null && !cmd.ifNoneMatch && cmd.lockHandle === null && !cmd.unlock;
    const a = await this.call({
      method: 'PUT',
      path: itemPath(ref) + (query.length > 0 ? `?${query.join('&')}` : ''),
      headers,
      body: cmd.value,
      target: ref,
      retry: unconditional ? 'idempotent' : 'once',
      what: `put ${describeRef(ref)}`,
    });
    if (a.status !== 200 && a.status !== 201) throw answerError(a);
    const r = json<{ version?: unknown; created?: unknown }>(a);
    return { version: typeof r.version === 'string' ? r.version : versionOf(a), created: a.status === 201 };
  }

  async delete(ref: ItemAddress, ifMatch: string | null, lockHandle: string | null): Promise<boolean> {
    const headers: Record<string, string> = {};
    if (ifMatch !== null) headers['if-match'] = `"${ifMatch}"`;
    if (lockHandle !== null) headers['x-velo-lock-handle'] = lockHandle;
    const a = await this.call({ method: 'DELETE', path: itemPath(ref), headers, target: ref, retry: 'once', what: `delete ${describeRef(ref)}` });
    if (a.status === 204 || a.status === 200) return true;
    const err = answerError(a);
    // Only a definite answer gets here (see the top of this file): 404 is "was missing".
    if (err.code === 'not_found') return false;
    throw err;
  }

  async touch(ref: ItemAddress, ttlMs: number): Promise<{ version: string; expiresAt: number | null }> {
    const a = await this.call({ method: 'POST', path: `${itemPath(ref)}/touch?ttlMs=${ttlMs}`, target: ref, retry: 'once', what: `touch ${describeRef(ref)}` });
    if (a.status !== 200) throw answerError(a);
    const r = json<{ version: string; expiresAt: number | null }>(a);
    return { version: String(r.version), expiresAt: r.expiresAt ?? null };
  }

  async lock(ref: ItemAddress, timeoutMs: number): Promise<{ item: StoredItem; handle: string; lockExpiresAt: number | null }> {
    const a = await this.call({ method: 'POST', path: `${itemPath(ref)}/lock?timeoutMs=${timeoutMs}`, target: ref, retry: 'once', what: `lock ${describeRef(ref)}` });
    if (a.status !== 200) throw answerError(a);
    const handle = header(a.headers, 'x-velo-lock-handle');
    if (!handle) throw new InternalError('internal', `${a.origin} answered a lock without X-Velo-Lock-Handle`, a.status);
    const until = header(a.headers, 'x-velo-lock-expires-at');
    return { item: itemOf(a), handle, lockExpiresAt: until === undefined ? null : Number(until) };
  }

  async unlock(ref: ItemAddress, handle: string): Promise<void> {
    const a = await this.call({ method: 'POST', path: `${itemPath(ref)}/unlock`, headers: { 'x-velo-lock-handle': handle }, target: ref, retry: 'once', what: `unlock ${describeRef(ref)}` });
    if (a.status !== 204 && a.status !== 200) throw answerError(a);
  }

  async listRegion(cache: string, region: string, tags: string[], match: 'any' | 'all'): Promise<(StoredItem & { key: string })[]> {
    const query = tags.map((t) => `tag=${enc(t)}`);
    if (tags.length > 0) query.push(`match=${match}`);
    const a = await this.call({
      method: 'GET',
      path: `/v1/caches/${enc(cache)}/regions/${enc(region)}/items${query.length > 0 ? `?${query.join('&')}` : ''}`,
      target: { cache, region, key: '' },
      retry: 'read',
      what: `list ${cache}/${region}`,
    });
    if (a.status !== 200) throw answerError(a);
    type Listed = { key: string; version: string; tags: string[]; expiresAt: number | null; contentType: string; value?: unknown; valueBase64?: string };
    const { items } = json<{ items: Listed[] }>(a);
    // API.md: JSON values come parsed, others in base64; either way the client hands out bytes.
    return items.map((i) => {
      if (typeof i.valueBase64 !== 'string' && !('value' in i)) throw new InternalError('internal', `${a.origin} listed item "${i.key}" without its value`, a.status);
      return {
        key: i.key,
        version: String(i.version),
        tags: i.tags ?? [],
        expiresAt: i.expiresAt ?? null,
        contentType: i.contentType,
        value: typeof i.valueBase64 === 'string' ? Buffer.from(i.valueBase64, 'base64') : Buffer.from(JSON.stringify(i.value), 'utf8'),
      };
    });
  }

  async clearRegion(cache: string, region: string): Promise<{ removed: number }> {
    const a = await this.call({ method: 'DELETE', path: `/v1/caches/${enc(cache)}/regions/${enc(region)}`, target: { cache, region, key: '' }, retry: 'once', what: `clear ${cache}/${region}` });
    if (a.status !== 200) throw answerError(a);
    return { removed: json<{ removed: number }>(a).removed };
  }

  async listCaches(): Promise<{ name: string; settings: CacheSettings }[]> {
    const a = await this.call({ method: 'GET', path: '/v1/caches', target: null, retry: 'read', what: 'list caches' });
    if (a.status !== 200) throw answerError(a);
    return json<{ caches: { name: string; settings: CacheSettings }[] }>(a).caches;
  }

  async putCache(name: string, settings: Partial<CacheSettings>): Promise<{ created: boolean; settings: CacheSettings }> {
    // Setting the same settings again is harmless, so this is retried like an unconditional put
    // (`created` is then false if an earlier attempt with an unknown outcome created it).
    const a = await this.call({
      method: 'PUT',
      path: `/v1/caches/${enc(name)}`,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(settings),
      target: null,
      retry: 'idempotent',
      what: `create cache ${name}`,
    });
    if (a.status !== 200 && a.status !== 201) throw answerError(a);
    return { created: a.status === 201, settings: json<{ settings: CacheSettings }>(a).settings };
  }

  async dropCache(name: string): Promise<void> {
    const a = await this.call({ method: 'DELETE', path: `/v1/caches/${enc(name)}`, target: null, retry: 'once', what: `drop cache ${name}` });
    if (a.status !== 204 && a.status !== 200) throw answerError(a);
  }

  async stats(cache: string): Promise<CacheStats> {
    const a = await this.call({ method: 'GET', path: `/v1/caches/${enc(cache)}/stats`, target: null, retry: 'read', what: `stats of ${cache}` });
    if (a.status !== 200) throw answerError(a);
    return json<CacheStats>(a);
  }

  async cluster(): Promise<ClusterView> {
    const a = await this.call({ method: 'GET', path: '/v1/cluster', target: null, retry: 'read', what: 'cluster view' });
    if (a.status !== 200) throw answerError(a);
    const view = json<ClusterView>(a);
    this.applyView(view);
    return view;
  }

  async *events(filter: EventFilter, signal: AbortSignal, onOpen?: () => void): AsyncGenerator<EventEnvelope> {
    const query: string[] = [];
    if (filter.region !== null) query.push(`region=${enc(filter.region)}`);
    if (filter.key !== null) query.push(`key=${enc(filter.key)}`);
    const path = `/v1/caches/${enc(filter.cache)}/events${query.length > 0 ? `?${query.join('&')}` : ''}`;
    // A stream of one region or key is read where that partition is led (its replica is the freshest); any node serves it.
    const target = filter.region !== null || filter.key !== null ? { cache: filter.cache, region: filter.region, key: filter.key ?? '' } : null;
    let last = filter.lastEventId;
    if (!this.map && !this.closed) await this.refreshMap().catch(() => {});
    for (let failures = 0; !signal.aborted && !this.closed; ) {
      const origin = this.originFor(target);
      const client = new Client(origin, { headersTimeout: this.timeoutMs, bodyTimeout: STREAM_IDLE_MS, ...(this.connect ? { connect: this.connect } : {}) });
      this.streams.add(client);
      let opened = false;
      try {
        const res = await client.request({ method: 'GET', path, headers: { ...this.auth, accept: 'text/event-stream', ...(last !== null ? { 'last-event-id': last } : {}) }, signal });
        if (res.statusCode !== 200) {
          const a: HttpAnswer = { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()), origin };
          // A refusal (bad Last-Event-ID, no such cache) is definite; unavailability is worth another node.
          if (res.statusCode !== 503 && res.statusCode !== 504) throw answerError(a);
          this.refreshSoon();
        } else {
          // The node fixed the stream's position before it answered (api/events.ts).
          opened = true;
          failures = 0;
          onOpen?.();
          const parser = new SseParser();
          for await (const chunk of res.body) {
            for (const block of parser.push(chunk as Buffer)) {
              if (block.event === 'error') throw streamError(block.data, origin);
              if (block.data === undefined) continue;
              if (block.id === undefined) throw new InternalError('internal', `${origin} sent a change event without an id`, 200);
              const event = parseEvent(block.data, origin);
              last = block.id;
              yield { id: block.id, event };
            }
          }
        }
      } catch (e) {
        if (signal.aborted || this.closed) return;
        if (e instanceof VeloClientError) throw e;
        if (untrustedCode(e) !== null) throw new UntrustedCertificateError('untrusted_certificate', `events of ${filter.cache}: ${origin}: ${describe(e)}`, null);
        if (!opened) this.nodeFailed(origin);
      } finally {
        this.streams.delete(client);
        void client.destroy().catch(() => {});
      }
      if (signal.aborted || this.closed) return;
      if (opened && last === null) {
        throw new HistoryLostError('history_lost', 'the change-event stream broke before its first event, so the position to resume from is unknown; open a new stream (events in between may be missed)', null);
      }
      failures++;
      await delay(Math.min(STREAM_BACKOFF_CAP_MS, 10 * 2 ** Math.min(failures, 10)));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const all = [...this.pools.values(), ...this.streams];
    this.pools.clear();
    this.streams.clear();
    await Promise.all(all.map((d) => d.destroy().catch(() => {})));
  }

  // ------------------------------------------------------------ diagnostics

  /** The node id an item's requests go to now: its partition's leader as this client knows it (null: unknown, any node). */
  routeOf(ref: ItemAddress): string | null {
    if (!this.map) return null;
    return this.map.leaders[partitionOf(this.map.leaders.length, ref.cache, ref.region, ref.key)] ?? null;
  }

  /** Requests sent and not yet answered, by node origin ("http://host:port"). */
  inFlight(): Map<string, number> {
    return new Map([...this.inFlightBy].filter(([, n]) => n > 0));
  }

  // ------------------------------------------------------------ sending

  /**
   * Sends a request until it gets an answer other than 503/504 (any status:
   * the caller reads it), following the retry rule of its operation.
   */
  private async call(req: HttpRequest): Promise<HttpAnswer> {
    const deadline = Date.now() + this.timeoutMs;
    if (!this.map && !this.closed) await this.refreshMap().catch(() => {});
    let maybeApplied = false;
    let last = 'no node was tried';
    let lastStatus: number | null = null;
    for (let attempt = 0; ; attempt++) {
      const remaining = deadline - Date.now();
      if (this.closed || remaining <= 0) break;
      const origin = this.originFor(req.target);
      const attemptMs = req.retry === 'once' ? remaining : Math.min(remaining, Math.max(MIN_ATTEMPT_MS, Math.floor(this.timeoutMs / 2)));
      let a: HttpAnswer;
      try {
        a = await this.exchange(origin, req, attemptMs);
      } catch (e) {
        // The handshake failed before the request left; asking again, here or elsewhere, meets the same certificate.
        if (untrustedCode(e) !== null) throw new UntrustedCertificateError('untrusted_certificate', `${req.what}: ${origin}: ${describe(e)}`, null);
        last = `${origin}: ${describe(e)}`;
        lastStatus = null;
        this.nodeFailed(origin);
        if (!certainlyNotSent(e)) {
          if (req.retry === 'once') throw new IndeterminateError(`${req.what}: the connection to ${origin} failed after the request may have been sent (${describe(e)}); it may or may not have been applied: read the item to find out`, e);
          if (req.retry === 'idempotent') maybeApplied = true;
        }
        await this.backoff(attempt, deadline);
        continue;
      }
      this.noteLeaderHint(req.target, a);
      if (a.status !== 503 && a.status !== 504) return a;
      const err = answerError(a);
      last = `${origin} answered ${a.status}: ${err.message}`;
      lastStatus = a.status;
      this.refreshSoon();
      if (header(a.headers, 'x-velo-retry') !== 'safe') {
        if (req.retry === 'once') throw new IndeterminateError(`${req.what}: ${last}; it may or may not have been applied: read the item to find out`, err);
        if (req.retry === 'idempotent') maybeApplied = true;
      }
      await this.backoff(attempt, deadline);
    }
    const why = this.closed ? 'the client was closed' : `no definite answer within ${this.timeoutMs} ms`;
    if (maybeApplied) throw new IndeterminateError(`${req.what}: ${why} (last: ${last}); an attempt may have been applied: read the item to find out`);
    throw new UnavailableError('unavailable', `${req.what}: ${why} (last: ${last}); it was not applied`, lastStatus);
  }

  /** One attempt at one node: the whole answer, or the connection's failure. */
  private async exchange(origin: string, req: HttpRequest, timeoutMs: number): Promise<HttpAnswer> {
    const pool = this.poolOf(origin);
    this.inFlightBy.set(origin, (this.inFlightBy.get(origin) ?? 0) + 1);
    try {
      const res = await pool.request({
        method: req.method,
        path: req.path,
        headers: { ...req.headers, ...this.auth },
        body: req.body ?? null,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const body = Buffer.from(await res.body.arrayBuffer());
      return { status: res.statusCode, headers: res.headers, body, origin };
    } finally {
      this.inFlightBy.set(origin, this.inFlightBy.get(origin)! - 1);
    }
  }

  private poolOf(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (!pool) {
      if (this.closed) throw new UnavailableError('unavailable', 'the client was closed', null);
      pool = new Pool(origin, { connections: this.connectionsPerNode, connectTimeout: Math.min(this.timeoutMs, 5000), ...(this.connect ? { connect: this.connect } : {}) });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  private backoff(attempt: number, deadline: number): Promise<void> {
    const ms = Math.min(BACKOFF_CAP_MS, 10 * 2 ** Math.min(attempt, 10), Math.max(0, deadline - Date.now()));
    return ms > 0 ? delay(ms) : Promise.resolve();
  }

  // ------------------------------------------------------------ routing

  /** The item's partition's leader when known and not failing; else any node, in turn. */
  private originFor(target: ItemAddress | null): string {
    if (target !== null && this.map) {
      const leader = this.map.leaders[partitionOf(this.map.leaders.length, target.cache, target.region, target.key)];
      const origin = leader ? this.map.http.get(leader) : undefined;
      if (origin !== undefined && !this.isDown(origin)) return origin;
    }
    return this.anyOrigin();
  }

  private knownOrigins(): string[] {
    const all = new Set(this.seeds);
    if (this.map) for (const o of this.map.http.values()) all.add(o);
    return [...all];
  }

  private anyOrigin(): string {
    const all = this.knownOrigins();
    for (let i = 0; i < all.length; i++) {
      const o = all[this.cursor++ % all.length]!;
      if (!this.isDown(o)) return o;
    }
    // Every node failed lately: try them anyway, in turn.
    return all[this.cursor++ % all.length]!;
  }

  private isDown(origin: string): boolean {
    const until = this.downUntil.get(origin);
    return until !== undefined && until > Date.now();
  }

  /** A connection to `origin` failed: pass it over for a while, forget it as a leader, and ask for a fresh map. */
  private nodeFailed(origin: string): void {
    this.downUntil.set(origin, Date.now() + NODE_DOWN_MS);
    if (this.map) {
      const ids = new Set([...this.map.http].filter(([, o]) => o === origin).map(([id]) => id));
      this.map.leaders = this.map.leaders.map((l) => (l !== null && ids.has(l) ? null : l));
    }
    this.refreshSoon();
  }

  /** A node that does not lead the item's partition named its leader: go there next, and refresh the rest of the map. */
  private noteLeaderHint(target: ItemAddress | null, a: HttpAnswer): void {
    const hint = header(a.headers, 'x-velo-leader');
    if (hint === undefined || target === null || !this.map) return;
    const p = partitionOf(this.map.leaders.length, target.cache, target.region, target.key);
    if (this.map.leaders[p] === hint) return;
    this.map.leaders[p] = hint;
    this.refreshSoon();
  }

  private refreshSoon(): void {
    if (!this.closed) this.refreshMap().catch(() => {});
  }

  /** Fetches /v1/cluster from the first node that answers; one fetch at a time, at most every MIN_REFRESH_INTERVAL_MS. */
  private refreshMap(): Promise<void> {
    if (this.refreshing) return this.refreshing;
    const wait = this.lastRefreshAt + MIN_REFRESH_INTERVAL_MS - Date.now();
    this.refreshing = (async () => {
      try {
        if (wait > 0) await delay(wait);
        this.lastRefreshAt = Date.now();
        await this.fetchMap();
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  private async fetchMap(): Promise<void> {
    const all = this.knownOrigins();
    // Nodes that answered lately first.
    const order = [...all.filter((o) => !this.isDown(o)), ...all.filter((o) => this.isDown(o))];
    let last: unknown = null;
    for (const origin of order) {
      if (this.closed) return;
      try {
        const a = await this.exchange(origin, { method: 'GET', path: '/v1/cluster', target: null, retry: 'read', what: 'cluster view' }, Math.min(MAP_FETCH_TIMEOUT_MS, this.timeoutMs));
        if (a.status !== 200) throw answerError(a);
        this.applyView(json<ClusterView>(a));
        this.downUntil.delete(origin);
        return;
      } catch (e) {
        last = e;
        if (!(e instanceof VeloClientError)) this.downUntil.set(origin, Date.now() + NODE_DOWN_MS);
      }
    }
    throw new UnavailableError('unavailable', `no node answered /v1/cluster (last: ${describe(last)})`, null);
  }

  private applyView(view: ClusterView): void {
    if (!view || !Array.isArray(view.partitions) || view.partitions.length === 0 || !Array.isArray(view.members)) {
      throw new InternalError('internal', 'the cluster view has no partitions or members', 200);
    }
    const http = new Map(this.map?.http ?? []);
    for (const m of view.members) {
      // A node reports a member's address once it has heard from it; until then it is empty.
      if (typeof m.http !== 'string' || m.http === '') continue;
      try {
        http.set(m.id, originOf(m.http));
      } catch {
        // an address this client cannot use: reach that member through others
      }
    }
    const n = view.partitions.length;
    const cur = this.map && this.map.leaders.length === n ? this.map : null;
    const leaders: (string | null)[] = [];
    const terms: number[] = [];
    for (let i = 0; i < n; i++) {
      const p = view.partitions.find((q) => q.id === i) ?? view.partitions[i]!;
      // An older term's leader may be deposed: keep what we know unless we know nothing.
      if (cur && cur.leaders[i] !== null && p.term < cur.terms[i]!) {
        leaders.push(cur.leaders[i]!);
        terms.push(cur.terms[i]!);
      } else {
        leaders.push(p.leader);
        terms.push(p.term);
      }
    }
    this.map = { leaders, terms, http };
  }
}

/** One Server-Sent Events block: its `id`, `event` and `data` fields. */
export interface SseBlock {
  id?: string;
  event?: string;
  data?: string;
}

/** Incremental SSE parsing (the WHATWG format): feed chunks, get the complete blocks so far. */
export class SseParser {
  private readonly decoder = new TextDecoder('utf-8');
  private buf = '';

  push(chunk: Uint8Array): SseBlock[] {
    this.buf += this.decoder.decode(chunk, { stream: true });
    const out: SseBlock[] = [];
    for (;;) {
      const m = /\r\n\r\n|\n\n|\r\r/.exec(this.buf);
      if (!m) return out;
      const block = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      const parsed: SseBlock = {};
      for (const line of block.split(/\r\n|\n|\r/)) {
        if (line === '' || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'id') parsed.id = value;
        else if (field === 'event') parsed.event = value;
        else if (field === 'data') parsed.data = parsed.data === undefined ? value : `${parsed.data}\n${value}`;
      }
      if (parsed.data !== undefined || parsed.event !== undefined) out.push(parsed);
    }
  }
}

function parseEvent(data: string, origin: string): ChangeEvent {
  let e: Partial<ChangeEvent>;
  try {
    e = JSON.parse(data) as Partial<ChangeEvent>;
  } catch {
    throw new InternalError('internal', `${origin} sent a change event that is not JSON`, 200);
  }
  if (typeof e.type !== 'string' || typeof e.cache !== 'string' || e.version === undefined) throw new InternalError('internal', `${origin} sent a malformed change event: ${data.slice(0, 200)}`, 200);
  return { type: e.type, cache: e.cache, region: e.region ?? null, key: e.key ?? null, version: String(e.version) };
}

/** `event: error` ends a stream; history_lost means it cannot resume without a gap. */
function streamError(data: string | undefined, origin: string): VeloClientError {
  try {
    const body = JSON.parse(data ?? '') as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code === 'string') return errorFor(body.error.code, typeof body.error.message === 'string' ? body.error.message : body.error.code, 200);
  } catch {
    // fall through
  }
  return new InternalError('internal', `${origin} ended the event stream with an unreadable error: ${String(data).slice(0, 200)}`, 200);
}
