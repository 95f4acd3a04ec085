// Protected mode on real processes: a node that would listen or be
// advertised off loopback without credentials refuses to start with exit 2
// and one line saying what to add, and listens on nothing; --insecure starts
// it with a warning at every start; 0.0.0.0 needs an advertised address,
// which is what /v1/cluster then reports. The same rules hold for startNode.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, describe, expect, test } from 'vitest';
import { startNode } from '../../src/embedded.js';
import { UsageError } from '../../src/cli/args.js';
import { freePort } from './process-cluster.js';
import { startServing, velo } from '../support/velo-cli.js';
import type { Serving } from '../support/velo-cli.js';
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from '../../scripts/poll.js';

/** TEST-NET-1 (RFC 5737): an address off loopback that no machine here has. */
const REMOTE = '192.0.2.1';

const running: Serving[] = [];
afterAll(async () => {
  await Promise.all(running.map((s) => s.stop()));
});

function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

describe('velo start refuses, exit 2 and one line, where it would be open to others', () => {
  const cases: [string, (http: number, raft: number) => string[], RegExp][] = [
    ['HTTP on 0.0.0.0 without --advertise-http', (h, r) => ['--http', `0.0.0.0:${h}`, '--raft', `127.0.0.1:${r}`], /^velo: --http 0\.0\.0\.0:\d+ listens on every address: add --advertise-http HOST:PORT/],
    ['raft on 0.0.0.0 without --advertise-raft', (h, r) => ['--http', `127.0.0.1:${h}`, '--raft', `0.0.0.0:${r}`], /^velo: --raft 0\.0\.0\.0:\d+ listens on every address: add --advertise-raft HOST:PORT/],
    ['HTTP on :: without --advertise-http', (h, r) => ['--http', `[::]:${h}`, '--raft', `127.0.0.1:${r}`], /^velo: --http \[::\]:\d+ listens on every address: add --advertise-http/],
    ['0.0.0.0 advertised', (h, r) => ['--http', `0.0.0.0:${h}`, '--advertise-http', `0.0.0.0:${h}`, '--raft', `127.0.0.1:${r}`], /^velo: --advertise-http 0\.0\.0\.0:\d+: never advertise an address that means "every address"/],
    ['HTTP off loopback without tokens', (h, r) => ['--http', `0.0.0.0:${h}`, '--advertise-http', `${REMOTE}:${h}`, '--raft', `127.0.0.1:${r}`], /^velo: --http 0\.0\.0\.0:\d+ is not a loopback address: add --admin-token-file FILE so that every request needs a token/],
    ['HTTP advertised off loopback without tokens', (h, r) => ['--http', `127.0.0.1:${h}`, '--advertise-http', `${REMOTE}:${h}`, '--raft', `127.0.0.1:${r}`], /^velo: --advertise-http 192\.0\.2\.1:\d+ is not a loopback address: add --admin-token-file FILE/],
    ['raft off loopback without peer TLS', (h, r) => ['--http', `127.0.0.1:${h}`, '--raft', `0.0.0.0:${r}`, '--advertise-raft', `${REMOTE}:${r}`], /^velo: --raft 0\.0\.0\.0:\d+ is not a loopback address: add --peer-ca FILE --peer-cert FILE --peer-key FILE/],
  ];
  for (const [what, args, line] of cases) {
    test(what, async () => {
      const [http, raft] = [await freePort(), await freePort()];
      const run = await velo(['start', '--log-level', 'silent', ...args(http, raft)], {}, 15_000);
      expect(run.status).toBe(2);
      const lines = run.stderr.split('\n').filter((l) => l !== '');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(line);
      expect(run.stdout).toBe('');
      // It listened on neither port.
      expect(await canListen('0.0.0.0', http)).toBe(true);
      expect(await canListen('0.0.0.0', raft)).toBe(true);
    });
  }
});

