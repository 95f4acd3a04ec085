// The HTTP attacks of issue 16 against a real 3-node cluster started with
// --admin-token-file (one file shared by the three bootstrap members): with
// no credentials, or with a token whose role falls short, one could read,
// write and drop every cache, export whole partitions, bulk-load items, join
// a node of one's own, force-remove real members, rewrite a member's
// advertised address, and give oneself a token. Each must now answer 401 or
// 403 with nothing changed (the state is read before and after). Then a
// revocation must reach every node within one second, and a node that joins
// must enforce the tokens it learns from the metadata.
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encodeRecords } from '../../src/cache/index.js';
import { ProcessCluster } from './process-cluster.js';

const IDS = ['n1', 'n2', 'n3'];
let c: ProcessCluster;
let adminFile: string;
let admin: string;
/** Role tokens, made by the admin. */
const tokens: Record<'read' | 'write', string> = { read: '', write: '' };

async function call(id: string, method: string, path: string, token: string | null, body?: string | Uint8Array, type = 'application/json'): Promise<{ status: number; body: string }> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = type;
  const res = await fetch(c.url(id, path), { method, headers, ...(body !== undefined ? { body: body as Uint8Array<ArrayBuffer> | string } : {}), signal: AbortSignal.timeout(15_000) });
  return { status: res.status, body: await res.text() };
}

const errorCode = (a: { body: string }) => (JSON.parse(a.body) as { error: { code: string } }).error.code;

/**
 * What an attack could change, as the admin reads it on every node: caches
 * and their settings, item counts and bytes, the seeded items, the members
 * with their addresses and status, the tokens.
 */
async function state(): Promise<string> {
  const out: unknown[] = [];
  const caches = JSON.parse((await call('n1', 'GET', '/v1/caches', admin)).body) as { caches: { name: string }[] };
  out.push(caches);
  for (const { name } of caches.caches) {
    const st = JSON.parse((await call('n1', 'GET', `/v1/caches/${name}/stats`, admin)).body) as { items: number; bytes: number };
    out.push(name, st.items, st.bytes);
    for (const key of ['k1', 'k2']) out.push((await call('n1', 'GET', `/v1/caches/${name}/items/${key}`, admin)).body);
    out.push((await call('n1', 'GET', `/v1/caches/${name}/regions/r/items`, admin)).body);
  }
  for (const id of IDS) {
    const view = JSON.parse((await call(id, 'GET', '/v1/cluster', admin)).body) as { members: { id: string; http: string; raft: string; status: string }[] };
    out.push(view.members.map((m) => [m.id, m.http, m.raft, m.status]));
    out.push(JSON.parse((await call(id, 'GET', '/v1/admin/tokens', admin)).body));
  }
  return JSON.stringify(out);
}

beforeAll(async () => {
  adminFile = join(await mkdtemp(join(tmpdir(), 'velo-attacks-')), 'admin.token');
  c = await ProcessCluster.start(IDS, ['--partitions', '4', '--replicas', '3', '--admin-token-file', adminFile, '--log-level', 'warn']);
  admin = (await readFile(adminFile, 'utf8')).trim();
  await c.allReady();
  // The bootstrap token is proposed once the nodes serve: wait until every node verifies it.
  await c.until('every node verifies the admin token', async () => {
    for (const id of IDS) if ((await call(id, 'GET', '/v1/caches', admin)).status !== 200) return false;
    return true;
  });
  expect((await call('n1', 'PUT', '/v1/caches/c1', admin, '{}')).status).toBe(201);
  for (const cache of ['default', 'c1']) {
    for (const key of ['k1', 'k2']) expect((await call('n2', 'PUT', `/v1/caches/${cache}/items/${key}`, admin, `${cache}/${key}`, 'text/plain')).status).toBe(201);
    expect((await call('n3', 'PUT', `/v1/caches/${cache}/regions/r/items/x`, admin, 'in a region', 'text/plain')).status).toBe(201);
  }
  for (const role of ['read', 'write'] as const) {
    const a = await call('n1', 'POST', '/v1/admin/tokens', admin, JSON.stringify({ name: `${role}er`, role }));
    expect(a.status).toBe(201);
    tokens[role] = (JSON.parse(a.body) as { token: string }).token;
  }
  await c.until('every node knows the role tokens', async () => {
    for (const id of IDS) if ((await call(id, 'GET', '/v1/caches', tokens.read)).status !== 200) return false;
    return true;
  });
}, 120_000);

