// Tokens and roles over the real HTTP API of a served node started with an
// admin token file (API.md "Security"): every route declares a permission and
// is refused without a token; the role × cache-scope matrix; the token routes
// and their validation; revocation; /metrics. Every refusal leaves the state
// as it was.
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { declaredRoutes, installAuth } from '../../api/auth.js';
import { buildServer } from '../../api/server.js';
import { installErrorHandler } from '../../api/errors.js';
import type { AccessMode } from '../../src/node/access.js';
import { serveNode } from '../support/served-node.js';
import type { Served } from '../support/served-node.js';

let s: Served;
let admin: string;

interface Answer {
  status: number;
  headers: Headers;
  body: string;
}

async function call(method: string, path: string, token: string | null, body?: string, contentType = 'application/json'): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = contentType;
  const res = await fetch(`${s.base}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

const code = (a: Answer) => (JSON.parse(a.body) as { error: { code: string } }).error.code;

async function makeToken(name: string, role: string, caches?: string[]): Promise<string> {
  const a = await call('POST', '/v1/admin/tokens', admin, JSON.stringify({ name, role, ...(caches ? { caches } : {}) }));
  expect(a.status, a.body).toBe(201);
  return (JSON.parse(a.body) as { token: string }).token;
}

/** The state a refused request must not change: every cache with its items and stats, and the tokens. */
async function snapshot(): Promise<string> {
  const caches = JSON.parse((await call('GET', '/v1/caches', admin)).body) as { caches: { name: string }[] };
  const out: unknown[] = [caches];
  for (const c of caches.caches) {
    out.push(JSON.parse((await call('GET', `/v1/caches/${c.name}/stats`, admin)).body));
    // A local read: a strong one would count a hit, changing the stats it is compared by.
    out.push((await call('GET', `/v1/caches/${c.name}/items/k?consistency=local`, admin)).body);
    out.push((await call('GET', `/v1/caches/${c.name}/regions/r/items`, admin)).body);
  }
  out.push(JSON.parse((await call('GET', '/v1/admin/tokens', admin)).body));
  out.push((JSON.parse((await call('GET', '/v1/cluster', admin)).body) as { members: unknown }).members);
  return JSON.stringify(out);
}

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'velo-auth-'));
  const file = join(dir, 'admin.token');
  s = await serveNode({ maxValueBytes: 1 << 20, adminTokenFile: file });
  admin = (await readFile(file, 'utf8')).trim();
  // The bootstrap token is proposed after start: poll until this node verifies it.
  for (let i = 0; i < 500 && (await call('GET', '/v1/caches', admin)).status !== 200; i++) await new Promise((r) => setTimeout(r, 10));
  expect((await call('GET', '/v1/caches', admin)).status).toBe(200);
  for (const c of ['app-a', 'other']) expect((await call('PUT', `/v1/caches/${c}`, admin, '{}')).status).toBe(201);
  for (const c of ['default', 'app-a', 'other']) {
    expect((await call('PUT', `/v1/caches/${c}/items/k`, admin, 'v0', 'text/plain')).status).toBe(201);
    expect((await call('PUT', `/v1/caches/${c}/regions/r/items/k`, admin, 'r0', 'text/plain')).status).toBe(201);
  }
});

afterAll(async () => {
  await s?.close();
});

/** A request for each route pattern: params filled in, a body where one is needed. */
function requestFor(method: string, url: string): { path: string; body?: string; contentType?: string } {
  const path = url
    .replace(':cache', 'other')
    .replace(':region', 'r')
    .replace(':key', 'k')
    .replace(':partition', '0')
    .replace(':id', 'n1')
    .replace(':name', 'admin');
  const query = path.endsWith('/lock') ? '?timeoutMs=1000' : path.endsWith('/touch') ? '?ttlMs=60000' : '';
  if (method === 'PUT' && path.includes('/items/')) return { path: path + query, body: 'evil', contentType: 'text/plain' };
  if (method === 'PUT') return { path, body: '{"defaultTtlMs":1}' };
  if (path === '/v1/cluster/members') return { path, body: JSON.stringify({ id: 'n1', raft: '10.9.9.9:1', http: '10.9.9.9:2' }) };
  if (path === '/v1/admin/tokens' && method === 'POST') return { path, body: JSON.stringify({ name: 'mine', role: 'admin' }) };
  if (path === '/v1/admin/load') return { path, body: '', contentType: 'application/x-velo-records' };
  return { path: path + query };
}

describe('every route', () => {
  test('declares a permission: only /healthz and /readyz are public', () => {
    const routes = declaredRoutes(s.app);
    expect(routes.length).toBeGreaterThan(20);
    for (const r of routes) expect(r.permission, `${r.method} ${r.url}`).toBeDefined();
    const pub = routes.filter((r) => r.permission === 'public').map((r) => `${r.method} ${r.url}`);
    expect(new Set(pub)).toEqual(new Set(['GET /healthz', 'HEAD /healthz', 'GET /readyz', 'HEAD /readyz']));
  });

  test('answers 401 unauthenticated, in the contract error format, without a token or with an unknown one, and changes nothing', async () => {
    const before = await snapshot();
    for (const r of declaredRoutes(s.app)) {
      if (r.permission === 'public') continue;
      const q = requestFor(r.method, r.url);
      for (const token of [null, 'velo_not-a-token-of-this-cluster-at-all']) {
        const a = await call(r.method, q.path, token, q.body, q.contentType);
        expect(a.status, `${r.method} ${q.path}`).toBe(401);
        if (r.method !== 'HEAD') expect(code(a)).toBe('unauthenticated');
        expect(a.headers.get('www-authenticate')).toMatch(/^Bearer/);
      }
    }
    expect(await snapshot()).toBe(before);
  });

  test('answers 403 forbidden to a read token limited to another cache, except the listing and the cluster view, and changes nothing', async () => {
    const reader = await makeToken('reader-elsewhere', 'read', ['default']);
    const before = await snapshot();
    for (const r of declaredRoutes(s.app)) {
      if (r.permission === 'public') continue;
      const q = requestFor(r.method, r.url);
      const a = await call(r.method, q.path, reader, q.body, q.contentType);
      if (r.url === '/v1/caches' || r.url === '/v1/cluster') expect(a.status, `${r.method} ${q.path}`).toBe(200);
      else expect(a.status, `${r.method} ${q.path}`).toBe(403);
    }
    expect(await snapshot()).toBe(before);
  });

  test('a route registered without a permission is refused, with or without a token (fail closed)', async () => {
    const open = await buildServer({ service: s.node, maxValueBytes: 1024 });
    let ran = false;
    open.get('/v1/forgotten', async () => {
      ran = true;
      return { secret: true };
    });
    await open.listen({ host: '127.0.0.1', port: 0 });
    try {
      const base = `http://127.0.0.1:${(open.server.address() as { port: number }).port}`;
      for (const headers of [{}, { authorization: `Bearer ${admin}` }] as Record<string, string>[]) {
        const res = await fetch(`${base}/v1/forgotten`, { headers });
        expect(res.status).toBe(403);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('forbidden');
      }
      expect(ran).toBe(false);
    } finally {
      await open.close();
    }
  });
});

