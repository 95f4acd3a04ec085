// `velo put|get|del`: one item over the HTTP API (API.md "Items").

import { CliError, UsageError, parseArgs } from './args.js';
import { TOKEN_FLAG, authHeader, tokenOf } from './credentials.js';
import { fetchOf } from './trust.js';
import { untrustedMessage } from '../https/index.js';
import type { Fetch } from '../https/index.js';

const DEFAULT_URL = 'http://127.0.0.1:7070';
const TIMEOUT_MS = 30_000;

interface Item {
  base: string;
  cache: string;
  region: string | null;
  key: string;
  flags: Map<string, string>;
  args: string[];
  token: string | null;
  /** Trusts --ca / VELO_CA. */
  fetch: Fetch;
}

function parseItem(verb: string, argv: string[], extra: Record<string, 'value' | 'switch'>, maxArgs: number): Item {
  const { flags, args } = parseArgs(argv, { cache: 'value', region: 'value', url: 'value', ca: 'value', ...TOKEN_FLAG, ...extra }, maxArgs);
  const key = args[0];
  if (key === undefined || key === '') throw new UsageError(`${verb} needs a KEY`);
  for (const f of ['cache', 'region'] as const) if (flags.get(f) === '') throw new UsageError(`--${f} must not be empty`);
  const url = flags.get('url') ?? DEFAULT_URL;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--url must be like http://127.0.0.1:7070, got "${url}"`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`--url must start with http:// or https://, got "${url}"`);
  return { base: url.replace(/\/+$/, ''), cache: flags.get('cache') ?? 'default', region: flags.get('region') ?? null, key, flags, args, token: tokenOf(flags), fetch: fetchOf(flags) };
}

function itemUrl(it: Item, query = ''): string {
  const region = it.region === null ? '' : `/regions/${encodeURIComponent(it.region)}`;
  return `${it.base}/v1/caches/${encodeURIComponent(it.cache)}${region}/items/${encodeURIComponent(it.key)}${query}`;
}

function describe(it: Item): string {
  return `key "${it.key}" in ${it.region === null ? '' : `region "${it.region}" of `}cache "${it.cache}"`;
}

async function call(it: Item, init: RequestInit, query?: string): Promise<Response> {
  let res: Response;
  try {
    res = await it.fetch(itemUrl(it, query), { ...init, headers: { ...(init.headers as Record<string, string> | undefined), ...authHeader(it.token) }, signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (e) {
    const err = e as Error & { cause?: { code?: string; message?: string } };
    if (err.name === 'TimeoutError') throw new CliError(`no answer from ${it.base} within ${TIMEOUT_MS / 1000} s`);
    const why = untrustedMessage(e) ?? (err.cause?.code === 'ECONNREFUSED' ? 'connection refused (is a node running there? see velo start)' : (err.cause?.code ?? err.cause?.message ?? err.message));
    throw new CliError(`cannot reach ${it.base}: ${why}`);
  }
  if (res.ok) return res;
  const text = await res.text();
  let error: { code?: unknown; message?: unknown } | undefined;
  try {
    error = (JSON.parse(text) as { error?: typeof error }).error;
  } catch {
    // not the API's JSON error
  }
  if (typeof error?.code !== 'string') throw new CliError(`HTTP ${res.status} ${res.statusText} from ${it.base}`);
  if (error.code === 'not_found') throw new CliError(`not found: ${describe(it)}`);
  throw new CliError(`${error.code}: ${String(error.message).replace(/\s+/g, ' ')} (HTTP ${res.status})`);
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function put(argv: string[]): Promise<number> {
  const it = parseItem('put', argv, { 'ttl-ms': 'value', 'content-type': 'value' }, 2);
  const ttl = it.flags.get('ttl-ms');
  if (ttl !== undefined && !/^[1-9][0-9]{0,15}$/.test(ttl)) throw new UsageError(`--ttl-ms must be a positive integer, got "${ttl}"`);
  const value = it.args[1] === undefined || it.args[1] === '-' ? await readStdin() : Buffer.from(it.args[1], 'utf8');
  const type = it.flags.get('content-type');
  const res = await call(it, { method: 'PUT', body: new Uint8Array(value), headers: type === undefined ? {} : { 'content-type': type } }, ttl === undefined ? '' : `?ttlMs=${ttl}`);
  const r = (await res.json()) as { version: string; created: boolean };
  process.stdout.write(`${r.created ? 'created' : 'replaced'} ${describe(it)}, version ${r.version}\n`);
  return 0;
}

export async function get(argv: string[]): Promise<number> {
  const it = parseItem('get', argv, { local: 'switch' }, 1);
  const res = await call(it, {}, it.flags.has('local') ? '?consistency=local' : '');
  const bytes = Buffer.from(await res.arrayBuffer());
  await new Promise<void>((resolve, reject) => process.stdout.write(bytes, (e) => (e ? reject(e) : resolve())));
  return 0;
}

export async function del(argv: string[]): Promise<number> {
  const it = parseItem('del', argv, {}, 1);
  await call(it, { method: 'DELETE' });
  process.stdout.write(`deleted ${describe(it)}\n`);
  return 0;
}
