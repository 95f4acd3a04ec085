// The HTTP layer's bounds on one real served node, over real sockets:
// stalled requests are closed, connections and event streams are capped per
// node and per client, a reader that stops reading costs the node a bounded
// buffer and is then dropped, and ttlMs / lock timeoutMs have maxima.
import { mkdtemp, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { until } from '../../scripts/poll.js';
import { serveNode } from '../support/served-node.js';
import type { Served } from '../support/served-node.js';
import { openSse } from '../support/sse.js';
import { MAX_LOCK_TIMEOUT_MS, MAX_TTL_MS } from '../../api/http-limits.js';
import type { HttpLimits } from '../../api/http-limits.js';
import type { ItemRecord } from '../../src/cache/index.js';

let served: Served | null = null;
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await served?.close();
  served = null;
});

async function serve(limits: Partial<HttpLimits> = {}, eventLogCapacity?: number): Promise<Served> {
  served = await serveNode({ maxValueBytes: 1 << 20, limits, ...(eventLogCapacity ? { eventLogCapacity } : {}) });
  return served;
}

function port(s: Served): number {
  return Number(new URL(s.base).port);
}

/** A raw TCP client: what it received, and a promise of its close. */
function rawClient(s: Served): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port(s), '127.0.0.1');
    sockets.push(socket);
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', () => {});
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('connect', () => resolve({ socket, received: () => text, closed }));
    socket.once('error', reject);
  });
}

async function gauge(base: string, name: string): Promise<number> {
  const m = new RegExp(`^${name} ([0-9]+)$`, 'm').exec(await (await fetch(`${base}/metrics`)).text());
  if (!m) throw new Error(`no ${name} in /metrics`);
  return Number(m[1]);
}

async function errorOf(r: Response): Promise<{ status: number; code: string }> {
  const body = (await r.json()) as { error: { code: string; message: string } };
  return { status: r.status, code: body.error.code };
}

describe('time-outs', () => {
  test('a stalled upload is closed within the request time-out and writes nothing', async () => {
    const s = await serve({ requestTimeoutMs: 1000 });
    const c = await rawClient(s);
    const started = Date.now();
    c.socket.write(`PUT /v1/caches/default/items/stalled HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(1000)}`);
    await c.closed;
    const tookMs = Date.now() - started;
    // The deadline, plus Node's deadline check (every 500 ms) and a loaded machine's scheduling;
    // far below what it was before (Node's check every 30 s, or the 5 s headers deadline winning).
    expect(tookMs).toBeLessThan(1000 + 3000);
    expect(tookMs).toBeGreaterThanOrEqual(900);
    // Answered before it closes, in the contract's format.
    expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(c.received()).toContain('{"error":{"code":');
    expect((await fetch(`${s.base}/v1/caches/default/items/stalled`)).status).toBe(404);
  });

  test('headers that never end are closed within the headers time-out', async () => {
    const s = await serve({ headersTimeoutMs: 1000, requestTimeoutMs: 5000 });
    const c = await rawClient(s);
    const started = Date.now();
    c.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    await c.closed;
    expect(Date.now() - started).toBeLessThan(1000 + 3000);
  });
});

describe('connection caps', () => {
  test('past the per-client cap a request answers 429 too_many_requests and its connection closes; a freed slot is reused', async () => {
    const s = await serve({ maxConnectionsPerClient: 3 });
    const held = [await rawClient(s), await rawClient(s), await rawClient(s)];
    const extra = await rawClient(s);
    extra.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await extra.closed;
    expect(extra.received()).toMatch(/^HTTP\/1\.1 429 /);
    expect(extra.received()).toContain('"code":"too_many_requests"');
    expect(extra.received()).toMatch(/retry-after: 1/i);
    // The held ones still work.
    held[0]!.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await until('an answer on a held connection', async () => held[0]!.received().startsWith('HTTP/1.1 200'), 5000);
    held[1]!.socket.destroy();
    await held[1]!.closed;
    await until('a new connection admitted once one closed', async () => (await fetch(`${s.base}/healthz`, { headers: { connection: 'close' } })).status === 200, 5000);
  });

  test('past the node-wide cap a request answers 503 unavailable with Retry-After', async () => {
    const s = await serve({ maxConnections: 3, maxConnectionsPerClient: 100 });
    for (let i = 0; i < 3; i++) await rawClient(s);
    const r = await fetch(`${s.base}/healthz`, { headers: { connection: 'close' } });
    expect(await errorOf(r)).toEqual({ status: 503, code: 'unavailable' });
    expect(r.headers.get('retry-after')).toBe('1');
  });
});

