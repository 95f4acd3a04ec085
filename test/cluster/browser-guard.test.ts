// The browser guard on a real `velo start` with its defaults (loopback, no
// tokens, no TLS): what a web page can make a browser send is refused in the
// contract's error format, and changes nothing; what tools send still works.
// Requests go out with node:http, which, unlike fetch, lets a test set Host
// and Origin as a browser would.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, ProcessCluster } from './process-cluster.js';
import { startServing } from '../support/velo-cli.js';
import { until } from '../../scripts/poll.js';

let cluster: ProcessCluster;
let port: number;

beforeAll(async () => {
  cluster = await ProcessCluster.start(['n1'], ['--partitions', '2', '--log-level', 'warn']);
  await cluster.allReady();
  port = Number(cluster.node('n1').http.split(':')[1]);
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** One request to n1 on 127.0.0.1 with exactly these headers (a Host given here replaces the real one). */
function send(method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}), ...headers } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body: text, headers: res.headers }));
    });
    req.once('error', reject);
    req.end(body);
  });
}

const item = (key: string) => `/v1/caches/default/items/${key}`;
const errorOf = (a: Answer) => (JSON.parse(a.body) as { error: { code: string; message: string } }).error;

async function stored(key: string): Promise<string | null> {
  const a = await send('GET', item(key));
  return a.status === 200 ? a.body : null;
}

describe('DNS rebinding: a Host that is not a loopback name', () => {
  test('is refused 403 forbidden, for writes (nothing stored) and reads (nothing shown)', async () => {
    expect((await send('PUT', item('secret'), { 'content-type': 'application/octet-stream' }, 'top')).status).toBe(201);
    for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1.evil.example:${port}`, `10.0.0.1:${port}`]) {
      const put = await send('PUT', item('rebound'), { host, 'content-type': 'application/octet-stream' }, 'x');
      expect(put.status).toBe(403);
      expect(errorOf(put)).toMatchObject({ code: 'forbidden', message: expect.stringMatching(/is not a loopback name/) });
      const read = await send('GET', item('secret'), { host });
      expect(read.status).toBe(403);
      expect(read.body).not.toContain('top');
      expect((await send('DELETE', item('secret'), { host })).status).toBe(403);
    }
    expect(await stored('rebound')).toBeNull();
    expect(await stored('secret')).toBe('top');
  });

  test('localhost, 127.x and [::1] names are served', async () => {
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `127.1.2.3:${port}`, `[::1]:${port}`, 'localhost']) {
      expect((await send('PUT', item('by-name'), { host, 'content-type': 'application/octet-stream' }, host)).status).toBeLessThan(300);
      expect(await stored('by-name')).toBe(host);
    }
  });
});

describe('cross-site requests: an Origin that is not a loopback page', () => {
  test('is refused 403 forbidden, null included, and changes nothing', async () => {
    expect((await send('PUT', item('kept'), { 'content-type': 'application/json' }, '"mine"')).status).toBe(201);
    for (const origin of ['https://evil.example', 'http://evil.example:8080', 'null', 'http://127.0.0.1.evil.example']) {
      const del = await send('DELETE', item('kept'), { origin });
      expect(del.status).toBe(403);
      expect(errorOf(del)).toMatchObject({ code: 'forbidden', message: expect.stringMatching(/requests from web pages/) });
      expect((await send('PUT', item('kept'), { origin, 'content-type': 'application/json' }, '"theirs"')).status).toBe(403);
      expect((await send('PUT', '/v1/caches/evil', { origin, 'content-type': 'application/json' }, '{}')).status).toBe(403);
    }
    expect(await stored('kept')).toBe('"mine"');
    const caches = JSON.parse((await send('GET', '/v1/caches')).body) as { caches: { name: string }[] };
    expect(caches.caches.map((c) => c.name)).not.toContain('evil');
  });

  test('a page on localhost is served', async () => {
    expect((await send('PUT', item('local-page'), { origin: `http://localhost:3000`, 'content-type': 'application/json' }, '1')).status).toBe(201);
    expect((await send('GET', item('local-page'), { origin: 'http://127.0.0.1:5173' })).status).toBe(200);
  });
});

