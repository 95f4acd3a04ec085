// Byte sizes on the command line (`--max-memory 512mb`) and in the start line.

import { UsageError } from './args.js';

// Binary multiples, as memory is counted (and as `free -h` shows it).
const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, kb: 2 ** 10, kib: 2 ** 10, m: 2 ** 20, mb: 2 ** 20, mib: 2 ** 20, g: 2 ** 30, gb: 2 ** 30, gib: 2 ** 30, t: 2 ** 40, tb: 2 ** 40, tib: 2 ** 40 };

/** `1048576`, `512mb`, `1.5GiB` → bytes (whole); a UsageError naming the flag otherwise, or outside [min, max]. */
export function parseByteSize(flag: string, raw: string, min: number, max: number): number {
  const m = /^([0-9]{1,16}(?:\.[0-9]{1,6})?)\s*([a-z]*)$/i.exec(raw.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new UsageError(`--${flag} must be a byte count like 1073741824, 512mb or 2gb, got "${raw}"`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes) || bytes < min || bytes > max) throw new UsageError(`--${flag} must be from ${formatBytes(min)} to ${formatBytes(max)}, got "${raw}"`);
  return bytes;
}

/** Bytes in the largest binary unit that keeps them at or above 1, to one decimal: `1.5 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${bytes} B` : `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}
