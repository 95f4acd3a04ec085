// `velo status` and `velo remove-node` through main(): the command line, what
// is printed for a cluster view, and the answers of DELETE
// /v1/cluster/members/:id, against a stub HTTP server that plays the cluster
// (real-cluster runs of these verbs are in test/cluster).
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { until } from '../../scripts/poll.js';
import { main } from '../../src/cli.js';
import type { ClusterView } from '../../src/cli/progress.js';
import { formatStatus } from '../../src/cli/status.js';

let stdout = '';
let stderr = '';

beforeEach(() => {
  stdout = '';
  stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
});

afterEach(() => {
  vi.restoreAllMocks();
});

function clusterView(over: Partial<ClusterView> = {}): ClusterView {
  return {
    node: 'n1',
    metadata: { leader: 'n1', term: 2, voters: ['n1', 'n10'], learners: [] },
    members: [
      { id: 'n1', http: '127.0.0.1:7001', raft: '127.0.0.1:7101', state: 'up', status: 'active', replicas: 3, leaders: 2 },
      { id: 'n2', http: '127.0.0.1:7002', raft: '127.0.0.1:7102', state: 'down', status: 'draining', replicas: 1, leaders: 0 },
      { id: 'n10', http: '127.0.0.1:7010', raft: '127.0.0.1:7110', state: 'up', status: 'active', replicas: 2, leaders: 1 },
    ],
    partitions: [
      { id: 0, replicas: ['n1', 'n10'], leader: 'n1', term: 2, commitIndex: 40, voters: ['n1', 'n10'], learners: [], moving: false },
      { id: 1, replicas: ['n10', 'n1'], leader: 'n10', term: 3, commitIndex: 12, voters: ['n10', 'n2'], learners: ['n1'], moving: true },
      { id: 2, replicas: ['n1', 'n2'], leader: null, term: 1, commitIndex: 7, voters: ['n1', 'n2'], learners: [], moving: false },
    ],
    rebalance: { balanced: false, movesInFlight: 1, movesPending: 1, maxConcurrentMoves: 2, moveBytesPerSecond: 67108864 },
    ...over,
  };
}

/** A stub cluster: every request is recorded and answered by `handler`. */
async function stub(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; requests: string[]; server: Server }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, server };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});
async function cluster(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const s = await stub(handler);
  servers.push(s.server);
  return s;
}

/** A URL where nothing listens: a port that was just bound and released. */
async function deadUrl(): Promise<string> {
  const s = await stub(() => {});
  await new Promise((resolve) => s.server.close(resolve));
  return s.url;
}

describe('velo status / remove-node command line (exit 2)', () => {
  test.each([
    [['remove-node'], 'remove-node needs the ID of the member to remove'],
    [['remove-node', 'n 2'], 'a node ID is 1–64 of A–Z a–z 0–9 . _ -, got "n 2"'],
    [['remove-node', ''], 'a node ID is 1–64'],
    [['remove-node', 'n2', 'n3'], 'unexpected argument "n3"'],
    [['remove-node', 'n2', '--forse'], 'unknown argument "--forse"'],
    [['remove-node', 'n2', '--force=yes'], '--force takes no value'],
    [['remove-node', 'n2', '--cluster'], '--cluster needs a value'],
    [['remove-node', 'n2', '--cluster', 'ftp://h:1'], '--cluster must start with http:// or https://'],
    [['status', 'n1'], 'unexpected argument "n1"'],
    [['status', '--cluster', 'not a url'], '--cluster must be like http://127.0.0.1:7070'],
    [['status', '--json', '--json'], '--json given twice'],
  ])('%j is refused with one line on stderr', async (argv, message) => {
    expect(await main(argv)).toBe(2);
    expect(stderr).toContain(message);
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stdout).toBe('');
  });

  test('--help lists both verbs and the new start flags', async () => {
    expect(await main(['--help'])).toBe(0);
    for (const s of ['velo status', 'velo remove-node ID', '--join URL', '--max-moves N', '--move-bytes-per-sec N', '--replace-after-ms N', '--no-wait', '--force']) {
      expect(stdout).toContain(s);
    }
  });
});

