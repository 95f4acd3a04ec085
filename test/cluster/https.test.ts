// HTTPS for clients, on real processes with real certificates (openssl): a
// node started with --tls-cert/--tls-key serves only HTTPS, advertises
// https:// addresses, and every client of it (the CLI verbs, VeloClient, the
// session store, backup and restore, a node joining through it) works when
// it trusts the cluster's CA (--ca, VELO_CA, the option `ca`), and fails at
// once with a line that says to give it when it does not.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { VeloClient, UntrustedCertificateError } from '../../src/client/index.js';
import { VeloSessionStore } from '../../src/session/express-store.js';
import { freePort, ProcessCluster } from './process-cluster.js';
import { makeCa, opensslMissing } from '../support/certs.js';
import type { TestCa } from '../support/certs.js';
import { startServing, velo } from '../support/velo-cli.js';
import type { Serving } from '../support/velo-cli.js';

const missing = opensslMissing();
if (missing) console.warn(`skipping test/cluster/https.test.ts: ${missing}`);

interface ClusterView {
  members: { id: string; http: string; status: string }[];
}

describe.skipIf(missing !== null)('a node serving HTTPS', () => {
  let ca: TestCa;
  let other: TestCa;
  let cluster: ProcessCluster;
  let base: string;
  const untrusted = /the node's certificate is not signed by a trusted CA \([A-Z_]+\): give --ca FILE \(or VELO_CA=FILE\)/;
  const backupFile = join(tmpdir(), `velo-https-${process.pid}.backup`);

  const tlsArgs = (id: string) => {
    const c = ca.issue(id);
    return ['--tls-cert', c.certFile, '--tls-key', c.keyFile];
  };
  const trusted = () => new VeloClient({ nodes: [base], ca: ca.ca, timeoutMs: 10_000 });
  const view = async (client: VeloClient) => (await client.backend.cluster()) as unknown as ClusterView;

  beforeAll(async () => {
    ca = makeCa('velo https test CA');
    other = makeCa('someone else');
    cluster = await ProcessCluster.start(['n1'], ['--partitions', '4', '--log-level', 'warn'], { nodeArgs: tlsArgs });
    base = `https://${cluster.node('n1').http}`;
    const client = trusted();
    await cluster.until('n1 ready over HTTPS', async () => (await client.cache().stats().then(() => true, () => false)));
    await client.close();
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
    ca?.remove();
    other?.remove();
    rmSync(backupFile, { force: true });
  });

  test('it prints an https:// serving line and advertises its member address as https://host:port in /v1/cluster', async () => {
    expect(cluster.node('n1').output.join('')).toContain(`serving https://${cluster.node('n1').http}`);
    const client = trusted();
    try {
      expect((await view(client)).members.map((m) => m.http)).toEqual([`https://${cluster.node('n1').http}`]);
    } finally {
      await client.close();
    }
  });

  test('it serves no plain HTTP on its port', async () => {
    await expect(fetch(`http://${cluster.node('n1').http}/healthz`)).rejects.toThrow();
  });

  test('velo put/get/del and status work with --ca or VELO_CA, and fail with one line naming --ca without it or with another CA', async () => {
    const put = await velo(['put', 'cli-key', 'over tls', '--url', base, '--ca', ca.caFile]);
    expect(put.stderr).toBe('');
    expect(put.status).toBe(0);
    const got = await velo(['get', 'cli-key', '--url', base], { VELO_CA: ca.caFile });
    expect({ status: got.status, stdout: got.stdout }).toEqual({ status: 0, stdout: 'over tls' });
    const status = await velo(['status', '--cluster', base, '--ca', ca.caFile]);
    expect(status.status).toBe(0);
    expect(status.stdout).toContain(`https://${cluster.node('n1').http}`);

    for (const run of [
      await velo(['get', 'cli-key', '--url', base], { VELO_CA: undefined }),
      await velo(['get', 'cli-key', '--url', base, '--ca', other.caFile]),
      await velo(['del', 'cli-key', '--url', base], { VELO_CA: undefined }),
      await velo(['status', '--cluster', base], { VELO_CA: undefined }),
    ]) {
      expect(run.status).toBe(1);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      expect(run.stderr).toMatch(untrusted);
    }
    // The refused del changed nothing.
    expect((await velo(['get', 'cli-key', '--url', base, '--ca', ca.caFile])).stdout).toBe('over tls');
    const del = await velo(['del', 'cli-key', '--url', base, '--ca', ca.caFile]);
    expect(del.status).toBe(0);
  });

  test('a --ca file that is not a certificate is a bad command line (exit 2)', async () => {
    const run = await velo(['get', 'k', '--url', base, '--ca', ca.issue('not-a-ca').keyFile]);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/--ca .* must be the PEM text of a CA certificate/);
  });

  test('VeloClient with the option ca reads and writes; without it every call fails at once with UntrustedCertificateError', async () => {
    const client = trusted();
    try {
      await client.cache().put('client-key', { over: 'tls' });
      expect(await client.cache().get('client-key')).toEqual({ over: 'tls' });
    } finally {
      await client.close();
    }
    const bare = new VeloClient({ nodes: [base], timeoutMs: 10_000 });
    try {
      const started = Date.now();
      const err = await bare.cache().put('client-key', 'overwritten?').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UntrustedCertificateError);
      expect((err as Error).message).toMatch(/not signed by a trusted CA .*give the client option `ca`/);
      // At once: no retrying until the 10 s deadline.
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await bare.close();
    }
    const check = trusted();
    try {
      expect(await check.cache().get('client-key')).toEqual({ over: 'tls' });
    } finally {
      await check.close();
    }
  });

  test('the express session store keeps sessions over HTTPS through a client given ca', async () => {
    const client = trusted();
    const store = new VeloSessionStore({ client });
    const call = <T>(f: (cb: (err: unknown, v?: T) => void) => void) => new Promise<T | undefined>((resolve, reject) => f((err, v) => (err ? reject(err) : resolve(v))));
    try {
      await call<void>((cb) => store.set('sid-tls', { cookie: { originalMaxAge: 60_000, maxAge: 60_000 }, user: 'ada' } as never, cb));
      const back = await call<{ user?: string }>((cb) => store.get('sid-tls', cb as never));
      expect(back?.user).toBe('ada');
    } finally {
      await client.close();
    }
  });

  test('velo backup and restore work with --ca, and backup fails with one line without it (no file written)', async () => {
    const ok = await velo(['backup', '--to', backupFile, '--cluster', base, '--ca', ca.caFile]);
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    expect(readFileSync(backupFile).length).toBeGreaterThan(0);
    const restored = await velo(['restore', '--from', backupFile, '--cluster', base, '--overwrite'], { VELO_CA: ca.caFile });
    expect(restored.stderr).toBe('');
    expect(restored.status).toBe(0);
    const refusedTo = `${backupFile}.refused`;
    const refused = await velo(['backup', '--to', refusedTo, '--cluster', base], { VELO_CA: undefined });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(untrusted);
    expect(() => readFileSync(refusedTo)).toThrow();
  });

  test('a node joins through the HTTPS address with --ca and advertises https; without --ca it stops with the reason', async () => {
    const refused = await velo(['start', '--id', 'n9', '--http', '127.0.0.1:0', '--raft', '127.0.0.1:0', '--join', base, '--log-level', 'silent', ...tlsArgs('n9')], { VELO_CA: undefined });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/joining through https:\/\/.*not signed by a trusted CA/);
    // nodeArgs gives n2 its certificate, as every node of this cluster.
    await cluster.join('n2', base, ['--ca', ca.caFile, '--log-level', 'warn']);
    const client = trusted();
    try {
      await cluster.until('n2 listed with its https address', async () => (await view(client)).members.some((m) => m.id === 'n2' && m.http === `https://${cluster.node('n2').http}`));
    } finally {
      await client.close();
    }
  }, 60_000);
});

describe('a node serving HTTPS with the certificates velo certs makes', () => {
  test('one certificate serves both the raft port (peer TLS) and HTTPS, and the CLI trusts its ca.crt', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'velo-https-certs-'));
    let node: Serving | null = null;
    try {
      expect((await velo(['certs', '--out', dir, '--nodes', 'n1'])).status).toBe(0);
      const [http, raft] = [await freePort(), await freePort()];
      node = await startServing(['--http', `127.0.0.1:${http}`, '--raft', `127.0.0.1:${raft}`, '--log-level', 'warn', '--tls-cert', join(dir, 'n1.crt'), '--tls-key', join(dir, 'n1.key'), '--peer-ca', join(dir, 'ca.crt'), '--peer-cert', join(dir, 'n1.crt'), '--peer-key', join(dir, 'n1.key')]);
      const status = await velo(['status', '--cluster', `https://127.0.0.1:${http}`, '--ca', join(dir, 'ca.crt')]);
      expect(status.stderr).toBe('');
      expect(status.stdout).toContain(`https://127.0.0.1:${http}`);
    } finally {
      await node?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
