// --admin-token-file: the secret of a cluster's first admin token. If the file
// exists it holds the secret; otherwise a new one is generated and written
// there, readable by its owner only. Bootstrap members may share one path:
// the file appears whole or not at all (written aside, then linked into
// place), so a member that loses the race reads the winner's secret.

import { randomBytes } from 'node:crypto';
import { link, readFile, unlink, writeFile } from 'node:fs/promises';
import { generateSecret, wellFormedSecret } from './tokens.js';

export async function readOrCreateAdminSecret(file: string): Promise<{ secret: string; created: boolean }> {
  const existing = await readSecret(file);
  if (existing !== null) return { secret: existing, created: false };
  const secret = generateSecret();
  const aside = `${file}.${randomBytes(8).toString('hex')}.tmp`;
  await writeFile(aside, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await link(aside, file);
    return { secret, created: true };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot write --admin-token-file ${file}: ${(e as Error).message}`);
    const won = await readSecret(file);
    if (won === null) throw new Error(`--admin-token-file ${file} appeared meanwhile but cannot be read`);
    return { secret: won, created: false };
  } finally {
    await unlink(aside).catch(() => {});
  }
}

/** The secret in `file`, null when there is no file; an error when it holds no usable secret. */
async function readSecret(file: string): Promise<string | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`cannot read --admin-token-file ${file}: ${(e as Error).message}`);
  }
  const secret = text.trim();
  if (!wellFormedSecret(secret)) throw new Error(`--admin-token-file ${file} does not hold a token (16–256 printable characters without spaces)`);
  return secret;
}
