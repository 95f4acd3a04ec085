// `velo demo`: a local N-node in-memory cluster as child processes, in the
// foreground until SIGINT or SIGTERM. With --secure, as the README's
// "Running it securely" sets one up: certificates from `velo certs`, mutual
// TLS between the nodes, HTTPS, and an admin token in a file.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchTrusting, type Fetch } from '../https/trust.js';
import { CliError, UsageError, intFlag, logLevelFlag, parseArgs } from './args.js';
import { certFiles, writeCertificates } from './certs.js';
import { checkFree } from './start.js';

const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));
const READY_WITHIN_MS = 60_000;
const STOP_WITHIN_MS = 5_000;

interface Member {
  id: string;
  http: string;
  raft: string;
  proc: ChildProcess;
  exited: Promise<void>;
}

function exitText(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `killed by ${signal}` : `exited with code ${code}`;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function isReady(m: Member, base: string, fetch: Fetch): Promise<boolean> {
  try {
    return (await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200;
  } catch {
    return false;
  }
}

/** A secure demo's files: the CA, each node's certificate and key, and the admin token (written by the nodes). */
interface Secrets {
  dir: string;
  ca: string;
  tokenFile: string;
  args(id: string): string[];
}

async function secrets(dir: string, ids: string[]): Promise<Secrets> {
  await writeCertificates(dir, ids, ['127.0.0.1', 'localhost'], []);
  const ca = join(dir, certFiles.caCert);
  const tokenFile = join(dir, 'admin.token');
  return {
    dir,
    ca,
    tokenFile,
    args: (id) => {
      const [cert, key] = [join(dir, certFiles.nodeCert(id)), join(dir, certFiles.nodeKey(id))];
      return ['--peer-ca', ca, '--peer-cert', cert, '--peer-key', key, '--tls-cert', cert, '--tls-key', key, '--ca', ca, '--admin-token-file', tokenFile];
    },
  };
}

export async function demo(argv: string[]): Promise<number> {
  const { flags } = parseArgs(argv, { nodes: 'value', 'base-port': 'value', 'log-level': 'value', secure: 'switch', dir: 'value' }, 0);
  if (flags.has('dir') && !flags.has('secure')) throw new UsageError('--dir is where --secure keeps its certificates and token: give --secure too');
  const n = intFlag(flags, 'nodes', 3, 1, 9);
  const base = intFlag(flags, 'base-port', 7001, 1, 65535 - 100 - 8);
  const logLevel = logLevelFlag(flags, 'warn');
  const layout = Array.from({ length: n }, (_, i) => ({ id: `n${i + 1}`, http: `127.0.0.1:${base + i}`, raft: `127.0.0.1:${base + 100 + i}` }));
  for (const m of layout) {
    for (const [addr, what] of [[m.http, `${m.id} http`], [m.raft, `${m.id} raft`]] as const) {
      await checkFree(addr, what).catch((e: Error) => {
        throw new CliError(`${e.message}; choose another --base-port`);
      });
    }
  }
  const secure = flags.has('secure') ? await secrets(flags.get('dir') ?? mkdtempSync(join(tmpdir(), 'velo-demo-')), layout.map((m) => m.id)) : null;
  const scheme = secure ? 'https' : 'http';
  const fetch = fetchTrusting(secure ? readFileSync(secure.ca, 'utf8') : undefined);
  const peers = layout.map((m) => `${m.id}=${m.raft}`).join(',');
  process.stdout.write(`velo demo: starting ${n} in-memory node(s)${secure ? ` with TLS and tokens (certificates in ${secure.dir})` : ''}…\n`);
  const members: Member[] = layout.map((m) => {
    const proc = spawn(process.execPath, [MAIN, 'start', '--id', m.id, '--http', m.http, '--raft', m.raft, '--peers', peers, '--log-level', logLevel, ...(secure?.args(m.id) ?? [])], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    return { ...m, proc, exited: new Promise<void>((r) => proc.once('exit', () => r())) };
  });

  return new Promise<number>((resolve, reject) => {
    let stopping = false;
    const stopAll = async (failure?: CliError) => {
      if (stopping) return;
      stopping = true;
      for (const m of members) if (m.proc.exitCode === null && m.proc.signalCode === null) m.proc.kill('SIGTERM');
      const all = Promise.all(members.map((m) => m.exited));
      if ((await Promise.race([all.then(() => true), pause(STOP_WITHIN_MS).then(() => false)])) === false) {
        for (const m of members) m.proc.kill('SIGKILL');
        await all;
      }
      if (failure) reject(failure);
      else resolve(0);
    };
    const onSignal = () => void stopAll();
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    let up = false;
    const served = new Set<Member>();
    for (const m of members) {
      m.proc.once('exit', (code, signal) => {
        if (!stopping) void stopAll(new CliError(`${m.id} ${exitText(code, signal)}${up ? '' : ' before the cluster was ready'}; stopped the others`));
      });
      let out = '';
      m.proc.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes(`serving ${scheme}://`)) served.add(m);
      });
    }
    void (async () => {
      // Each member serves once every peer answered; then each becomes ready once its partitions have leaders.
      const deadline = Date.now() + READY_WITHIN_MS;
      for (const m of members) {
        while (!stopping && !(served.has(m) && (await isReady(m, `${scheme}://${m.http}`, fetch)))) {
          if (Date.now() > deadline) return stopAll(new CliError(`${m.id} was not ready within ${READY_WITHIN_MS / 1000} s (${scheme}://${m.http}/readyz)`));
          await pause(100);
        }
      }
      if (stopping) return;
      up = true;
      const lines = members.map((m) => `  ${m.id}  ${scheme}://${m.http}  raft ${m.raft}  pid ${m.proc.pid}`);
      const [first, second] = [members[0]!, members[1] ?? members[0]!];
      const curl = secure ? `curl --cacert ${secure.ca} -H "Authorization: Bearer $(cat ${secure.tokenFile})"` : 'curl';
      process.stdout.write(
        `velo demo: ${n} node(s) serving, every one answers any request\n${lines.join('\n')}\n` +
          (secure ? `the admin token is in ${secure.tokenFile}; the CA that signed the nodes is ${secure.ca}\n` : '') +
          `try:  ${curl} -X PUT -H 'Content-Type: text/plain' --data-binary hello ${scheme}://${first.http}/v1/caches/default/items/greeting\n` +
          `      ${curl} ${scheme}://${second.http}/v1/caches/default/items/greeting\n` +
          (secure ? `      VELO_CA=${secure.ca} VELO_TOKEN=$(cat ${secure.tokenFile}) velo get greeting --url ${scheme}://${second.http}\n` : '') +
          `Ctrl-C stops them all.\n`,
      );
    })();
  });
}
