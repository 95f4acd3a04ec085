// The client side of tokens against a served node that demands them:
// `velo token create|list|revoke`, --token-file and VELO_TOKEN on the verbs
// (put/get/del, status, backup, restore), and VeloClient's `token` option.
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test, vi } from 'vitest';
import { main } from '../../src/cli.js';
import { ForbiddenError, UnauthenticatedError, VeloClient } from '../../src/client/index.js';
import { serveNode } from '../support/served-node.js';
import type { Served } from '../support/served-node.js';

let s: Served;
let dir: string;
let adminFile: string;
let stdout = '';
let stderr = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'velo-tokens-cli-'));
  adminFile = join(dir, 'admin.token');
  s = await serveNode({ maxValueBytes: 1 << 20, adminTokenFile: adminFile });
  const admin = (await readFile(adminFile, 'utf8')).trim();
  for (let i = 0; i < 500 && (await fetch(`${s.base}/v1/caches`, { headers: { authorization: `Bearer ${admin}` } })).status !== 200; i++) await new Promise((r) => setTimeout(r, 10));
});

afterAll(async () => {
  await s?.close();
});

beforeEach(() => {
  stdout = '';
  stderr = '';
  // `velo get` waits for its write's callback.
  vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: string | Uint8Array, a?: unknown, b?: unknown) => {
    stdout += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    (typeof a === 'function' ? a : typeof b === 'function' ? b : () => {})();
    return true;
  }) as typeof process.stdout.write);
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
});

afterEach(() => {
  vi.restoreAllMocks();
  delete process.env.VELO_TOKEN;
});

async function velo(...argv: string[]): Promise<number> {
  stdout = '';
  stderr = '';
  return main(argv);
}

describe('velo token', () => {
  test('create prints the secret once, list shows it without the secret, revoke ends it', async () => {
    expect(await velo('token', 'create', 'app-writer', '--role', 'write', '--caches', 'app-*,default', '--cluster', s.base, '--token-file', adminFile)).toBe(0);
    const secret = stdout.trim();
    expect(secret).toMatch(/^velo_[A-Za-z0-9_-]{43}$/);
    expect(await velo('token', 'list', '--cluster', s.base, '--token-file', adminFile)).toBe(0);
    expect(stdout).toMatch(/^NAME +ROLE +CACHES +CREATED\n/);
    expect(stdout).toMatch(/\napp-writer +write +app-\*,default +\d{4}-/);
    expect(stdout).toMatch(/\nadmin +admin +\* +\d{4}-/);
    expect(stdout).not.toContain(secret);
    process.env.VELO_TOKEN = secret;
    expect(await velo('put', 'k', 'v', '--url', s.base)).toBe(0);
    expect(await velo('token', 'revoke', 'app-writer', '--cluster', s.base, '--token-file', adminFile)).toBe(0);
    expect(await velo('put', 'k', 'v', '--url', s.base)).toBe(1);
    expect(stderr).toMatch(/unauthenticated/);
  });

  test('--out writes the secret to a new file, 0600', async () => {
    const out = join(dir, 'reader.token');
    expect(await velo('token', 'create', 'reader-out', '--role', 'read', '--out', out, '--cluster', s.base, '--token-file', adminFile)).toBe(0);
    expect(stdout).toMatch(/written to/);
    expect((await stat(out)).mode & 0o777).toBe(0o600);
    expect(await velo('get', 'nothing-here', '--url', s.base, '--token-file', out)).toBe(1);
    expect(stderr).toMatch(/not found/);
  });

  test('without an admin token every token verb fails with one line that says what to give', async () => {
    expect(await velo('token', 'list', '--cluster', s.base)).toBe(1);
    expect(stderr).toMatch(/^velo: unauthenticated: .*--token-file FILE or VELO_TOKEN\)\n$/);
    expect(await velo('token', 'create', 'x', '--role', 'owner', '--cluster', s.base, '--token-file', adminFile)).toBe(2);
    expect(await velo('token', 'frobnicate')).toBe(2);
  });
});

