// The velo command as a user runs it: real processes, real ports, real signals.
// `velo start` prints one line when it serves; `velo demo` runs a local
// cluster; a bad flag or a port in use is one line on stderr and a non-zero exit.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';
import type { Server } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { freePort } from './process-cluster.js';
import { fetchTrusting } from '../../src/https/trust.js';

const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));

/** A velo process, its output as it arrives, and its exit. */
class Velo {
  readonly proc: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(args: string[]) {
    this.proc = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (c: Buffer) => (this.stdout += c.toString()));
    this.proc.stderr!.on('data', (c: Buffer) => (this.stderr += c.toString()));
    this.exited = new Promise((resolve) => this.proc.once('close', (code) => resolve(code)));
  }

  /** Resolves once stdout shows `text`; fails if the process exits first. */
  async waitFor(text: string): Promise<void> {
    let gone = false;
    void this.exited.then(() => (gone = true));
    await until(`"${text}" on stdout`, async () => {
      if (this.stdout.includes(text)) return true;
      if (gone) throw new Error(`exited before printing "${text}":\n${this.stdout}${this.stderr}`);
      return false;
    });
  }
}

/** Runs velo to completion. */
async function velo(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const v = new Velo(args);
  const status = await v.exited;
  return { status, stdout: v.stdout, stderr: v.stderr };
}

/** Polls `check` until it holds (bounded): the condition is the synchronisation point. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function listen(port: number): Promise<Server | null> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(null));
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

/** True when nothing accepts connections on 127.0.0.1:port. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('error', () => resolve(true));
  });
}

/** A base port P where P..P+n-1 and P+100..P+100+n-1 are free, below the kernel's ephemeral range (where freePort draws). */
async function freeBase(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 10_000 + Math.floor(Math.random() * 20_000);
    const ports = Array.from({ length: n }, (_, i) => [base + i, base + 100 + i]).flat();
    const servers = await Promise.all(ports.map(listen));
    await Promise.all(servers.map((s) => s && new Promise((r) => s.close(r))));
    if (servers.every((s) => s !== null)) return base;
  }
  throw new Error('no free base port');
}

function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l !== '');
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

describe('velo --help', () => {
  test.each([[['--help']], [['help']], [['start', '--help']], [['put', '-h']]])('%j prints the usage on stdout, exit 0', async (args) => {
    const r = await velo(...args);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    for (const verb of ['start', 'demo', 'put', 'get', 'del']) expect(r.stdout).toContain(`velo ${verb}`);
    expect(r.stdout).toContain('--log-level');
  });
});

