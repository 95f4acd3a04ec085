// `velo certs --out DIR --nodes n1,n2,n3 [--hosts H,...] [--clients NAME,...]`:
// a CA and the certificates of a secure cluster, so that one is two commands
// away (this, then `velo start --peer-ca … --tls-cert …`).

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { issueClusterCertificates, type Issued } from '../certs/issue.js';
import { isNodeId } from '../transport/index.js';
import { CliError, UsageError, parseArgs } from './args.js';

const SPEC = { out: 'value', nodes: 'value', hosts: 'value', clients: 'value' } as const;

/** Where each file goes in DIR; keys are written 0600, certificates 0644. */
export const certFiles = {
  caCert: 'ca.crt',
  caKey: 'ca.key',
  nodeCert: (id: string) => `${id}.crt`,
  nodeKey: (id: string) => `${id}.key`,
  clientCert: (name: string) => `client-${name}.crt`,
  clientKey: (name: string) => `client-${name}.key`,
};

const MAX_NAMES = 256;

function list(flags: Map<string, string>, flag: string, check: (s: string) => boolean, what: string): string[] {
  const raw = flags.get(flag);
  if (raw === undefined) return [];
  const names = raw.split(',').map((s) => s.trim());
  if (names.length > MAX_NAMES) throw new UsageError(`--${flag}: at most ${MAX_NAMES} names`);
  for (const n of names) if (!check(n)) throw new UsageError(`--${flag}: "${n}" is not ${what}`);
  if (new Set(names).size !== names.length) throw new UsageError(`--${flag} names one twice`);
  return names;
}

const isHost = (h: string) => isIP(h) !== 0 || /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(h);

export async function certs(argv: string[]): Promise<number> {
  const { flags } = parseArgs(argv, SPEC, 0);
  const out = flags.get('out');
  if (out === undefined || out.trim() === '') throw new UsageError('velo certs needs --out DIR');
  const nodes = list(flags, 'nodes', isNodeId, 'a node id (1–64 of A–Z a–z 0–9 . _ -)');
  if (nodes.length === 0) throw new UsageError('velo certs needs --nodes ID,... (the ids the nodes are started with)');
  const hosts = flags.has('hosts') ? list(flags, 'hosts', isHost, 'an IP address or a host name') : ['127.0.0.1', 'localhost'];
  const clients = list(flags, 'clients', isNodeId, 'a client name (1–64 of A–Z a–z 0–9 . _ -)');
  const signedWith = await writeCertificates(out, nodes, hosts, clients);
  const first = nodes[0]!;
  process.stdout.write(
    `${signedWith === 'existing' ? 'signed with the CA' : 'made a CA'} in ${out} (${certFiles.caCert}; keep ${certFiles.caKey} secret: it signs members)\n` +
      `nodes: ${nodes.map((n) => `${certFiles.nodeCert(n)} + ${certFiles.nodeKey(n)}`).join(', ')} (hosts ${hosts.join(', ')})\n` +
      (clients.length > 0 ? `clients: ${clients.map((c) => `${certFiles.clientCert(c)} + ${certFiles.clientKey(c)}`).join(', ')}\n` : '') +
      `start ${first} with: velo start --id ${first} --peer-ca ${join(out, certFiles.caCert)} --peer-cert ${join(out, certFiles.nodeCert(first))} --peer-key ${join(out, certFiles.nodeKey(first))} ...\n`,
  );
  return 0;
}

/**
 * Writes the certificates and keys of `nodes` and `clients` into `out`
 * (made 0700 if missing), signed by the CA there, or by a new one written
 * beside them. Never overwrites a file.
 */
export async function writeCertificates(out: string, nodes: string[], hosts: string[], clients: string[]): Promise<'existing' | 'new'> {
  const files = [...nodes.flatMap((n) => [certFiles.nodeCert(n), certFiles.nodeKey(n)]), ...clients.flatMap((c) => [certFiles.clientCert(c), certFiles.clientKey(c)])];
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const taken = files.filter((f) => existsSync(join(out, f)));
  if (taken.length > 0) throw new CliError(`${out} already holds ${taken.join(', ')}: velo certs never overwrites a certificate or key`);
  // A CA already in DIR signs the new certificates: nodes added later join the same cluster.
  const caCertPath = join(out, certFiles.caCert);
  const caKeyPath = join(out, certFiles.caKey);
  let ca: Issued | undefined;
  if (existsSync(caCertPath) !== existsSync(caKeyPath)) throw new CliError(`${out} holds one of ${certFiles.caCert} and ${certFiles.caKey} without the other`);
  if (existsSync(caCertPath)) ca = { cert: readFileSync(caCertPath, 'utf8'), key: readFileSync(caKeyPath, 'utf8') };
  let made;
  try {
    made = await issueClusterCertificates(nodes, hosts, clients, ca ? { ca } : {});
  } catch (e) {
    throw new CliError(`cannot sign with the CA in ${out}: ${(e as Error).message}`);
  }
  const write = (name: string, data: string, secret: boolean) => writeFileSync(join(out, name), data, { mode: secret ? 0o600 : 0o644, flag: 'wx' });
  if (ca === undefined) {
    write(certFiles.caKey, made.ca.key, true);
    write(certFiles.caCert, made.ca.cert, false);
  }
  for (const [n, c] of made.nodes) {
    write(certFiles.nodeKey(n), c.key, true);
    write(certFiles.nodeCert(n), c.cert, false);
  }
  for (const [n, c] of made.clients) {
    write(certFiles.clientKey(n), c.key, true);
    write(certFiles.clientCert(n), c.cert, false);
  }
  return ca ? 'existing' : 'new';
}