describe('--token-file and VELO_TOKEN on the verbs', () => {
  test('put, get and del carry the token; without one they fail with unauthenticated', async () => {
    expect(await velo('put', 'cli-k', 'hello', '--url', s.base)).toBe(1);
    expect(stderr).toMatch(/unauthenticated/);
    expect(await velo('put', 'cli-k', 'hello', '--url', s.base, '--token-file', adminFile)).toBe(0);
    process.env.VELO_TOKEN = (await readFile(adminFile, 'utf8')).trim();
    expect(await velo('get', 'cli-k', '--url', s.base)).toBe(0);
    expect(stdout).toBe('hello');
    expect(await velo('del', 'cli-k', '--url', s.base)).toBe(0);
  });

  test('a missing or malformed token file is a bad command line (exit 2)', async () => {
    expect(await velo('get', 'k', '--url', s.base, '--token-file', join(dir, 'no-such-file'))).toBe(2);
    expect(stderr).toMatch(/--token-file .*ENOENT/);
    process.env.VELO_TOKEN = 'has spaces in it, not a token';
    expect(await velo('get', 'k', '--url', s.base)).toBe(2);
  });

  test('status, backup and restore carry it too; a read token cannot back up', async () => {
    expect(await velo('status', '--cluster', s.base)).toBe(1);
    expect(await velo('status', '--cluster', s.base, '--token-file', adminFile)).toBe(0);
    expect(stdout).toMatch(/cluster as n1 sees it/);
    expect(await velo('put', 'backed-up', 'yes', '--url', s.base, '--token-file', adminFile)).toBe(0);
    const file = join(dir, 'b.velo');
    expect(await velo('backup', '--to', file, '--cluster', s.base)).toBe(1);
    expect(await velo('token', 'create', 'bk-reader', '--role', 'read', '--out', join(dir, 'bk-reader'), '--cluster', s.base, '--token-file', adminFile)).toBe(0);
    expect(await velo('backup', '--to', file, '--cluster', s.base, '--token-file', join(dir, 'bk-reader'))).toBe(1);
    expect(stderr).toMatch(/forbidden/);
    expect(await velo('backup', '--to', file, '--cluster', s.base, '--token-file', adminFile)).toBe(0);
    expect(await velo('del', 'backed-up', '--url', s.base, '--token-file', adminFile)).toBe(0);
    expect(await velo('restore', '--from', file, '--overwrite', '--cluster', s.base)).toBe(1);
    expect(await velo('restore', '--from', file, '--overwrite', '--cluster', s.base, '--token-file', adminFile)).toBe(0);
    expect(await velo('get', 'backed-up', '--url', s.base, '--token-file', adminFile)).toBe(0);
    expect(stdout).toBe('yes');
  });
});

describe('VeloClient', () => {
  test('the token option is sent with every request; without it, or outside its caches, the typed errors say why', async () => {
    const admin = (await readFile(adminFile, 'utf8')).trim();
    const ok = new VeloClient({ nodes: [s.base], token: admin, timeoutMs: 5000 });
    const none = new VeloClient({ nodes: [s.base], timeoutMs: 5000 });
    const made = await fetch(`${s.base}/v1/admin/tokens`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'client-app', role: 'write', caches: ['app-*'] }) });
    const scoped = new VeloClient({ nodes: [s.base], token: ((await made.json()) as { token: string }).token, timeoutMs: 5000 });
    try {
      await ok.cache('default').put('client-k', { n: 1 });
      expect(await ok.cache('default').get('client-k')).toEqual({ n: 1 });
      await expect(none.cache('default').get('client-k')).rejects.toBeInstanceOf(UnauthenticatedError);
      await expect(scoped.cache('default').get('client-k')).rejects.toBeInstanceOf(ForbiddenError);
    } finally {
      await Promise.all([ok.close(), none.close(), scoped.close()]);
    }
    expect(() => new VeloClient({ nodes: [s.base], token: 'bad token\r\nx: y' })).toThrow(/printable/);
  });
});