describe('bad command lines: one line on stderr, exit 2', () => {
  test.each([
    [[], /missing command/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['start', '--bogus', 'x'], /unknown argument "--bogus"/],
    [['start', 'extra'], /unexpected argument "extra"/],
    [['start', '--partitions', 'many'], /--partitions must be an integer from 1 to 4096, got "many"/],
    [['start', '--replicas', '0'], /--replicas must be an integer from 1 to 9, got "0"/],
    [['start', '--http', 'nowhere'], /--http: "nowhere" is not host:port/],
    [['start', '--raft', '127.0.0.1:99999'], /--raft: port 99999/],
    [['start', '--peers', 'n2=127.0.0.1:1'], /--peers must include this node \(n1\)/],
    [['start', '--peers', 'n1'], /--peers entries are ID=HOST:PORT/],
    [['start', '--id', 'a@b'], /--id must be/],
    [['start', '--id'], /--id needs a value/],
    [['start', '--id', 'a', '--id', 'b'], /--id given twice/],
    [['start', '--log-level', 'loud'], /--log-level must be one of fatal\|error\|warn\|info\|debug\|trace\|silent, got "loud"/],
    [['start', '--data-dir', ' '], /--data-dir must name a directory/],
    [['start', '--join', 'nowhere'], /--join must be the HTTP URL of a running member/],
    [['start', '--join', 'ftp://127.0.0.1:7001'], /--join must be an http:\/\/ URL/],
    [['start', '--join', 'http://127.0.0.1:7001', '--peers', 'n1=127.0.0.1:1'], /--join cannot be combined with --peers/],
    [['start', '--join', 'http://127.0.0.1:7001', '--partitions', '8'], /--join cannot be combined with --partitions/],
    [['start', '--max-moves', '0'], /--max-moves must be an integer from 1 to 64/],
    [['start', '--move-bytes-per-sec', '1000'], /--move-bytes-per-sec must be an integer from 65536/],
    [['start', '--replace-after-ms', '-1'], /--replace-after-ms must be an integer from 0/],
    [['start', '--on-removed', 'maybe'], /--on-removed is exit or wait, got "maybe"/],
    [['start', '--max-memory', 'lots'], /--max-memory must be a byte count like 1073741824, 512mb or 2gb, got "lots"/],
    [['start', '--max-memory', '1kb'], /--max-memory must be from 1 MiB/],
    [['demo', '--nodes', '0'], /--nodes must be an integer from 1 to 9, got "0"/],
    [['demo', '--nodes', '10'], /--nodes must be an integer from 1 to 9/],
    [['demo', '--base-port', 'high'], /--base-port must be an integer/],
    [['demo', '--base-port', '65500'], /--base-port must be an integer from 1 to 65427/],
    [['demo', '--log-level', 'chatty'], /--log-level must be one of/],
    [['demo', '--dir', '/tmp/x'], /--dir is where --secure keeps its certificates and token: give --secure too/],
    [['put'], /put needs a KEY/],
    [['put', 'k', 'v', 'extra'], /unexpected argument "extra"/],
    [['put', 'k', 'v', '--ttl-ms', '-5'], /--ttl-ms must be a positive integer, got "-5"/],
    [['get', 'k', '--local=yes'], /--local takes no value/],
    [['get', 'k', '--url', 'ftp://host'], /--url must start with http:\/\/ or https:\/\//],
    [['get', 'k', '--url', 'nohost'], /--url must be like http:\/\/127.0.0.1:7070/],
    [['get', 'k', '--consistency', 'local'], /unknown argument "--consistency"/],
    [['del'], /del needs a KEY/],
    [['del', 'k', '--cache'], /--cache needs a value/],
    [['del', 'k', '--region', ''], /--region must not be empty/],
  ])('%j', async (args, message) => {
    const r = await velo(...(args as string[]));
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(oneLine(r.stderr)).toMatch(message as RegExp);
    expect(r.stderr).toMatch(/^velo: .*\(see velo --help\)\n$/);
  });
});

describe('velo start', () => {
  test.each(['--http', '--raft'])('a port in use for %s: exit 1 and one line naming the address', async (flag) => {
    const blocker = (await listen(await freePort()))!;
    const busy = `127.0.0.1:${(blocker.address() as { port: number }).port}`;
    try {
      const other = `127.0.0.1:${await freePort()}`;
      const r = await velo('start', '--http', flag === '--http' ? busy : other, '--raft', flag === '--raft' ? busy : other);
      expect(r.status).toBe(1);
      expect(oneLine(r.stderr)).toBe(`velo: ${busy} is already in use (${flag})`);
    } finally {
      blocker.close();
    }
  });

  test('serves with one line on stdout, JSON logs on stderr, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const node = new Velo(['start', '--http', `127.0.0.1:${port}`, '--raft', `127.0.0.1:${await freePort()}`]);
    await node.waitFor('serving http://');
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    await until('a log line on stderr', async () => node.stderr.includes('\n'));
    const log = JSON.parse(node.stderr.split('\n')[0]!) as { level: number; node: string };
    expect(log.node).toBe('n1');
    node.proc.kill('SIGTERM');
    expect(await node.exited).toBe(0);
    expect(node.stdout).toMatch(/^velo n1 serving http:\/\/127\.0\.0\.1:\d+ .*\n$/);
    // The memory cap in force, default or not, is in the start line.
    expect(node.stdout).toMatch(/, max memory [0-9.]+ (MiB|GiB|TiB)\)\n$/);
    expect(await refused(port)).toBe(true);
  });

  test('--log-level silent: nothing on stderr', async () => {
    const port = await freePort();
    const node = new Velo(['start', '--log-level', 'silent', '--http', `127.0.0.1:${port}`, '--raft', `127.0.0.1:${await freePort()}`]);
    await node.waitFor('serving http://');
    // A read needs its partition's leader: waited for (serving is not ready), not assumed.
    await until('the node ready', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200);
    expect((await fetch(`http://127.0.0.1:${port}/v1/caches/default/items/nothing`)).status).toBe(404);
    node.proc.kill('SIGINT');
    expect(await node.exited).toBe(0);
    expect(node.stderr).toBe('');
    expect(node.stdout.split('\n').filter(Boolean)).toHaveLength(1);
  });
});