afterAll(async () => {
  await c?.stop();
});

interface Attack {
  what: string;
  method: string;
  path: string;
  body?: string | Uint8Array;
  type?: string;
  /** The strongest role that must still be refused (403; none: only the missing token); no token at all is refused (401) always. */
  refusedUpTo: 'none' | 'read' | 'write';
}

const attacks: Attack[] = [
  { what: 'read an item', method: 'GET', path: '/v1/caches/c1/items/k1', refusedUpTo: 'none' },
  { what: 'list a region', method: 'GET', path: '/v1/caches/c1/regions/r/items', refusedUpTo: 'none' },
  { what: 'write an item', method: 'PUT', path: '/v1/caches/c1/items/k1', body: 'owned', type: 'text/plain', refusedUpTo: 'read' },
  { what: 'delete an item', method: 'DELETE', path: '/v1/caches/default/items/k2', refusedUpTo: 'read' },
  { what: 'clear a region', method: 'DELETE', path: '/v1/caches/c1/regions/r', refusedUpTo: 'read' },
  { what: 'drop a cache', method: 'DELETE', path: '/v1/caches/c1', refusedUpTo: 'write' },
  { what: 'drop the default cache', method: 'DELETE', path: '/v1/caches/default', refusedUpTo: 'write' },
  { what: 'change a cache into a tiny one', method: 'PUT', path: '/v1/caches/default', body: '{"maxBytes":1,"eviction":"lru"}', refusedUpTo: 'write' },
  ...[0, 1, 2, 3].map((p): Attack => ({ what: `export partition ${p}`, method: 'GET', path: `/v1/admin/partitions/${p}/export`, refusedUpTo: 'write' })),
  {
    what: 'bulk-load items',
    method: 'POST',
    path: '/v1/admin/load',
    body: encodeRecords([{ cache: 'c1', region: null, key: 'k1', value: new TextEncoder().encode('loaded'), contentType: 'text/plain', expiresAt: null, tags: [] }]),
    type: 'application/x-velo-records',
    refusedUpTo: 'write',
  },
  { what: 'join a node of one’s own', method: 'POST', path: '/v1/cluster/members', body: JSON.stringify({ id: 'evil', raft: '127.0.0.1:1', http: '127.0.0.1:2' }), refusedUpTo: 'write' },
  { what: 'force-remove a real member', method: 'DELETE', path: '/v1/cluster/members/n3?force=true', refusedUpTo: 'write' },
  { what: 'remove a real member', method: 'DELETE', path: '/v1/cluster/members/n2', refusedUpTo: 'write' },
  { what: 'give oneself an admin token', method: 'POST', path: '/v1/admin/tokens', body: JSON.stringify({ name: 'mine', role: 'admin' }), refusedUpTo: 'write' },
  { what: 'revoke the admin token', method: 'DELETE', path: '/v1/admin/tokens/admin', refusedUpTo: 'write' },
  { what: 'list the tokens', method: 'GET', path: '/v1/admin/tokens', refusedUpTo: 'write' },
  { what: 'read the partition digests', method: 'GET', path: '/v1/admin/partitions/0/digest', refusedUpTo: 'write' },
];

