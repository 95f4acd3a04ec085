// `velo backup` and `velo restore`: flags and presentation only; the work is
// in scripts/backup.ts and scripts/restore.ts, imported when a verb runs so
// that the other verbs do not load it. Progress goes to stderr: a redrawn bar
// on a terminal; otherwise nothing until the one summary line on stdout.

import { UsageError, clusterFlag, parseArgs } from './args.js';
import { TOKEN_FLAG, tokenOf } from './credentials.js';
import { fetchOf } from './trust.js';
import type { ProgressState } from '../../scripts/backup.js';

/** Redraws of the bar at most this often: a fast restore would otherwise spend its time on the terminal. */
const REDRAW_MS = 100;
const BAR_WIDTH = 24;

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;


function fileFlag(flags: Map<string, string>, name: string, verb: string): string {
  const file = flags.get(name);
  if (file === undefined || file === '') throw new UsageError(`${verb} needs --${name} FILE`);
  return file;
}

/** `[####------] 5/16 partitions  12.3/40.1 MB`, redrawn in place on stderr; nothing when stderr is not a terminal. */
export function progressBar(stream: NodeJS.WriteStream = process.stderr): { update: (p: ProgressState) => void; clear: () => void } {
  if (!stream.isTTY) return { update: () => {}, clear: () => {} };
  let last = 0;
  let drawn = false;
  const label = { export: 'backing up', verify: 'verifying', load: 'restoring' } as const;
  return {
    update(p) {
      const t = Date.now();
      const final = p.partitionsDone === p.partitionsTotal;
      if (!final && t - last < REDRAW_MS) return;
      last = t;
      const fraction = p.bytesTotal ? p.bytesDone / p.bytesTotal : p.partitionsDone / Math.max(1, p.partitionsTotal);
      const filled = Math.round(Math.min(1, fraction) * BAR_WIDTH);
      const bytes = p.bytesTotal === null ? `${mb(p.bytesDone)} MB` : `${mb(p.bytesDone)}/${mb(p.bytesTotal)} MB`;
      stream.write(`\r\x1b[2K${label[p.phase]} [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${p.partitionsDone}/${p.partitionsTotal} partitions  ${bytes}`);
      drawn = true;
    },
    clear() {
      if (drawn) stream.write('\r\x1b[2K');
      drawn = false;
    },
  };
}

/** Ctrl-C or SIGTERM aborts the work (a backup then removes its temporary files) instead of killing the process mid-write. */
function abortOnSignal(): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => ac.abort(new Error(`interrupted by ${sig}`));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return { signal: ac.signal, dispose: () => (process.off('SIGINT', onSignal), process.off('SIGTERM', onSignal)) };
}

const rate = (bytes: number, seconds: number) => (seconds > 0 ? bytes / 1e6 / seconds : 0).toFixed(1);

export async function backup(argv: string[]): Promise<number> {
  const { flags } = parseArgs(argv, { to: 'value', cluster: 'value', ca: 'value', ...TOKEN_FLAG }, 0);
  const to = fileFlag(flags, 'to', 'backup');
  const cluster = clusterFlag(flags);
  const { backup: run } = await import('../../scripts/backup.js');
  const bar = progressBar();
  const abort = abortOnSignal();
  try {
    const s = await run({ to, cluster, token: tokenOf(flags), fetch: fetchOf(flags), onProgress: bar.update, signal: abort.signal });
    bar.clear();
    process.stdout.write(
      `backup: ${count(s.partitions, 'partition')}, ${count(s.caches, 'cache')}, ${count(s.items, 'item')}, ${mb(s.bytes)} MB in ${s.seconds.toFixed(1)} s (${rate(s.bytes, s.seconds)} MB/s) to ${s.file}\n`,
    );
    return 0;
  } finally {
    bar.clear();
    abort.dispose();
  }
}

export async function restore(argv: string[]): Promise<number> {
  const { flags } = parseArgs(argv, { from: 'value', cluster: 'value', overwrite: 'switch', ca: 'value', ...TOKEN_FLAG }, 0);
  const from = fileFlag(flags, 'from', 'restore');
  const cluster = clusterFlag(flags);
  const { restore: run } = await import('../../scripts/restore.js');
  const bar = progressBar();
  const abort = abortOnSignal();
  try {
    const s = await run({ from, cluster, token: tokenOf(flags), overwrite: flags.has('overwrite'), fetch: fetchOf(flags), onProgress: bar.update, signal: abort.signal });
    bar.clear();
    const skipped = s.expired > 0 ? ` (${s.expired} expired, skipped)` : '';
    process.stdout.write(
      `restore: ${count(s.partitions, 'partition')}, ${count(s.caches, 'cache')}, ${count(s.items, 'item')}${skipped}, ${mb(s.bytes)} MB in ${s.seconds.toFixed(1)} s (${rate(s.bytes, s.seconds)} MB/s) from ${s.file}\n`,
    );
    return 0;
  } finally {
    bar.clear();
    abort.dispose();
  }
}