describe('formatStatus', () => {
  test('prints the members table, the partitions line and the rebalance with its bar', () => {
    expect(formatStatus(clusterView())).toBe(
      [
        'cluster as n1 sees it',
        'ID   HTTP            STATE  STATUS    REPLICAS  LEADERS',
        'n1   127.0.0.1:7001  up     active           3        2',
        'n2   127.0.0.1:7002  down   draining         1        0',
        'n10  127.0.0.1:7010  up     active           2        1',
        'partitions: 3, 2 with a leader, 1 moving',
        'metadata: leader n1, voters n1,n10',
        'rebalancing: 1 moving, 1 pending  [##########....................]  33%  1/3 partitions in place',
        '',
      ].join('\n'),
    );
  });

  test('a cluster with nothing to move is balanced', () => {
    const text = formatStatus(clusterView({ rebalance: { balanced: true, movesInFlight: 0, movesPending: 0, maxConcurrentMoves: 2, moveBytesPerSecond: 67108864 } }));
    expect(text.trimEnd().split('\n').at(-1)).toBe('balanced');
  });
});

describe('velo status', () => {
  test('GETs /v1/cluster once and prints the table', async () => {
    const c = await cluster((_req, res) => json(res, 200, clusterView()));
    expect(await main(['status', '--cluster', `${c.url}/`])).toBe(0);
    expect(c.requests).toEqual(['GET /v1/cluster']);
    expect(stdout).toBe(formatStatus(clusterView()));
    expect(stderr).toBe('');
  });

  test('--json prints the answer as it came', async () => {
    const c = await cluster((_req, res) => json(res, 200, clusterView()));
    expect(await main(['status', '--json', '--cluster', c.url])).toBe(0);
    expect(JSON.parse(stdout)).toEqual(clusterView());
  });

  test('an unreachable node is exit 1 with one line saying so', async () => {
    const url = await deadUrl();
    expect(await main(['status', '--cluster', url])).toBe(1);
    expect(stderr).toBe(`velo: cannot reach ${url}: connection refused (is a node running there? see velo start)\n`);
  });

  test('an answer that is not a cluster view is exit 1', async () => {
    const c = await cluster((_req, res) => json(res, 200, { hello: 'world' }));
    expect(await main(['status', '--cluster', c.url])).toBe(1);
    expect(stderr).toBe(`velo: ${c.url}/v1/cluster did not answer a cluster view\n`);
  });

  test('an error answer is exit 1 with its message', async () => {
    const c = await cluster((_req, res) => json(res, 503, { error: { code: 'unavailable', message: 'the cluster metadata has no leader' } }));
    expect(await main(['status', '--cluster', c.url])).toBe(1);
    expect(stderr).toBe('velo: the cluster metadata has no leader\n');
  });
});

