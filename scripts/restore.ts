// `velo restore`: a backup file into a running cluster, through the normal
// write path (POST /v1/admin/load: upserts through each partition's raft
// log, absolute expiry instants kept). The whole file is verified first —
// magic, header, size, every section's checksum and decoding — so a
// truncated or corrupt file is refused before anything is written. Then it is
// read a second time, one section at a time, so that memory holds one
// partition and the batches in flight, not the whole backup.

import { performance } from 'node:perf_hooks';
import { encodeRecords } from '../src/cache/index.js';
import type { CacheSettings, ItemRecord } from '../src/cache/index.js';
import { SECTION_OVERHEAD_BYTES, openFileSource, readSection, verifyBackup } from './backup-file.js';
import type { BackupHeader } from './backup-file.js';
import { backoffMs, baseUrl, pause, requestWithRetry } from './backup.js';
import type { RequestContext } from './backup.js';
import type { Fetch } from '../src/https/index.js';
import type { ProgressSink } from './backup.js';

export const RECORDS_CONTENT_TYPE = 'application/x-velo-records';

export interface RestoreOptions {
  from: string;
  /** Any member's base URL. */
  cluster: string;
  /** Write into a cluster that already holds items (upserts over them; keys not in the backup stay). */
  overwrite?: boolean;
  /** Items per load request. */
  batchItems?: number;
  /** Bytes per load request (estimated from above): half the node's 16 MiB limit, so that an estimate never takes a request over it. */
  batchBytes?: number;
  /**
   * Load requests in flight at once. The node writes each request's items
   * with many proposals at a time already; measured with bench-backup, 1 to 8
   * in flight load at the same rate, and more only queues items behind the
   * request time-out.
   */
  inFlight?: number;
  signal?: AbortSignal;
  /** How to reach the cluster: a fetch that trusts its CA over HTTPS (default: the global fetch). */
  fetch?: Fetch;
  onProgress?: ProgressSink;
  /** Sent as `Authorization: Bearer` where the cluster demands tokens (a load needs the admin role). */
  token?: string | null;
  /** The clock that decides which items have already expired. */
  now?: () => number;
}

export interface RestoreSummary {
  file: string;
  partitions: number;
  caches: number;
  /** Items written. */
  items: number;
  /** Items skipped because their expiry instant had passed. */
  expired: number;
  /** The backup file's size. */
  bytes: number;
  seconds: number;
  header: BackupHeader;
}

/** Restore was refused before writing: a non-empty target without --overwrite. */
export class RestoreRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RestoreRefusedError';
  }
}

type LoadFailure = { index: number; code: string; message: string; retry: 'safe' | 'indeterminate' | 'no' };

/** Tries per item: a load that keeps failing with 'safe' or 'indeterminate' is reported after this many. */
const ITEM_ATTEMPTS = 6;
/** Bytes of an item's record beyond its names and value (flags, lengths, expiry varint): a bound, not a count. */
const RECORD_OVERHEAD_BYTES = 32;

function recordBytes(it: ItemRecord): number {
  let n = RECORD_OVERHEAD_BYTES + it.value.length + it.cache.length * 3 + it.key.length * 3 + (it.region?.length ?? 0) * 3 + it.contentType.length * 3;
  for (const t of it.tags) n += 3 * t.length + 2;
  return n;
}

function describeItem(it: ItemRecord): string {
  return `cache "${it.cache}"${it.region === null ? '' : ` region "${it.region}"`} key "${it.key}"`;
}

async function jsonOf<T>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

/** Names the first cache that holds items: a restore merges into a non-empty cluster only when asked to. */
async function checkEmpty(base: string, ctx: RequestContext): Promise<void> {
  const { caches } = await requestWithRetry(base, '/v1/caches', {}, jsonOf<{ caches: { name: string }[] }>, ctx);
  for (const c of caches) {
    const stats = await requestWithRetry(base, `/v1/caches/${encodeURIComponent(c.name)}/stats`, {}, jsonOf<{ items: number }>, ctx);
    if (stats.items > 0) {
      throw new RestoreRefusedError(`the target cluster is not empty: cache "${c.name}" holds ${stats.items} item(s); restore into an empty cluster, or pass --overwrite to write the backup over what is there`);
    }
  }
}

