// The four charts of the sweeps (writes): throughput and p99 against
// connections and against value size, one line per system.
import { CHART_FILES, formatBytes } from './report.js';
import { findFigure, HEADLINE_ONLY } from './results.js';
import type { BenchResults } from './results.js';
import { lineChart } from './svg.js';
import type { Series } from './svg.js';
import { SYSTEM_LABELS } from './systems.js';
import type { SystemName } from './systems.js';
import type { Figure } from './wrk.js';

const COLORS: Record<SystemName, string> = {
  'velo-mem': '#1f77b4',
  'velo-secure': '#9467bd',
  'velo-disk': '#17becf',
  'etcd-tmpfs': '#d62728',
  'etcd-disk': '#ff7f0e',
  ceiling: '#7f7f7f',
};

function formatCount(n: number): string {
  if (n >= 1_000_000) return `${n / 1_000_000}M`;
  if (n >= 1000) return `${n / 1000}k`;
  return String(n);
}

/** A log-axis tick in ms: 0.5, 1, 2, 50, 1000. */
function formatTickMs(ms: number): string {
  return String(Number(ms.toPrecision(3)));
}

function series(r: BenchResults, axis: 'connections' | 'valueBytes', value: (f: Figure) => number): Series[] {
  const points = axis === 'connections' ? r.settings.connectionSweep : r.settings.valueSweep;
  return r.systems
    // Headline-only systems have no sweep, hence no line.
    .filter((s) => !s.skipped && !HEADLINE_ONLY[s.name])
    .map((s) => ({
      name: SYSTEM_LABELS[s.name],
      color: COLORS[s.name],
      points: points.flatMap((p) => {
        const rec = axis === 'connections' ? findFigure(r, s.name, 'writes', p, r.settings.valueBytes) : findFigure(r, s.name, 'writes', r.settings.connections, p);
        return rec?.figure ? [{ x: p, y: value(rec.figure) }] : [];
      }),
    }));
}

/** File name → SVG text. */
export function renderCharts(r: BenchResults): Record<string, string> {
  const byConnections = `${formatBytes(r.settings.valueBytes)} values`;
  const bySize = `${r.settings.connections} connections`;
  const common = { formatY: formatCount };
  return {
    [CHART_FILES.throughputVsConnections]: lineChart({
      ...common,
      title: `Writes: throughput against connections (${byConnections})`,
      xLabel: 'connections (log scale)',
      yLabel: 'successful writes per second',
      formatX: String,
      series: series(r, 'connections', (f) => f.opsPerSec),
    }),
    [CHART_FILES.p99VsConnections]: lineChart({
      title: `Writes: p99 latency against connections (${byConnections})`,
      xLabel: 'connections (log scale)',
      yLabel: 'p99 latency, ms (log scale)',
      formatX: String,
      formatY: formatTickMs,
      logY: true,
      series: series(r, 'connections', (f) => f.p99Ms),
    }),
    [CHART_FILES.throughputVsValueSize]: lineChart({
      ...common,
      title: `Writes: throughput against value size (${bySize})`,
      xLabel: 'value size (log scale)',
      yLabel: 'successful writes per second',
      formatX: formatBytes,
      series: series(r, 'valueBytes', (f) => f.opsPerSec),
    }),
    [CHART_FILES.p99VsValueSize]: lineChart({
      title: `Writes: p99 latency against value size (${bySize})`,
      xLabel: 'value size (log scale)',
      yLabel: 'p99 latency, ms (log scale)',
      formatX: formatBytes,
      formatY: formatTickMs,
      logY: true,
      series: series(r, 'valueBytes', (f) => f.p99Ms),
    }),
  };
}