describe('event streams', () => {
  test('past the per-client cap a new stream answers 429; past the node cap, 503; a closed stream frees its slot', async () => {
    const s = await serve({ maxEventStreamsPerClient: 2, maxEventStreams: 3 });
    const url = `${s.base}/v1/caches/default/events`;
    const a = await openSse(url);
    const b = await openSse(url);
    expect(await errorOf(await fetch(url))).toEqual({ status: 429, code: 'too_many_requests' });
    a.close();
    await until('the closed stream forgotten', async () => (await gauge(s.base, 'velo_event_streams_open')) === 1, 5000);
    const c = await openSse(url);
    expect(c.res.status).toBe(200);
    b.close();
    c.close();
    await until('no stream open', async () => (await gauge(s.base, 'velo_event_streams_open')) === 0, 5000);
    // The node-wide cap: every stream from this address fits its own cap, the node's is reached first.
    await s.app.close();
    served = null;
    const s2 = await serve({ maxEventStreamsPerClient: 10, maxEventStreams: 2 });
    const url2 = `${s2.base}/v1/caches/default/events`;
    const held = [await openSse(url2), await openSse(url2)];
    const r = await fetch(url2);
    expect(await errorOf(r)).toEqual({ status: 503, code: 'unavailable' });
    for (const h of held) h.close();
  });

  test('with tokens in force the per-client stream cap counts per token, not per address', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'velo-limits-')), 'admin.token');
    served = await serveNode({ maxValueBytes: 1 << 20, adminTokenFile: file, limits: { maxEventStreamsPerClient: 1 } });
    const s = served;
    const admin = (await readFile(file, 'utf8')).trim();
    const auth = (token: string) => ({ authorization: `Bearer ${token}` });
    await until('the bootstrap token verified', async () => (await fetch(`${s.base}/v1/caches`, { headers: auth(admin) })).status === 200, 10_000);
    const made = await fetch(`${s.base}/v1/admin/tokens`, { method: 'POST', headers: { ...auth(admin), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'reader', role: 'read' }) });
    expect(made.status).toBe(201);
    const reader = ((await made.json()) as { token: string }).token;
    const url = `${s.base}/v1/caches/default/events`;
    const open: AbortController[] = [];
    const stream = async (token: string) => {
      const ctrl = new AbortController();
      open.push(ctrl);
      const r = await fetch(url, { headers: auth(token), signal: ctrl.signal });
      return r.status === 200 ? { status: 200, code: null } : { status: r.status, code: ((await r.json()) as { error: { code: string } }).error.code };
    };
    expect(await stream(admin)).toEqual({ status: 200, code: null });
    // The same address, the same token: past its cap.
    expect(await stream(admin)).toEqual({ status: 429, code: 'too_many_requests' });
    // The same address, another token: a cap of its own.
    expect(await stream(reader)).toEqual({ status: 200, code: null });
    for (const c of open) c.abort();
  });

  test('a reader that stops reading holds a bounded buffer, is dropped after the stall limit, and does not hold up another reader', async () => {
    const MAX_BUFFERED = 256 * 1024;
    // The log holds every event here, so the reader that reads never loses history however the test is scheduled.
    const s = await serve({ eventStreamStallMs: 1500, eventStreamMaxBufferedBytes: MAX_BUFFERED }, 100_000);
    const reader = await openSse(`${s.base}/v1/caches/default/events`);
    const slow = await rawClient(s);
    slow.socket.write('GET /v1/caches/default/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await until('the slow stream open', async () => (await gauge(s.base, 'velo_event_streams_open')) === 2, 5000);
    slow.socket.pause(); // reads nothing more: the kernel's buffers fill, then the node's
    // Long names make each event ~1 KiB: enough events to fill the socket buffers several times over.
    const region = 'r'.repeat(240);
    const batches = 24;
    const perBatch = 1000;
    let maxBuffered = 0;
    for (let b = 0; b < batches; b++) {
      const items: ItemRecord[] = Array.from({ length: perBatch }, (_, i) => ({ cache: 'default', region, key: `${'k'.repeat(230)}-${b}-${i}`, value: new Uint8Array(1), contentType: 'application/octet-stream', expiresAt: null, tags: [] }));
      const out = await s.node.load(items);
      expect(out.failed).toEqual([]);
      maxBuffered = Math.max(maxBuffered, await gauge(s.base, 'velo_event_streams_buffered_bytes'));
    }
    // What the node holds for both streams stays within their caps and one event beyond each.
    expect(maxBuffered).toBeLessThanOrEqual(2 * (MAX_BUFFERED + 2048));
    await until('the slow reader dropped', async () => (await gauge(s.base, 'velo_event_streams_dropped_total')) === 1, 10_000);
    // The reader that reads got every event.
    await reader.next(batches * perBatch);
    expect(reader.got.length).toBe(batches * perBatch);
    reader.close();
  }, 60_000);
});

