// The token a CLI verb sends (API.md "Security"): `--token-file FILE`, else
// the environment's VELO_TOKEN, else none. A file is the way to keep a
// secret out of the shell's history and of `ps`.

import { readFileSync } from 'node:fs';
import { wellFormedSecret } from '../node/tokens.js';
import { UsageError } from './args.js';

/** The flag every verb that talks to a node accepts. */
export const TOKEN_FLAG = { 'token-file': 'value' } as const;

export function tokenOf(flags: Map<string, string>, env: NodeJS.ProcessEnv = process.env): string | null {
  const file = flags.get('token-file');
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new UsageError(`--token-file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const token = text.trim();
    if (!wellFormedSecret(token)) throw new UsageError(`--token-file ${file} does not hold a token (16–256 printable characters without spaces)`);
    return token;
  }
  const fromEnv = env.VELO_TOKEN;
  if (fromEnv === undefined || fromEnv === '') return null;
  if (!wellFormedSecret(fromEnv.trim())) throw new UsageError('VELO_TOKEN does not hold a token (16–256 printable characters without spaces)');
  return fromEnv.trim();
}

/** The Authorization header for `token`, or nothing. */
export function authHeader(token: string | null): Record<string, string> {
  return token === null ? {} : { authorization: `Bearer ${token}` };
}
