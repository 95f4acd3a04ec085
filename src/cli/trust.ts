// The TLS files of the command line: the CA a verb trusts (`--ca FILE`, or
// the file VELO_CA names) and the certificate and key `velo start` serves
// HTTPS with (`--tls-cert FILE --tls-key FILE`). Read once, checked at once,
// so that a wrong file is one line at start and not a failed handshake later.

import { readFileSync } from 'node:fs';
import { checkCa, checkServerTls, fetchTrusting } from '../https/index.js';
import type { Fetch, ServerTls } from '../https/index.js';
import { UsageError } from './args.js';

/** A file's text, or a UsageError naming the flag and why it cannot be read. */
export function readFlagFile(flag: string, file: string): string {
  if (file.trim() === '') throw new UsageError(`${flag} must name a file`);
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`${flag} ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** The CA to trust: `--ca FILE` (`file`), else the file named by VELO_CA, else none (the system's roots). */
export function readCa(file: string | null, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const [flag, path] = file !== null ? ['--ca', file] : env.VELO_CA !== undefined && env.VELO_CA !== '' ? ['VELO_CA', env.VELO_CA] : [null, null];
  if (flag === null) return undefined;
  const text = readFlagFile(flag, path!);
  try {
    return checkCa(text, `${flag} ${path}`);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** A verb's CA: its --ca flag, else VELO_CA. */
export function caOf(flags: Map<string, string>): string | undefined {
  return readCa(flags.get('ca') ?? null);
}

/** The fetch a verb calls the cluster with: trusting --ca / VELO_CA when given. */
export function fetchOf(flags: Map<string, string>): Fetch {
  return fetchTrusting(caOf(flags));
}

/** `--tls-cert` and `--tls-key`, read and checked; undefined when neither is given. */
export function serverTlsOf(certFile: string | null, keyFile: string | null): ServerTls | undefined {
  if (certFile === null && keyFile === null) return undefined;
  if (certFile === null || keyFile === null) throw new UsageError('--tls-cert and --tls-key go together: give both to serve HTTPS');
  const tls = { cert: readFlagFile('--tls-cert', certFile), key: readFlagFile('--tls-key', keyFile) };
  try {
    return checkServerTls(tls);
  } catch (e) {
    throw new UsageError(`--tls-cert ${certFile} --tls-key ${keyFile}: ${(e as Error).message}`);
  }
}