async function putCache(base: string, name: string, settings: CacheSettings, ctx: RequestContext): Promise<void> {
  await requestWithRetry(
    base,
    `/v1/caches/${encodeURIComponent(name)}`,
    { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(settings) },
    async (r) => void (await r.arrayBuffer()),
    ctx,
  );
}

/**
 * Loads one batch, retrying what is safe to retry: the whole request on 503,
 * 504 or a broken connection (an upsert repeated writes the same thing), and
 * then each item the node reports as 'safe' or 'indeterminate'. Returns the
 * items written, those found expired, and the failures that retrying cannot fix.
 */
async function loadBatch(base: string, batch: ItemRecord[], now: () => number, ctx: RequestContext): Promise<{ written: number; expired: number; failures: string[] }> {
  let pending = batch;
  let written = 0;
  let expired = 0;
  const failures: string[] = [];
  for (let attempt = 0; pending.length > 0; attempt++) {
    if (attempt > 0) await pause(backoffMs(attempt - 1), ctx.signal);
    const body = encodeRecords(pending);
    const out = await requestWithRetry(
      base,
      '/v1/admin/load',
      { method: 'POST', headers: { 'content-type': RECORDS_CONTENT_TYPE }, body: body as Uint8Array<ArrayBuffer> },
      jsonOf<{ written: number; failed: LoadFailure[] }>,
      { ...ctx, timeoutMs: 120_000 },
    );
    written += out.written;
    const again: ItemRecord[] = [];
    for (const f of out.failed) {
      const it = pending[f.index];
      if (it === undefined) throw new Error(`the node reported a failure at index ${f.index} of a batch of ${pending.length}`);
      // An item whose instant passed between reading the file and the write is refused by the node; it was due to go anyway.
      if (it.expiresAt !== null && it.expiresAt <= now()) {
        expired++;
        continue;
      }
      if (f.retry === 'no' || attempt + 1 >= ITEM_ATTEMPTS) failures.push(`${describeItem(it)}: ${f.code}: ${f.message}`);
      else again.push(it);
    }
    pending = again;
  }
  return { written, expired, failures };
}

/**
 * Sends batches with at most `inFlight` of them unanswered, and keeps the
 * tally. A batch that fails outright (after its retries) stops the sending
 * of more; those in flight are still awaited, so restore never returns with
 * writes under way.
 */
class Loader {
  written = 0;
  expired = 0;
  readonly failures: string[] = [];
  private readonly running = new Set<Promise<void>>();
  private firstError: { e: unknown } | null = null;

  constructor(
    private readonly base: string,
    private readonly inFlight: number,
    private readonly now: () => number,
    private readonly ctx: RequestContext,
    private readonly onAnswered: (batch: ItemRecord[]) => void,
  ) {}

  async send(batch: ItemRecord[]): Promise<void> {
    while (this.running.size >= this.inFlight) await Promise.race(this.running);
    if (this.firstError) throw this.firstError.e;
    const p: Promise<void> = loadBatch(this.base, batch, this.now, this.ctx)
      .then((r) => {
        this.written += r.written;
        this.expired += r.expired;
        this.failures.push(...r.failures);
        this.onAnswered(batch);
      })
      .catch((e: unknown) => {
        this.firstError ??= { e };
      })
      .finally(() => this.running.delete(p));
    this.running.add(p);
  }

  /** Waits for every batch sent; throws the first outright failure. */
  async drain(): Promise<void> {
    await Promise.all(this.running);
    if (this.firstError) throw this.firstError.e;
  }
}

/** `items` in batches of at most `maxItems` and about `maxBytes` (an item bigger than that goes alone). */
export function* batches(items: readonly ItemRecord[], maxItems: number, maxBytes: number): Generator<ItemRecord[]> {
  let batch: ItemRecord[] = [];
  let size = 0;
  for (const it of items) {
    const n = recordBytes(it);
    if (batch.length > 0 && (batch.length >= maxItems || size + n > maxBytes)) {
      yield batch;
      batch = [];
      size = 0;
    }
    batch.push(it);
    size += n;
  }
  if (batch.length > 0) yield batch;
}

