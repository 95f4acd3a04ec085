// The HTTP backend: routing straight to each partition's leader, following
// leader changes, and the retry rules — against real nodes over real HTTP,
// and, for the answers a real cluster gives only by chance (a 503 with or
// without X-Velo-Retry, a connection cut after the request arrived, a stream
// cut mid-event), against scripted HTTP servers on loopback.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { HttpBackend, SseParser, originOf } from '../../src/client/http-backend.js';
import type { EventEnvelope, ItemAddress, PutCommand } from '../../src/client/backend.js';
import { BadRequestError, HistoryLostError, IndeterminateError, UnavailableError } from '../../src/client/errors.js';
import { partitionOf } from '../../src/node/partition-map.js';
import { freePort } from '../../scripts/ports.js';
import { until } from '../../scripts/poll.js';
import { InProcessCluster } from './in-process-cluster.js';

const PARTITIONS = 4;

function putCmd(ref: ItemAddress, value: string, extra: Partial<PutCommand> = {}): PutCommand {
  return { ...ref, value: Buffer.from(value), contentType: 'text/plain', ttlMs: null, tags: [], ifMatch: null, ifNoneMatch: false, lockHandle: null, unlock: false, ...extra };
}

/** A key of `cache` (default space) that lives in partition `p`. */
function keyIn(p: number, prefix: string, cache = 'default'): string {
  for (let i = 0; ; i++) if (partitionOf(PARTITIONS, cache, null, `${prefix}${i}`) === p) return `${prefix}${i}`;
}

