// A small Prometheus registry: counters and histograms with labels, rendered
// in the text exposition format. Gauges are read at render time.

type Labels = Record<string, string | number>;

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

/**
 * Label sets seen so far, by a cheap key, with their escaped text: counting
 * an HTTP request must not rebuild and escape the same text every time
 * (it showed in write-path profiles). Label sets are few (routes × statuses).
 */
class LabelCache {
  private readonly texts = new Map<string, string>();

  text(labels: Labels): string {
    let raw = '';
    for (const k in labels) raw += `${k}\u0000${labels[k]}\u0001`;
    let t = this.texts.get(raw);
    if (t === undefined) {
      t = labelText(labels);
      this.texts.set(raw, t);
    }
    return t;
  }
}

export class Counter {
  private readonly values = new Map<string, number>();
  private readonly labels = new LabelCache();
  constructor(readonly name: string, readonly help: string) {}

  inc(labels: Labels = {}, by = 1): void {
    const key = this.labels.text(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`);
    for (const [labels, v] of this.values) out.push(`${this.name}${labels} ${v}`);
  }
}

/** Latency buckets in seconds, from 0.1 ms to 10 s. */
export const LATENCY_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class Histogram {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(readonly name: string, readonly help: string, readonly buckets: number[] = LATENCY_BUCKETS) {}

  private readonly labels = new LabelCache();

  observe(value: number, labels: Labels = {}): void {
    const key = this.labels.text(labels);
    let s = this.series.get(key);
    if (!s) {
      s = { counts: new Array(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`);
    for (const [labels, s] of this.series) {
      const inner = labels ? labels.slice(1, -1) + ',' : '';
      for (let i = 0; i < this.buckets.length; i++) out.push(`${this.name}_bucket{${inner}le="${this.buckets[i]}"} ${s.counts[i]}`);
      out.push(`${this.name}_bucket{${inner}le="+Inf"} ${s.count}`);
      out.push(`${this.name}_sum${labels} ${s.sum}`, `${this.name}_count${labels} ${s.count}`);
    }
  }
}

/** Renders a gauge whose samples are computed now. */
export function renderGauge(out: string[], name: string, help: string, samples: [Labels, number][]): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
  for (const [labels, v] of samples) out.push(`${name}${labelText(labels)} ${v}`);
}
