// velo put / get / del against a real node: bytes in, the same bytes out;
// every failure is one line on stderr and exit 1.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort } from './process-cluster.js';
import { untilNoComplaint } from '../../scripts/poll.js';

const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));

interface Run {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs velo to completion with `input` on its stdin. */
function velo(args: string[], input: Uint8Array | string = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [MAIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => out.push(c));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.once('error', reject);
    p.stdin.on('error', () => {}); // a verb that does not read stdin closes it
    p.once('close', (status) => resolve({ status, stdout: Buffer.concat(out), stderr }));
    p.stdin.end(input);
  });
}

function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l !== '');
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

let node: ChildProcess;
let url: string;

beforeAll(async () => {
  url = `http://127.0.0.1:${await freePort()}`;
  node = spawn(process.execPath, [MAIN, 'start', '--log-level', 'warn', '--http', url.slice('http://'.length), '--raft', `127.0.0.1:${await freePort()}`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    node.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('serving http://')) resolve();
    });
    node.once('exit', (code) => reject(new Error(`node exited (${code}) before serving`)));
  });
  // Serving is not ready: the first put must not depend on the node electing its partitions' leaders in time.
  await untilNoComplaint(async () => {
    const r = await fetch(`${url}/readyz`);
    return r.status === 200 ? null : `/readyz ${r.status} ${await r.text()}`;
  }, 30_000, (last) => new Error(`the node was not ready within 30 s; last seen: ${last}`));
}, 60_000);

afterAll(() => {
  node?.kill('SIGKILL');
});

describe('velo put / get / del', () => {
  test('binary-safe round trip through stdin: every byte value, 0x00 and 0xff included', async () => {
    const bytes = Buffer.from([0x00, 0xff, ...Array.from({ length: 256 }, (_, i) => i), 0x0a, 0x00, 0xff]);
    const put = await velo(['put', 'bin', '--url', url], bytes);
    expect(put.stderr).toBe('');
    expect(put.status).toBe(0);
    expect(put.stdout.toString()).toMatch(/^created key "bin" in cache "default", version \S+\n$/);
    const get = await velo(['get', 'bin', '--url', url]);
    expect(get.status).toBe(0);
    expect(get.stderr).toBe('');
    expect(get.stdout.equals(bytes)).toBe(true);
    // `-` reads stdin too, and a second put replaces.
    const again = await velo(['put', 'bin', '-', '--url', url], Buffer.from([0xff, 0x00]));
    expect(again.stdout.toString()).toMatch(/^replaced key "bin"/);
    expect((await velo(['get', 'bin', '--url', url])).stdout.equals(Buffer.from([0xff, 0x00]))).toBe(true);
    const res = await fetch(`${url}/v1/caches/default/items/bin`);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
  });

  test('value argument, cache, region, TTL and content type, with names percent-encoded', async () => {
    const created = await fetch(`${url}/v1/caches/${encodeURIComponent('my cache')}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(created.status).toBe(201);
    const [cache, region, key] = ['my cache', 'a/b?c#d', 'ключ %2F'];
    const put = await velo(['put', key, 'héllo', '--cache', cache, '--region', region, '--ttl-ms', '600000', '--content-type', 'text/plain; charset=utf-8', '--url', `${url}/`]);
    expect(put.stderr).toBe('');
    expect(put.status).toBe(0);
    const res = await fetch(`${url}/v1/caches/my%20cache/regions/a%2Fb%3Fc%23d/items/${encodeURIComponent(key)}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(Number(res.headers.get('x-velo-expires-at'))).toBeGreaterThan(Date.now());
    expect(await res.text()).toBe('héllo');
    for (const extra of [[], ['--local']]) {
      const get = await velo(['get', key, '--cache', cache, '--region', region, '--url', url, ...extra]);
      expect(get.status).toBe(0);
      expect(get.stdout.toString()).toBe('héllo');
    }
    const del = await velo(['del', key, '--cache', cache, '--region', region, '--url', url]);
    expect(del.status).toBe(0);
    expect(del.stdout.toString()).toBe(`deleted key "${key}" in region "${region}" of cache "${cache}"\n`);
    expect((await fetch(`${url}/v1/caches/my%20cache/regions/a%2Fb%3Fc%23d/items/${encodeURIComponent(key)}`)).status).toBe(404);
  });

  test('get and del of a missing key: exit 1, one line, nothing on stdout', async () => {
    expect((await velo(['put', 'gone', 'x', '--url', url])).status).toBe(0);
    expect((await velo(['del', 'gone', '--url', url])).status).toBe(0);
    for (const verb of ['get', 'del']) {
      const r = await velo([verb, 'gone', '--url', url]);
      expect(r.status).toBe(1);
      expect(r.stdout.length).toBe(0);
      expect(oneLine(r.stderr)).toBe('velo: not found: key "gone" in cache "default"');
    }
  });

  test("an error answer: the API's code and message on one line, exit 1", async () => {
    const r = await velo(['put', 'k', 'v', '--cache', 'no-such-cache', '--url', url]);
    expect(r.status).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/^velo: cache_not_found: .*no-such-cache.* \(HTTP 404\)$/);
    const big = await velo(['put', 'k', '--url', url], Buffer.alloc((1 << 20) + 1));
    expect(big.status).toBe(1);
    expect(oneLine(big.stderr)).toMatch(/^velo: value_too_large: .*\(HTTP 413\)$/);
  });

  test('no node there: one clear line, exit 1', async () => {
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    for (const args of [['get', 'k'], ['put', 'k', 'v'], ['del', 'k']]) {
      const r = await velo([...args, '--url', nowhere]);
      expect(r.status).toBe(1);
      expect(oneLine(r.stderr)).toBe(`velo: cannot reach ${nowhere}: connection refused (is a node running there? see velo start)`);
    }
  });
});