describe('content types a form can send', () => {
  test('form encodings are refused 415 on PUT, POST and DELETE, and change nothing', async () => {
    expect((await send('PUT', item('formed'), { 'content-type': 'application/octet-stream' }, 'v1')).status).toBe(201);
    const refused = [
      await send('PUT', item('formed'), { 'content-type': 'application/x-www-form-urlencoded' }, 'v=2'),
      await send('PUT', item('new-formed'), { 'content-type': 'multipart/form-data; boundary=x' }, '--x--'),
      await send('POST', `${item('formed')}/lock?timeoutMs=60000`, { 'content-type': 'application/x-www-form-urlencoded' }, ''),
      await send('POST', `${item('formed')}/touch?ttlMs=1`, { 'content-type': 'multipart/form-data; boundary=x' }, '--x--'),
      await send('DELETE', item('formed'), { 'content-type': 'Application/X-WWW-Form-Urlencoded; charset=utf-8' }, ''),
    ];
    for (const a of refused) {
      expect(a.status).toBe(415);
      expect(errorOf(a)).toMatchObject({ code: 'unsupported_media_type', message: expect.stringMatching(/is refused by a node without tokens, because any web page can send it/) });
    }
    expect(await stored('formed')).toBe('v1');
    expect(await stored('new-formed')).toBeNull();
    // Not locked, and its TTL untouched: an unconditional write without a handle succeeds, and the item does not expire.
    const item1 = await send('GET', item('formed'));
    expect(item1.headers['x-velo-expires-at']).toBeUndefined();
    expect((await send('PUT', item('formed'), { 'content-type': 'application/octet-stream' }, 'v3')).status).toBe(200);
  });

  test('text/plain is refused on POST (what a page can send cross-site) and stored as a value type by PUT', async () => {
    const post = await send('POST', '/v1/cluster/members', { 'content-type': 'text/plain;charset=UTF-8' }, JSON.stringify({ id: 'intruder', raft: '127.0.0.1:1', http: '' }));
    expect(post.status).toBe(415);
    const view = JSON.parse((await send('GET', '/v1/cluster')).body) as { members: { id: string }[] };
    expect(view.members.map((m) => m.id)).toEqual(['n1']);
    expect((await send('PUT', item('plain'), { 'content-type': 'text/plain; charset=utf-8' }, 'hello')).status).toBe(201);
    const back = await send('GET', item('plain'));
    expect([back.body, back.headers['content-type']]).toEqual(['hello', 'text/plain; charset=utf-8']);
  });

  test('JSON, octet-stream and no content type at all are served', async () => {
    expect((await send('PUT', item('typed'), { 'content-type': 'application/json' }, '{}')).status).toBe(201);
    expect((await send('PUT', item('untyped'), {}, 'raw')).status).toBe(201);
    expect((await send('POST', `${item('untyped')}/touch?ttlMs=60000`)).status).toBe(200);
    expect((await send('DELETE', item('typed'))).status).toBe(204);
  });
});

describe('where tokens are demanded the guard is off: a token is the proof a page cannot forge', () => {
  test('a request with a valid token is served whatever its Host, Origin and content type', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'velo-guard-'));
    const tokenFile = join(dir, 'admin.token');
    const http = await freePort();
    const node = await startServing(['--http', `127.0.0.1:${http}`, '--raft', `127.0.0.1:${await freePort()}`, '--partitions', '2', '--log-level', 'warn', '--admin-token-file', tokenFile]);
    try {
      const token = readFileSync(tokenFile, 'utf8').trim();
      const auth = { authorization: `Bearer ${token}` };
      await until('the admin token accepted', async () => (await fetch(`http://127.0.0.1:${http}/v1/caches`, { headers: auth })).status === 200, 30_000);
      const put = await new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: http, method: 'PUT', path: item('tokened'), headers: { ...auth, host: 'cache.internal.example', origin: 'https://app.example', 'content-type': 'application/x-www-form-urlencoded' } }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.once('error', reject);
        req.end('a=1');
      });
      expect(put).toBe(201);
    } finally {
      await node.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
