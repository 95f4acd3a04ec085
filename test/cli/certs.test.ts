// `velo certs` and the peer TLS flags of `velo start`, as a user runs them:
// real processes, real files.

import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));
const velo = (...args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 30_000 });

// Made at load: the tables below name files in it.
const dir = mkdtempSync(join(tmpdir(), 'velo-certs-'));
beforeAll(() => {
  execFileSync(process.execPath, [MAIN, 'certs', '--out', join(dir, 'c'), '--nodes', 'n1,n2', '--hosts', '127.0.0.1,10.0.0.7,cache.example', '--clients', 'app'], { stdio: 'pipe' });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const path = (name: string) => join(dir, 'c', name);

describe('velo certs', () => {
  test('makes a CA, a certificate and key per node and per client; keys are 0600', () => {
    for (const f of ['ca.key', 'n1.key', 'n2.key', 'client-app.key']) expect(statSync(path(f)).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'c')).mode & 0o777).toBe(0o700);
    const ca = new X509Certificate(readFileSync(path('ca.crt')));
    const n2 = new X509Certificate(readFileSync(path('n2.crt')));
    expect(n2.checkIssued(ca) && n2.verify(ca.publicKey)).toBe(true);
    expect(n2.subject).toBe('CN=n2');
    expect(n2.subjectAltName).toBe('DNS:n2, IP Address:127.0.0.1, IP Address:10.0.0.7, DNS:cache.example');
    expect(n2.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(new X509Certificate(readFileSync(path('client-app.crt'))).keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
  });

  test('a second run signs new nodes with the CA already there, and never overwrites a file', () => {
    const again = velo('certs', '--out', join(dir, 'c'), '--nodes', 'n3');
    expect(again.status).toBe(0);
    const ca = new X509Certificate(readFileSync(path('ca.crt')));
    expect(new X509Certificate(readFileSync(path('n3.crt'))).verify(ca.publicKey)).toBe(true);
    const caBefore = readFileSync(path('ca.crt'), 'utf8');
    const clash = velo('certs', '--out', join(dir, 'c'), '--nodes', 'n1');
    expect(clash.status).toBe(1);
    expect(clash.stderr).toMatch(/already holds n1\.crt, n1\.key: velo certs never overwrites/);
    expect(readFileSync(path('ca.crt'), 'utf8')).toBe(caBefore);
  });

  test.each([
    [['certs', '--nodes', 'n1'], /needs --out DIR/],
    [['certs', '--out', '/tmp/x'], /needs --nodes/],
    [['certs', '--out', '/tmp/x', '--nodes', 'n1,n1'], /names one twice/],
    [['certs', '--out', '/tmp/x', '--nodes', 'n1@2'], /"n1@2" is not a node id/],
    [['certs', '--out', '/tmp/x', '--nodes', 'n1', '--hosts', 'bad host'], /"bad host" is not an IP address or a host name/],
  ])('velo %j is a usage error (exit 2)', (args, message) => {
    const r = velo(...args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});

describe('velo start with peer TLS flags', () => {
  const start = (...args: string[]) => velo('start', '--id', 'n1', '--http', '127.0.0.1:1', '--raft', '127.0.0.1:1', ...args);
  const flags = (cert: string, key: string, ca = path('ca.crt')) => ['--peer-ca', ca, '--peer-cert', cert, '--peer-key', key];

  test.each([
    ['only some of the three flags', ['--peer-ca', 'x'], /needs --peer-ca, --peer-cert and --peer-key together \(got only --peer-ca\)/],
    ['a certificate that names another node', flags(path('n2.crt'), path('n2.key')), /--peer-cert names node n2, but this node is --id n1/],
    ['a client certificate', flags(path('client-app.crt'), path('client-app.key')), /--peer-cert names no node/],
    ['a key that is not the certificate’s', flags(path('n1.crt'), path('n2.key')), /--peer-key is not the key of --peer-cert/],
    ['a CA that did not sign it', flags(path('n1.crt'), path('n1.key'), path('n2.crt')), /--peer-cert \(CN=n1\) is not signed by --peer-ca \(CN=n2\)/],
    ['a file that is missing', flags(path('n1.crt'), path('missing.key')), /--peer-key: cannot read .*missing\.key: ENOENT/],
  ])('refuses %s with one line, exit 2, before listening', (_what, args, message) => {
    const r = start(...args);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  });
});
