// Embedded mode: a Velo node inside the application's process. It takes the
// options of `velo start` (checked by the same rules, with the same
// messages: they are turned into its command line), joins a cluster of
// embedded and stand-alone nodes alike over the raft transport, and hands
// the application a VeloClient that calls the node directly. It may also
// serve the HTTP API, for other clients and for stand-alone tools.

import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { buildServer } from '../api/server.js';
import { UsageError } from './cli/args.js';
import type { LogLevel } from './cli/args.js';
import { advertisedHttpOf, checkFree, exposureOf, listenError, nodeOptions, parseStartFlags } from './cli/start.js';
import { browserGuardApplies, checkProtectedMode } from './cli/protected-mode.js';
import { readCa, serverTlsOf } from './cli/trust.js';
import type { StartFlags } from './cli/start.js';
import { VeloClient } from './client/client.js';
import type { VeloClientOptions } from './client/client.js';
import { LocalBackend } from './client/local-backend.js';
import { VeloNode, splitHostPort } from './node/velo-node.js';

/** The options of `velo start`, as values: the same names in camelCase, the same defaults and limits. */
export interface NodeStartOptions {
  /** Default "n1". */
  id?: string;
  /** host:port of the node's HTTP API. Default 127.0.0.1:7070, served only when given or `serveHttp` is true. */
  http?: string;
  /** host:port of the raft transport. Default: this node's entry in `peers`, else 127.0.0.1:7170. */
  raft?: string;
  /** Every bootstrap member's raft address, this node's included: a Map, a Record, or the CLI's "n1=host:port,n2=…". */
  peers?: Map<string, string> | Record<string, string> | string;
  partitions?: number;
  replicas?: number;
  maxValueBytes?: number;
  requestTimeoutMs?: number;
  snapshotEntries?: number;
  snapshotBytes?: number;
  clusterId?: string;
  /** With no `logger`: log at this level to stderr, as `velo start` does. With one: the level of its child. */
  logLevel?: LogLevel;
  /** Keep the raft log and snapshots in LevelDB here; absent or null: memory only. */
  dataDir?: string | null;
  /** As --admin-token-file: the served HTTP API demands tokens (the in-process client needs none). */
  adminTokenFile?: string;
  /** Serve the HTTP API over HTTPS with this certificate and key (PEM files). */
  tlsCert?: string;
  tlsKey?: string;
  /** PEM file of the CA this node trusts when it calls another member's HTTPS API. */
  ca?: string;
  /** The addresses others are told (needed when listening on 0.0.0.0 or ::). */
  advertiseHttp?: string;
  advertiseRaft?: string;
  /** Start even where protected mode refuses; warned about at every start. */
  insecure?: boolean;
}

export interface StartNodeOptions extends NodeStartOptions, Pick<VeloClientOptions, 'serializer' | 'nearCache' | 'consistency' | 'timeoutMs'> {
  /** Serve the HTTP API on `http` too. Default: true when `http` is given. */
  serveHttp?: boolean;
  /** Where the node (and its HTTP API) log. Default: silent, unless `logLevel` is given. */
  logger?: Logger;
}

export interface EmbeddedNode {
  id: string;
  /** Calls this node directly; the node forwards what other members lead. */
  client: VeloClient;
  /** Where the HTTP API listens ("host:port"); null when it is not served. */
  httpAddress: string | null;
  raftAddress: string;
  /** Stops the HTTP API, the client and the node; once. */
  close(): Promise<void>;
}

/** Option name → `velo start` flag. */
const FLAGS: Record<keyof NodeStartOptions, string> = {
  id: 'id',
  http: 'http',
  raft: 'raft',
  peers: 'peers',
  partitions: 'partitions',
  replicas: 'replicas',
  maxValueBytes: 'max-value-bytes',
  requestTimeoutMs: 'request-timeout-ms',
  snapshotEntries: 'snapshot-entries',
  snapshotBytes: 'snapshot-bytes',
  clusterId: 'cluster-id',
  logLevel: 'log-level',
  dataDir: 'data-dir',
  adminTokenFile: 'admin-token-file',
  tlsCert: 'tls-cert',
  tlsKey: 'tls-key',
  ca: 'ca',
  advertiseHttp: 'advertise-http',
  advertiseRaft: 'advertise-raft',
  insecure: 'insecure',
};
/** Options that are switches of `velo start`: true gives the flag, false leaves it out. */
const SWITCHES = new Set(['insecure']);
const NUMERIC = new Set(['partitions', 'replicas', 'maxValueBytes', 'requestTimeoutMs', 'snapshotEntries', 'snapshotBytes']);
const OTHER_OPTIONS = new Set(['serveHttp', 'logger', 'serializer', 'nearCache', 'consistency', 'timeoutMs']);
const CLIENT_OPTIONS = ['serializer', 'nearCache', 'consistency', 'timeoutMs'] as const;

function peersArg(peers: unknown): string {
  if (typeof peers === 'string') return peers;
  let entries: [unknown, unknown][];
  if (peers instanceof Map) entries = [...peers];
  else if (typeof peers === 'object' && peers !== null && !Array.isArray(peers)) entries = Object.entries(peers);
  else throw new UsageError('peers must be a Map or a Record of id → "host:port", or "n1=host:port,n2=…"');
  if (entries.length === 0) throw new UsageError('peers must list at least this node');
  return entries
    .map(([id, addr]) => {
      const entry = `${String(id)}=${String(addr)}`;
      // A comma would split one entry into two on the command line.
      if (typeof id !== 'string' || typeof addr !== 'string' || entry.includes(',')) throw new UsageError(`--peers entries are ID=HOST:PORT, got "${entry}"`);
      return entry;
    })
    .join(',');
}

