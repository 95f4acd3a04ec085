// The `velo` command: dispatch to a verb, one line on stderr for any failure
// (exit 2 for a bad command line, 1 otherwise, or the CliError's own code).
// The verbs live in src/cli/.

import { CliError, UsageError } from './cli/args.js';
import { backup, restore } from './cli/backup.js';
import { del, get, put } from './cli/client.js';
import { demo } from './cli/demo.js';
import { certs } from './cli/certs.js';
import { start } from './cli/start.js';
import { removeNode, status } from './cli/status.js';
import { token } from './cli/token.js';

export { CliError, UsageError } from './cli/args.js';
export { parseStartFlags } from './cli/start.js';
export type { StartFlags } from './cli/start.js';

export const USAGE = `usage:
  velo start [--id ID] [--http HOST:PORT] [--raft HOST:PORT] [--peers ID=HOST:PORT,...]
             [--partitions N] [--replicas N] [--max-value-bytes N]
             [--request-timeout-ms N] [--cluster-id NAME] [--log-level LEVEL]
             [--data-dir DIR] [--snapshot-entries N] [--snapshot-bytes N]
             [--join URL] [--max-moves N] [--move-bytes-per-sec N] [--replace-after-ms N]
             [--on-removed exit|wait] [--max-memory BYTES]
             [--admin-token-file FILE] [--metrics-public]
             [--peer-ca FILE --peer-cert FILE --peer-key FILE]
             [--tls-cert FILE --tls-key FILE] [--ca FILE]
             [--advertise-http HOST:PORT] [--advertise-raft HOST:PORT] [--insecure]
  velo demo  [--nodes N] [--base-port P] [--log-level LEVEL] [--secure [--dir DIR]]
  velo certs --out DIR --nodes ID,... [--hosts H,...] [--clients NAME,...]
  velo put   KEY [VALUE|-] [--cache C] [--region R] [--ttl-ms N] [--content-type T] [--url URL]
  velo get   KEY [--cache C] [--region R] [--local] [--url URL]
  velo del   KEY [--cache C] [--region R] [--url URL]
  velo backup  --to FILE [--cluster URL]
  velo restore --from FILE [--cluster URL] [--overwrite]
  velo status  [--cluster URL] [--json]
  velo remove-node ID [--cluster URL] [--force] [--no-wait]
  velo token create NAME --role read|write|admin [--caches C,P*,...] [--out FILE] [--cluster URL]
  velo token list [--json] [--cluster URL]
  velo token revoke NAME [--cluster URL]
  Every verb but start and demo takes [--token-file FILE] (else VELO_TOKEN)
  and [--ca FILE] (else VELO_CA).

start  runs one node until Ctrl-C; with no flags a single in-memory node "n1",
       HTTP on 127.0.0.1:7070, raft on 127.0.0.1:7170. It prints one line when
       it serves; logs are JSON on stderr at LEVEL, one of
       fatal|error|warn|info|debug|trace|silent (default info).
       --join URL adds the node to the running cluster that URL (any member's
       HTTP) belongs to, which moves replicas onto it (a progress bar on
       stderr until balanced); not with --peers, --partitions or --replicas.
       --max-moves N: at most N partitions move at once, cluster-wide (default
       2, 1..64); --move-bytes-per-sec N: the snapshot bytes this node sends
       per second at most (default 16777216, at least 65536);
       --replace-after-ms N: a member unreachable this long is drained, its
       replicas re-created on the others (default 0: never).
       --on-removed: once the cluster has removed this node (or refuses it when
       it comes back), it answers every request 503 node_removed and, with
       exit (the default), stops with exit code 3; wait keeps it running.
       --max-memory BYTES (like 536870912, 512mb, 2gb): the item bytes this
       node's replicas may hold; a write that would pass it on any replica's
       node answers 507 node_full (a cache with eviction lru evicts instead).
       Default: half the machine's memory less 256 MiB, shown when it serves.
       --admin-token-file FILE: every route but /healthz and /readyz needs
       a token (Authorization: Bearer); FILE holds the cluster's first admin
       token, generated there (mode 0600) when missing, and is sent when the
       node joins with --join. --metrics-public: /metrics needs none.
       --peer-ca FILE --peer-cert FILE --peer-key FILE: mutual TLS 1.3 on the
       raft port; the certificate must name --id (velo certs makes them).
       --tls-cert/--tls-key: serve HTTPS (PEM files); /v1/cluster then
       advertises https://HOST:PORT. --ca: the CA this node trusts when it
       joins through an https:// URL (else the file VELO_CA names).
       Protected mode: an HTTP address off loopback needs --admin-token-file,
       a raft address off loopback needs --peer-ca/--peer-cert/--peer-key,
       and 0.0.0.0 or :: needs --advertise-http/--advertise-raft (what the
       others are told); otherwise exit 2. --insecure starts it anyway, with
       a warning at every start.
certs  makes a CA (ca.crt, ca.key) in DIR, or signs with the one there, and
       for each node ID.crt + ID.key (serverAuth and clientAuth, for the raft
       port and HTTPS; SANs: the node id and --hosts, default
       127.0.0.1,localhost), for each client client-NAME.crt + .key. Keys are
       written 0600; an existing file is never overwritten.
demo   runs N in-memory nodes (default 3, at most 9) as child processes: HTTP on
       127.0.0.1:P, P+1, ..., raft on P+100, P+101, ... (default P=7001, logs
       at warn), until Ctrl-C. --secure: as a secure cluster, with velo
       certs' certificates in DIR (default a new directory under the system's
       temporary one), mutual TLS between nodes, HTTPS, and an admin token
       in DIR/admin.token; it prints the paths and how to use them.
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
status   the members (HTTP address, up/down, active/draining/removed,
         replicas, leaderships), the partitions with a leader and moving, and
         "balanced" or the rebalance's progress; --json: the raw GET /v1/cluster.
remove-node  drains member ID: its replicas move to the others (one safe raft
         change at a time), then it leaves. Refused when fewer members than the
         replication factor would remain, unless --force. Waits with a progress
         bar (stderr) until ID is removed, unless --no-wait; Ctrl-C stops the
         waiting only (exit 130), the drain goes on.

token    create: a token of the role, limited to the caches given (names, or
         prefixes ending in *; default every cache); prints its secret, shown
         this once (or writes it to FILE, mode 0600, with --out). list: names,
         roles, caches, creation times (never secrets). revoke: on every
         member within a second. Each needs an admin token.
--token-file FILE (or the environment's VELO_TOKEN): the token sent, where
         the cluster demands tokens (velo start --admin-token-file).
--ca FILE (or the file the environment's VELO_CA names): the CA every verb
         trusts when it calls a node over https://, instead of the system's.

Exit status: 0 done, 1 failed (not found, an error answer, unreachable node,
port in use, a corrupt backup, a refused restore or removal), 2 bad command
line, 130 remove-node interrupted while waiting.`;

const VERBS: Record<string, (argv: string[]) => Promise<number>> = {
  start,
  demo,
  certs,
  put,
  get,
  del,
  backup,
  restore,
  status,
  'remove-node': removeNode,
  token,
};

export async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  const flagsEnd = argv.indexOf('--');
  const beforeEnd = flagsEnd < 0 ? argv : argv.slice(0, flagsEnd);
  if (verb === 'help' || beforeEnd.includes('--help') || beforeEnd.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  try {
    if (verb === undefined) throw new UsageError('missing command: start, demo, certs, put, get, del, backup, restore, status, remove-node or token');
    const run = Object.hasOwn(VERBS, verb) ? VERBS[verb]! : undefined;
    if (!run) throw new UsageError(`unknown command "${verb}"`);
    return await run(rest);
  } catch (e) {
    const message = (e as Error).message.replace(/\s+/g, ' ');
    process.stderr.write(`velo: ${message}${e instanceof UsageError ? ' (see velo --help)' : ''}\n`);
    return e instanceof CliError ? e.exitCode : 1;
  }
}