describe('against a real 3-node cluster', () => {
  let cluster: InProcessCluster;
  const backends: HttpBackend[] = [];
  const backend = (opts: { nodes?: string[]; timeoutMs?: number } = {}) => {
    const b = new HttpBackend({ nodes: opts.nodes ?? cluster.addresses(), timeoutMs: opts.timeoutMs ?? 10_000 });
    backends.push(b);
    return b;
  };

  beforeAll(async () => {
    // An election timeout of 2 s (100 ticks of 20 ms): three nodes share one event loop here, and on a
    // loaded machine a shorter one (it was 400 ms) let a stall of the loop start an election in the middle
    // of the first test, whose claim (nothing forwarded) holds only while leadership stays put.
    cluster = await InProcessCluster.start(['n1', 'n2', 'n3'], { partitions: PARTITIONS, tickMs: 20, electionTicks: 100 });
  }, 60_000);
  afterAll(async () => {
    await Promise.all(backends.map((b) => b.close()));
    await cluster?.close();
  }, 30_000);

  test('every item request goes straight to its partition’s leader: velo_forwarded_total stays flat', async () => {
    // One seed is enough: the rest of the cluster is learnt from /v1/cluster.
    const b = backend({ nodes: [cluster.addresses()[0]!] });
    await b.cluster();
    const leadersBefore = [...Array(PARTITIONS).keys()].map((p) => cluster.leaderOf(p));
    const before = await cluster.forwarded();
    for (let i = 0; i < 24; i++) {
      const ref = { cache: 'default', region: null, key: `direct${i}` };
      await b.put(putCmd(ref, `v${i}`));
      expect(Buffer.from((await b.get(ref, 'strong')).item!.value).toString()).toBe(`v${i}`);
      await b.get(ref, 'local');
      await b.touch(ref, 60_000);
      const { handle } = await b.lock(ref, 5_000);
      await b.unlock(ref, handle);
      expect(await b.delete(ref, null, null)).toBe(true);
    }
    for (const region of ['ra', 'rb', 'rc']) {
      await b.put(putCmd({ cache: 'default', region, key: 'x' }, 'x', { tags: ['t'] }));
      expect(await b.listRegion('default', region, ['t'], 'any')).toHaveLength(1);
      expect(await b.clearRegion('default', region)).toEqual({ removed: 1 });
    }
    // Checked, not assumed: the claim holds only while no partition changed leader.
    expect([...Array(PARTITIONS).keys()].map((p) => cluster.leaderOf(p)), 'leaders during the check').toEqual(leadersBefore);
    expect(await cluster.forwarded()).toBe(before);
    // The metric does see forwarding: the same request through a node that does not lead the partition.
    const key = 'direct0';
    const p = partitionOf(PARTITIONS, 'default', null, key);
    const other = [...cluster.members.keys()].find((id) => id !== cluster.leaderOf(p))!;
    expect((await fetch(cluster.url(other, `/v1/caches/default/items/${key}`), { method: 'PUT', body: 'via a follower' })).status).toBe(201);
    expect(await cluster.forwarded()).toBeGreaterThan(before);
  });

  test('an answer from a node that does not lead the item’s partition names the leader in X-Velo-Leader', async () => {
    for (let p = 0; p < PARTITIONS; p++) {
      const key = keyIn(p, 'hint');
      const leader = cluster.leaderOf(p)!;
      for (const id of cluster.members.keys()) {
        const res = await fetch(cluster.url(id, `/v1/caches/default/items/${key}`));
        expect(res.status).toBe(404);
        expect(res.headers.get('x-velo-leader')).toBe(id === leader ? null : leader);
      }
    }
    // Region routes too, by the region's partition.
    const region = 'hinted';
    const p = partitionOf(PARTITIONS, 'default', region, '');
    const follower = [...cluster.members.keys()].find((id) => id !== cluster.leaderOf(p))!;
    const res = await fetch(cluster.url(follower, `/v1/caches/default/regions/${region}/items`));
    expect(res.status).toBe(200);
    expect(res.headers.get('x-velo-leader')).toBe(cluster.leaderOf(p));
  });

  test('after a partition’s leader stops, reads and puts succeed and then go straight to the new leader', async () => {
    const b = backend({ timeoutMs: 10_000 });
    const p = 2;
    const key = keyIn(p, 'moving');
    const ref = { cache: 'default', region: null, key };
    await b.put(putCmd(ref, 'before'));
    const old = cluster.leaderOf(p)!;
    expect(b.routeOf(ref)).toBe(old);
    await cluster.stop(old);
    await b.put(putCmd(ref, 'after'));
    expect(Buffer.from((await b.get(ref, 'strong')).item!.value).toString()).toBe('after');
    await cluster.settled(false);
    const leader = cluster.leaderOf(p)!;
    expect(leader).not.toBe(old);
    // The client learns it from a refreshed map (a failed connection, a 503 or an X-Velo-Leader answer asks for one).
    await until('the client routes to the new leader', async () => {
      await b.get(ref, 'strong');
      return b.routeOf(ref) === leader;
    }, 10_000, 20);
    const before = await cluster.forwarded();
    for (let i = 0; i < 10; i++) {
      await b.put(putCmd(ref, `again${i}`));
      await b.get(ref, 'strong');
    }
    expect(await cluster.forwarded()).toBe(before);
  }, 60_000);
});

describe('an event stream against a real 3-node cluster', () => {
  let cluster: InProcessCluster;
  const backends: HttpBackend[] = [];
  beforeAll(async () => {
    // An election timeout of 2 s (100 ticks of 20 ms): three nodes share one event loop here, and on a
    // loaded machine a shorter one (it was 400 ms) let a stall of the loop start an election in the middle
    // of the first test, whose claim (nothing forwarded) holds only while leadership stays put.
    cluster = await InProcessCluster.start(['n1', 'n2', 'n3'], { partitions: PARTITIONS, tickMs: 20, electionTicks: 100 });
  }, 60_000);
  afterAll(async () => {
    await Promise.all(backends.map((b) => b.close()));
    await cluster?.close();
  }, 30_000);

  test('a stream of one key’s events survives the loss of the node serving it, nothing lost or repeated', async () => {
    const b = new HttpBackend({ nodes: cluster.addresses() });
    backends.push(b);
    const key = keyIn(1, 'streamed');
    const ref = { cache: 'default', region: null, key };
    const ctrl = new AbortController();
    let opens = 0;
    const got: EventEnvelope[] = [];
    let opened!: () => void;
    const firstOpen = new Promise<void>((r) => (opened = r));
    const reading = (async () => {
      for await (const e of b.events({ cache: 'default', region: null, key, lastEventId: null }, ctrl.signal, () => {
        opens++;
        opened();
      })) got.push(e);
    })();
    await firstOpen;
    const versions: string[] = [];
    for (let i = 0; i < 3; i++) versions.push((await b.put(putCmd(ref, `s${i}`))).version);
    await until('three events', async () => got.length >= 3, 10_000, 10);
    // A keyed stream is read from the partition's leader: stop it.
    const serving = cluster.leaderOf(1)!;
    await cluster.stop(serving);
    for (let i = 3; i < 6; i++) versions.push((await b.put(putCmd(ref, `s${i}`))).version);
    await until('six events', async () => got.length >= 6, 20_000, 10);
    ctrl.abort();
    await reading;
    expect(got.map((e) => e.event.version)).toEqual(versions);
    expect(got.every((e) => e.event.type === 'put' && e.event.key === key)).toBe(true);
    expect(opens).toBe(2);
  }, 60_000);

});