describe('every attack of the issue is refused, with nothing changed', () => {
  test('rewriting a member’s advertised address (n2’s HTTP to the attacker’s port) answers 401 / 403', async () => {
    const before = await state();
    const n2 = c.node('n2');
    const body = JSON.stringify({ id: 'n2', raft: n2.raft, http: '127.0.0.1:9' });
    for (const id of IDS) {
      expect((await call(id, 'POST', '/v1/cluster/members', null, body)).status).toBe(401);
      expect((await call(id, 'POST', '/v1/cluster/members', tokens.write, body)).status).toBe(403);
    }
    expect(await state()).toBe(before);
  }, 60_000);

  for (const a of attacks) {
    test(`${a.what}: 401 without a token${a.refusedUpTo === 'none' ? '' : `, 403 with a ${a.refusedUpTo} token`}, on every node`, async () => {
      const before = await state();
      for (const id of IDS) {
        const none = await call(id, a.method, a.path, null, a.body, a.type);
        expect(none.status, `${id} ${a.method} ${a.path}: ${none.body}`).toBe(401);
        expect(errorCode(none)).toBe('unauthenticated');
        const forged = await call(id, a.method, a.path, 'velo_forged-or-stolen-then-revoked-xxxxxxxxxxxxxxxx', a.body, a.type);
        expect(forged.status).toBe(401);
        for (const role of a.refusedUpTo === 'write' ? (['read', 'write'] as const) : a.refusedUpTo === 'read' ? (['read'] as const) : []) {
          const weak = await call(id, a.method, a.path, tokens[role], a.body, a.type);
          expect(weak.status, `${id} ${role} ${a.method} ${a.path}: ${weak.body}`).toBe(403);
          expect(errorCode(weak)).toBe('forbidden');
        }
      }
      expect(await state()).toBe(before);
    }, 60_000);
  }

  test('a node started with --join and no admin token is refused and exits; the membership is unchanged', async () => {
    const before = await state();
    await expect(c.join('n9', c.url('n1', ''), ['--log-level', 'warn'])).rejects.toThrow(/n9 exited \(1\) before serving[\s\S]*unauthenticated/);
    expect(await state()).toBe(before);
  }, 60_000);
});

describe('revocation and joining', () => {
  test('a revoked token is refused by every node within one second of the revocation’s answer', async () => {
    const made = await call('n1', 'POST', '/v1/admin/tokens', admin, JSON.stringify({ name: 'short-lived', role: 'read' }));
    const t = (JSON.parse(made.body) as { token: string }).token;
    await c.until('every node accepts the new token', async () => {
      for (const id of IDS) if ((await call(id, 'GET', '/v1/caches/c1/items/k1', t)).status !== 200) return false;
      return true;
    });
    expect((await call('n2', 'DELETE', '/v1/admin/tokens/short-lived', admin)).status).toBe(204);
    const revokedAt = performance.now();
    const refusedAfterMs = new Map<string, number>();
    await c.until('every node refuses the revoked token', async () => {
      for (const id of IDS) {
        if (refusedAfterMs.has(id)) continue;
        if ((await call(id, 'GET', '/v1/caches/c1/items/k1', t)).status === 401) refusedAfterMs.set(id, performance.now() - revokedAt);
      }
      return refusedAfterMs.size === IDS.length;
    }, 10_000);
    for (const [id, ms] of refusedAfterMs) expect(ms, `${id} refused it after ${ms.toFixed(0)} ms`).toBeLessThan(1000);
  }, 60_000);

  test('a node that joins with the admin token learns the tokens: it refuses requests without one and accepts the existing role tokens', async () => {
    await c.join('n4', c.url('n1', ''), ['--admin-token-file', adminFile, '--log-level', 'warn']);
    await c.until('n4 verifies the reader token it learnt from the metadata', async () => (await call('n4', 'GET', '/v1/caches/c1/items/k1', tokens.read)).status === 200, 60_000);
    const none = await call('n4', 'GET', '/v1/caches/c1/items/k1', null);
    expect(none.status).toBe(401);
    expect((await call('n4', 'DELETE', '/v1/caches/c1', tokens.write)).status).toBe(403);
    expect((await call('n4', 'DELETE', '/v1/cluster/members/n1?force=true', null)).status).toBe(401);
    const view = JSON.parse((await call('n4', 'GET', '/v1/cluster', tokens.read)).body) as { members: { id: string; status: string }[] };
    expect(view.members.map((m) => m.id)).toEqual(['n1', 'n2', 'n3', 'n4']);
  }, 120_000);
});
