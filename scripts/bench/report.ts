// results.md: the machine, the settings and the method, a summary, the
// targets of issue 7 with the measured ratios, one table per workload and per
// sweep, and the memory figure. Errors are shown beside the figure they hit.
import { DISTURBED_CORES, findFigure, HEADLINE_ONLY, WORKLOAD_LABELS, WORKLOADS } from './results.js';
import type { BenchResults, FigureRecord } from './results.js';
import type { Workload } from './lua.js';
import type { MemoryRow } from './memory.js';
import { SYSTEM_LABELS } from './systems.js';
import type { SystemName } from './systems.js';
import { describeErrors } from './wrk.js';
import type { Figure } from './wrk.js';

/** Velo's rows and the rows they are compared with. */
const ETCD_OF: Partial<Record<SystemName, SystemName>> = { 'velo-mem': 'etcd-tmpfs', 'velo-disk': 'etcd-disk' };
const VELO: readonly SystemName[] = ['velo-mem', 'velo-disk'];

export const CHART_FILES = {
  throughputVsConnections: 'throughput-vs-connections.svg',
  p99VsConnections: 'p99-vs-connections.svg',
  throughputVsValueSize: 'throughput-vs-value-size.svg',
  p99VsValueSize: 'p99-vs-value-size.svg',
} as const;

