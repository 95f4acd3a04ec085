// Tokens: the secret's shape and hash, finding a presented secret among the
// stored hashes, role order and cache scopes; and the metadata commands that
// hold them (every replica applies the same, a snapshot carries them).
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import { AccessControl } from '../../src/node/access.js';
import { readOrCreateAdminSecret } from '../../src/node/admin-token-file.js';
import { ClusterMeta, applyCommand, encodeMetaCommand, initialMeta } from '../../src/node/cluster-meta.js';
import type { MetaCommand } from '../../src/node/cluster-meta.js';
import { MAX_TOKENS, cacheAllowed, cachePatternProblem, findToken, generateSecret, hashSecret, roleAllows } from '../../src/node/tokens.js';
import type { TokenRecord } from '../../src/node/tokens.js';

const record = (name: string, secret: string, over: Partial<TokenRecord> = {}): TokenRecord => ({ name, role: 'read', caches: null, hash: hashSecret(secret), createdAt: 1, ...over });

describe('secrets', () => {
  test('a new secret carries 256 random bits (43 base64url characters after the prefix) and never repeats', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const s = generateSecret();
      expect(s).toMatch(/^velo_[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(s.slice(5), 'base64url').length).toBe(32);
      seen.add(s);
    }
    expect(seen.size).toBe(200);
  });

  test('the stored hash is the SHA-256 of the secret, and never the secret itself', () => {
    const s = generateSecret();
    expect(hashSecret(s)).toBe(createHash('sha256').update(s).digest('hex'));
    expect(hashSecret(s)).not.toContain(s.slice(5));
  });

  test('findToken finds the record whose hash matches, and nothing for a wrong, empty, short or oversized secret', () => {
    const a = generateSecret();
    const b = generateSecret();
    const records = [record('a', a, { role: 'admin' }), record('b', b, { role: 'write' })];
    expect(findToken(records, a)?.name).toBe('a');
    expect(findToken(records, b)?.name).toBe('b');
    expect(findToken(records, generateSecret())).toBeNull();
    expect(findToken(records, '')).toBeNull();
    expect(findToken(records, a.slice(0, 10))).toBeNull();
    expect(findToken(records, `${a}x`)).toBeNull();
    expect(findToken(records, 'x'.repeat(10_000))).toBeNull();
    expect(findToken([], a)).toBeNull();
  });
});

describe('roles and cache scopes', () => {
  test('admin covers write covers read, and never the other way', () => {
    expect(roleAllows('admin', 'admin') && roleAllows('admin', 'write') && roleAllows('admin', 'read')).toBe(true);
    expect(roleAllows('write', 'write') && roleAllows('write', 'read')).toBe(true);
    expect(roleAllows('write', 'admin')).toBe(false);
    expect(roleAllows('read', 'write')).toBe(false);
    expect(roleAllows('read', 'admin')).toBe(false);
  });

  test('a scope admits exact names and prefixes ending in *, and nothing else', () => {
    expect(cacheAllowed(null, 'anything')).toBe(true);
    const scope = ['sessions', 'app-*'];
    expect(cacheAllowed(scope, 'sessions')).toBe(true);
    expect(cacheAllowed(scope, 'sessions2')).toBe(false);
    expect(cacheAllowed(scope, 'session')).toBe(false);
    expect(cacheAllowed(scope, 'app-')).toBe(true);
    expect(cacheAllowed(scope, 'app-users')).toBe(true);
    expect(cacheAllowed(scope, 'app')).toBe(false);
    expect(cacheAllowed(scope, 'xapp-users')).toBe(false);
    expect(cacheAllowed(['*'], 'whatever')).toBe(true);
    expect(cacheAllowed([], 'default')).toBe(false);
  });

  test('a pattern is refused when empty, too long, or with * anywhere but at its end', () => {
    expect(cachePatternProblem('a*')).toBeNull();
    expect(cachePatternProblem('*')).toBeNull();
    expect(cachePatternProblem('')).toMatch(/empty/);
    expect(cachePatternProblem('a*b')).toMatch(/last character/);
    expect(cachePatternProblem('x'.repeat(252))).toMatch(/longer/);
  });
});

