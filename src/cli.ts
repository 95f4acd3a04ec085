// The `velo` command. `velo start` with no flags runs a single in-memory node
// on 127.0.0.1:7070 (API.md "Starting a node").

import { pino } from 'pino';
import { buildServer, DEFAULT_MAX_VALUE_BYTES } from '../api/server.js';
import { VeloNode, splitHostPort } from './node/velo-node.js';

const USAGE = `usage:
  velo start [--id ID] [--http HOST:PORT] [--raft HOST:PORT]
             [--peers ID=HOST:PORT,...] [--partitions N] [--replicas N]
             [--max-value-bytes N] [--request-timeout-ms N] [--cluster-id NAME]

With no flags: a single in-memory node "n1", HTTP on 127.0.0.1:7070.`;

export class UsageError extends Error {}

export interface StartFlags {
  id: string;
  http: string;
  raft: string;
  peers: Map<string, string>;
  partitions: number;
  replicas: number;
  maxValueBytes: number;
  requestTimeoutMs: number;
  clusterId: string;
}

const FLAGS = ['id', 'http', 'raft', 'peers', 'partitions', 'replicas', 'max-value-bytes', 'request-timeout-ms', 'cluster-id', 'data-dir', 'join'];

export function parseStartFlags(argv: string[]): StartFlags {
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m || !FLAGS.includes(m[1]!)) throw new UsageError(`unknown argument "${a}"`);
    const value = m[2] ?? argv[++i];
    if (value === undefined || value.startsWith('--')) throw new UsageError(`--${m[1]} needs a value`);
    if (given.has(m[1]!)) throw new UsageError(`--${m[1]} given twice`);
    given.set(m[1]!, value);
  }
  if (given.has('data-dir')) throw new UsageError('--data-dir (LevelDB persistence) is not available yet: this build keeps everything in memory');
  if (given.has('join')) throw new UsageError('--join is not available yet: start every member with the same --peers');
  const int = (name: string, dflt: number, min: number, max: number): number => {
    const raw = given.get(name);
    if (raw === undefined) return dflt;
    if (!/^[0-9]+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${raw}"`);
    return Number(raw);
  };
  const id = given.get('id') ?? 'n1';
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) throw new UsageError(`--id must be 1–64 of A–Z a–z 0–9 . _ -, got "${id}"`);
  const http = given.get('http') ?? '127.0.0.1:7070';
  const raft = given.get('raft') ?? '127.0.0.1:7170';
  for (const [flag, addr] of [['http', http], ['raft', raft]] as const) {
    try {
      splitHostPort(addr);
    } catch (e) {
      throw new UsageError(`--${flag}: ${(e as Error).message}`);
    }
  }
  const peers = new Map<string, string>();
  if (given.has('peers')) {
    for (const part of given.get('peers')!.split(',')) {
      const m = /^([A-Za-z0-9._-]{1,64})=(.+)$/.exec(part.trim());
      if (!m) throw new UsageError(`--peers entries are ID=HOST:PORT, got "${part}"`);
      try {
        splitHostPort(m[2]!);
      } catch (e) {
        throw new UsageError(`--peers ${m[1]}: ${(e as Error).message}`);
      }
      if (peers.has(m[1]!)) throw new UsageError(`--peers names ${m[1]} twice`);
      peers.set(m[1]!, m[2]!);
    }
    if (!peers.has(id)) throw new UsageError(`--peers must include this node (${id})`);
  } else {
    peers.set(id, raft);
  }
  return {
    id,
    http,
    raft: peers.get(id) === raft || given.has('raft') ? raft : peers.get(id)!,
    peers,
    partitions: int('partitions', 16, 1, 4096),
    replicas: int('replicas', 3, 1, 9),
    maxValueBytes: int('max-value-bytes', DEFAULT_MAX_VALUE_BYTES, 1, 64 << 20),
    requestTimeoutMs: int('request-timeout-ms', 5000, 10, 600_000),
    clusterId: given.get('cluster-id') ?? 'velo',
  };
}

async function start(flags: StartFlags): Promise<void> {
  const logger = pino({ level: 'info', base: { node: flags.id } });
  const node = await VeloNode.start({
    id: flags.id,
    http: flags.http,
    raft: flags.raft,
    peers: flags.peers,
    partitions: flags.partitions,
    replicas: flags.replicas,
    requestTimeoutMs: flags.requestTimeoutMs,
    clusterId: flags.clusterId,
    logger,
  });
  const app = await buildServer({ service: node, maxValueBytes: flags.maxValueBytes, logger });
  const [host, port] = splitHostPort(flags.http);
  try {
    await app.listen({ host, port });
  } catch (e) {
    await node.close();
    throw e;
  }
  process.stdout.write(`velo ${flags.id} serving http://${flags.http} (raft ${flags.raft}, ${flags.peers.size} member(s), ${flags.partitions} partitions, in memory)\n`);
  const stop = async () => {
    await app.close();
    await node.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

export async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === '--help' || verb === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return verb === undefined ? 2 : 0;
  }
  if (verb !== 'start') {
    process.stderr.write(`velo: unknown command "${verb}"\n${USAGE}\n`);
    return 2;
  }
  try {
    await start(parseStartFlags(rest));
    return -1; // serving
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`velo: ${e.message}\n${USAGE}\n`);
      return 2;
    }
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE') process.stderr.write(`velo: address in use: ${err.message}\n`);
    else process.stderr.write(`velo: ${err.message}\n`);
    return 1;
  }
}
