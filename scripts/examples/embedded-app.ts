// An application with a Velo node inside it: its notes live in the cluster
// the embedded node belongs to, read and written through the node's own
// client, with no HTTP hop to the cache. Several copies of it (and
// stand-alone `velo start` nodes) form one cluster with the same --peers:
//
//   P=n1=127.0.0.1:7101,n2=127.0.0.1:7102,n3=127.0.0.1:7103
//   node dist/scripts/examples/embedded-app.js --id n1 --raft 127.0.0.1:7101 --peers $P --app-port 8081 &
//   node dist/scripts/examples/embedded-app.js --id n2 --raft 127.0.0.1:7102 --peers $P --app-port 8082 &
//   npx velo start --id n3 --http 127.0.0.1:7003 --raft 127.0.0.1:7103 --peers $P &
//   curl -X PUT --data 'buy milk' http://127.0.0.1:8081/notes/todo
//   curl http://127.0.0.1:8082/notes/todo
//
// Flags: --app-port N (default 8080) and --app-host H (default 127.0.0.1)
// for the app's own API; the node takes the flags of `velo start` (--id,
// --raft, --peers, --http to serve the Velo API as well, --partitions,
// --replicas, --data-dir, --log-level, ...). It prints one line once it
// serves: "app <id> listening on http://…".

import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { startNode, VeloClientError } from '../../src/index.js';
import type { StartNodeOptions } from '../../src/index.js';

/** Notes are short texts: larger bodies are refused before they are read whole. */
const MAX_NOTE_BYTES = 64 * 1024;

/** One line on stderr; exit 2 for a bad command line, 1 for anything else (as velo start). */
function fail(message: string, exitCode = 2): never {
  process.stderr.write(`embedded-app: ${message}\n`);
  process.exit(exitCode);
}

const args = (() => {
  try {
    return parseArgs({
      options: {
        'app-port': { type: 'string', default: '8080' },
        'app-host': { type: 'string', default: '127.0.0.1' },
        id: { type: 'string' },
        http: { type: 'string' },
        raft: { type: 'string' },
        peers: { type: 'string' },
        partitions: { type: 'string' },
        replicas: { type: 'string' },
        'max-value-bytes': { type: 'string' },
        'request-timeout-ms': { type: 'string' },
        'snapshot-entries': { type: 'string' },
        'snapshot-bytes': { type: 'string' },
        'cluster-id': { type: 'string' },
        'log-level': { type: 'string' },
        'data-dir': { type: 'string' },
      },
      strict: true,
    });
  } catch (e) {
    fail((e as Error).message);
  }
})();
const values = args.values;

function int(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  // startNode checks the range with velo start's message; here only that it is a number.
  if (!/^[0-9]+$/.test(raw)) fail(`--${flag} must be an integer, got "${raw}"`);
  return Number(raw);
}

const appPort = int('app-port', values['app-port'])!;
if (appPort > 65535) fail(`--app-port must be at most 65535, got ${appPort}`);

const options: StartNodeOptions = {
  id: values.id,
  http: values.http,
  raft: values.raft,
  peers: values.peers,
  partitions: int('partitions', values.partitions),
  replicas: int('replicas', values.replicas),
  maxValueBytes: int('max-value-bytes', values['max-value-bytes']),
  requestTimeoutMs: int('request-timeout-ms', values['request-timeout-ms']),
  snapshotEntries: int('snapshot-entries', values['snapshot-entries']),
  snapshotBytes: int('snapshot-bytes', values['snapshot-bytes']),
  clusterId: values['cluster-id'],
  logLevel: values['log-level'] as StartNodeOptions['logLevel'],
  dataDir: values['data-dir'],
};

let embedded: Awaited<ReturnType<typeof startNode>>;
try {
  embedded = await startNode(options);
} catch (e) {
  fail((e as Error).message, (e as { exitCode?: number }).exitCode ?? 1);
}
const notes = embedded.client.cache('default');

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type });
  res.end(body);
}

function sendError(res: ServerResponse, e: unknown): void {
  // The cache's typed errors keep their meaning for the app's callers; an indeterminate write is a 503 to retry.
  if (e instanceof VeloClientError) return send(res, e.status ?? 503, JSON.stringify({ error: { code: e.code, message: e.message } }), 'application/json');
  send(res, 500, JSON.stringify({ error: { code: 'internal', message: (e as Error).message } }), 'application/json');
}

async function readText(req: IncomingMessage): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    // Read to the end all the same, so that the answer reaches the caller.
    if (size <= MAX_NOTE_BYTES) chunks.push(chunk);
  }
  return size > MAX_NOTE_BYTES ? null : Buffer.concat(chunks).toString('utf8');
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const m = /^\/notes\/([^/?]+)$/.exec(req.url ?? '');
  if (!m) return send(res, 404, 'routes: PUT /notes/:key (the note as the body), GET /notes/:key\n');
  let key: string;
  try {
    key = decodeURIComponent(m[1]!);
  } catch {
    return send(res, 400, 'the key is not valid percent-encoding\n');
  }
  if (req.method === 'PUT') {
    const text = await readText(req);
    if (text === null) return send(res, 413, `a note is at most ${MAX_NOTE_BYTES} bytes\n`);
    const { version, created } = await notes.put(key, text);
    return send(res, created ? 201 : 200, JSON.stringify({ key, version, created }), 'application/json');
  }
  if (req.method === 'GET') {
    const text = await notes.get<string>(key);
    if (text === undefined) return send(res, 404, `no note "${key}"\n`);
    return send(res, 200, text);
  }
  res.setHeader('allow', 'GET, PUT');
  send(res, 405, 'notes take GET and PUT\n');
}

const server = createServer((req, res) => {
  handle(req, res).catch((e: unknown) => sendError(res, e));
});
await new Promise<void>((resolve) => {
  server.once('error', (e: NodeJS.ErrnoException) => {
    const why = e.code === 'EADDRINUSE' ? `${values['app-host']}:${appPort} is already in use (--app-port)` : `cannot listen on ${values['app-host']}:${appPort}: ${e.message}`;
    void embedded.close().finally(() => fail(why, 1));
  });
  server.listen(appPort, values['app-host'], resolve);
});
const where = `http://${values['app-host']}:${(server.address() as { port: number }).port}`;
process.stdout.write(`app ${embedded.id} listening on ${where} (embedded node ${embedded.id}, raft ${embedded.raftAddress}${embedded.httpAddress ? `, Velo API http://${embedded.httpAddress}` : ''})\n`);

const stop = () => {
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  server.close();
  server.closeAllConnections();
  embedded.close().then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`embedded-app: stopping: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