describe('against a real cluster that lost its quorum', () => {
  let cluster: InProcessCluster;
  let b: HttpBackend | null = null;
  beforeAll(async () => {
    cluster = await InProcessCluster.start(['n1', 'n2', 'n3'], { partitions: PARTITIONS, tickMs: 20, requestTimeoutMs: 300 });
  }, 60_000);
  afterAll(async () => {
    await b?.close();
    await cluster?.close();
  }, 30_000);

  test('a write that certainly was not applied answers 503 with X-Velo-Retry: safe, and the client retries it until its deadline: UnavailableError, never IndeterminateError', async () => {
    const survivor = 'n1';
    // A partition led elsewhere: the survivor cannot take it over alone.
    const p = [...Array(PARTITIONS).keys()].find((q) => cluster.leaderOf(q) !== survivor)!;
    const key = keyIn(p, 'lost');
    await cluster.stop('n2');
    await cluster.stop('n3');
    await until('n1 sees both peers down', async () => cluster.member(survivor).node.localCluster().members.filter((m) => m.state === 'down').length === 2, 10_000, 10);
    for (const headers of [{ 'if-match': '"1"' }, { 'if-none-match': '*' }, {}] as Record<string, string>[]) {
      const res = await fetch(cluster.url(survivor, `/v1/caches/default/items/${key}`), { method: 'PUT', body: 'x', headers });
      expect(res.status).toBe(503);
      expect(res.headers.get('x-velo-retry')).toBe('safe');
    }
    b = new HttpBackend({ nodes: [cluster.addresses()[0]!], timeoutMs: 1500 });
    const ref = { cache: 'default', region: null, key };
    const t0 = Date.now();
    await expect(b.put(putCmd(ref, 'cas', { ifMatch: '1' }))).rejects.toBeInstanceOf(UnavailableError);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    await expect(b.put(putCmd(ref, 'plain'))).rejects.toBeInstanceOf(UnavailableError);
    await expect(b.delete(ref, null, null)).rejects.toBeInstanceOf(UnavailableError);
    await expect(b.get(ref, 'strong')).rejects.toBeInstanceOf(UnavailableError);
  }, 60_000);
});

// ---------------------------------------------------------------- scripted servers

interface Seen {
  server: string;
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
}

/** Everything but /v1/cluster that reached any scripted server, in arrival order. */
const log: Seen[] = [];

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A loopback HTTP server that answers /v1/cluster with `view()` and everything else with the test's handler. */
class Scripted {
  handler: Handler = (_req, res) => res.writeHead(500).end();
  private constructor(
    readonly id: string,
    readonly server: Server,
    readonly address: string,
  ) {}

  static async start(id: string, view: () => object): Promise<Scripted> {
    const port = await freePort();
    let s: Scripted | null = null;
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url === '/v1/cluster') return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(view()));
        log.push({ server: id, method: req.method!, url: req.url!, headers: req.headers });
        s!.handler(req, res);
      });
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    s = new Scripted(id, server, `127.0.0.1:${port}`);
    return s;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** A handler for both servers whose answer depends on how many requests came before (across both). */