describe('velo remove-node', () => {
  const conflict = 'removing n2 would leave 2 members, fewer than the replication factor 3: add a node first, or force it (velo remove-node --force)';

  test('a refusal (409) prints the server message and exits 1', async () => {
    const c = await cluster((_req, res) => json(res, 409, { error: { code: 'conflict', message: conflict } }));
    expect(await main(['remove-node', 'n2', '--cluster', c.url])).toBe(1);
    expect(c.requests).toEqual(['DELETE /v1/cluster/members/n2']);
    expect(stderr).toBe(`velo: ${conflict}\n`);
  });

  test('an unknown member (404) prints the server message and exits 1', async () => {
    const c = await cluster((_req, res) => json(res, 404, { error: { code: 'not_found', message: 'no member n9 in this cluster' } }));
    expect(await main(['remove-node', 'n9', '--cluster', c.url])).toBe(1);
    expect(stderr).toBe('velo: no member n9 in this cluster\n');
  });

  test('--force asks with force=true; --no-wait returns once the drain is accepted', async () => {
    const c = await cluster((_req, res) => json(res, 202, { id: 'n2', status: 'draining' }));
    expect(await main(['remove-node', 'n2', '--force', '--no-wait', '--cluster', c.url])).toBe(0);
    expect(c.requests).toEqual(['DELETE /v1/cluster/members/n2?force=true']);
    expect(stdout).toBe('n2 is draining: its replicas are moving to the other members (velo status shows the progress)\n');
  });

  test('waits until the member is removed, following the rebalance, then says so', async () => {
    let gets = 0;
    const draining = clusterView();
    const removed = clusterView({
      members: draining.members.map((m) => (m.id === 'n2' ? { ...m, status: 'removed' as const, replicas: 0 } : m)),
      rebalance: { balanced: true, movesInFlight: 0, movesPending: 0, maxConcurrentMoves: 2, moveBytesPerSecond: 67108864 },
    });
    const c = await cluster((req, res) => {
      if (req.method === 'DELETE') return json(res, 202, { id: 'n2', status: 'draining' });
      gets++;
      json(res, 200, gets < 3 ? draining : removed);
    });
    expect(await main(['remove-node', 'n2', '--cluster', c.url])).toBe(0);
    expect(c.requests[0]).toBe('DELETE /v1/cluster/members/n2');
    expect(c.requests.slice(1).every((r) => r === 'GET /v1/cluster')).toBe(true);
    expect(stdout).toBe('n2 removed: its replicas moved to the other members; its process can be stopped\n');
    // Not a terminal here: one line per step of progress, on stderr.
    expect(stderr.trimEnd().split('\n').at(-1)).toBe('draining n2 [##############################] 100%  2/2 moves');
  });

  test('asked through the member being removed, it follows the drain on another member', async () => {
    const other = await cluster((_req, res) => json(res, 200, clusterView({ members: clusterView().members.filter((m) => m.id !== 'n2') })));
    const self = await cluster((req, res) => {
      if (req.method === 'DELETE') return json(res, 202, { id: 'n2', status: 'draining' });
      const v = clusterView({ node: 'n2' });
      // n2 never sees its own removal; n1 (down-listed nodes are skipped) is where the drain is followed.
      json(res, 200, { ...v, members: v.members.map((m) => (m.id === 'n1' ? { ...m, http: other.url.slice('http://'.length) } : m)) });
    });
    expect(await main(['remove-node', 'n2', '--cluster', self.url])).toBe(0);
    expect(self.requests).toEqual(['DELETE /v1/cluster/members/n2', 'GET /v1/cluster']);
    expect(other.requests).toEqual(['GET /v1/cluster']);
    expect(stdout).toContain('n2 removed');
  });

  test('Ctrl-C while waiting stops the waiting only: exit 130, saying the drain goes on', async () => {
    const c = await cluster((req, res) => {
      if (req.method === 'DELETE') return json(res, 202, { id: 'n2', status: 'draining' });
      json(res, 200, clusterView());
    });
    const before = new Set(process.listeners('SIGINT'));
    const running = main(['remove-node', 'n2', '--cluster', c.url]);
    // Following the drain: the first GET has been answered (the second is the first poll).
    await until('remove-node to poll', async () => c.requests.length >= 3, 10_000, 10);
    const ours = process.listeners('SIGINT').filter((l) => !before.has(l));
    expect(ours).toHaveLength(1);
    (ours[0] as (sig: NodeJS.Signals) => void)('SIGINT');
    expect(await running).toBe(130);
    expect(stderr.trimEnd().split('\n').at(-1)).toBe('velo: stopped waiting; the cluster keeps draining n2 (velo status shows the progress)');
    expect(stdout).toBe('');
    expect(process.listeners('SIGINT').filter((l) => !before.has(l))).toHaveLength(0);
  });

  test('a member no longer listed counts as removed', async () => {
    const c = await cluster((req, res) => {
      if (req.method === 'DELETE') return json(res, 202, { id: 'n2', status: 'removed' });
      json(res, 200, clusterView({ members: clusterView().members.filter((m) => m.id !== 'n2') }));
    });
    expect(await main(['remove-node', 'n2', '--cluster', c.url])).toBe(0);
    expect(stdout).toContain('n2 removed');
  });
});