describe('tokens in the cluster metadata', () => {
  const add = (name: string, hash = hashSecret(name + generateSecret())): MetaCommand => ({ type: 'addToken', name, role: 'write', caches: ['a*'], hash, createdAt: 5 });

  test('an added token is stored by hash with its role, caches and creation time; a taken name is a conflict', () => {
    const s = initialMeta(['n1'], 1, 1);
    expect(s.tokensRequired).toBeUndefined();
    const c = add('w1');
    expect(applyCommand(s, c)).toEqual({ code: 'ok', changed: true });
    expect(s.tokens).toEqual([{ name: 'w1', role: 'write', caches: ['a*'], hash: (c as { hash: string }).hash, createdAt: 5 }]);
    expect(s.tokensRequired).toBe(true);
    expect(applyCommand(s, add('w1')).code).toBe('conflict');
    expect(s.tokens).toHaveLength(1);
  });

  test('revoking removes the token; revoking every token still leaves tokens required', () => {
    const s = initialMeta(['n1'], 1, 1);
    applyCommand(s, add('w1'));
    expect(applyCommand(s, { type: 'revokeToken', name: 'w1' })).toEqual({ code: 'ok', changed: true });
    expect(s.tokens).toEqual([]);
    expect(s.tokensRequired).toBe(true);
    expect(applyCommand(s, { type: 'revokeToken', name: 'w1' }).code).toBe('not_found');
  });

  test('the bootstrap admin goes in once: a second proposal (another member, a restart) changes nothing, and a revoked admin stays revoked', () => {
    const s = initialMeta(['n1', 'n2'], 1, 1);
    const first = hashSecret(generateSecret());
    expect(applyCommand(s, { type: 'bootstrapAdmin', hash: first, createdAt: 1 })).toEqual({ code: 'ok', changed: true });
    expect(applyCommand(s, { type: 'bootstrapAdmin', hash: hashSecret(generateSecret()), createdAt: 2 })).toEqual({ code: 'ok', changed: false });
    expect(s.tokens).toEqual([{ name: 'admin', role: 'admin', caches: null, hash: first, createdAt: 1 }]);
    applyCommand(s, { type: 'revokeToken', name: 'admin' });
    expect(applyCommand(s, { type: 'bootstrapAdmin', hash: first, createdAt: 3 })).toEqual({ code: 'ok', changed: false });
    expect(s.tokens).toEqual([]);
  });

  test(`at most ${MAX_TOKENS} tokens are kept`, () => {
    const s = initialMeta(['n1'], 1, 1);
    for (let i = 0; i < MAX_TOKENS; i++) expect(applyCommand(s, add(`t${i}`, hashSecret(`s${i}`))).code).toBe('ok');
    expect(applyCommand(s, add('one-more')).code).toBe('conflict');
  });

  test('a snapshot carries the tokens: a replica restored from it verifies the same secrets', () => {
    const a = new ClusterMeta(initialMeta(['n1'], 2, 1));
    const secret = generateSecret();
    a.apply(1, encodeMetaCommand({ type: 'bootstrapAdmin', hash: hashSecret(secret), createdAt: 7 }));
    const b = new ClusterMeta(null);
    b.restore(a.snapshot(), 1);
    expect(b.state).toEqual(a.state);
    const access = new AccessControl({ meta: b, log: pino({ level: 'silent' }), adminSecret: null, command: async () => ({}) });
    expect(access.mode()).toEqual({ mode: 'enforced' });
    expect(access.authenticate(secret)).toEqual({ name: 'admin', role: 'admin', caches: null });
    expect(access.authenticate(generateSecret())).toBeNull();
  });
});

describe('access mode', () => {
  const control = (meta: ClusterMeta, adminSecret: string | null) => new AccessControl({ meta, log: pino({ level: 'silent' }), adminSecret, command: async () => ({}) });

  test('open without an admin file or tokens; pending with a file until the metadata holds the token; then enforced', () => {
    const meta = new ClusterMeta(initialMeta(['n1'], 1, 1));
    expect(control(meta, null).mode()).toEqual({ mode: 'open' });
    const secret = generateSecret();
    expect(control(meta, secret).mode().mode).toBe('pending');
    expect(control(new ClusterMeta(null), secret).mode().mode).toBe('pending');
    meta.apply(1, encodeMetaCommand({ type: 'bootstrapAdmin', hash: hashSecret(secret), createdAt: 1 }));
    expect(control(meta, secret).mode()).toEqual({ mode: 'enforced' });
    // A node without the file enforces too, once its metadata holds tokens (a joining node).
    expect(control(meta, null).mode()).toEqual({ mode: 'enforced' });
  });

  test('the bootstrap is proposed while the metadata lacks it, at most once per second, and no more once applied', async () => {
    const meta = new ClusterMeta(initialMeta(['n1'], 1, 1));
    const proposed: MetaCommand[] = [];
    const secret = generateSecret();
    const access = new AccessControl({ meta, log: pino({ level: 'silent' }), adminSecret: secret, command: async (c) => void proposed.push(c) });
    access.tick(10_000);
    await Promise.resolve();
    await Promise.resolve();
    access.tick(10_500);
    expect(proposed).toEqual([{ type: 'bootstrapAdmin', hash: hashSecret(secret), createdAt: 10_000 }]);
    meta.apply(1, encodeMetaCommand(proposed[0]!));
    access.tick(20_000);
    expect(proposed).toHaveLength(1);
  });
});

describe('--admin-token-file', () => {
  test('a missing file is created 0600 with a new secret; an existing one is read as it is', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'velo-admin-'));
    const file = join(dir, 'admin.token');
    const made = await readOrCreateAdminSecret(file);
    expect(made.created).toBe(true);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await readFile(file, 'utf8')).trim()).toBe(made.secret);
    expect(await readOrCreateAdminSecret(file)).toEqual({ secret: made.secret, created: false });
  });

  test('members started at once with the same path end up with one secret', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'velo-admin-'));
    const file = join(dir, 'admin.token');
    const all = await Promise.all([1, 2, 3, 4].map(() => readOrCreateAdminSecret(file)));
    expect(new Set(all.map((a) => a.secret)).size).toBe(1);
    expect(all.filter((a) => a.created)).toHaveLength(1);
  });

  test('a file that holds no usable secret is refused with its path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'velo-admin-'));
    const file = join(dir, 'bad');
    await writeFile(file, 'short\n');
    await expect(readOrCreateAdminSecret(file)).rejects.toThrow(/bad does not hold a token/);
  });
});