describe('velo demo', () => {
  /** Starts a demo on free ports and waits for its summary; returns it with the ports and the children's pids. */
  async function startDemo(n: number) {
    const base = await freeBase(n);
    const demo = new Velo(['demo', '--nodes', String(n), '--base-port', String(base)]);
    await demo.waitFor('Ctrl-C');
    const pids = [...demo.stdout.matchAll(/^ {2}n(\d) {2}http:\/\/127\.0\.0\.1:(\d+) {2}raft 127\.0\.0\.1:(\d+) {2}pid (\d+)$/gm)].map((m) => {
      expect(Number(m[2])).toBe(base + Number(m[1]) - 1);
      expect(Number(m[3])).toBe(base + 100 + Number(m[1]) - 1);
      return Number(m[4]);
    });
    expect(pids).toHaveLength(n);
    const ports = Array.from({ length: n }, (_, i) => [base + i, base + 100 + i]).flat();
    return { demo, base, pids, ports };
  }

  test('three nodes come up, each ready, and SIGTERM stops every child', async () => {
    const { demo, base, ports } = await startDemo(3);
    try {
      // Each was ready when the demo printed. Right after, leadership is spread
      // over the nodes, and a transfer leaves a node without a known leader
      // for a moment (/readyz 503): so each is asked until it answers ready.
      for (let i = 0; i < 3; i++) await until(`n${i + 1} ready`, async () => (await fetch(`http://127.0.0.1:${base + i}/readyz`)).status === 200, 10_000);
      expect(demo.stdout).toContain(`--data-binary hello http://127.0.0.1:${base}/v1/caches/default/items/greeting`);
      // Written through one node, read through another.
      expect((await fetch(`http://127.0.0.1:${base}/v1/caches/default/items/g`, { method: 'PUT', body: 'hi' })).status).toBe(201);
      expect(await (await fetch(`http://127.0.0.1:${base + 2}/v1/caches/default/items/g`)).text()).toBe('hi');
      demo.proc.kill('SIGTERM');
      expect(await demo.exited).toBe(0);
      for (const port of ports) expect(await refused(port)).toBe(true);
    } finally {
      demo.proc.kill('SIGKILL');
    }
  });

  test('--secure: three nodes over HTTPS with mutual TLS between them and tokens; it prints where the CA and the admin token are, and its own example works', async () => {
    const base = await freeBase(3);
    const dir = join(mkdtempSync(join(tmpdir(), 'velo-demo-test-')), 'secure');
    const demo = new Velo(['demo', '--secure', '--dir', dir, '--base-port', String(base)]);
    try {
      await demo.waitFor('Ctrl-C');
      expect(demo.stdout).toContain(`the admin token is in ${dir}/admin.token; the CA that signed the nodes is ${dir}/ca.crt`);
      expect(demo.stdout).toMatch(new RegExp(`n1 {2}https://127\\.0\\.0\\.1:${base} {2}raft`));
      expect(statSync(join(dir, 'admin.token')).mode & 0o777).toBe(0o600);
      const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
      const tls = fetchTrusting(readFileSync(join(dir, 'ca.crt'), 'utf8'));
      const auth = { authorization: `Bearer ${token}` };
      // Written through one node, read through another, as the printed example does.
      expect((await tls(`https://127.0.0.1:${base}/v1/caches/default/items/g`, { method: 'PUT', body: 'hi', headers: { ...auth, 'content-type': 'text/plain' } })).status).toBe(201);
      expect(await (await tls(`https://127.0.0.1:${base + 2}/v1/caches/default/items/g`, { headers: auth })).text()).toBe('hi');
      expect((await tls(`https://127.0.0.1:${base + 1}/v1/caches/default/items/g`)).status, 'no token: refused').toBe(401);
      await expect(fetch(`https://127.0.0.1:${base}/readyz`), 'a client that does not trust the CA').rejects.toThrow();
      const cli = await velo('get', 'g', '--url', `https://127.0.0.1:${base + 1}`, '--ca', join(dir, 'ca.crt'), '--token-file', join(dir, 'admin.token'));
      expect({ status: cli.status, out: cli.stdout.trim() }).toEqual({ status: 0, out: 'hi' });
      demo.proc.kill('SIGTERM');
      expect(await demo.exited).toBe(0);
    } finally {
      demo.proc.kill('SIGKILL');
      rmSync(join(dir, '..'), { recursive: true, force: true });
    }
  });

  test('a child that dies is named, the others are stopped, exit 1', async () => {
    const { demo, pids, ports } = await startDemo(2);
    try {
      process.kill(pids[1]!, 'SIGKILL');
      expect(await demo.exited).toBe(1);
      expect(oneLine(demo.stderr)).toBe('velo: n2 killed by SIGKILL; stopped the others');
      for (const port of ports) expect(await refused(port)).toBe(true);
    } finally {
      demo.proc.kill('SIGKILL');
    }
  });

  test('a port in use: exit 1 and one line naming it, nothing started', async () => {
    const base = await freeBase(2);
    const blocker = (await listen(base + 101))!;
    try {
      const r = await velo('demo', '--nodes', '2', '--base-port', String(base));
      expect(r.status).toBe(1);
      expect(oneLine(r.stderr)).toBe(`velo: 127.0.0.1:${base + 101} is already in use (n2 raft); choose another --base-port`);
      expect(r.stdout).toBe('');
      for (const port of [base, base + 1, base + 100]) expect(await refused(port)).toBe(true);
    } finally {
      blocker.close();
    }
  });
});