describe('closing the server', () => {
  test('app.close() with an open event stream and a stalled upload ends the stream at once and resolves after the grace period', async () => {
    const s = await serve({ shutdownGraceMs: 500 });
    const stream = await openSse(`${s.base}/v1/caches/default/events`);
    const ended = stream.next(1).catch(() => 'ended');
    const stalled = await rawClient(s);
    stalled.socket.write(`PUT /v1/caches/default/items/never HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nabc`);
    await until('the upload in flight', async () => (await fetch(`${s.base}/healthz`)).status === 200, 5000);
    const started = Date.now();
    const closing = s.app.close();
    expect(await ended).toBe('ended');
    expect(Date.now() - started).toBeLessThan(400);
    await closing;
    // The grace period, not the request time-out (10 s), nor for ever (the stream).
    expect(Date.now() - started).toBeLessThan(500 + 1500);
    await stalled.closed;
    await s.node.close();
    served = null;
  });
});

describe('maxima for ttlMs and lock timeoutMs', () => {
  test('ttlMs and timeoutMs past their maxima answer 400 and change nothing; at the maxima they are accepted', async () => {
    const s = await serve();
    const item = `${s.base}/v1/caches/default/items/k`;
    expect(await errorOf(await fetch(`${item}?ttlMs=${MAX_TTL_MS + 1}`, { method: 'PUT', body: 'v' }))).toEqual({ status: 400, code: 'bad_request' });
    expect((await fetch(item)).status).toBe(404);
    expect((await fetch(`${item}?ttlMs=${MAX_TTL_MS}`, { method: 'PUT', body: 'v' })).status).toBe(201);
    const before = (await fetch(item)).headers.get('x-velo-expires-at');
    expect(await errorOf(await fetch(`${item}/touch?ttlMs=${MAX_TTL_MS + 1}`, { method: 'POST' }))).toEqual({ status: 400, code: 'bad_request' });
    expect((await fetch(item)).headers.get('x-velo-expires-at')).toBe(before);
    expect(await errorOf(await fetch(`${item}/lock?timeoutMs=${MAX_LOCK_TIMEOUT_MS + 1}`, { method: 'POST' }))).toEqual({ status: 400, code: 'bad_request' });
    // Not locked by the refused request: a plain write goes through.
    expect((await fetch(item, { method: 'PUT', body: 'w' })).status).toBe(200);
    const locked = await fetch(`${item}/lock?timeoutMs=${MAX_LOCK_TIMEOUT_MS}`, { method: 'POST' });
    expect(locked.status).toBe(200);
    const cache = await fetch(`${s.base}/v1/caches/long`, { method: 'PUT', body: JSON.stringify({ defaultTtlMs: MAX_TTL_MS + 1 }), headers: { 'content-type': 'application/json' } });
    expect(await errorOf(cache)).toEqual({ status: 400, code: 'bad_request' });
    expect((await fetch(`${s.base}/v1/caches/long/stats`)).status).toBe(404);
  });
});
