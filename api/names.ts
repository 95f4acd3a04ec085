// Names (cache, region, key) are 1–250 bytes of UTF-8 (API.md); tags are names too.
import { VeloError } from '../src/node/errors.js';

export const MAX_NAME_BYTES = 250;

export function checkName(what: string, name: string | undefined): string {
  if (name === undefined || name.length === 0) throw new VeloError('bad_request', `${what} must not be empty`);
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_NAME_BYTES) throw new VeloError('bad_request', `${what} is ${bytes} bytes of UTF-8; the limit is ${MAX_NAME_BYTES}`);
  return name;
}

/** A positive integer from a query string, at most `max`, or undefined when absent. */
export function positiveInt(what: string, raw: string | undefined, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^[1-9][0-9]{0,15}$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw new VeloError('bad_request', `${what} must be a positive integer, got "${raw}"`);
  }
  if (Number(raw) > max) throw new VeloError('bad_request', `${what} is at most ${max}, got ${raw}`);
  return Number(raw);
}

/** `"123"` or `123` → `123`; anything else is a malformed version. */
export function parseEtag(header: string | undefined): string | null {
  if (header === undefined) return null;
  const m = /^\s*(?:W\/)?"([^"]+)"\s*$/.exec(header) ?? /^\s*([0-9]+)\s*$/.exec(header);
  if (!m) throw new VeloError('bad_request', `If-Match must be a quoted version, got ${JSON.stringify(header)}`);
  return m[1]!;
}
