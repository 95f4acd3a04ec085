// What a node holds, read over its own HTTP API. `content`: every cache
// with its settings, every item of every partition (the admin export:
// value, type, expiry, tags), the members and the tokens. `full`: that and
// each partition's applied index and digest (the admin digest route), which
// also cover versions and locks. A request refused at the edge leaves `full`
// as it was; one the state machine refuses (a failed condition, a lock held,
// no such item) is decided in the log, so it moves the applied index but
// leaves `content` as it was.
import { decodePartitionExport } from '../../src/cache/index.js';

export interface NodeState {
  content: string;
  full: string;
}

export async function nodeState(base: string, partitions: number): Promise<NodeState> {
  const get = async (path: string) => {
    const r = await fetch(`${base}${path}`);
    if (r.status !== 200) throw new Error(`GET ${path} answered ${r.status}: ${await r.text()}`);
    return r;
  };
  const json = async (path: string) => (await get(path)).json() as Promise<unknown>;
  const caches = await json('/v1/caches');
  const digests: string[] = [];
  const items: unknown[] = [];
  for (let p = 0; p < partitions; p++) {
    const d = (await json(`/v1/admin/partitions/${p}/digest`)) as { applied: number; digest: string };
    digests.push(`${p}@${d.applied}:${d.digest}`);
    const e = decodePartitionExport(new Uint8Array(await (await get(`/v1/admin/partitions/${p}/export`)).arrayBuffer()));
    items.push({ caches: e.caches, items: e.items.map((i) => ({ ...i, value: Buffer.from(i.value).toString('base64') })) });
  }
  const cluster = (await json('/v1/cluster')) as { members: { id: string; http: string; raft: string; state: string }[] };
  const tokens = await json('/v1/admin/tokens');
  const content = JSON.stringify({ caches, items, members: cluster.members.map((m) => [m.id, m.http, m.raft]), tokens });
  return { content, full: JSON.stringify({ content, digests }) };
}

/** The contract's error body (API.md Conventions), or why a body is not one. */
export function contractErrorProblem(body: string): string | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return `not JSON: ${JSON.stringify(body.slice(0, 120))}`;
  }
  const e = (parsed as { error?: { code?: unknown; message?: unknown } }).error;
  if (typeof parsed !== 'object' || parsed === null || Object.keys(parsed).length !== 1 || typeof e !== 'object' || e === null) return `not {"error":{…}}: ${body.slice(0, 120)}`;
  if (Object.keys(e).sort().join() !== 'code,message') return `error has fields ${Object.keys(e).join(',')}`;
  if (typeof e.code !== 'string' || !/^[a-z][a-z0-9]*(_[a-z0-9]+)*$/.test(e.code)) return `code is not snake_case: ${JSON.stringify(e.code)}`;
  if (typeof e.message !== 'string' || e.message.length === 0) return 'message is not a non-empty string';
  if (INTERNAL.test(e.message)) return `message names internals: ${JSON.stringify(e.message)}`;
  return null;
}

/** What a client must never read: error class names, Fastify's codes, stack frames. */
const INTERNAL = /\b(Fastify\w*Error|VeloError|CommandError|TypeError|RangeError|SyntaxError|ReferenceError|FST_\w+|ERR_\w+)\b|\n\s+at |\.[jt]s:\d+/;