export async function restore(opts: RestoreOptions): Promise<RestoreSummary> {
  const base = baseUrl(opts.cluster);
  const now = opts.now ?? Date.now;
  const signal = opts.signal;
  const started = performance.now();
  const src = await openFileSource(opts.from);
  try {
    // 1. Verify the whole file before the first write: a refusal changes nothing.
    let bytesDone = 0;
    const layout = await verifyBackup(src, (i, l) => {
      bytesDone += l.header.partitions[i]!.bytes + SECTION_OVERHEAD_BYTES;
      opts.onProgress?.({ phase: 'verify', partitionsDone: i + 1, partitionsTotal: l.header.partitions.length, bytesDone, bytesTotal: src.size });
    });
    const { header } = layout;
    const sections = header.partitions;

    // 2. The target: empty unless told otherwise; then the backup's caches, with their settings, before their items.
    const ctx: RequestContext = { signal, token: opts.token ?? null, ...(opts.fetch ? { fetch: opts.fetch } : {}) };
    if (!opts.overwrite) await checkEmpty(base, ctx);
    for (const c of header.caches) await putCache(base, c.name, c.settings, ctx);

    // 3. The items, one section at a time. Progress counts a section's bytes
    // in proportion to its items answered (or skipped as expired).
    bytesDone = src.size - sections.reduce((n, s) => n + s.bytes + SECTION_OVERHEAD_BYTES, 0); // magic and header
    let partitionsDone = 0;
    const report = () => opts.onProgress?.({ phase: 'load', partitionsDone, partitionsTotal: sections.length, bytesDone, bytesTotal: src.size });
    const sectionOf = new Map<ItemRecord[], number>();
    /** Per section: batches not answered yet, plus one until the last of them is sent. */
    const unanswered = sections.map(() => 1);
    const perItemBytes = sections.map((s) => (s.bytes + SECTION_OVERHEAD_BYTES) / Math.max(1, s.items));
    const sectionDone = (i: number) => {
      if (--unanswered[i]! === 0) {
        partitionsDone++;
        // What rounding left over, and a section without items.
        bytesDone += (sections[i]!.bytes + SECTION_OVERHEAD_BYTES) - perItemBytes[i]! * sections[i]!.items;
      }
      report();
    };
    const loader = new Loader(base, opts.inFlight ?? 4, now, ctx, (batch) => {
      const i = sectionOf.get(batch)!;
      sectionOf.delete(batch);
      bytesDone += perItemBytes[i]! * batch.length;
      sectionDone(i);
    });
    report();
    let expired = 0;
    try {
      for (let i = 0; i < sections.length; i++) {
        // Its checksum is checked again: the file could have changed since it was verified.
        const e = await readSection(src, layout, i);
        const at = now();
        const live = e.items.filter((it) => it.expiresAt === null || it.expiresAt > at);
        expired += e.items.length - live.length;
        bytesDone += perItemBytes[i]! * (e.items.length - live.length);
        for (const batch of batches(live, opts.batchItems ?? 2000, opts.batchBytes ?? 8 * 1024 * 1024)) {
          sectionOf.set(batch, i);
          unanswered[i]!++;
          await loader.send(batch);
        }
        sectionDone(i);
      }
    } finally {
      // Never return, nor throw, with writes still under way.
      await loader.drain().catch(() => {});
    }
    await loader.drain();
    if (loader.failures.length > 0) {
      const shown = loader.failures.slice(0, 5).join('; ');
      throw new Error(`restore incomplete: ${loader.failures.length} item(s) could not be written (${loader.written} were): ${shown}${loader.failures.length > 5 ? '; …' : ''}`);
    }
    return {
      file: opts.from,
      partitions: sections.length,
      caches: header.caches.length,
      items: loader.written,
      expired: expired + loader.expired,
      bytes: src.size,
      seconds: (performance.now() - started) / 1000,
      header,
    };
  } finally {
    await src.close();
  }
}