describe('velo start with the credentials protected mode asks for', () => {
  test('--admin-token-file lets HTTP listen off loopback; --peer-ca/--peer-cert/--peer-key let raft; each is checked on its own', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'velo-protected-'));
    try {
      const certs = await velo(['certs', '--out', dir, '--nodes', 'n1']);
      expect(certs.status).toBe(0);
      const peer = ['--peer-ca', join(dir, 'ca.crt'), '--peer-cert', join(dir, 'n1.crt'), '--peer-key', join(dir, 'n1.key')];
      const tokens = ['--admin-token-file', join(dir, 'admin.token')];
      const [http, raft] = [await freePort(), await freePort()];
      const exposed = ['--http', `0.0.0.0:${http}`, '--advertise-http', `127.0.0.1:${http}`, '--raft', `0.0.0.0:${raft}`, '--advertise-raft', `127.0.0.1:${raft}`, '--log-level', 'warn'];
      // Each credential alone leaves the other port open: refused, naming the one still missing.
      const onlyTokens = await velo(['start', ...exposed, ...tokens], {}, 15_000);
      expect([onlyTokens.status, onlyTokens.stderr.trim()]).toEqual([2, expect.stringMatching(/^velo: --raft 0\.0\.0\.0:\d+ is not a loopback address: add --peer-ca FILE/)]);
      const onlyPeers = await velo(['start', ...exposed, ...peer], {}, 15_000);
      expect([onlyPeers.status, onlyPeers.stderr.trim()]).toEqual([2, expect.stringMatching(/^velo: --http 0\.0\.0\.0:\d+ is not a loopback address: add --admin-token-file FILE/)]);
      const node = await startServing([...exposed, ...tokens, ...peer]);
      running.push(node);
      expect(node.output.join('')).not.toContain('--insecure');
      // Served, with tokens demanded (503 until the node's metadata holds them).
      const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
      await until('the admin token accepted', async () => (await fetch(`http://127.0.0.1:${http}/v1/cluster`, { headers: { authorization: `Bearer ${token}` } })).status === 200, 30_000);
      expect((await fetch(`http://127.0.0.1:${http}/v1/cluster`)).status).toBe(401);
      await node.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('velo start --insecure', () => {
  test('starts on 0.0.0.0, warns at every start, and /v1/cluster reports the advertised addresses, never 0.0.0.0', async () => {
    const [http, raft] = [await freePort(), await freePort()];
    const args = ['--http', `0.0.0.0:${http}`, '--advertise-http', `127.0.0.1:${http}`, '--raft', `0.0.0.0:${raft}`, '--advertise-raft', `127.0.0.1:${raft}`, '--insecure', '--log-level', 'warn'];
    for (let start = 1; start <= 2; start++) {
      const node = await startServing(args);
      running.push(node);
      // The logs go to stderr, which may arrive after the serving line on stdout.
      const warned = (text: string) => node.output.join('').split('\n').some((l) => l.includes('"level":40') && l.includes(text));
      await until(`start ${start}: both warnings`, async () => warned('--insecure: the HTTP API (--http 0.0.0.0:') && warned('--insecure: the raft port (--raft 0.0.0.0:'), 10_000);
      expect(warned('needs no token')).toBe(true);
      expect(warned('accepts any peer')).toBe(true);
      const view = (await (await fetch(`http://127.0.0.1:${http}/v1/cluster`)).json()) as { members: { http: string; raft: string }[] };
      expect(view.members.map((m) => [m.http, m.raft])).toEqual([[`127.0.0.1:${http}`, `127.0.0.1:${raft}`]]);
      await node.stop();
    }
  }, 60_000);

  test('on loopback it still warns that protected mode is off', async () => {
    const node = await startServing(['--http', `127.0.0.1:${await freePort()}`, '--raft', `127.0.0.1:${await freePort()}`, '--insecure', '--log-level', 'warn']);
    running.push(node);
    await until('the warning', async () => node.output.join('').includes('--insecure: protected mode is off, but nothing is exposed'), 10_000);
    await node.stop();
  }, 30_000);
});

describe('startNode (embedded) keeps the same rules', () => {
  test('raft on 0.0.0.0 without an advertised address is a UsageError, and off loopback without peer TLS too', async () => {
    const port = await freePort();
    await expect(startNode({ raft: `0.0.0.0:${port}` })).rejects.toThrow(/--raft 0\.0\.0\.0:\d+ listens on every address: add --advertise-raft/);
    const refused = await startNode({ raft: `0.0.0.0:${port}`, advertiseRaft: `${REMOTE}:${port}` }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(UsageError);
    expect((refused as Error).message).toMatch(/is not a loopback address: add --peer-ca FILE --peer-cert FILE --peer-key FILE/);
    expect(await canListen('0.0.0.0', port)).toBe(true);
    await expect(startNode({ http: `0.0.0.0:${await freePort()}`, raft: `127.0.0.1:${await freePort()}` })).rejects.toThrow(/add --advertise-http/);
    await expect(startNode({ raft: `127.0.0.1:${await freePort()}`, insecure: 'yes' as unknown as boolean })).rejects.toThrow(/insecure \(--insecure\) must be a boolean/);
  });

  test('insecure: true starts it and logs the warning', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (c: Buffer, _e, done) => (lines.push(c.toString()), done()) });
    const port = await freePort();
    const node = await startNode({ raft: `0.0.0.0:${port}`, advertiseRaft: `127.0.0.1:${port}`, insecure: true, logger: pino({ level: 'warn' }, sink), partitions: 1, replicas: 1 });
    try {
      expect(lines.join('')).toContain('--insecure: the raft port (--raft 0.0.0.0:');
      expect(node.raftAddress).toBe(`0.0.0.0:${port}`);
    } finally {
      await node.close();
    }
  }, 30_000);
});
