// The near cache against a real 3-node cluster over real HTTP: client A
// keeps a near cache, client B (none) writes. A's backend is wrapped so that
// the test knows exactly which events A's near cache has processed (an event
// counts once the near cache asks for the next one), and every read through
// A is checked against them: never older than the last processed event for
// its key. The invalidation delay — from B's acknowledged write until A stops
// serving the old value — is measured and printed.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ProcessCluster } from './process-cluster.js';
import { VeloClient } from '../../src/client/client.js';
import { HttpBackend } from '../../src/client/http-backend.js';
import type { Backend, ChangeEvent, EventEnvelope, EventFilter } from '../../src/client/backend.js';

/** Delegates everything; records the events the consumer of a stream has processed. */
class ProcessedEvents implements Backend {
  /** Per cache/region/key: the newest processed event. */
  private readonly last = new Map<string, ChangeEvent>();

  constructor(private readonly inner: Backend) {}

  lastFor(cache: string, key: string): ChangeEvent | undefined {
    return this.last.get(JSON.stringify([cache, null, key]));
  }

  events(filter: EventFilter, signal: AbortSignal, onOpen?: () => void): AsyncIterable<EventEnvelope> {
    const inner = this.inner.events(filter, signal, onOpen);
    const last = this.last;
    return (async function* () {
      for await (const e of inner) {
        yield e;
        // Resumed: the consumer asked for the next event, so it has processed this one.
        if (e.event.key !== null) last.set(JSON.stringify([e.event.cache, e.event.region, e.event.key]), e.event);
      }
    })();
  }

  get: Backend['get'] = (...a) => this.inner.get(...a);
  put: Backend['put'] = (...a) => this.inner.put(...a);
  delete: Backend['delete'] = (...a) => this.inner.delete(...a);
  touch: Backend['touch'] = (...a) => this.inner.touch(...a);
  lock: Backend['lock'] = (...a) => this.inner.lock(...a);
  unlock: Backend['unlock'] = (...a) => this.inner.unlock(...a);
  listRegion: Backend['listRegion'] = (...a) => this.inner.listRegion(...a);
  clearRegion: Backend['clearRegion'] = (...a) => this.inner.clearRegion(...a);
  listCaches: Backend['listCaches'] = () => this.inner.listCaches();
  putCache: Backend['putCache'] = (...a) => this.inner.putCache(...a);
  dropCache: Backend['dropCache'] = (...a) => this.inner.dropCache(...a);
  stats: Backend['stats'] = (...a) => this.inner.stats(...a);
  cluster: Backend['cluster'] = () => this.inner.cluster();
  close: Backend['close'] = () => this.inner.close();
}

let cluster: ProcessCluster;
let seen: ProcessedEvents;
let a: VeloClient;
let b: VeloClient;

beforeAll(async () => {
  cluster = await ProcessCluster.start(['n1', 'n2', 'n3'], ['--partitions', '4', '--log-level', 'warn']);
  await cluster.allReady();
  const nodes = [...cluster.nodes.values()].map((n) => n.http);
  seen = new ProcessedEvents(new HttpBackend({ nodes }));
  a = new VeloClient({ backend: seen, nearCache: true });
  b = new VeloClient({ nodes });
}, 60_000);

afterAll(async () => {
  await a?.close();
  await b?.close();
  await cluster?.stop();
});

/** Paces polling; the condition polled is what the test waits for. */
const tick = () => new Promise((r) => setTimeout(r, 1));

/** Reads through A that had a processed event to be checked against. */
let checkedReads = 0;

/**
 * A 'local' read through A, checked against what A's near cache had
 * processed when the read began (a read begun after an event was processed
 * must not return anything older). Versions are the cluster's log indexes:
 * numbers, increasing per key.
 */
async function readA(key: string): Promise<{ value: unknown; version: number } | null> {
  const before = seen.lastFor('default', key);
  const got = await a.cache().getItem(key, { consistency: 'local' });
  // Nothing found is not checked: the key may have been deleted since, its event not yet processed.
  if (before !== undefined && got !== null) {
    checkedReads++;
    const floor = Number(before.version);
    if (Number(got.version) < floor || (Number(got.version) === floor && before.type !== 'put')) {
      throw new Error(`A read ${key} at version ${got.version} after processing its ${before.type} at ${floor}`);
    }
  }
  return got === null ? null : { value: got.value, version: Number(got.version) };
}

/** Reads through A until one is served by its near cache with the expected value. */
async function nearCached(key: string, value: unknown): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const hits = a.nearCacheStats()!.hits;
    const got = await readA(key);
    if (a.nearCacheStats()!.hits > hits && JSON.stringify(got?.value) === JSON.stringify(value)) return;
    if (Date.now() > deadline) throw new Error(`${key} was never served from A's near cache`);
    await tick();
  }
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

describe('the near cache on a real cluster', () => {
  test('a read is filled into the near cache and then served from it', async () => {
    await b.cache().put('warm', { n: 0 });
    await nearCached('warm', { n: 0 });
    const s = a.nearCacheStats()!;
    expect(s.fills).toBeGreaterThanOrEqual(1);
    // Served from the process: further reads reach no node, whose hit counters stay put.
    const hits = s.hits;
    const reads = async () => {
      const st = await b.cache().stats();
      return st.hits + st.misses;
    };
    const served = await reads();
    for (let i = 0; i < 20; i++) expect((await readA('warm'))?.value).toEqual({ n: 0 });
    expect(a.nearCacheStats()!.hits).toBe(hits + 20);
    expect(await reads()).toBe(served);
  }, 60_000);

  test('a write through another client invalidates the near-cached item; A never reads older than its last processed event', async () => {
    const delaysMs: number[] = [];
    const key = 'hot';
    await b.cache().put(key, { i: 0 });
    for (let i = 1; i <= 50; i++) {
      await nearCached(key, { i: i - 1 });
      const { version } = await b.cache().put(key, { i });
      const acked = performance.now();
      const deadline = Date.now() + 10_000;
      for (;;) {
        const got = await readA(key);
        if (got !== null && got.version >= Number(version)) {
          expect(got.value).toEqual({ i });
          break;
        }
        if (Date.now() > deadline) throw new Error(`A still served ${JSON.stringify(got)} 10 s after B wrote version ${version}`);
        await tick();
      }
      delaysMs.push(performance.now() - acked);
    }
    delaysMs.sort((x, y) => x - y);
    const p50 = percentile(delaysMs, 50);
    const p99 = percentile(delaysMs, 99);
    console.log(`near cache invalidation after another client's acknowledged write, ${delaysMs.length} writes: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${delaysMs[delaysMs.length - 1]!.toFixed(1)} ms`);
    expect(a.nearCacheStats()!.invalidations).toBeGreaterThanOrEqual(50);
    expect(checkedReads).toBeGreaterThan(50);
  }, 120_000);

  test('a key deleted through another client disappears from the near cache', async () => {
    await b.cache().put('doomed', 'here');
    await nearCached('doomed', 'here');
    await b.cache().delete('doomed');
    const acked = performance.now();
    const deadline = Date.now() + 10_000;
    while ((await readA('doomed')) !== null) {
      if (Date.now() > deadline) throw new Error('A still served the deleted key 10 s after the delete');
      await tick();
    }
    // What made it go is the delete's event.
    expect(seen.lastFor('default', 'doomed')?.type).toBe('delete');
    console.log(`near cache invalidation after another client's delete: ${(performance.now() - acked).toFixed(1)} ms`);
    expect(await a.cache().get('doomed')).toBeUndefined();
  }, 60_000);
});