function both(a: Scripted, b: Scripted, h: (req: IncomingMessage, res: ServerResponse, n: number) => void): void {
  let n = 0;
  a.handler = b.handler = (req, res) => h(req, res, n++);
}

function json(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

const unavailable = { error: { code: 'unavailable', message: 'scripted: no quorum' } };

describe('against scripted servers', () => {
  // Two "nodes", a and b, one partition; `leader` says which leads it.
  let leader = 'a';
  let term = 1;
  let a: Scripted;
  let b: Scripted;
  let deadPort: number;
  let client: HttpBackend | null = null;
  const view = () => ({
    node: 'a',
    members: [
      { id: 'a', http: a.address, raft: '-', state: 'up' },
      { id: 'b', http: b.address, raft: '-', state: 'up' },
      { id: 'dead', http: `127.0.0.1:${deadPort}`, raft: '-', state: 'down' },
    ],
    partitions: [{ id: 0, replicas: ['a', 'b', 'dead'], leader, term, commitIndex: 1 }],
  });
  const ref = { cache: 'default', region: null, key: 'k' };
  const writes = () => log.filter((s) => s.method !== 'GET');

  beforeAll(async () => {
    a = await Scripted.start('a', view);
    b = await Scripted.start('b', view);
    deadPort = await freePort();
  });
  afterEach(async () => {
    await client?.close();
    client = null;
    log.length = 0;
    a.handler = b.handler = (_req, res) => res.writeHead(500).end();
    leader = 'a';
    term = 1;
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  }, 30_000);
  const connect = (timeoutMs = 3000) => (client = new HttpBackend({ nodes: [a.address, b.address], timeoutMs }));

  test('a compare-and-set answered 503 without X-Velo-Retry is an IndeterminateError, sent once', async () => {
    a.handler = (_req, res) => json(res, 503, unavailable, { 'retry-after': '1' });
    const c = connect();
    await expect(c.put(putCmd(ref, 'v', { ifMatch: '3' }))).rejects.toBeInstanceOf(IndeterminateError);
    await expect(c.put(putCmd(ref, 'v', { ifNoneMatch: true }))).rejects.toBeInstanceOf(IndeterminateError);
    await expect(c.delete(ref, null, null)).rejects.toBeInstanceOf(IndeterminateError);
    await expect(c.lock(ref, 1000)).rejects.toBeInstanceOf(IndeterminateError);
    expect(writes()).toHaveLength(4);
  });

  test('an unconditional put answered 503 is sent again, and its second answer counts', async () => {
    both(a, b, (_req, res, n) => (n === 0 ? json(res, 503, unavailable) : json(res, 201, { version: '7', created: true }, { etag: '"7"' })));
    const c = connect();
    expect(await c.put(putCmd(ref, 'v'))).toEqual({ version: '7', created: true });
    expect(writes()).toHaveLength(2);
  });

  test('an unconditional put that never got a definite answer is an IndeterminateError at its deadline', async () => {
    a.handler = (_req, res) => json(res, 503, unavailable);
    b.handler = a.handler;
    const c = connect(400);
    await expect(c.put(putCmd(ref, 'v'))).rejects.toBeInstanceOf(IndeterminateError);
    expect(writes().length).toBeGreaterThan(1);
  });

  test('a compare-and-set answered 503 with X-Velo-Retry: safe is sent again', async () => {
    both(a, b, (_req, res, n) => (n === 0 ? json(res, 503, unavailable, { 'x-velo-retry': 'safe' }) : json(res, 200, { version: '9', created: false }, { etag: '"9"' })));
    const c = connect();
    expect(await c.put(putCmd(ref, 'v', { ifMatch: '8' }))).toEqual({ version: '9', created: false });
    expect(writes().map((w) => w.headers['if-match'])).toEqual(['"8"', '"8"']);
  });

  test('a connection cut after the request arrived makes a compare-and-set indeterminate; a read is sent again', async () => {
    a.handler = (req) => req.socket.destroy();
    const c = connect();
    await expect(c.put(putCmd(ref, 'v', { ifMatch: '1' }))).rejects.toBeInstanceOf(IndeterminateError);
    expect(writes()).toHaveLength(1);
    both(a, b, (req, res, n) => (n === 0 ? req.socket.destroy() : res.writeHead(200, { 'content-type': 'text/plain', etag: '"4"' }).end('value')));
    const got = await c.get(ref, 'strong');
    expect(Buffer.from(got.item!.value).toString()).toBe('value');
    expect(got.item!.version).toBe('4');
  });

  test('a refused connection is retried at another node even for a compare-and-set', async () => {
    // The map says the leader is a node whose port refuses connections.
    leader = 'dead';
    b.handler = (_req, res) => json(res, 200, { version: '5', created: false }, { etag: '"5"' });
    a.handler = b.handler;
    const c = connect();
    await c.cluster();
    expect(c.routeOf(ref)).toBe('dead');
    expect(await c.put(putCmd(ref, 'v', { ifMatch: '4' }))).toEqual({ version: '5', created: false });
    expect(writes()).toHaveLength(1);
  });

  test('an answer naming another leader in X-Velo-Leader sends the partition’s next requests there', async () => {
    a.handler = (_req, res) => {
      // As a real node would, once leadership moved: it still answers (forwarding), and names the leader.
      leader = 'b';
      term = 2;
      res.writeHead(200, { 'content-type': 'text/plain', etag: '"1"', 'x-velo-leader': 'b' }).end('from a');
    };
    b.handler = (_req, res) => res.writeHead(200, { 'content-type': 'text/plain', etag: '"1"' }).end('from b');
    const c = connect();
    await c.cluster();
    expect(Buffer.from((await c.get(ref, 'strong')).item!.value).toString()).toBe('from a');
    await until('the client routes to b', async () => c.routeOf(ref) === 'b', 5000, 10);
    for (let i = 0; i < 5; i++) expect(Buffer.from((await c.get(ref, 'strong')).item!.value).toString()).toBe('from b');
    expect(log.filter((s) => s.server === 'a')).toHaveLength(1);
  });

  test('a map from a node that lags (an older term) does not replace a newer leader', async () => {
    leader = 'b';
    term = 5;
    const c = connect();
    await c.cluster();
    expect(c.routeOf(ref)).toBe('b');
    leader = 'a';
    term = 4;
    await c.cluster();
    expect(c.routeOf(ref)).toBe('b');
    term = 6;
    await c.cluster();
    expect(c.routeOf(ref)).toBe('a');
  });

  test('a 404 not_found reads as missing and deletes as false; 404 cache_not_found is an error', async () => {
    a.handler = (req, res) => json(res, 404, { error: { code: req.url!.includes('/caches/nope/') ? 'cache_not_found' : 'not_found', message: 'scripted' } });
    const c = connect();
    expect((await c.get(ref, 'strong')).item).toBeNull();
    expect(await c.delete(ref, null, null)).toBe(false);
    const missing = { ...ref, cache: 'nope' };
    await expect(c.get(missing, 'strong')).rejects.toMatchObject({ code: 'cache_not_found', status: 404 });
    await expect(c.delete(missing, null, null)).rejects.toMatchObject({ code: 'cache_not_found', status: 404 });
  });

  describe('event streams', () => {
    const event = (v: number) => `data: ${JSON.stringify({ type: 'put', cache: 'default', region: null, key: 'k', version: String(v) })}\n\n`;
    const collect = async (c: HttpBackend, count: number, onOpen?: () => void, lastEventId: string | null = null) => {
      const ctrl = new AbortController();
      const got: EventEnvelope[] = [];
      try {
        for await (const e of c.events({ cache: 'default', region: null, key: null, lastEventId }, ctrl.signal, onOpen)) {
          got.push(e);
          if (got.length >= count) ctrl.abort();
        }
        return { got, error: null };
      } catch (error) {
        return { got, error };
      }
    };

    test('events split across chunks are parsed, and a dropped stream resumes after the last event with Last-Event-ID', async () => {
      both(a, b, (req, res, n) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        if (n === 0) {
          const first = `: hello\n\nid: e1\n${event(1)}`;
          res.write(first.slice(0, 20));
          setImmediate(() => {
            res.write(first.slice(20) + `id: e2\n${event(2)}`);
            // Cut once both are surely flushed to the client's socket.
            setImmediate(() => req.socket.end());
          });
        } else {
          res.write(`id: e3\n${event(3)}`);
        }
      });
      const c = connect();
      let opens = 0;
      const { got, error } = await collect(c, 3, () => opens++);
      expect(error).toBeNull();
      expect(got.map((e) => [e.id, e.event.version])).toEqual([['e1', '1'], ['e2', '2'], ['e3', '3']]);
      expect(opens).toBe(2);
      expect(log.map((s) => s.headers['last-event-id'])).toEqual([undefined, 'e2']);
    });

    test('a given lastEventId is sent on the first connection', async () => {
      a.handler = (_req, res) => res.writeHead(200, { 'content-type': 'text/event-stream' }).write(`id: e8\n${event(8)}`);
      b.handler = a.handler;
      const { got } = await collect(connect(), 1, undefined, 'e7');
      expect(got.map((e) => e.id)).toEqual(['e8']);
      expect(log[0]!.headers['last-event-id']).toBe('e7');
    });

    test('event: error with history_lost ends the stream with HistoryLostError', async () => {
      a.handler = (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(`id: e1\n${event(1)}event: error\ndata: ${JSON.stringify({ error: { code: 'history_lost', message: 'gone' } })}\n\n`);
      };
      b.handler = a.handler;
      const { got, error } = await collect(connect(), 10);
      expect(got).toHaveLength(1);
      expect(error).toBeInstanceOf(HistoryLostError);
      expect((error as HistoryLostError).code).toBe('history_lost');
    });

    test('a stream that breaks before its first event cannot resume without a gap: HistoryLostError', async () => {
      a.handler = (req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': velo change events\n\n');
        setImmediate(() => req.socket.end());
      };
      b.handler = a.handler;
      const { got, error } = await collect(connect(), 10);
      expect(got).toHaveLength(0);
      expect(error).toBeInstanceOf(HistoryLostError);
    });

    test('a refused stream (400) ends with the API’s error class', async () => {
      a.handler = (_req, res) => json(res, 400, { error: { code: 'bad_request', message: 'Last-Event-ID is from another stream' } });
      b.handler = a.handler;
      const { error } = await collect(connect(), 10, undefined, 'bogus');
      expect(error).toBeInstanceOf(BadRequestError);
    });
  });
});

