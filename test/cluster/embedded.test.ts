// Embedded mode across real processes: two applications with a Velo node
// inside them (scripts/examples/embedded-app.ts, n1 also serving the HTTP
// API, n2 not) and one stand-alone `velo start` node (n3), started with the
// same --peers, form one 3-node cluster. Each app's notes are read by the
// other app and by both HTTP APIs, and after kill -9 of one app the other
// app and the stand-alone node go on serving reads and writes.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort } from '../../scripts/ports.js';
import { until } from '../../scripts/poll.js';
import type { ClusterView as FullView } from '../../src/node/service.js';
import { beforeFault, quorumLostWithout, settle } from './preconditions.js';

const APP = fileURLToPath(new URL('../../dist/scripts/examples/embedded-app.js', import.meta.url));
const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));

interface Proc {
  proc: ChildProcess;
  output: string[];
}
const procs = new Map<string, Proc>();

/** Starts a process and resolves once its stdout says it is ready; rejects, with its output, if it exits first. */
function launch(name: string, file: string, args: string[], ready: RegExp): Promise<void> {
  const proc = spawn(process.execPath, [file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const p: Proc = { proc, output: [] };
  procs.set(name, p);
  return new Promise((resolve, reject) => {
    proc.stdout!.on('data', (chunk: Buffer) => {
      p.output.push(chunk.toString());
      if (ready.test(p.output.join(''))) resolve();
    });
    proc.stderr!.on('data', (chunk: Buffer) => p.output.push(chunk.toString()));
    proc.once('exit', (code, signal) => reject(new Error(`${name} exited (${code ?? signal}) before it was ready:\n${p.output.join('')}`)));
  });
}

/** kill -9: no goodbye, memory lost. */
async function kill(name: string): Promise<void> {
  const p = procs.get(name);
  if (!p || p.proc.exitCode !== null || p.proc.signalCode !== null) return;
  const exited = new Promise((resolve) => p.proc.once('exit', resolve));
  p.proc.kill('SIGKILL');
  await exited;
}

const at = { app1: '', app2: '', http1: '', http3: '' };

beforeAll(async () => {
  const port = async () => `127.0.0.1:${await freePort()}`;
  const [raft1, raft2, raft3] = [await port(), await port(), await port()];
  at.http1 = await port();
  at.http3 = await port();
  const appPort1 = await freePort();
  const appPort2 = await freePort();
  at.app1 = `127.0.0.1:${appPort1}`;
  at.app2 = `127.0.0.1:${appPort2}`;
  const peers = `n1=${raft1},n2=${raft2},n3=${raft3}`;
  const common = ['--peers', peers, '--partitions', '8'];
  // Started together: each member serves once every peer has answered.
  await Promise.all([
    launch('app1', APP, ['--id', 'n1', '--raft', raft1, '--http', at.http1, '--app-port', String(appPort1), ...common], /app n1 listening on http:\/\//),
    // A node request deadline shorter than an election: across n1's kill, app2 keeps serving by its client's retries.
    launch('app2', APP, ['--id', 'n2', '--raft', raft2, '--app-port', String(appPort2), '--request-timeout-ms', '500', ...common], /app n2 listening on http:\/\//),
    launch('n3', MAIN, ['start', '--id', 'n3', '--raft', raft3, '--http', at.http3, '--log-level', 'warn', ...common], /velo n3 serving http:\/\//),
  ]);
  await until('every partition has a leader', async () => (await fetch(`http://${at.http3}/readyz`)).status === 200, 60_000);
}, 90_000);

afterAll(async () => {
  await Promise.all([...procs.keys()].map(kill));
});

const putNote = (app: string, key: string, text: string) => fetch(`http://${app}/notes/${key}`, { method: 'PUT', body: text });
const getNote = (app: string, key: string) => fetch(`http://${app}/notes/${key}`);
const apiGet = (http: string, key: string) => fetch(`http://${http}/v1/caches/default/items/${key}`);

interface ClusterView {
  members: { id: string; http: string; state: string }[];
  partitions: { replicas: string[]; leader: string | null }[];
}

describe('two apps with embedded nodes and a stand-alone node', () => {
  test('form one 3-node cluster in which the embedded nodes are full members', async () => {
    // n3 being ready says each partition has a leader, not that n3 is connected to both others yet: waited for.
    const clusterOn3 = async () => (await (await fetch(`http://${at.http3}/v1/cluster`)).json()) as ClusterView;
    await settle('n3 seeing every member up', async () => {
      const v = await clusterOn3();
      return v.members.length === 3 && v.members.every((m) => m.state === 'up') ? null : `members ${JSON.stringify(v.members)}`;
    }, 30_000);
    const view = await clusterOn3();
    expect(view.members.map((m) => [m.id, m.state])).toEqual([
      ['n1', 'up'],
      ['n2', 'up'],
      ['n3', 'up'],
    ]);
    // Only n1's app serves the Velo API: n2's members know no HTTP address for it.
    expect(view.members.map((m) => m.http)).toEqual([at.http1, '', at.http3]);
    expect(view.partitions).toHaveLength(8);
    for (const p of view.partitions) expect([...p.replicas].sort()).toEqual(['n1', 'n2', 'n3']);
    // Leadership spreads to each partition's preferred replica: the embedded nodes lead partitions too.
    await until(
      'leaders on every node',
      async () => {
        const v = (await (await fetch(`http://${at.http3}/v1/cluster`)).json()) as ClusterView;
        const leaders = new Set(v.partitions.map((p) => p.leader));
        return ['n1', 'n2', 'n3'].every((n) => leaders.has(n));
      },
      30_000,
    );
  }, 60_000);

  test('each app writes notes through its embedded node and reads the other’s', async () => {
    for (let i = 0; i < 12; i++) {
      const r = await putNote(i % 2 === 0 ? at.app1 : at.app2, `note-${i}`, `text ${i} from app${(i % 2) + 1}`);
      expect(r.status, await r.clone().text()).toBe(201);
    }
    for (let i = 0; i < 12; i++) {
      for (const app of [at.app1, at.app2]) {
        const r = await getNote(app, `note-${i}`);
        expect(r.status).toBe(200);
        expect(await r.text()).toBe(`text ${i} from app${(i % 2) + 1}`);
      }
    }
    expect((await getNote(at.app2, 'never-written')).status).toBe(404);
  }, 60_000);

  test('the stand-alone node’s HTTP API and app n1’s embedded one read the notes, and the apps read what it writes', async () => {
    for (let i = 0; i < 12; i++) {
      for (const http of [at.http3, at.http1]) {
        const r = await apiGet(http, `note-${i}`);
        expect(r.status).toBe(200);
        expect(r.headers.get('content-type')).toBe('application/json');
        expect(await r.json()).toBe(`text ${i} from app${(i % 2) + 1}`);
      }
    }
    const w = await fetch(`http://${at.http3}/v1/caches/default/items/from-n3`, { method: 'PUT', body: JSON.stringify('written on n3'), headers: { 'content-type': 'application/json' } });
    expect(w.status).toBe(201);
    for (const app of [at.app1, at.app2]) expect(await (await getNote(app, 'from-n3')).text()).toBe('written on n3');
  }, 60_000);

  test('after kill -9 of app n1, app n2 and the stand-alone node still serve reads and writes', async () => {
    // Checked, not assumed: every raft group keeps a live quorum on n2 and n3 without n1.
    await beforeFault('every group keeping a live quorum without n1', async () => {
      const r = await fetch(`http://${at.http3}/v1/cluster`, { signal: AbortSignal.timeout(3000) });
      return quorumLostWithout((await r.json()) as FullView, 'n1');
    }, 30_000);
    await kill('app1');
    // Through the app at once: its embedded client retries through the elections of the partitions n1 led.
    for (let i = 0; i < 12; i++) {
      const r = await getNote(at.app2, `note-${i}`);
      expect(r.status, await r.clone().text()).toBe(200);
      expect(await r.text()).toBe(`text ${i} from app${(i % 2) + 1}`);
    }
    for (let i = 12; i < 24; i++) {
      const r = await putNote(at.app2, `note-${i}`, `text ${i} after the kill`);
      expect(r.status, await r.clone().text()).toBe(201);
    }
    // A raw HTTP request is not retried: ask n3 once every partition has its new leader.
    await until(
      'a leader other than n1 for every partition',
      async () => {
        const v = (await (await fetch(`http://${at.http3}/v1/cluster`)).json()) as ClusterView;
        return v.partitions.every((p) => p.leader !== null && p.leader !== 'n1');
      },
      30_000,
    );
    for (let i = 0; i < 24; i++) {
      const r = await apiGet(at.http3, `note-${i}`);
      expect(r.status).toBe(200);
      expect(await r.json()).toBe(i < 12 ? `text ${i} from app${(i % 2) + 1}` : `text ${i} after the kill`);
    }
    const w = await fetch(`http://${at.http3}/v1/caches/default/items/after-kill`, { method: 'PUT', body: JSON.stringify('n3 still writes'), headers: { 'content-type': 'application/json' } });
    expect(w.status).toBe(201);
    expect(await (await getNote(at.app2, 'after-kill')).text()).toBe('n3 still writes');
  }, 90_000);
});
