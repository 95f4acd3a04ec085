// What a node holds, read over its own HTTP API: every cache with its
// settings, every partition's applied index and content digest (the admin
// digest route), and the members. Two equal readings mean nothing changed
// in between (a read changes none of them).

export async function nodeState(base: string, partitions: number): Promise<string> {
  const json = async (path: string) => {
    const r = await fetch(`${base}${path}`);
    if (r.status !== 200) throw new Error(`GET ${path} answered ${r.status}: ${await r.text()}`);
    return r.json() as Promise<unknown>;
  };
  const caches = await json('/v1/caches');
  const digests = [];
  for (let p = 0; p < partitions; p++) {
    const d = (await json(`/v1/admin/partitions/${p}/digest`)) as { applied: number; digest: string };
    digests.push(`${p}@${d.applied}:${d.digest}`);
  }
  const cluster = (await json('/v1/cluster')) as { members: { id: string; http: string; raft: string; state: string }[] };
  return JSON.stringify({ caches, digests, members: cluster.members.map((m) => [m.id, m.http, m.raft]) });
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
