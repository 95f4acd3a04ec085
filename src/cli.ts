// The `velo` command: dispatch to a verb, one line on stderr for any failure
// (exit 2 for a bad command line, 1 otherwise). The verbs live in src/cli/.

import { CliError, UsageError } from './cli/args.js';
import { backup, restore } from './cli/backup.js';
import { del, get, put } from './cli/client.js';
import { demo } from './cli/demo.js';
import { start } from './cli/start.js';

export { CliError, UsageError } from './cli/args.js';
export { parseStartFlags } from './cli/start.js';
export type { StartFlags } from './cli/start.js';

export const USAGE = `usage:
  velo start [--id ID] [--http HOST:PORT] [--raft HOST:PORT] [--peers ID=HOST:PORT,...]
             [--partitions N] [--replicas N] [--max-value-bytes N]
             [--request-timeout-ms N] [--cluster-id NAME] [--log-level LEVEL]
             [--data-dir DIR] [--snapshot-entries N] [--snapshot-bytes N]
  velo demo  [--nodes N] [--base-port P] [--log-level LEVEL]
  velo put   KEY [VALUE|-] [--cache C] [--region R] [--ttl-ms N] [--content-type T] [--url URL]
  velo get   KEY [--cache C] [--region R] [--local] [--url URL]
  velo del   KEY [--cache C] [--region R] [--url URL]
  velo backup  --to FILE [--cluster URL]
  velo restore --from FILE [--cluster URL] [--overwrite]

start  runs one node until Ctrl-C; with no flags a single in-memory node "n1",
       HTTP on 127.0.0.1:7070, raft on 127.0.0.1:7170. It prints one line when
       it serves; logs are JSON on stderr at LEVEL, one of
       fatal|error|warn|info|debug|trace|silent (default info).
demo   runs N in-memory nodes (default 3, at most 9) as child processes: HTTP on
       127.0.0.1:P, P+1, ..., raft on P+100, P+101, ... (default P=7001, logs
       at warn), until Ctrl-C.
put    stores VALUE, or stdin when VALUE is - or absent (content type
       application/octet-stream unless --content-type), for --ttl-ms ms if given.
get    writes the value's bytes to stdout; --local reads the node's own replica
       (maybe stale) instead of a linearizable read.
del    removes the key.
       --url is the node to ask (default http://127.0.0.1:7070), --cache the
       cache (default "default"), --region a region of it.
backup   writes every partition's content, each read by its leader at a
         committed index, to FILE (replaced only once the backup is complete),
         while the cluster keeps serving; it holds every write acknowledged
         before it began. --cluster is any member (default http://127.0.0.1:7070).
restore  checks FILE whole (every section's checksum) and only then loads it
         through the normal write path: caches with their settings, items with
         their expiry instants, tags, regions and content types (versions are
         renumbered; expired items are skipped). It refuses a cluster that
         holds items unless --overwrite (which writes over, and keeps keys the
         backup lacks).

Exit status: 0 done, 1 failed (not found, an error answer, unreachable node,
port in use, a corrupt backup, a refused restore), 2 bad command line.`;

const VERBS: Record<string, (argv: string[]) => Promise<number>> = { start, demo, put, get, del, backup, restore };

export async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  const flagsEnd = argv.indexOf('--');
  const beforeEnd = flagsEnd < 0 ? argv : argv.slice(0, flagsEnd);
  if (verb === 'help' || beforeEnd.includes('--help') || beforeEnd.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  try {
    if (verb === undefined) throw new UsageError('missing command: start, demo, put, get, del, backup or restore');
    const run = Object.hasOwn(VERBS, verb) ? VERBS[verb]! : undefined;
    if (!run) throw new UsageError(`unknown command "${verb}"`);
    return await run(rest);
  } catch (e) {
    const message = (e as Error).message.replace(/\s+/g, ' ');
    process.stderr.write(`velo: ${message}${e instanceof UsageError ? ' (see velo --help)' : ''}\n`);
    return e instanceof CliError ? e.exitCode : 1;
  }
}
