// The session examples as real processes on one 3-node Velo cluster of real
// processes: for Express and for Fastify, two instances without locking
// (sessions shared through the cluster, expiring with their cookie, and
// two overlapping writes losing one) and two with --locking (the same
// overlap keeps both). The overlap is made certain by construction, not by
// timing: the apps run with --gates, so the first append reads its session
// and then waits at a gate until the test opens it; the test sends the
// second only once the first is there, and opens the gate only once it has
// seen the second overlap it (written its own list, or been refused the
// lock the first holds).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Browser } from '../session/browser.js';
import { freePort, ProcessCluster } from './process-cluster.js';

let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await ProcessCluster.start(['n1', 'n2', 'n3'], ['--partitions', '4']);
  await cluster.allReady();
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

interface App {
  base: string;
  proc: ChildProcess;
  output: string[];
}

const running: App[] = [];

async function startExample(name: 'express' | 'fastify', args: string[]): Promise<App> {
  const script = fileURLToPath(new URL(`../../dist/scripts/examples/${name}-sessions.js`, import.meta.url));
  const port = await freePort();
  const velo = [...cluster.nodes.values()].map((n) => n.http).join(',');
  const proc = spawn(process.execPath, [script, '--port', String(port), '--velo', velo, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const app: App = { base: `http://127.0.0.1:${port}`, proc, output: [] };
  running.push(app);
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (c: Buffer) => {
      app.output.push(c.toString());
      if (app.output.join('').includes(`listening on http://127.0.0.1:${port}`)) resolve();
    });
    proc.stderr!.on('data', (c: Buffer) => app.output.push(c.toString()));
    proc.once('exit', (code, signal) => reject(new Error(`${name} example exited (${code ?? signal}) before listening:\n${app.output.join('')}`)));
  });
  return app;
}

async function stopExamples(): Promise<void> {
  await Promise.all(
    running.splice(0).map((app) => {
      if (app.proc.exitCode !== null || app.proc.signalCode !== null) return undefined;
      const exited = new Promise((r) => app.proc.once('exit', r));
      app.proc.kill('SIGKILL');
      return exited;
    }),
  );
}

async function sessionItem(id: string): Promise<number> {
  return (await fetch(cluster.url('n2', `/v1/caches/sessions/items/${encodeURIComponent(id)}`))).status;
}

/** A gate of an example app (--gates): whether a request reached it (it has read its session), and whether it was opened. */
async function gate(app: App, name: string): Promise<{ arrived: boolean; open: boolean }> {
  return (await (await fetch(`${app.base}/gates/${name}`)).json()) as { arrived: boolean; open: boolean };
}

async function openGate(app: App, name: string): Promise<void> {
  expect((await fetch(`${app.base}/gates/${name}/open`, { method: 'POST' })).status).toBe(204);
}

