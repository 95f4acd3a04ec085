// A TCP proxy for one directed link between nodes, so tests can cut, delay
// or half-cut the network without root: nodes know each other by id, and a
// node's --peers may name the proxy's address for another node.
//
// "Forward" is from the dialling node (the link's `from`) to its target,
// "backward" the answers. Whichever node of a pair dials, blocking forward
// on from>to and backward on to>from stops every byte from `from` to `to`.
import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';

export type Direction = 'forward' | 'backward';

interface Pair {
  client: Socket;
  upstream: Socket;
  /** Bytes were dropped on this connection: its stream has a gap and must not carry on after a heal. */
  torn: boolean;
}

export class TcpProxy {
  private server: Server | null = null;
  private readonly pairs = new Set<Pair>();
  private cut = false;
  private readonly blocked = new Set<Direction>();
  private delayMs = 0;
  /** Bytes per millisecond each direction may carry; Infinity: unlimited. */
  private bytesPerMs = Infinity;
  /** Texts a test waits to see carried, per direction (see watch). */
  private readonly watches = new Set<{ dir: Direction; missing: Set<string>; tail: string }>();
  port = 0;

  constructor(private readonly targetHost: string, private readonly targetPort: number) {}

  async start(port = 0): Promise<void> {
    this.server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as { port: number }).port;
  }

  private accept(client: Socket): void {
    if (this.cut) {
      client.destroy();
      return;
    }
    const upstream = connect(this.targetPort, this.targetHost);
    const pair: Pair = { client, upstream, torn: false };
    this.pairs.add(pair);
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    for (const s of [client, upstream]) {
      s.on('close', close);
      s.on('error', close);
    }
    this.relay(pair, client, upstream, 'forward');
    this.relay(pair, upstream, client, 'backward');
  }

  /** Copies `from` to `to` unless the direction is blocked (bytes dropped), delayed or throttled (kept in order). */
  private relay(pair: Pair, from: Socket, to: Socket, dir: Direction): void {
    let lastDue = 0;
    from.on('data', (chunk: Buffer) => {
      if (this.blocked.has(dir)) {
        pair.torn = true;
        return;
      }
      if (this.delayMs === 0 && this.bytesPerMs === Infinity && lastDue <= Date.now()) {
        to.write(chunk);
        this.carried(dir, chunk);
        return;
      }
      // Each chunk waits for the delay and for the chunks before it to drain at the throttled rate; never reordered.
      const due = Math.max(lastDue, Date.now() + this.delayMs) + chunk.length / this.bytesPerMs;
      lastDue = due;
      setTimeout(() => {
        if (to.destroyed) return;
        to.write(chunk);
        this.carried(dir, chunk);
      }, due - Date.now());
    });
  }

  /**
   * Watches what this link hands on in `dir` from now on for each of `texts`
   * (matched as latin1 against the bytes on the wire, across chunk
   * boundaries). The returned function gives the texts not carried yet: a
   * test can wait until a message it relies on has really been passed to the
   * receiving node, instead of assuming it has.
   */
  watch(dir: Direction, texts: readonly string[]): () => string[] {
    const w = { dir, missing: new Set(texts), tail: '' };
    if (w.missing.size > 0) this.watches.add(w);
    return () => [...w.missing];
  }

  private carried(dir: Direction, chunk: Buffer): void {
    for (const w of this.watches) {
      if (w.dir !== dir) continue;
      const text = w.tail + chunk.toString('latin1');
      let longest = 0;
      for (const t of w.missing) {
        if (text.includes(t)) w.missing.delete(t);
        else longest = Math.max(longest, t.length);
      }
      if (w.missing.size === 0) this.watches.delete(w);
      // Enough of the end to find a text split across this chunk and the next.
      w.tail = longest > 1 ? text.slice(-(longest - 1)) : '';
    }
  }

  /** Cuts the link: open connections drop, new ones are refused until heal(). */
  partition(): void {
    this.cut = true;
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.pairs.clear();
  }

  /** Drops every byte in one direction (a one-way partition); connections stay open. */
  block(dir: Direction): void {
    this.blocked.add(dir);
  }

  /** Holds every chunk for `ms` before passing it on (0: none). */
  delay(ms: number): void {
    this.delayMs = ms;
  }

  /** Carries at most `bytesPerSecond` each way (a congested or thin link). */
  throttle(bytesPerSecond: number): void {
    this.bytesPerMs = bytesPerSecond / 1000;
  }

  /** Restores the link; a connection that lost bytes while blocked is closed, as a real broken one would be. */
  heal(): void {
    this.cut = false;
    this.blocked.clear();
    this.delayMs = 0;
    this.bytesPerMs = Infinity;
    for (const p of this.pairs) {
      if (!p.torn) continue;
      p.client.destroy();
      p.upstream.destroy();
      this.pairs.delete(p);
    }
  }

  async close(): Promise<void> {
    this.partition();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
