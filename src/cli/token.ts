// `velo token create|list|revoke`: the cluster's access tokens through
// /v1/admin/tokens (API.md "Security"), with an admin token from
// --token-file or VELO_TOKEN.

import { writeFile } from 'node:fs/promises';
import { ROLES } from '../node/tokens.js';
import { CliError, UsageError, clusterFlag, parseArgs } from './args.js';
import { TOKEN_FLAG, authHeader, tokenOf } from './credentials.js';

const TIMEOUT_MS = 30_000;
const NAME = /^[A-Za-z0-9._-]{1,64}$/;

interface TokenView {
  name: string;
  role: string;
  caches: string[] | null;
  createdAt: number;
}

async function call(base: string, token: string | null, method: string, path: string, body?: unknown): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers: { ...authHeader(token), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (e) {
    const err = e as Error & { cause?: { code?: string; message?: string } };
    if (err.name === 'TimeoutError') throw new CliError(`no answer from ${base} within ${TIMEOUT_MS / 1000} s`);
    throw new CliError(`cannot reach ${base}: ${err.cause?.code ?? err.cause?.message ?? err.message}`);
  }
  const text = await res.text();
  if (res.ok) return text === '' ? null : (JSON.parse(text) as unknown);
  let error: { code?: unknown; message?: unknown } | undefined;
  try {
    error = (JSON.parse(text) as { error?: typeof error }).error;
  } catch {
    // not the API's JSON error
  }
  if (typeof error?.code !== 'string') throw new CliError(`HTTP ${res.status} from ${base}`);
  const hint = error.code === 'unauthenticated' ? ' (give an admin token: --token-file FILE or VELO_TOKEN)' : '';
  throw new CliError(`${error.code}: ${String(error.message).replace(/\s+/g, ' ')}${hint}`);
}

function nameArg(verb: string, args: string[]): string {
  const name = args[0];
  if (name === undefined) throw new UsageError(`token ${verb} needs a NAME`);
  if (!NAME.test(name)) throw new UsageError(`a token NAME is 1–64 of A–Z a–z 0–9 . _ -, got "${name}"`);
  return name;
}

async function create(argv: string[]): Promise<number> {
  const { flags, args } = parseArgs(argv, { cluster: 'value', role: 'value', caches: 'value', out: 'value', ...TOKEN_FLAG }, 1);
  const name = nameArg('create', args);
  const role = flags.get('role');
  if (role === undefined || !(ROLES as readonly string[]).includes(role)) throw new UsageError(`token create needs --role ${ROLES.join('|')}`);
  const caches = flags.get('caches')?.split(',').map((c) => c.trim());
  if (caches?.some((c) => c === '')) throw new UsageError('--caches is a comma-separated list of cache names or prefixes ending in "*"');
  const out = flags.get('out');
  const base = clusterFlag(flags);
  const made = (await call(base, tokenOf(flags), 'POST', '/v1/admin/tokens', { name, role, ...(caches ? { caches } : {}) })) as { name: string; token: string };
  if (out !== undefined) {
    await writeFile(out, `${made.token}\n`, { mode: 0o600, flag: 'wx' }).catch((e: NodeJS.ErrnoException) => {
      throw new CliError(`token "${name}" was created, but writing ${out} failed (${e.code ?? e.message}): revoke it and create it again`);
    });
    process.stdout.write(`token "${name}" (${role}${caches ? `, caches ${caches.join(',')}` : ''}) written to ${out}\n`);
  } else {
    // The secret alone on stdout, for `$(velo token create …)`; it is shown this once.
    process.stdout.write(`${made.token}\n`);
  }
  return 0;
}

export function formatTokens(tokens: TokenView[]): string {
  const rows = [['NAME', 'ROLE', 'CACHES', 'CREATED'], ...tokens.map((t) => [t.name, t.role, t.caches === null ? '*' : t.caches.join(','), new Date(t.createdAt).toISOString()])];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return `${rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n')}\n`;
}

async function list(argv: string[]): Promise<number> {
  const { flags } = parseArgs(argv, { cluster: 'value', json: 'switch', ...TOKEN_FLAG }, 0);
  const base = clusterFlag(flags);
  const answer = (await call(base, tokenOf(flags), 'GET', '/v1/admin/tokens')) as { tokens: TokenView[] };
  process.stdout.write(flags.has('json') ? `${JSON.stringify(answer)}\n` : formatTokens(answer.tokens));
  return 0;
}

async function revoke(argv: string[]): Promise<number> {
  const { flags, args } = parseArgs(argv, { cluster: 'value', ...TOKEN_FLAG }, 1);
  const name = nameArg('revoke', args);
  const base = clusterFlag(flags);
  await call(base, tokenOf(flags), 'DELETE', `/v1/admin/tokens/${encodeURIComponent(name)}`);
  process.stdout.write(`token "${name}" revoked on every member\n`);
  return 0;
}

export async function token(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'create') return create(rest);
  if (sub === 'list') return list(rest);
  if (sub === 'revoke') return revoke(rest);
  throw new UsageError(sub === undefined ? 'token needs create, list or revoke' : `unknown token command "${sub}": create, list or revoke`);
}