/** Lock attempts that the nodes refused because another handle held the item (423), summed over every node's /metrics. */
async function refusedLocks(): Promise<number> {
  let refused = 0;
  for (const id of cluster.nodes.keys()) {
    for (const line of (await (await fetch(cluster.url(id, '/metrics'))).text()).split('\n')) {
      if (line.startsWith('velo_http_requests_total{') && line.includes('route="/v1/caches/:cache/items/:key/lock"') && line.includes('status="423"')) {
        refused += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
    }
  }
  return refused;
}

describe.each(['express', 'fastify'] as const)('the %s session example, two instances on a 3-node cluster', (name) => {
  let plain: [App, App];
  let locking: [App, App];

  beforeAll(async () => {
    plain = [await startExample(name, ['--max-age-ms', '3000', '--gates']), await startExample(name, ['--max-age-ms', '3000', '--gates'])];
    locking = [await startExample(name, ['--locking', '--gates']), await startExample(name, ['--locking', '--gates'])];
  }, 60_000);

  afterAll(async () => {
    await stopExamples();
  });

  test('a session created through one instance is seen through the other, with the same cookie', async () => {
    const one = new Browser(plain[0].base);
    const created = await one.request('POST', '/session/append?item=x');
    expect(created).toMatchObject({ status: 200, body: { items: ['x'] } });
    const two = one.on(plain[1].base);
    expect(await two.request('GET', '/session')).toMatchObject({ status: 200, body: { id: created.body!.id, items: ['x'] } });
    expect(await two.request('POST', '/session/append?item=y')).toMatchObject({ body: { items: ['x', 'y'] } });
    expect(await one.request('GET', '/session')).toMatchObject({ body: { id: created.body!.id, items: ['x', 'y'] } });
  }, 30_000);

  test('a session expires with its cookie: its Velo item is gone after max-age, and the old cookie gets a fresh session', async () => {
    const one = new Browser(plain[0].base);
    const id = (await one.request('POST', '/session/append?item=x')).body!.id!;
    expect(await sessionItem(id)).toBe(200);
    await cluster.until('the session item expired', async () => (await sessionItem(id)) === 404, 20_000);
    const after = await one.on(plain[1].base).request('GET', '/session');
    expect(after.status).toBe(200);
    expect(after.body!.items).toEqual([]);
    expect(after.body!.id).not.toBe(id);
  }, 30_000);

  test('without locking, two overlapping appends through the two instances lose one', async () => {
    const [first, second] = plain;
    const one = new Browser(first.base);
    await one.request('POST', '/session/append?item=first');
    // a reads [first] through the first instance, then waits at its gate.
    const a = one.request('POST', '/session/append?item=a&gate=a');
    a.catch(() => {}); // awaited below; if the test fails first, the apps are killed under it
    await cluster.until('a read the session and waits at its gate', async () => (await gate(first, 'a')).arrived, 10_000);
    // The overlap: b, through the other instance, reads [first] and writes [first, b] while a still waits.
    expect(await one.on(second.base).request('POST', '/session/append?item=b')).toMatchObject({ status: 200, body: { items: ['first', 'b'] } });
    expect(await gate(first, 'a')).toEqual({ arrived: true, open: false });
    await openGate(first, 'a');
    // a writes what it read plus a, over b's write: b is lost.
    expect(await a).toMatchObject({ status: 200, body: { items: ['first', 'a'] } });
    expect((await one.request('GET', '/session')).body!.items).toEqual(['first', 'a']);
  }, 30_000);

  test('with --locking on both instances, the same overlapping appends both land', async () => {
    const [first, second] = locking;
    const one = new Browser(first.base);
    await one.request('POST', '/session/append?item=first');
    // a reads [first] through the first instance under the session's lock, then waits at its gate, holding it.
    const a = one.request('POST', '/session/append?item=a&gate=a');
    a.catch(() => {}); // awaited below; if the test fails first, the apps are killed under it
    await cluster.until('a read the session under its lock and waits at its gate', async () => (await gate(first, 'a')).arrived, 10_000);
    // The overlap: b, through the other instance, asks for the lock while a holds it, is refused, and waits.
    const refusedBefore = await refusedLocks();
    let bAnswered = false;
    const b = one.on(second.base).request('POST', '/session/append?item=b&gate=b').finally(() => (bAnswered = true));
    b.catch(() => {});
    await cluster.until('b was refused the lock a holds', async () => (await refusedLocks()) > refusedBefore, 10_000);
    expect(await gate(second, 'b')).toEqual({ arrived: false, open: false }); // b has not read the session
    expect(bAnswered).toBe(false);
    await openGate(first, 'a');
    expect(await a).toMatchObject({ status: 200, body: { items: ['first', 'a'] } });
    // a's write released the lock; only then does b read the session, with a in it.
    await cluster.until('b read the session after a wrote it', async () => (await gate(second, 'b')).arrived, 10_000);
    await openGate(second, 'b');
    expect(await b).toMatchObject({ status: 200, body: { items: ['first', 'a', 'b'] } });
    expect((await one.request('GET', '/session')).body!.items).toEqual(['first', 'a', 'b']);
  }, 30_000);
});
