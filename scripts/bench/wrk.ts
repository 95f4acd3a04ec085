// One figure = one load with wrk, spread over a system's nodes as a load
// balancer would, merged into one throughput and one latency distribution.
//
// A wrk process sends to one address, so a figure runs one single-threaded wrk
// per node at the same time, with the connections split between them (64 →
// 22 + 21 + 21); three one-thread processes cost the machine what one thread
// doing all the work would. With fewer connections than nodes, the figure
// runs in phases instead, all the connections on one node at a time, the
// duration split between the nodes. The results are merged exactly: requests
// are summed, and each process's latency distribution (its quantiles on a
// fine grid, see QUANTILE_GRID) is weighted by its request count.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { QUANTILE_GRID, wrkScript } from './lua.js';
import type { Protocol, Workload } from './lua.js';
import { spawnTracked } from './procs.js';

export interface FigureSpec {
  protocol: Protocol;
  workload: Workload;
  /** host:port of each node the load goes to (the ceiling's one address three times). */
  targets: string[];
  connections: number;
  valueBytes: number;
  seconds: number;
  keys: number;
  readPercent: number;
  /** Where the generated scripts are written. */
  scriptDir: string;
  /** How wrk connects: https for velo-secure (wrk does not verify the certificate; the prefill did). Default http. */
  scheme?: 'http' | 'https';
  /** A bearer token for every request (see lua.ts). */
  token?: string;
}

export interface Errors {
  connect: number;
  read: number;
  write: number;
  /** Answers with a status of 400 or more (wrk's count). */
  status: number;
  timeout: number;
}

export interface Figure {
  /** Successful operations per second: answers below 400; for compare-and-set, conditional writes that succeeded. */
  opsPerSec: number;
  /** Every answer per second, failed ones included. */
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  seconds: number;
  errors: Errors;
  /** Compare-and-set only: conditional writes that succeeded, lost a race (412, or etcd's compare failed), or failed otherwise. */
  cas?: { ok: number; conflict: number; other: number };
}

/** What one wrk process's done() prints (see lua.ts). */
interface WrkOutput {
  requests: number;
  durationUs: number;
  bytes: number;
  errors: Errors;
  cas: { ok: number; conflict: number; other: number };
  quantilesUs: number[];
}

const TIMEOUT_S = 5;

function runWrk(script: string, scheme: 'http' | 'https', target: string, connections: number, seconds: number): Promise<WrkOutput> {
  // The URL's scheme is what makes wrk speak TLS; the requests themselves come from the script.
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, `--timeout`, `${TIMEOUT_S}s`, '-s', script, `${scheme}://${target}/`];
  const proc = spawnTracked('wrk', args);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise((resolve, reject) => {
    proc.once('error', reject);
    // 'close', not 'exit': the output may still be arriving when the process exits.
    proc.once('close', (code, signal) => {
      const line = out.split('\n').find((l) => l.startsWith('@@BENCH '));
      if (code !== 0 || !line) {
        reject(new Error(`wrk ${args.join(' ')} ended with ${code ?? signal}: ${(err || out).trim().slice(0, 500)}`));
        return;
      }
      resolve(JSON.parse(line.slice('@@BENCH '.length)) as WrkOutput);
    });
  });
}

/** `total` split into `parts` integers that differ by at most one, larger first. */
export function split(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

/**
 * The `percent` quantile of several processes' latency distributions, each
 * given as its quantiles on QUANTILE_GRID: quantile k of a process of n
 * requests stands for the n × (q_k − q_{k−1}) / 100 requests between them.
 */
export function mergedQuantile(outputs: readonly { requests: number; quantilesUs: readonly number[] }[], percent: number): number {
  const points: { us: number; weight: number }[] = [];
  for (const o of outputs) {
    let previous = 0;
    QUANTILE_GRID.forEach((q, k) => {
      points.push({ us: o.quantilesUs[k] ?? 0, weight: (o.requests * (q - previous)) / 100 });
      previous = q;
    });
  }
  points.sort((a, b) => a.us - b.us);
  const total = points.reduce((s, p) => s + p.weight, 0);
  if (total === 0) return 0;
  let seen = 0;
  for (const p of points) {
    seen += p.weight;
    if (seen >= (total * percent) / 100 - 1e-9) return p.us;
  }
  return points[points.length - 1]!.us;
}

let scriptSerial = 0;

/** Runs one figure and merges what its wrk processes measured. */
export async function runFigure(spec: FigureSpec): Promise<Figure> {
  const nodes = spec.targets.length;
  // Concurrent processes, one per node; or, with fewer connections than nodes, one node per phase.
  const phases: { target: string; connections: number; seconds: number }[][] =
    spec.connections >= nodes
      ? [split(spec.connections, nodes).map((c, i) => ({ target: spec.targets[i]!, connections: c, seconds: spec.seconds }))]
      : split(spec.seconds, nodes).map((s, i) => [{ target: spec.targets[i]!, connections: spec.connections, seconds: Math.max(1, s) }]);

  const outputs: WrkOutput[] = [];
  let elapsedUs = 0;
  for (const phase of phases) {
    // Every process of the phase has ended before a failure is reported, so
    // none of them sends into whatever is measured next.
    const settled = await Promise.allSettled(
      phase.map((p) => {
        const script = join(spec.scriptDir, `figure-${++scriptSerial}.lua`);
        const seed = 1 + scriptSerial * 7919;
        writeFileSync(script, wrkScript({ ...spec, host: p.target, seed }));
        return runWrk(script, spec.scheme ?? 'http', p.target, p.connections, p.seconds);
      }),
    );
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const results = settled.map((r) => (r as PromiseFulfilledResult<WrkOutput>).value);
    outputs.push(...results);
    elapsedUs += Math.max(...results.map((r) => r.durationUs));
  }

  const sum = (f: (o: WrkOutput) => number) => outputs.reduce((s, o) => s + f(o), 0);
  const seconds = elapsedUs / 1e6;
  const requests = sum((o) => o.requests);
  const errors: Errors = {
    connect: sum((o) => o.errors.connect),
    read: sum((o) => o.errors.read),
    write: sum((o) => o.errors.write),
    status: sum((o) => o.errors.status),
    timeout: sum((o) => o.errors.timeout),
  };
  const figure: Figure = {
    opsPerSec: (requests - errors.status) / seconds,
    requestsPerSec: requests / seconds,
    p50Ms: mergedQuantile(outputs, 50) / 1000,
    p99Ms: mergedQuantile(outputs, 99) / 1000,
    requests,
    seconds,
    errors,
  };
  if (spec.workload === 'cas') {
    figure.cas = { ok: sum((o) => o.cas.ok), conflict: sum((o) => o.cas.conflict), other: sum((o) => o.cas.other) };
    figure.opsPerSec = figure.cas.ok / seconds;
  }
  return figure;
}

/** "12 non-2xx, 3 timeouts" — everything that went wrong in a figure, or "" when nothing did. */
export function describeErrors(f: Figure): string {
  const parts: string[] = [];
  const e = f.errors;
  // In compare-and-set, a 412 is a lost race, counted apart; other statuses are errors.
  const status = f.cas ? f.cas.other : e.status;
  if (status) parts.push(`${status} error answers`);
  if (e.timeout) parts.push(`${e.timeout} timeouts`);
  if (e.connect) parts.push(`${e.connect} connect errors`);
  if (e.read) parts.push(`${e.read} read errors`);
  if (e.write) parts.push(`${e.write} write errors`);
  return parts.join(', ');
}
