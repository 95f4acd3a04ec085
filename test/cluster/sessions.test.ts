// The session examples as real processes on one 3-node Velo cluster of real
// processes: for Express and for Fastify, two instances without locking
// (sessions shared through the cluster, expiring with their cookie, and
// two overlapping writes losing one) and two with --locking (the same
// overlap keeps both). The overlap is made certain by the delays: the
// first append reads, then pauses 1500 ms; the second, sent at once to the
// other instance, reads and writes within its 500 ms pause.
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

/** Appends a, pausing 1500 ms between its read and its write, through `first`, and b, pausing 500 ms, through `second`, at the same time. */
async function overlappingAppends(first: Browser, second: Browser): Promise<void> {
  const [a, b] = await Promise.all([first.request('POST', '/session/append?item=a&delayMs=1500'), second.request('POST', '/session/append?item=b&delayMs=500')]);
  expect(a.status).toBe(200);
  expect(b.status).toBe(200);
}

describe.each(['express', 'fastify'] as const)('the %s session example, two instances on a 3-node cluster', (name) => {
  let plain: [App, App];
  let locking: [App, App];

  beforeAll(async () => {
    plain = [await startExample(name, ['--max-age-ms', '3000']), await startExample(name, ['--max-age-ms', '3000'])];
    locking = [await startExample(name, ['--locking']), await startExample(name, ['--locking'])];
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
    const one = new Browser(plain[0].base);
    await one.request('POST', '/session/append?item=first');
    await overlappingAppends(one, one.on(plain[1].base));
    // b read [first] and wrote [first, b]; then a, which had read [first] before b wrote, wrote [first, a] over it.
    expect((await one.request('GET', '/session')).body!.items).toEqual(['first', 'a']);
  }, 30_000);

  test('with --locking on both instances, the same overlapping appends both land', async () => {
    const one = new Browser(locking[0].base);
    await one.request('POST', '/session/append?item=first');
    await overlappingAppends(one, one.on(locking[1].base));
    const items = (await one.request('GET', '/session')).body!.items!;
    expect(items).toHaveLength(3);
    expect(items[0]).toBe('first');
    expect([...items].sort()).toEqual(['a', 'b', 'first']);
  }, 30_000);
});
