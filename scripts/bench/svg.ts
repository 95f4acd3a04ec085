// A small line-chart writer for the benchmark's figures: one line per series,
// a logarithmic x axis, a linear or logarithmic y axis, axis labels and a
// legend. Plain SVG, no dependency.

export interface Series {
  name: string;
  color: string;
  points: { x: number; y: number }[];
}

export interface ChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Label of an x tick (the x values themselves are the ticks). */
  formatX: (x: number) => string;
  formatY: (y: number) => string;
  logY?: boolean;
}

const WIDTH = 800;
const HEIGHT = 440;
const MARGIN = { left: 78, right: 240, top: 44, bottom: 58 };

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Ticks 1, 2 or 5 × 10^k apart from 0 to the first at or above max. */
function linearTicks(max: number): number[] {
  const rough = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough) ?? rough;
  const ticks = [0];
  while (ticks[ticks.length - 1]! < max) ticks.push(Number((ticks.length * step).toPrecision(12)));
  return ticks;
}

/** 1, 2, 5 × 10^k ticks within [min, max] on a log axis. */
function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let k = Math.floor(Math.log10(min)); k <= Math.ceil(Math.log10(max)); k++) {
    for (const m of [1, 2, 5]) {
      const t = m * 10 ** k;
      if (t >= min * 0.999 && t <= max * 1.001) ticks.push(Number(t.toPrecision(12)));
    }
  }
  return ticks;
}

export function lineChart(spec: ChartSpec): string {
  const all = spec.series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.y) && p.x > 0);
  const xs = [...new Set(all.map((p) => p.x))].sort((a, b) => a - b);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${MARGIN.left + plotW / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escape(spec.title)}</text>`,
  ];
  if (xs.length === 0) {
    out.push(`<text x="${WIDTH / 2}" y="${HEIGHT / 2}" text-anchor="middle">no data</text></svg>`);
    return out.join('\n');
  }

  const [xMin, xMax] = [xs[0]!, xs[xs.length - 1]!];
  const lx = (x: number) => Math.log(x);
  const xPos = (x: number) => MARGIN.left + (xMax === xMin ? plotW / 2 : ((lx(x) - lx(xMin)) / (lx(xMax) - lx(xMin))) * plotW);

  const ys = all.map((p) => p.y).filter((y) => !spec.logY || y > 0);
  let yTicks: number[];
  let yPos: (y: number) => number;
  if (spec.logY) {
    const lo = 10 ** Math.floor(Math.log10(Math.min(...ys)));
    const hi = 10 ** Math.ceil(Math.log10(Math.max(...ys)));
    yTicks = logTicks(lo, hi);
    yPos = (y) => MARGIN.top + plotH - ((Math.log(y) - Math.log(lo)) / (Math.log(hi) - Math.log(lo) || 1)) * plotH;
  } else {
    yTicks = linearTicks(Math.max(...ys, 1e-9) * 1.05);
    const top = yTicks[yTicks.length - 1]!;
    yPos = (y) => MARGIN.top + plotH - (y / top) * plotH;
  }

  // Grid and ticks.
  for (const t of yTicks) {
    const y = yPos(t).toFixed(1);
    out.push(`<line x1="${MARGIN.left}" y1="${y}" x2="${MARGIN.left + plotW}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${MARGIN.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${escape(spec.formatY(t))}</text>`);
  }
  for (const t of xs) {
    const x = xPos(t).toFixed(1);
    out.push(`<line x1="${x}" y1="${MARGIN.top}" x2="${x}" y2="${MARGIN.top + plotH}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${x}" y="${MARGIN.top + plotH + 18}" text-anchor="middle">${escape(spec.formatX(t))}</text>`);
  }
  out.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`);
  out.push(`<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 14}" text-anchor="middle">${escape(spec.xLabel)}</text>`);
  out.push(
    `<text x="18" y="${MARGIN.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 18 ${MARGIN.top + plotH / 2})">${escape(spec.yLabel)}</text>`,
  );

  // Lines and legend.
  spec.series.forEach((s, i) => {
    const pts = s.points.filter((p) => Number.isFinite(p.y) && (!spec.logY || p.y > 0)).sort((a, b) => a.x - b.x);
    if (pts.length > 0) {
      const d = pts.map((p, k) => `${k === 0 ? 'M' : 'L'}${xPos(p.x).toFixed(1)},${yPos(p.y).toFixed(1)}`).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
      for (const p of pts) out.push(`<circle cx="${xPos(p.x).toFixed(1)}" cy="${yPos(p.y).toFixed(1)}" r="3" fill="${s.color}"/>`);
    }
    const ly = MARGIN.top + 10 + i * 22;
    const lx0 = MARGIN.left + plotW + 16;
    out.push(`<line x1="${lx0}" y1="${ly}" x2="${lx0 + 22}" y2="${ly}" stroke="${s.color}" stroke-width="2"/>`);
    out.push(`<circle cx="${lx0 + 11}" cy="${ly}" r="3" fill="${s.color}"/>`);
    out.push(`<text x="${lx0 + 30}" y="${ly}" dominant-baseline="middle">${escape(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