describe('roles and cache scopes', () => {
  type Op = { name: string; method: string; path: string; body?: string; type?: string; needs: 'read' | 'write' | 'admin'; cache: string | null };
  const ops: Op[] = [
    { name: 'read an item', method: 'GET', path: '/v1/caches/$c/items/k', needs: 'read', cache: '$c' },
    { name: 'list a region', method: 'GET', path: '/v1/caches/$c/regions/r/items', needs: 'read', cache: '$c' },
    { name: 'cache stats', method: 'GET', path: '/v1/caches/$c/stats', needs: 'read', cache: '$c' },
    { name: 'write an item', method: 'PUT', path: '/v1/caches/$c/items/k2', body: 'x', type: 'text/plain', needs: 'write', cache: '$c' },
    { name: 'touch an item', method: 'POST', path: '/v1/caches/$c/items/k/touch?ttlMs=600000', needs: 'write', cache: '$c' },
    { name: 'delete an item', method: 'DELETE', path: '/v1/caches/$c/items/k2', needs: 'write', cache: '$c' },
    { name: 'clear a region', method: 'DELETE', path: '/v1/caches/$c/regions/empty', needs: 'write', cache: '$c' },
    { name: 'change a cache', method: 'PUT', path: '/v1/caches/$c', body: '{}', needs: 'admin', cache: '$c' },
    { name: 'export a partition', method: 'GET', path: '/v1/admin/partitions/0/export', needs: 'admin', cache: null },
    { name: 'list tokens', method: 'GET', path: '/v1/admin/tokens', needs: 'admin', cache: null },
    { name: 'the cluster view', method: 'GET', path: '/v1/cluster', needs: 'read', cache: null },
  ];
  const rank = { read: 0, write: 1, admin: 2 } as const;
  const roles = ['read', 'write', 'admin'] as const;

  for (const role of roles) {
    for (const scoped of [false, true]) {
      test(`a ${role} token${scoped ? ' limited to app-*' : ''} may do exactly what its role${scoped ? ' and scope' : ''} cover`, async () => {
        const token = await makeToken(`m-${role}-${scoped ? 's' : 'u'}`, role, scoped ? ['app-*'] : undefined);
        for (const cache of ['app-a', 'other']) {
          for (const op of ops) {
            const a = await call(op.method, op.path.replace('$c', cache), token, op.body, op.type);
            const inScope = !scoped || (op.cache !== null && cache.startsWith('app-')) || (op.cache === null && op.needs !== 'admin');
            const allowed = rank[role] >= rank[op.needs] && inScope;
            const what = `${op.name} in ${cache}`;
            if (allowed) expect([401, 403], `${what}: ${a.status} ${a.body}`).not.toContain(a.status);
            else {
              expect(a.status, `${what}: ${a.body}`).toBe(403);
              expect(code(a)).toBe('forbidden');
            }
          }
        }
      });
    }
  }

  test('a limited token lists only the caches it covers', async () => {
    const token = await makeToken('lister', 'read', ['app-*', 'default']);
    const a = await call('GET', '/v1/caches', token);
    expect((JSON.parse(a.body) as { caches: { name: string }[] }).caches.map((c) => c.name).sort()).toEqual(['app-a', 'default']);
  });
});

