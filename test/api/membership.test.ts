// Membership changes over HTTP against one real node: what a bad request
// gets, and that a refused change changes nothing.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { serveNode } from '../support/served-node.js';
import type { Served } from '../support/served-node.js';
import type { ClusterView } from '../../src/node/service.js';

let served: Served;
let base: string;

beforeAll(async () => {
  served = await serveNode({ maxValueBytes: 1024 });
  base = served.base;
});

afterAll(async () => {
  await served.close();
});

const cluster = async (): Promise<ClusterView> => (await (await fetch(`${base}/v1/cluster`)).json()) as ClusterView;
const post = (body: unknown) => fetch(`${base}/v1/cluster/members`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('membership over HTTP', () => {
  test('GET /v1/cluster shows the member, its load, and a balanced cluster', async () => {
    const v = await cluster();
    expect(v.members).toHaveLength(1);
    expect(v.members[0]).toMatchObject({ id: 'n1', state: 'up', status: 'active', replicas: v.partitions.length });
    expect(v.rebalance).toMatchObject({ balanced: true, movesInFlight: 0, movesPending: 0 });
    expect(v.partitions.every((p) => p.replicas.length === 1 && p.replicas[0] === 'n1' && p.moving === false)).toBe(true);
  });

  test.each([
    ['no id', { raft: '127.0.0.1:1', http: '127.0.0.1:2' }],
    ['a bad id', { id: 'n 4', raft: '127.0.0.1:1', http: '127.0.0.1:2' }],
    ['a bad raft address', { id: 'n4', raft: 'nowhere', http: '127.0.0.1:2' }],
    ['an http address that is not host:port', { id: 'n4', raft: '127.0.0.1:1', http: 'http://x' }],
    ['a member id of another node', { id: 'n4', raft: '127.0.0.1:1', http: '127.0.0.1:2', member: 'n5@1' }],
  ])('POST /v1/cluster/members with %s is a 400 and adds nobody', async (_what, body) => {
    const res = await post(body);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('bad_request');
    expect((await cluster()).members.map((m) => m.id)).toEqual(['n1']);
  });

  test('DELETE of an unknown member is a 404', async () => {
    const res = await fetch(`${base}/v1/cluster/members/n9`, { method: 'DELETE' });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'not_found', message: 'no member n9' });
  });

  test('DELETE of the last member is refused (409), even forced, and it stays active', async () => {
    for (const q of ['', '?force=true']) {
      const res = await fetch(`${base}/v1/cluster/members/n1${q}`, { method: 'DELETE' });
      expect(res.status).toBe(409);
      expect(((await res.json()) as { error: { code: string; message: string } }).error.message).toMatch(/last active member/);
    }
    expect((await cluster()).members[0]!.status).toBe('active');
  });

  test('DELETE with a bad force value is a 400', async () => {
    const res = await fetch(`${base}/v1/cluster/members/n1?force=yes`, { method: 'DELETE' });
    expect(res.status).toBe(400);
  });
});
