// `velo start --peer-ca FILE --peer-cert FILE --peer-key FILE`: the files are
// read and checked at start, so that a wrong file is one clear line and exit
// 2, never a node that cannot talk to its peers.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { x509NodeId, type PeerTls } from '../transport/index.js';
import { CliError, UsageError } from './args.js';

export const PEER_TLS_FLAGS = { 'peer-ca': 'value', 'peer-cert': 'value', 'peer-key': 'value' } as const;

/** The peer TLS of node `id` from its flags: all three, or none (plain TCP). */
export function peerTlsFlags(flags: Map<string, string>, id: string): PeerTls | null {
  const given = Object.keys(PEER_TLS_FLAGS).filter((f) => flags.has(f));
  if (given.length === 0) return null;
  if (given.length < 3) throw new UsageError(`peer TLS needs --peer-ca, --peer-cert and --peer-key together (got only ${given.map((f) => `--${f}`).join(', ')})`);
  const read = (flag: string): string => {
    const file = flags.get(flag)!;
    try {
      return readFileSync(file, 'utf8');
    } catch (e) {
      throw new CliError(`--${flag}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 2);
    }
  };
  const tls: PeerTls = { ca: read('peer-ca'), cert: read('peer-cert'), key: read('peer-key') };
  checkPeerTls(tls, id);
  return tls;
}

/** Throws a CliError (exit 2) unless `cert` is a node certificate for `id`, signed by `ca`, with `key` its key. */
export function checkPeerTls(tls: PeerTls, id: string): void {
  const fail = (why: string): never => {
    throw new CliError(why, 2);
  };
  const parse = (flag: string, pem: string): X509Certificate => {
    try {
      return new X509Certificate(pem);
    } catch {
      return fail(`--${flag} holds no PEM certificate`);
    }
  };
  const ca = parse('peer-ca', tls.ca);
  const cert = parse('peer-cert', tls.cert);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) fail(`--peer-cert (${cert.subject.replace(/\n/g, ', ')}) is not signed by --peer-ca (${ca.subject.replace(/\n/g, ', ')})`);
  const now = Date.now();
  if (Date.parse(cert.validTo) < now || Date.parse(cert.validFrom) > now) fail(`--peer-cert is valid from ${cert.validFrom} to ${cert.validTo} only`);
  let key;
  try {
    key = createPrivateKey(tls.key);
  } catch {
    return fail('--peer-key holds no PEM private key');
  }
  if (!cert.checkPrivateKey(key)) fail('--peer-key is not the key of --peer-cert');
  const named = x509NodeId(cert);
  if (named !== id) fail(`--peer-cert names ${named === null ? 'no node (a CN, or one DNS SAN, with serverAuth)' : `node ${named}`}, but this node is --id ${id}: a node's id is the one its certificate names`);
}