describe('pure parts', () => {
  test('the SSE parser handles CRLF, comments, multi-line data and blocks split anywhere', () => {
    const text = ': comment\r\n\r\nid: 1\r\nevent: message\r\ndata: a\r\ndata: b\r\n\r\nid:2\ndata:{"x":1}\n\n';
    const bytes = Buffer.from(text);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const p = new SseParser();
      const blocks = [...p.push(bytes.subarray(0, cut)), ...p.push(bytes.subarray(cut))];
      expect(blocks).toEqual([
        { id: '1', event: 'message', data: 'a\nb' },
        { id: '2', data: '{"x":1}' },
      ]);
    }
  });

  test('node addresses are normalised, and bad ones refused clearly', () => {
    expect(originOf('127.0.0.1:7001')).toBe('http://127.0.0.1:7001');
    expect(originOf(' http://localhost:7002 ')).toBe('http://localhost:7002');
    expect(() => originOf('')).toThrow(/non-empty/);
    expect(() => originOf('ftp://x:1')).toThrow(/only http/);
    expect(() => originOf('127.0.0.1:7001/v1')).toThrow(/without a path/);
    expect(() => new HttpBackend({ nodes: [] })).toThrow(/at least one member/);
    expect(() => new HttpBackend({ nodes: ['127.0.0.1:1'], timeoutMs: 0 })).toThrow(/timeoutMs/);
  });
});
