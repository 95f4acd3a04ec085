// The velo command: one line when it serves, a clear message and a non-zero exit on a bad flag or a port in use.
import { spawnSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { freePort } from './process-cluster.js';

const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 20_000 });

describe('velo start', () => {
  test.each([
    [['start', '--bogus', 'x'], /unknown argument "--bogus"/],
    [['start', '--partitions', 'many'], /--partitions must be an integer/],
    [['start', '--http', 'nowhere'], /--http: "nowhere" is not host:port/],
    [['start', '--peers', 'n2=127.0.0.1:1'], /--peers must include this node/],
    [['start', '--id', 'a@b'], /--id must be/],
    [['frobnicate'], /unknown command "frobnicate"/],
  ])('%j is refused with a clear message and exit code 2', (args, message) => {
    const r = run(...(args as string[]));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message as RegExp);
  });

  test('a port in use: exit code 1 and a message naming the address', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = run('start', '--http', `127.0.0.1:${port}`, '--raft', `127.0.0.1:${await freePort()}`);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/address in use|EADDRINUSE/);
    } finally {
      blocker.close();
    }
  });

  test('a node prints exactly one line when it serves', async () => {
    const http = `127.0.0.1:${await freePort()}`;
    const proc = spawn(process.execPath, [MAIN, 'start', '--http', http, '--raft', `127.0.0.1:${await freePort()}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      proc.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('\n')) resolve();
      });
      proc.once('exit', () => reject(new Error('exited')));
    });
    const health = await fetch(`http://${http}/healthz`);
    proc.kill('SIGKILL');
    expect(out.trim().split('\n')).toHaveLength(1);
    expect(out).toMatch(/serving http:\/\//);
    expect(health.status).toBe(200);
  });
});