/**
 * The node's settings from startNode's options, by `velo start`'s own
 * parser: one set of rules and messages for both.
 */
export function startFlagsOf(options: StartNodeOptions): { flags: StartFlags; serveHttp: boolean } {
  if (typeof options !== 'object' || options === null) throw new UsageError('startNode needs an options object');
  const argv: string[] = [];
  for (const [option, value] of Object.entries(options)) {
    if (value === undefined) continue;
    const flag: string | undefined = (FLAGS as Record<string, string>)[option];
    if (flag === undefined) {
      if (OTHER_OPTIONS.has(option)) continue;
      throw new UsageError(`unknown option "${option}"`);
    }
    if (option === 'dataDir' && value === null) continue;
    if (SWITCHES.has(option)) {
      if (typeof value !== 'boolean') throw new UsageError(`${option} (--${flag}) must be a boolean, got ${typeof value}`);
      if (value) argv.push(`--${flag}`);
      continue;
    }
    let text: string;
    if (option === 'peers') text = peersArg(value);
    else if (NUMERIC.has(option) ? typeof value === 'number' : typeof value === 'string') text = String(value);
    else throw new UsageError(`${option} (--${flag}) must be a ${NUMERIC.has(option) ? 'number' : 'string'}, got ${typeof value}`);
    // "--flag=value": a value may start with "--" without being taken for a flag.
    argv.push(`--${flag}=${text}`);
  }
  if (options.serveHttp !== undefined && typeof options.serveHttp !== 'boolean') throw new UsageError(`serveHttp must be a boolean, got ${typeof options.serveHttp}`);
  return { flags: parseStartFlags(argv), serveHttp: options.serveHttp ?? options.http !== undefined };
}

function withPort(addr: string, port: number): string {
  const [host] = splitHostPort(addr);
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Starts a node in this process and resolves once it takes part in its
 * cluster (as `velo start`, it first hears from every peer: start the
 * members together). Fails with one clear message on a bad option or a port
 * in use. A node whose data directory fails under it ends the process, as
 * a stand-alone node does: it cannot go on safely.
 */
export async function startNode(options: StartNodeOptions = {}): Promise<EmbeddedNode> {
  const { flags, serveHttp } = startFlagsOf(options);
  const exposure = exposureOf(flags, serveHttp);
  const warnings = checkProtectedMode(exposure);
  const tls = serveHttp ? serverTlsOf(flags.tlsCertFile, flags.tlsKeyFile) : undefined;
  const ca = readCa(flags.caFile);
  if (serveHttp) await checkFree(flags.http, '--http');
  await checkFree(flags.raft, '--raft');
  const logger = options.logger
    ? options.logger.child({ node: flags.id }, options.logLevel !== undefined ? { level: flags.logLevel } : {})
    : options.logLevel !== undefined
      ? pino({ level: flags.logLevel, base: { node: flags.id } }, pino.destination(2))
      : pino({ level: 'silent' });
  // A silent node still says that it runs unprotected.
  for (const w of warnings) options.logger || options.logLevel !== undefined ? logger.warn(w) : process.stderr.write(`velo ${flags.id}: ${w}\n`);
  let node: VeloNode;
  try {
    // Members learn each other's HTTP address from /cluster: none when it is not served.
    node = await VeloNode.start({ ...nodeOptions(flags, logger, serveHttp ? advertisedHttpOf(flags) : ''), ...(ca !== undefined ? { ca } : {}) });
  } catch (e) {
    // The raft port, taken between the check and the listen: the transport says so in its own words.
    if ((e as { code?: string }).code === 'listen_failed') {
      const message = (e as Error).message;
      throw listenError({ code: /already in use/.test(message) ? 'EADDRINUSE' : undefined, message }, flags.raft, '--raft');
    }
    throw e;
  }
  const raftAddress = splitHostPort(flags.raft)[1] === 0 ? withPort(flags.raft, node.raftPort) : flags.raft;

  let app: FastifyInstance | null = null;
  let httpAddress: string | null = null;
  let client: VeloClient;
  try {
    if (serveHttp) {
      app = await buildServer({ service: node, maxValueBytes: flags.maxValueBytes, logger, ...(tls ? { tls } : {}), browserGuard: browserGuardApplies(exposure) });
      const [host, port] = splitHostPort(flags.http);
      try {
        await app.listen({ host, port });
      } catch (e) {
        throw listenError(e, flags.http, '--http');
      }
      httpAddress = port === 0 ? withPort(flags.http, (app.server.address() as AddressInfo).port) : flags.http;
    }
    const clientOptions: Partial<VeloClientOptions> = {};
    for (const k of CLIENT_OPTIONS) if (options[k] !== undefined) (clientOptions as Record<string, unknown>)[k] = options[k];
    const backend = new LocalBackend(node, { maxValueBytes: flags.maxValueBytes, ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) });
    client = new VeloClient({ ...clientOptions, backend });
  } catch (e) {
    await app?.close().catch(() => {});
    await node.close();
    throw e;
  }

  let closing: Promise<void> | null = null;
  return {
    id: flags.id,
    client,
    httpAddress,
    raftAddress,
    close() {
      // Each part is stopped even if the one before failed; the first failure is reported.
      closing ??= (async () => {
        const results = await Promise.allSettled([app ? app.close() : Promise.resolve(), client.close()]);
        await node.close();
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
      })();
      return closing;
    },
  };
}
