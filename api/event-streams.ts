// The open event streams of a node: how many each client may hold, writes
// that respect the reader's pace, and closing them all on shutdown.
//
// Backpressure: once the bytes written and not yet taken by the socket reach
// the stream's cap, it says it is not ready and the node stops reading events
// for it (they wait in the partition's event log, itself bounded) until the
// socket has taken them. (Node's own mark, 16 KiB, is passed within every
// busy tick while the kernel still has room, so pausing at it would throttle
// every reader.) A reader that leaves a write undrained for the stall limit
// is closed: it reconnects with Last-Event-ID and resumes where it was, as
// long as the log still holds that history.
import type { ServerResponse } from 'node:http';
import { VeloError } from '../src/node/errors.js';
import type { HttpLimits } from './http-limits.js';

export class EventStream {
  private stallTimer: NodeJS.Timeout | null = null;
  private ended = false;

  constructor(
    private readonly raw: ServerResponse,
    private readonly limits: Pick<HttpLimits, 'eventStreamStallMs' | 'eventStreamMaxBufferedBytes'>,
    private readonly onDrop: () => void,
  ) {
    raw.on('drain', () => this.clearStall());
    raw.once('close', () => {
      this.ended = true;
      this.clearStall();
    });
  }

  /** False while the socket holds the cap's worth of unsent bytes: produce nothing more for this reader. */
  ready(): boolean {
    return !this.ended && this.raw.writableLength < this.limits.eventStreamMaxBufferedBytes;
  }

  /** Bytes written and not yet taken by the socket. */
  buffered(): number {
    return this.ended ? 0 : this.raw.writableLength;
  }

  write(text: string): void {
    if (this.ended) return;
    if (this.raw.write(text)) return;
    // One timer per stalled stream, not per write: it runs only until the socket drains.
    this.stallTimer ??= setTimeout(() => this.drop(), this.limits.eventStreamStallMs);
  }

  /** Ends the stream cleanly (shutdown): the reader sees it close and may reconnect elsewhere. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.clearStall();
    this.raw.end();
  }

  private drop(): void {
    if (this.ended) return;
    this.ended = true;
    this.clearStall();
    this.onDrop();
    // Its buffer will never drain: destroyed, not ended, so the memory goes now.
    this.raw.destroy();
  }

  private clearStall(): void {
    if (this.stallTimer !== null) clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }
}

export class EventStreams {
  private readonly open = new Set<EventStream>();
  private readonly perClient = new Map<string, number>();
  private dropped = 0;

  constructor(private readonly limits: HttpLimits) {}

  /** Opens a stream for `client` on `raw`, or refuses: 503 past the node's cap, 429 past the client's. */
  add(client: string, raw: ServerResponse): EventStream {
    if (this.open.size >= this.limits.maxEventStreams) throw new VeloError('unavailable', `this node serves its maximum of ${this.limits.maxEventStreams} event streams: retry shortly, or ask another member`, 1);
    const mine = this.perClient.get(client) ?? 0;
    if (mine >= this.limits.maxEventStreamsPerClient) throw new VeloError('too_many_requests', `this client holds its maximum of ${this.limits.maxEventStreamsPerClient} event streams on this node: close one first (one stream can follow a whole cache)`, 1);
    this.perClient.set(client, mine + 1);
    const stream = new EventStream(raw, this.limits, () => this.dropped++);
    this.open.add(stream);
    raw.once('close', () => {
      this.open.delete(stream);
      const left = (this.perClient.get(client) ?? 1) - 1;
      if (left === 0) this.perClient.delete(client);
      else this.perClient.set(client, left);
    });
    return stream;
  }

  /** Ends every stream (shutdown). */
  endAll(): void {
    for (const s of this.open) s.end();
  }

  stats(): { open: number; bufferedBytes: number; dropped: number } {
    let bufferedBytes = 0;
    for (const s of this.open) bufferedBytes += s.buffered();
    return { open: this.open.size, bufferedBytes, dropped: this.dropped };
  }

  /** Prometheus text for the streams (appended to the node's /metrics). */
  metrics(): string {
    const s = this.stats();
    return [
      '# HELP velo_event_streams_open Event streams open on this node.',
      '# TYPE velo_event_streams_open gauge',
      `velo_event_streams_open ${s.open}`,
      '# HELP velo_event_streams_buffered_bytes Bytes written to event streams and not yet taken by their sockets.',
      '# TYPE velo_event_streams_buffered_bytes gauge',
      `velo_event_streams_buffered_bytes ${s.bufferedBytes}`,
      '# HELP velo_event_streams_dropped_total Event streams closed because their reader stopped reading.',
      '# TYPE velo_event_streams_dropped_total counter',
      `velo_event_streams_dropped_total ${s.dropped}`,
      '',
    ].join('\n');
  }
}