export function formatOps(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function formatMs(ms: number): string {
  if (ms === 0) return '0';
  if (ms < 1) return ms.toFixed(2);
  if (ms < 10) return ms.toFixed(1);
  return ms.toFixed(0);
}

export function formatBytes(n: number): string {
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}

const ratio = (x: number) => `${x.toFixed(2)} ×`;

function row(cells: (string | number)[]): string {
  return `| ${cells.join(' | ')} |`;
}

/** `align`: one letter per column, l or r; by default the first column left, the others right. */
function table(header: string[], rows: (string | number)[][], align?: string): string[] {
  const rule = header.map((_, i) => ((align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'r' ? '---:' : '---'));
  return [row(header), row(rule), ...rows.map(row)];
}

/** "12,345" or "12,345 ⚠" with the errors below the table. */
function opsCell(rec: FigureRecord | undefined): string {
  if (!rec) return '—';
  if (!rec.figure) return `failed`;
  return formatOps(rec.figure.opsPerSec) + (describeErrors(rec.figure) || disturbed(rec) ? ' ⚠' : '');
}

function fig(r: BenchResults, system: SystemName, workload: Workload, connections = r.settings.connections, valueBytes = r.settings.valueBytes): Figure | null {
  return findFigure(r, system, workload, connections, valueBytes)?.figure ?? null;
}

function opsRatio(a: Figure | null, b: Figure | null): string {
  return a && b && b.opsPerSec > 0 ? ratio(a.opsPerSec / b.opsPerSec) : '—';
}

/** The systems of the summary, workload and sweep tables: headline-only ones have their own section. */
function presentSystems(r: BenchResults): SystemName[] {
  return r.systems.filter((s) => !s.skipped && !HEADLINE_ONLY[s.name]).map((s) => s.name);
}

function disturbed(rec: FigureRecord): boolean {
  return (rec.foreignCores ?? 0) >= DISTURBED_CORES;
}

/** Every figure that failed, saw errors or was disturbed by other processes, as bullet lines. */
function problems(r: BenchResults, recs: (FigureRecord | undefined)[]): string[] {
  const out: string[] = [];
  for (const rec of recs) {
    if (!rec) continue;
    const where = `${SYSTEM_LABELS[rec.system]}, ${WORKLOAD_LABELS[rec.workload]}, ${rec.connections} connections, ${formatBytes(rec.valueBytes)}`;
    if (!rec.figure) out.push(`- ⚠ ${where}: failed: ${rec.error ?? 'unknown error'}`);
    else {
      const e = describeErrors(rec.figure);
      if (e) out.push(`- ⚠ ${where}: ${e} out of ${formatOps(rec.figure.requests)} requests`);
      if (disturbed(rec)) {
        out.push(`- ⚠ ${where}: other processes on the machine used ${Math.round(rec.foreignCores! * 100)} % of a core during it (the least disturbed of ${rec.attempts ?? 1} attempts)`);
      }
    }
  }
  return out.length > 0 ? ['', ...out] : [];
}

interface Target {
  what: string;
  /** The measured ratio, or null when a figure it needs is missing. */
  measured: number | null;
  /** The bound the ratio must meet. */
  bound: number;
  /** Whether the ratio must be at least (throughput) or at most (latency, memory) the bound. */
  atLeast: boolean;
  basis: string;
}

function memoryPerItem(row: MemoryRow | undefined): number | null {
  if (!row || 'skipped' in row) return null;
  return Math.max(...row.samples.map((s) => s.perItemBytes));
}

export function targets(r: BenchResults): Target[] {
  const c = r.settings.connections;
  const t = (what: string, a: number | null | undefined, b: number | null | undefined, bound: number, atLeast: boolean, basis: string): Target => ({
    what,
    measured: a != null && b != null && b > 0 ? a / b : null,
    bound,
    atLeast,
    basis,
  });
  const ops = (s: SystemName, w: Workload) => fig(r, s, w)?.opsPerSec;
  const p99 = (s: SystemName, w: Workload) => fig(r, s, w)?.p99Ms;
  const p50one = (s: SystemName) => fig(r, s, 'writes', 1)?.p50Ms;
  const mem = 'skipped' in r.memory ? null : r.memory;
  return [
    t('writes, 3 nodes in memory ≥ 3 × etcd (tmpfs)', ops('velo-mem', 'writes'), ops('etcd-tmpfs', 'writes'), 3, true, 'ops/s, Velo in memory / etcd on tmpfs'),
    t('writes, 3 nodes in memory ≥ 0.5 × the ceiling’s PUT', ops('velo-mem', 'writes'), ops('ceiling', 'writes'), 0.5, true, 'ops/s, Velo in memory / ceiling'),
    t('writes, 3 nodes with --data-dir ≥ 2 × etcd on disk', ops('velo-disk', 'writes'), ops('etcd-disk', 'writes'), 2, true, 'ops/s, Velo with --data-dir / etcd on disk'),
    t('strong reads ≥ 5 × etcd’s linearizable reads', ops('velo-mem', 'strong-reads'), ops('etcd-tmpfs', 'strong-reads'), 5, true, 'ops/s, Velo in memory / etcd on tmpfs'),
    t('strong reads ≥ 0.7 × the ceiling’s GET', ops('velo-mem', 'strong-reads'), ops('ceiling', 'strong-reads'), 0.7, true, 'ops/s, Velo in memory / ceiling'),
    t('local reads ≥ 0.9 × the ceiling’s GET', ops('velo-mem', 'local-reads'), ops('ceiling', 'local-reads'), 0.9, true, 'ops/s, Velo in memory / ceiling'),
    t(`p99 of writes at ${c} connections ≤ ½ of etcd’s`, p99('velo-mem', 'writes'), p99('etcd-tmpfs', 'writes'), 0.5, false, 'p99, Velo in memory / etcd on tmpfs'),
    t(`p99 of strong reads at ${c} connections ≤ ½ of etcd’s`, p99('velo-mem', 'strong-reads'), p99('etcd-tmpfs', 'strong-reads'), 0.5, false, 'p99, Velo in memory / etcd on tmpfs'),
    t('single-connection write p50 ≤ etcd’s', p50one('velo-mem'), p50one('etcd-tmpfs'), 1, false, 'p50 at 1 connection, Velo in memory / etcd on tmpfs'),
    t(`memory per item (${formatOps(r.settings.memoryItems)} × ${r.settings.valueBytes} B) ≤ 1.5 × redis-server’s`, memoryPerItem(mem?.velo), memoryPerItem(mem?.redis), 1.5, false, 'RSS growth per item, largest Velo node / redis-server'),
    // The same latency bounds for the on-disk pair, for the record.
    t(`(also) p99 of writes at ${c} connections, on disk, ≤ ½ of etcd’s`, p99('velo-disk', 'writes'), p99('etcd-disk', 'writes'), 0.5, false, 'p99, Velo with --data-dir / etcd on disk'),
    t('(also) single-connection write p50, on disk, ≤ etcd’s', p50one('velo-disk'), p50one('etcd-disk'), 1, false, 'p50 at 1 connection, Velo with --data-dir / etcd on disk'),
  ];
}

function targetRows(r: BenchResults): string[] {
  return table(
    ['target', 'measured', 'needed', 'result', 'ratio of'],
    targets(r).map((t) => [
      t.what,
      t.measured === null ? '—' : ratio(t.measured),
      `${t.atLeast ? '≥' : '≤'} ${t.bound}`,
      t.measured === null ? 'not measured' : (t.atLeast ? t.measured >= t.bound : t.measured <= t.bound) ? '**met**' : '**missed**',
      t.basis,
    ]),
    'lrrll',
  );
}

function summaryRows(r: BenchResults): string[] {
  const systems = presentSystems(r);
  const header = ['workload', ...systems.map((s) => `${s} ops/s`)];
  const pairs: [SystemName, SystemName][] = [];
  for (const v of VELO) {
    if (!systems.includes(v)) continue;
    const e = ETCD_OF[v]!;
    if (systems.includes(e)) pairs.push([v, e]);
    if (systems.includes('ceiling')) pairs.push([v, 'ceiling']);
  }
  header.push(...pairs.map(([a, b]) => `${a} / ${b}`));
  const rows = WORKLOADS.map((w) => [
    WORKLOAD_LABELS[w],
    ...systems.map((s) => opsCell(findFigure(r, s, w, r.settings.connections, r.settings.valueBytes))),
    ...pairs.map(([a, b]) => opsRatio(fig(r, a, w), fig(r, b, w))),
  ]);
  return table(header, rows);
}

function workloadSection(r: BenchResults, w: Workload, connections: number, title: string): string[] {
  const systems = presentSystems(r);
  const recs = systems.map((s) => findFigure(r, s, w, connections, r.settings.valueBytes));
  const rows = systems.map((s, i) => {
    const rec = recs[i];
    const f = rec?.figure ?? null;
    const etcd = ETCD_OF[s];
    return [
      SYSTEM_LABELS[s],
      opsCell(rec),
      f ? formatMs(f.p50Ms) : '—',
      f ? formatMs(f.p99Ms) : '—',
      f ? (w === 'cas' && f.cas ? `${formatOps(f.cas.conflict)} lost races; ` : '') + (describeErrors(f) || 'no errors') : rec?.error ? 'failed' : '—',
      etcd ? opsRatio(f, fig(r, etcd, w, connections)) : '',
      VELO.includes(s) ? opsRatio(f, fig(r, 'ceiling', w, connections)) : '',
    ];
  });
  return [`### ${title}`, '', ...table(['system', 'ops/s', 'p50 ms', 'p99 ms', 'errors', '× etcd', '× ceiling'], rows, 'lrrrlrr'), ...problems(r, recs), ''];
}

function sweepSection(r: BenchResults, title: string, axis: 'connections' | 'valueBytes', points: number[]): string[] {
  const systems = presentSystems(r);
  const header = [axis === 'connections' ? 'connections' : 'value size', ...systems.flatMap((s) => [`${s} ops/s`, `${s} p99 ms`])];
  const recs: (FigureRecord | undefined)[] = [];
  const rows = points.map((p) => [
    axis === 'connections' ? String(p) : formatBytes(p),
    ...systems.flatMap((s) => {
      const rec = axis === 'connections' ? findFigure(r, s, 'writes', p, r.settings.valueBytes) : findFigure(r, s, 'writes', r.settings.connections, p);
      recs.push(rec);
      return [opsCell(rec), rec?.figure ? formatMs(rec.figure.p99Ms) : '—'];
    }),
  ]);
  return [`### ${title}`, '', ...table(header, rows), ...problems(r, recs), ''];
}

export interface SecurityCost {
  workload: Workload;
  plain: Figure | null;
  secure: Figure | null;
  /** velo-secure's ops/s over velo-mem's; null when either figure is missing. */
  opsRatio: number | null;
  /** velo-secure's p99 over velo-mem's; null when either figure is missing. */
  p99Ratio: number | null;
}

/** What HTTPS with a token costs: velo-secure against velo-mem, both measured in this run. */
export function securityCost(r: BenchResults): SecurityCost[] {
  const of = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? a / b : null);
  return (HEADLINE_ONLY['velo-secure'] ?? []).map((workload) => {
    const plain = fig(r, 'velo-mem', workload);
    const secure = fig(r, 'velo-secure', workload);
    return { workload, plain, secure, opsRatio: of(secure?.opsPerSec, plain?.opsPerSec), p99Ratio: of(secure?.p99Ms, plain?.p99Ms) };
  });
}

function securitySection(r: BenchResults): string[] {
  const entry = r.systems.find((s) => s.name === 'velo-secure');
  // Results from before velo-secure existed, or a run without it, render as they always did.
  if (!entry) return [];
  const title = ['## HTTPS with a token vs plain HTTP, same run', ''];
  if (entry.skipped) return [...title, `Skipped: ${entry.skipped}.`, ''];
  const s = r.settings;
  const recs = (HEADLINE_ONLY['velo-secure'] ?? []).map((w) => findFigure(r, 'velo-secure', w, s.connections, s.valueBytes));
  const ms = (f: Figure | null) => (f ? formatMs(f.p99Ms) : '—');
  const rows = securityCost(r).map((c, i) => [
    WORKLOAD_LABELS[c.workload],
    opsCell(findFigure(r, 'velo-mem', c.workload, s.connections, s.valueBytes)),
    opsCell(recs[i]),
    c.opsRatio === null ? '—' : ratio(c.opsRatio),
    ms(c.plain),
    ms(c.secure),
    c.p99Ratio === null ? '—' : ratio(c.p99Ratio),
  ]);
  return [
    ...title,
    `\`velo-secure\` is \`velo-mem\` set up as README “Running it securely” sets a cluster up: certificates from \`velo certs\`, mutual TLS 1.3 between the nodes, ` +
      `HTTPS to clients and \`--admin-token-file\`; wrk speaks HTTPS to it and sends \`Authorization: Bearer <the admin token>\` on every request. ` +
      `${s.connections} connections, ${s.valueBytes}-byte values; a ratio is velo-secure’s figure over velo-mem’s (ops/s below 1 and p99 above 1 are the cost).`,
    '',
    ...table(['workload', 'velo-mem ops/s', 'velo-secure ops/s', 'ops/s ratio', 'velo-mem p99 ms', 'velo-secure p99 ms', 'p99 ratio'], rows),
    ...(r.systems.some((x) => x.name === 'velo-mem' && !x.skipped) ? [] : ['', '`velo-mem` was not measured in this run: no ratio.']),
    ...problems(r, recs),
    '',
  ];
}

function memorySection(r: BenchResults): string[] {
  const out = ['## Memory', ''];
  if ('skipped' in r.memory) return [...out, `Skipped: ${r.memory.skipped}.`, ''];
  const m = r.memory;
  out.push(
    `Resident memory (VmRSS) of each process before and after loading ${formatOps(m.items)} items of ${m.valueBytes} bytes ` +
      `(${((m.items * m.valueBytes) / 2 ** 20).toFixed(0)} MiB of values), read after the process had been idle a few seconds. ` +
      'Velo: a fresh 3-node in-memory cluster, loaded through `POST /v1/admin/load` in batches of 2,000; each node holds a replica ' +
      'of every item (3 replicas on 3 nodes), raft log included. redis-server: one process, no persistence, pipelined `SET`s of the same keys and values.',
    '',
  );
  const rows: (string | number)[][] = [];
  const add = (label: string, row: MemoryRow) => {
    if ('skipped' in row) rows.push([label, '—', '—', '—', `skipped: ${row.skipped}`]);
    else for (const s of row.samples) rows.push([s.node === label ? label : `${label} ${s.node}`, (s.beforeBytes / 2 ** 20).toFixed(0), (s.afterBytes / 2 ** 20).toFixed(0), s.perItemBytes.toFixed(0), `loaded in ${row.seconds.toFixed(1)} s`]);
  };
  add('Velo', m.velo);
  add('redis-server', m.redis);
  out.push(...table(['process', 'RSS before MiB', 'RSS after MiB', 'bytes per item', ''], rows, 'lrrrl'), '');
  const v = memoryPerItem(m.velo);
  const redis = memoryPerItem(m.redis);
  if (v !== null && redis !== null) out.push(`Largest Velo node / redis-server: ${ratio(v / redis)}.`, '');
  return out;
}

/** How much other processes on the machine disturbed the figures (see the method). */
function interferenceLine(r: BenchResults): string {
  const measured = r.figures.filter((f) => f.foreignCores !== undefined);
  if (measured.length === 0) return '- CPU used by other processes during the figures: not measured.';
  const most = Math.max(...measured.map((f) => f.foreignCores!));
  const again = measured.filter((f) => (f.attempts ?? 1) > 1).length;
  const marked = measured.filter(disturbed).length;
  return (
    `- Other processes on the machine used at most ${Math.round(most * 100)} % of a core during any figure; ` +
    `${again} figure(s) were measured again for it, ${marked} remain marked ⚠.`
  );
}

export function renderMarkdown(r: BenchResults): string {
  const s = r.settings;
  const m = r.machine;
  const skipped = r.systems.filter((x) => x.skipped);
  const lines: string[] = [
    '# Velo benchmark results',
    '',
    `Measured ${m.date} with \`${s.command}\`${s.quick ? ' (**--quick**: short figures, fewer sweep points; not the reference run)' : ''}. ` +
      'Written by `scripts/bench/run.ts`; the method is below the figures.',
    '',
    '## Machine',
    '',
    ...table(
      ['', ''],
      [
        ['CPU', `${m.cpuModel}, ${m.cores} cores (\`nproc\`)`],
        ['RAM', `${m.ramGiB} GiB`],
        ['kernel', m.kernel],
        ['Node.js', m.node],
        ['wrk', m.wrk ?? 'missing'],
        ['etcd', m.etcd ?? 'missing'],
        ['redis-server', m.redis ?? 'missing'],
      ],
      'll',
    ),
    '',
    '## Settings',
    '',
    `- ${s.secondsPerFigure} s per figure; ${s.connections} connections; values of ${s.valueBytes} bytes; ${formatOps(s.keys)} keys, chosen uniformly at random per request, all written before the first figure.`,
    `- Connections swept over ${s.connectionSweep.join(', ')}; value size over ${s.valueSweep.map(formatBytes).join(', ')} (writes, ${s.connections} connections).`,
    `- Memory: ${formatOps(s.memoryItems)} items of ${s.valueBytes} bytes.`,
    interferenceLine(r),
    ...skipped.map((x) => `- **Skipped**: ${SYSTEM_LABELS[x.name]}: ${x.skipped}.`),
    '',
    `## Summary (${s.connections} connections, ${s.valueBytes}-byte values)`,
    '',
    `Successful operations per second (⚠: the figure had errors, listed in its section below). ${presentSystems(r).map((x) => `\`${x}\`: ${SYSTEM_LABELS[x]}`).join('; ')}.`,
    '',
    ...summaryRows(r),
    '',
    '## Targets (issue 7)',
    '',
    ...targetRows(r),
    '',
    ...securitySection(r),
    '## Workloads',
    '',
    '`× etcd` compares Velo in memory with etcd on tmpfs and Velo with `--data-dir` with etcd on disk; `× ceiling` compares with the bare Fastify server. Ratios are of ops/s.',
    '',
    ...WORKLOADS.flatMap((w) => workloadSection(r, w, s.connections, `${WORKLOAD_LABELS[w]}, ${s.connections} connections`)),
    ...workloadSection(r, 'writes', 1, 'writes, 1 connection (latency)'),
    ...workloadSection(r, 'strong-reads', 1, 'strong reads, 1 connection (latency)'),
    '## Sweeps (writes)',
    '',
    `![throughput against connections](${CHART_FILES.throughputVsConnections})`,
    `![p99 against connections](${CHART_FILES.p99VsConnections})`,
    '',
    ...sweepSection(r, `against connections (${s.valueBytes}-byte values)`, 'connections', s.connectionSweep),
    `![throughput against value size](${CHART_FILES.throughputVsValueSize})`,
    `![p99 against value size](${CHART_FILES.p99VsValueSize})`,
    '',
    ...sweepSection(r, `against value size (${s.connections} connections)`, 'valueBytes', s.valueSweep),
    ...memorySection(r),
    '## Method',
    '',
    '- **Systems**, each alone on the machine in turn, all on loopback: Velo, 3 nodes (16 partitions, 3 replicas each), in memory and with `--data-dir` on the real disk; etcd, 3 members, data on tmpfs (`/dev/shm`) and on the real disk, reached through its v3 JSON gateway (`/v3/kv/put`, `/v3/kv/range`, `/v3/kv/txn`); and the ceiling, a bare Fastify server keeping values in a `Map` behind the same two routes as Velo (`scripts/bare-fastify.ts`, which also answers ETags and `If-Match` so that compare-and-set has a ceiling).',
    '- **Load generator**: wrk from Debian, one thread per process. A wrk process sends to one address, so the load is spread over a cluster’s three nodes as a load balancer would spread it: three wrk processes run at once, one per node, the connections split between them (64 = 22 + 21 + 21); three one-thread processes cost the machine about what one thread doing all the work would. With fewer connections than nodes (1 connection), the figure runs in three phases, one per node, the duration split between them. The ceiling is one server: its three wrk processes all send to it, so that every system is measured with the same load generator. Their results are merged: requests are summed over the processes (and the phases), and for latency each process prints its quantiles on a fine grid (0.5 % apart up to p90, 0.1 % to p99, 0.01 % above), from which the merged p50 and p99 are computed weighing each process by its request count (so they are exact to within the grid’s step).',
    '- **Workloads**: writes are `PUT` of a random key (etcd: `put`); strong reads are Velo’s default `GET` (linearizable) and etcd’s default (linearizable) `range`; local reads are `GET ?consistency=local` and etcd’s `serializable` range (the ceiling serves both as its one `GET`); the mix draws a strong read with 90 % probability, else a write.',
    '- **Compare-and-set** is a read-modify-write: a strong read of a random key, then, as the next request of whichever connection is free, a conditional write with the version that read returned (Velo and the ceiling: `PUT` with `If-Match: <ETag>`; etcd: a `txn` comparing the key’s `mod_revision`). wrk does not say which request a response answers, so the key comes back in the read’s answer (Velo’s values start with their key; etcd’s range names it). Its ops/s counts conditional writes that succeeded; p50 and p99 are per request (reads and conditional writes alike); a conditional write that lost a race to another connection (412, or etcd’s compare failing) is counted as a lost race, not an error.',
    '- **Errors**: an answer of 400 or more, a socket error or a timeout (5 s) is an error; ops/s counts only successful answers, and every figure with errors says so.',
    `- **A shared machine**: during each figure the CPU time used by processes other than the benchmark’s own is measured (\`/proc/stat\` less the benchmark’s processes). Each figure starts once they have left the CPU alone for a second (waiting up to ${s.maxWaitSeconds ?? 180} s, \`--max-wait\`); one during which they used ${Math.round(DISTURBED_CORES * 100)} % of a core or more is measured again, up to 3 times, the least disturbed kept and marked ⚠ if still disturbed.`,
    '- Before its figures each system is warmed up with a few seconds of writes (not counted); etcd’s history is compacted between figures, so that its database does not grow through the value-size sweep.',
    '',
  ];
  return lines.join('\n');
}