describe('the token routes', () => {
  test('create answers the secret once; the list shows names, roles, caches and creation times, never a secret or a hash', async () => {
    const before = Date.now();
    const a = await call('POST', '/v1/admin/tokens', admin, JSON.stringify({ name: 'ci-writer', role: 'write', caches: ['app-*', 'default'] }));
    expect(a.status).toBe(201);
    const made = JSON.parse(a.body) as { name: string; token: string };
    expect(Object.keys(made).sort()).toEqual(['name', 'token']);
    expect(made.name).toBe('ci-writer');
    const list = await call('GET', '/v1/admin/tokens', admin);
    const t = (JSON.parse(list.body) as { tokens: Record<string, unknown>[] }).tokens.find((x) => x.name === 'ci-writer')!;
    expect(t).toEqual({ name: 'ci-writer', role: 'write', caches: ['app-*', 'default'], createdAt: expect.any(Number) });
    expect(t.createdAt as number).toBeGreaterThanOrEqual(before);
    expect(list.body).not.toContain(made.token);
    expect(list.body).not.toContain(made.token.slice(5, 25));
    expect(list.body).not.toContain(admin.slice(5, 25));
    expect((await call('PUT', '/v1/caches/app-a/items/by-ci', made.token, 'x', 'text/plain')).status).toBe(201);
  });

  test('bad bodies answer 400 bad_request and create nothing', async () => {
    const before = await call('GET', '/v1/admin/tokens', admin);
    const bad = [
      '{"name":"x","role":"read","extra":1}',
      '{"name":"x","role":"owner"}',
      '{"name":"x"}',
      '{"role":"read"}',
      `{"name":"${'n'.repeat(65)}","role":"read"}`,
      '{"name":"a/b","role":"read"}',
      '{"name":123,"role":"read"}',
      '{"name":"x","role":"read","caches":"default"}',
      '{"name":"x","role":"read","caches":[]}',
      '{"name":"x","role":"read","caches":[1]}',
      '{"name":"x","role":"read","caches":["a*b"]}',
      `{"name":"x","role":"read","caches":${JSON.stringify(Array.from({ length: 65 }, (_, i) => `c${i}`))}}`,
      '["name","role"]',
      'not json',
    ];
    for (const body of bad) {
      const a = await call('POST', '/v1/admin/tokens', admin, body);
      expect(a.status, body).toBe(400);
      expect(code(a)).toBe('bad_request');
    }
    expect((await call('GET', '/v1/admin/tokens', admin)).body).toBe(before.body);
  });

  test('a taken name answers 409 and keeps the first token', async () => {
    const first = await makeToken('dup', 'read');
    const a = await call('POST', '/v1/admin/tokens', admin, '{"name":"dup","role":"admin"}');
    expect(a.status).toBe(409);
    expect((await call('GET', '/v1/caches', first)).status).toBe(200);
    expect((await call('GET', '/v1/admin/tokens', first)).status).toBe(403);
  });

  test('a revoked token is refused at once; revoking an unknown name answers 404', async () => {
    const t = await makeToken('short-lived', 'write');
    expect((await call('GET', '/v1/caches/default/items/k', t)).status).toBe(200);
    expect((await call('DELETE', '/v1/admin/tokens/short-lived', admin)).status).toBe(204);
    const a = await call('GET', '/v1/caches/default/items/k', t);
    expect(a.status).toBe(401);
    expect(code(a)).toBe('unauthenticated');
    expect((await call('DELETE', '/v1/admin/tokens/short-lived', admin)).status).toBe(404);
  });

  test('revoking a token ends the event streams it opened, with an unauthenticated error event, within a second', async () => {
    const t = await makeToken('streamer', 'read');
    const ctrl = new AbortController();
    const res = await fetch(`${s.base}/v1/caches/default/events`, { headers: { authorization: `Bearer ${t}` }, signal: ctrl.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let text = '';
    const ended = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += new TextDecoder().decode(value);
      }
    })();
    // The stream delivers while the token holds...
    expect((await call('PUT', '/v1/caches/default/items/streamed', admin, 'x', 'text/plain')).status).toBe(201);
    for (let i = 0; i < 500 && !text.includes('"key":"streamed"'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(text).toContain('"key":"streamed"');
    expect((await call('DELETE', '/v1/admin/tokens/streamer', admin)).status).toBe(204);
    const revokedAt = performance.now();
    // A bound, not a synchronisation: a stream that outlives its token fails here instead of hanging.
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([ended, new Promise((_, reject) => (bound = setTimeout(() => reject(new Error('the stream outlived its revoked token by 3 s')), 3000)))]).finally(() => {
      clearTimeout(bound);
      ctrl.abort();
    });
    expect(performance.now() - revokedAt).toBeLessThan(1000);
    expect(text).toMatch(/event: error\ndata: \{"error":\{"code":"unauthenticated"/);
  });

  test('malformed Authorization headers answer 401', async () => {
    for (const h of ['Basic abc', `Bearer`, `Bearer ${admin} extra`, `Token ${admin}`, `Bearer ${'x'.repeat(400)}`]) {
      const res = await fetch(`${s.base}/v1/caches`, { headers: { authorization: h } });
      expect(res.status, h.slice(0, 20)).toBe(401);
    }
  });
});

describe('/metrics', () => {
  test('needs the admin role where tokens are demanded, and none with metricsPublic', async () => {
    expect((await call('GET', '/metrics', null)).status).toBe(401);
    expect((await call('GET', '/metrics', await makeToken('metrics-reader', 'read'))).status).toBe(403);
    expect((await call('GET', '/metrics', admin)).status).toBe(200);
    const pub = await buildServer({ service: s.node, maxValueBytes: 1024, metricsPublic: true });
    try {
      expect((await pub.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
      expect((await pub.inject({ method: 'GET', url: '/v1/caches' })).statusCode).toBe(401);
    } finally {
      await pub.close();
    }
  });
});

describe('a node that cannot verify tokens yet', () => {
  // The hook alone, on an app of its own, against a node stand-in that reports each mode.
  async function hookApp(mode: AccessMode) {
    const app = Fastify();
    installErrorHandler(app);
    installAuth(app, { accessMode: () => mode, authenticate: () => ({ name: 'any', role: 'admin', caches: null }) });
    app.get('/v1/thing', { config: { permission: { role: 'read', caches: 'any' } } }, async () => ({ ok: true }));
    app.get('/healthz', { config: { permission: 'public' } }, async () => ({ ok: true }));
    await app.ready();
    return app;
  }

  test('answers 503 unavailable with Retry-After on authenticated routes, token or not, and still serves /healthz', async () => {
    const app = await hookApp({ mode: 'pending', why: 'testing' });
    for (const headers of [{}, { authorization: `Bearer ${admin}` }]) {
      const a = await app.inject({ method: 'GET', url: '/v1/thing', headers });
      expect(a.statusCode).toBe(503);
      expect(a.headers['retry-after']).toBe('1');
      expect(a.json()).toEqual({ error: { code: 'unavailable', message: expect.stringContaining('cannot verify tokens yet') } });
    }
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    await app.close();
  });

  test('a route’s alternative (a joining node’s proof, say) is checked after the body is parsed, only when the token falls short', async () => {
    const app = Fastify();
    installErrorHandler(app);
    installAuth(app, { accessMode: () => ({ mode: 'enforced' }), authenticate: (t) => (t === 'velo_reader-token-for-this-test' ? { name: 'r', role: 'read', caches: null } : null) });
    let asked = 0;
    const alternative = (req: { body?: unknown }) => (asked++, (req.body as { proof?: string } | undefined)?.proof === 'valid');
    app.post('/v1/join', { config: { permission: { role: 'admin', caches: 'all', alternative } } }, async () => ({ joined: true }));
    await app.ready();
    const post = (proof: string, headers: Record<string, string> = {}) => app.inject({ method: 'POST', url: '/v1/join', headers: { 'content-type': 'application/json', ...headers }, payload: JSON.stringify({ proof }) });
    expect((await post('valid')).statusCode).toBe(200);
    expect((await post('forged')).statusCode).toBe(401);
    const weak = await post('forged', { authorization: 'Bearer velo_reader-token-for-this-test' });
    expect(weak.statusCode).toBe(403);
    expect(asked).toBe(3);
    await app.close();
  });

  test('an open node serves without a token, with req.auth null', async () => {
    const app = await hookApp({ mode: 'open' });
    expect((await app.inject({ method: 'GET', url: '/v1/thing' })).statusCode).toBe(200);
    await app.close();
  });
});
