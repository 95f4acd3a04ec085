// `velo status` and `velo remove-node`: the membership, placement and
// rebalance that GET /v1/cluster reports, and draining a member through
// DELETE /v1/cluster/members/:id, followed in the foreground.

import { CliError, UsageError, clusterFlag, parseArgs } from './args.js';
import { followRebalance, movesRemaining, renderBar } from './progress.js';
import { fetchOf } from './trust.js';
import { originOf } from '../client/http-backend.js';
import { untrustedMessage } from '../https/index.js';
import type { Fetch } from '../https/index.js';
import type { ClusterView } from './progress.js';
import { TOKEN_FLAG, authHeader, tokenOf } from './credentials.js';

const TIMEOUT_MS = 30_000;
/** As `velo start --id` accepts. */
const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/;

interface Answer {
  status: number;
  text: string;
}

async function request(fetchFn: Fetch, base: string, method: string, path: string, token: string | null): Promise<Answer> {
  let res: Response;
  try {
    res = await fetchFn(`${base}${path}`, { method, headers: authHeader(token), signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (e) {
    const err = e as Error & { cause?: { code?: string; message?: string } };
    if (err.name === 'TimeoutError') throw new CliError(`no answer from ${base} within ${TIMEOUT_MS / 1000} s`);
    const why = untrustedMessage(e) ?? (err.cause?.code === 'ECONNREFUSED' ? 'connection refused (is a node running there? see velo start)' : (err.cause?.code ?? err.cause?.message ?? err.message));
    throw new CliError(`cannot reach ${base}: ${why}`);
  }
  return { status: res.status, text: await res.text() };
}

/** The API's error message (`{"error":{"code","message"}}`), or the status line when the answer is not one. */
function failure(base: string, a: Answer): CliError {
  let error: { code?: unknown; message?: unknown } | undefined;
  try {
    error = (JSON.parse(a.text) as { error?: typeof error }).error;
  } catch {
    // not the API's JSON error
  }
  if (typeof error?.message !== 'string') return new CliError(`HTTP ${a.status} from ${base}`);
  return new CliError(error.message.replace(/\s+/g, ' '));
}

function parseView(base: string, a: Answer): ClusterView {
  try {
    const view = JSON.parse(a.text) as ClusterView;
    if (Array.isArray(view.members) && Array.isArray(view.partitions) && typeof view.rebalance === 'object' && view.rebalance !== null) return view;
  } catch {
    // reported below
  }
  throw new CliError(`${base}/v1/cluster did not answer a cluster view`);
}

function table(rows: string[][], rightAligned: ReadonlySet<number>): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (rightAligned.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd()).join('\n');
}

/** What `velo status` prints: members, partitions, rebalance. */
export function formatStatus(view: ClusterView): string {
  const rows = [
    ['ID', 'HTTP', 'STATE', 'STATUS', 'REPLICAS', 'LEADERS'],
    ...view.members.map((m) => [m.id, m.http || '-', m.state, m.status, String(m.replicas), String(m.leaders)]),
  ];
  const p = view.partitions.length;
  const led = view.partitions.filter((x) => x.leader !== null).length;
  const moving = view.partitions.filter((x) => x.moving).length;
  const { movesInFlight, movesPending } = view.rebalance;
  const remaining = movesRemaining(view);
  // Partitions neither moving nor waiting to move already sit where the balanced placement puts them.
  const rebalance = remaining === 0 ? 'balanced' : `rebalancing: ${movesInFlight} moving, ${movesPending} pending  ${renderBar(p - remaining, p, 30, 'partitions in place')}`;
  const m = view.metadata;
  const metadata = m === null ? 'metadata: not received yet' : `metadata: leader ${m.leader ?? 'unknown'}, voters ${m.voters.join(',')}${m.learners.length > 0 ? `, learners ${m.learners.join(',')}` : ''}`;
  return `${[`cluster as ${view.node} sees it`, table(rows, new Set([4, 5])), `partitions: ${p}, ${led} with a leader, ${moving} moving`, metadata, rebalance].join('\n')}\n`;
}

export async function status(argv: string[]): Promise<number> {
  const { flags } = parseArgs(argv, { cluster: 'value', json: 'switch', ca: 'value', ...TOKEN_FLAG }, 0);
  const base = clusterFlag(flags);
  const a = await request(fetchOf(flags), base, 'GET', '/v1/cluster', tokenOf(flags));
  if (a.status < 200 || a.status > 299) throw failure(base, a);
  const view = parseView(base, a);
  process.stdout.write(flags.has('json') ? `${a.text.trimEnd()}\n` : formatStatus(view));
  return 0;
}

/** The member to follow a drain on: the node being removed leaves the cluster and would stop seeing it. */
async function followBase(fetchFn: Fetch, base: string, id: string, token: string | null): Promise<string> {
  try {
    const a = await request(fetchFn, base, 'GET', '/v1/cluster', token);
    const view = parseView(base, a);
    if (view.node !== id) return base;
    const other = view.members.find((m) => m.id !== id && m.status !== 'removed' && m.status !== 'draining' && m.state === 'up' && m.http);
    // A member's http is host:port over plain HTTP, an https:// URL over TLS.
    return other ? originOf(other.http) : base;
  } catch {
    return base; // followRebalance waits for it
  }
}

/** Ctrl-C or SIGTERM stops the waiting (not the drain, which the cluster runs). */
function abortOnSignal(): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => ac.abort(new Error(`interrupted by ${sig}`));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return { signal: ac.signal, dispose: () => (process.off('SIGINT', onSignal), process.off('SIGTERM', onSignal)) };
}

export async function removeNode(argv: string[]): Promise<number> {
  const { flags, args } = parseArgs(argv, { cluster: 'value', force: 'switch', 'no-wait': 'switch', ca: 'value', ...TOKEN_FLAG }, 1);
  const id = args[0];
  if (id === undefined) throw new UsageError('remove-node needs the ID of the member to remove');
  if (!NODE_ID.test(id)) throw new UsageError(`a node ID is 1–64 of A–Z a–z 0–9 . _ -, got "${id}"`);
  const base = clusterFlag(flags);
  const token = tokenOf(flags);
  const fetchFn = fetchOf(flags);
  const a = await request(fetchFn, base, 'DELETE', `/v1/cluster/members/${encodeURIComponent(id)}${flags.has('force') ? '?force=true' : ''}`, token);
  if (a.status < 200 || a.status > 299) throw failure(base, a);
  if (flags.has('no-wait')) {
    process.stdout.write(`${id} is draining: its replicas are moving to the other members (velo status shows the progress)\n`);
    return 0;
  }
  const abort = abortOnSignal();
  try {
    await followRebalance(await followBase(fetchFn, base, id, token), {
      token,
      fetch: fetchFn,
      out: process.stderr,
      tty: process.stderr.isTTY === true,
      label: `draining ${id}`,
      signal: abort.signal,
      until: (view) => {
        const m = view.members.find((x) => x.id === id);
        return m === undefined || m.status === 'removed';
      },
    });
  } catch (e) {
    if (!abort.signal.aborted) throw e;
    throw new CliError(`stopped waiting; the cluster keeps draining ${id} (velo status shows the progress)`, 130);
  } finally {
    abort.dispose();
  }
  process.stdout.write(`${id} removed: its replicas moved to the other members; its process can be stopped\n`);
  return 0;
}
