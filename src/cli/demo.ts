// `velo demo`: a local N-node in-memory cluster as child processes, in the
// foreground until SIGINT or SIGTERM.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CliError, intFlag, logLevelFlag, parseArgs } from './args.js';
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

async function isReady(m: Member): Promise<boolean> {
  try {
    return (await fetch(`http://${m.http}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200;
  } catch {
    return false;
  }
}

export async function demo(argv: string[]): Promise<number> {
  const { flags } = parseArgs(argv, { nodes: 'value', 'base-port': 'value', 'log-level': 'value' }, 0);
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
  const peers = layout.map((m) => `${m.id}=${m.raft}`).join(',');
  process.stdout.write(`velo demo: starting ${n} in-memory node(s)…\n`);
  const members: Member[] = layout.map((m) => {
    const proc = spawn(process.execPath, [MAIN, 'start', '--id', m.id, '--http', m.http, '--raft', m.raft, '--peers', peers, '--log-level', logLevel], {
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
        if (out.includes('serving http://')) served.add(m);
      });
    }
    void (async () => {
      // Each member serves once every peer answered; then each becomes ready once its partitions have leaders.
      const deadline = Date.now() + READY_WITHIN_MS;
      for (const m of members) {
        while (!stopping && !(served.has(m) && (await isReady(m)))) {
          if (Date.now() > deadline) return stopAll(new CliError(`${m.id} was not ready within ${READY_WITHIN_MS / 1000} s (http://${m.http}/readyz)`));
          await pause(100);
        }
      }
      if (stopping) return;
      up = true;
      const lines = members.map((m) => `  ${m.id}  http://${m.http}  raft ${m.raft}  pid ${m.proc.pid}`);
      const [first, second] = [members[0]!, members[1] ?? members[0]!];
      process.stdout.write(
        `velo demo: ${n} node(s) serving, every one answers any request\n${lines.join('\n')}\n` +
          `try:  curl -X PUT -H 'Content-Type: text/plain' --data-binary hello http://${first.http}/v1/caches/default/items/greeting\n` +
          `      curl http://${second.http}/v1/caches/default/items/greeting\n` +
          `Ctrl-C stops them all.\n`,
      );
    })();
  });
}
